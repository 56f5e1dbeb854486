"""Fair value of one instrument from its top of book: the quoter centres on it, the risk gate
collars around it.

Both stages compute it from the same inputs (the book's top and the instrument's
:class:`~hdl.csr.params.QuoteParams`) by the same rule, each on its own: the risk gate does not
take the quoter's word for the price it checks against.

Rules (integers only; the gateware computes exactly these values)
-----------------------------------------------------------------
``MID``
    ``(bid + ask) >> 1``: the sum rounded down to an integer price.
``MICROPRICE``
    ``(bid * ask_shares + ask * bid_shares) // (bid_shares + ask_shares)``: the size-weighted
    price, rounded down. The weights are crossed on purpose: a heavy bid pulls the price
    towards the ask (buyers queue there, the next trade is more likely up).
``REFERENCE``
    ``reference_price`` as written by the host.

Widths: the microprice's products are 64 bits, their sum 65, the divisor 33.

There is no fair value (``None``) when ``MID`` or ``MICROPRICE`` miss a side (price 0, the empty
side value) or when the reference price is 0. A crossed or locked book still has one; whether to
trade on it is the risk gate's decision, not this function's.
"""

from hdl.csr.params import FairValueMode, QuoteParams
from sim.book import EMPTY_PRICE, Top

__all__ = ["fair_value", "microprice", "mid_price"]


def mid_price(top: Top) -> int | None:
    """``(bid + ask) >> 1``, or None with a side empty."""
    if top.bid_price == EMPTY_PRICE or top.ask_price == EMPTY_PRICE:
        return None
    return (top.bid_price + top.ask_price) >> 1


def microprice(top: Top) -> int | None:
    """The size-weighted price of the best levels rounded down, or None with a side empty."""
    if top.bid_price == EMPTY_PRICE or top.ask_price == EMPTY_PRICE:
        return None
    weight = top.bid_shares + top.ask_shares
    if weight == 0:  # the book never reports a level without shares; stay defined anyway
        return mid_price(top)
    return (top.bid_price * top.ask_shares + top.ask_price * top.bid_shares) // weight


def fair_value(top: Top, params: QuoteParams) -> int | None:
    """The instrument's fair value by ``params.fair_value_mode``, or None when there is none."""
    mode = params.fair_value_mode
    if mode == FairValueMode.MID:
        return mid_price(top)
    if mode == FairValueMode.MICROPRICE:
        return microprice(top)
    if mode == FairValueMode.REFERENCE:
        return params.reference_price or None
    raise ValueError(f"unknown fair value mode {mode!r}")
