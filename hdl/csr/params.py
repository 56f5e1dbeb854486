"""Host-set parameters: quote parameters and risk limits per instrument, order-port limits.

Each class here *is* the declaration of its registers: every field is declared as
``Annotated[type, Param(...)]`` (width, reset, range, unit, description), and the register map
turns the class into a block of staged registers (:meth:`~hdl.csr.reg.Block.from_dataclass`).
The host driver takes and returns these objects, and the reference model of the quoter and risk
gate can use them as they are: this module is plain Python and imports no Amaranth.

All registers here are staged: writes wait in a shadow copy and a commit applies all of them in
the same cycle. Units: prices are ITCH price units (1e-4 $, 4 implied decimals), ``ticks`` are
multiples of the instrument's ``tick_size``, times are clock cycles, sizes and positions are
shares. Reset values are the safe ones: nothing is quoted and no order passes the risk gate until
the host has written limits and committed.
"""

from enum import IntEnum
from typing import Annotated

from hdl.csr.reg import Fmt, Param, parameters

__all__ = ["MAX_ORDER_SHARES", "PRICE_BITS", "FairValueMode", "PortLimits", "QuoteParams",
           "RiskLimits"]

#: ITCH 5.0 prices are 4-byte unsigned integers with 4 implied decimals.
PRICE_BITS = 32
#: Largest quantity a single order may carry (NASDAQ rejects orders of a million shares or more).
MAX_ORDER_SHARES = 999_999
_POSITION_MAX = (1 << 31) - 1


class FairValueMode(IntEnum):
    """Where an instrument's fair value comes from."""

    #: (best bid + best ask) / 2, rounded down.
    MID = 0
    #: Size-weighted microprice of the best levels.
    MICROPRICE = 1
    #: The host-written ``reference_price`` (e.g. another venue's price).
    REFERENCE = 2


PRICE = "price (1e-4 $)"


@parameters
class QuoteParams:
    """How the quoter prices one instrument."""

    enable: Annotated[bool, Param(
        1, 0, fmt=Fmt.BOOL, doc="Quote this instrument; 0 pulls its quotes.")]
    fair_value_mode: Annotated[FairValueMode, Param(
        2, FairValueMode.MID, max=max(FairValueMode), enum=FairValueMode,
        doc="Source of the fair value.")]
    reference_price: Annotated[int, Param(
        PRICE_BITS, 0, unit=PRICE, doc="Fair value used in REFERENCE mode.")]
    base_half_spread: Annotated[int, Param(
        16, 1, max=10_000, unit="ticks", doc="Half-spread before the volatility term.")]
    vol_multiplier: Annotated[int, Param(
        16, 0, unit="1/256", doc="Volatility term = EWMA of |mid change| x this / 256.")]
    vol_ewma_shift: Annotated[int, Param(
        4, 4, max=15, doc="Each new |mid change| enters the EWMA with weight 2^-shift.")]
    skew_ticks_per_unit: Annotated[int, Param(
        32, 0, unit="1/65536 tick per share",
        doc="The quote centre moves against the position by this much per share held.")]
    tick_size: Annotated[int, Param(
        16, 100, min=1, unit=PRICE,
        doc="Price increment; the bid rounds down and the ask up to a multiple of it.")]
    levels: Annotated[int, Param(
        2, 1, min=1, max=3, unit="levels", doc="Order levels quoted per side.")]
    level_spacing: Annotated[int, Param(
        16, 1, min=1, max=10_000, unit="ticks", doc="Distance between consecutive levels.")]
    requote_threshold: Annotated[int, Param(
        16, 1, max=10_000, unit="ticks",
        doc="A resting quote is replaced only when its price moves by at least this much.")]
    min_quote_life: Annotated[int, Param(
        32, 0, unit="cycles", doc="A quote is not replaced before it has rested this long.")]
    size: Annotated[int, Param(
        32, 100, min=1, max=MAX_ORDER_SHARES, unit="shares",
        doc="Quote size per level before the inventory size reduction.")]
    price_ceiling: Annotated[int, Param(
        PRICE_BITS, (1 << PRICE_BITS) - 1, unit=PRICE, doc="No quote above this price.")]
    price_floor: Annotated[int, Param(
        PRICE_BITS, 0, unit=PRICE, doc="No quote below this price.")]


@parameters
class RiskLimits:
    """Pre-trade risk limits of one instrument."""

    max_long: Annotated[int, Param(
        32, 0, max=_POSITION_MAX, unit="shares",
        doc="Largest long position an order may lead to.")]
    max_short: Annotated[int, Param(
        32, 0, max=_POSITION_MAX, unit="shares",
        doc="Largest short position (as a positive number) an order may lead to.")]
    max_order_qty: Annotated[int, Param(
        32, 0, max=MAX_ORDER_SHARES, unit="shares", doc="Largest quantity of one order.")]
    collar: Annotated[int, Param(
        PRICE_BITS, 0, unit=PRICE,
        doc="Largest distance between an order's price and the fair value.")]
    mmp_threshold: Annotated[int, Param(
        32, 0, max=_POSITION_MAX, unit="shares",
        doc="Market-maker protection: shares filled within the window that trip the "
            "instrument until the host re-arms it; 0 disables.")]
    mmp_window: Annotated[int, Param(
        32, 0, unit="cycles", doc="Market-maker protection window.")]
    hedge_enable: Annotated[bool, Param(
        1, 0, fmt=Fmt.BOOL, doc="Send immediate-or-cancel hedge orders.")]
    hedge_threshold: Annotated[int, Param(
        32, 0, max=_POSITION_MAX, unit="shares",
        doc="Absolute position beyond which a hedge order is sent.")]
    hedge_size: Annotated[int, Param(
        32, 0, max=MAX_ORDER_SHARES, unit="shares", doc="Quantity of each hedge order.")]


@parameters
class PortLimits:
    """Limits of the order port as a whole (all instruments together)."""

    rate_tokens: Annotated[int, Param(
        16, 0, unit="orders", doc="Token bucket depth: orders that may be sent back to back.")]
    rate_refill: Annotated[int, Param(
        32, (1 << 32) - 1, min=1, unit="cycles", doc="Cycles to earn one token back.")]
    max_live_orders: Annotated[int, Param(
        16, 0, unit="orders", doc="Largest number of orders resting at the exchange.")]
    max_unacked_orders: Annotated[int, Param(
        16, 0, unit="orders", doc="Largest number of orders sent and not yet acknowledged.")]
    stale_feed_timeout: Annotated[int, Param(
        32, 0, unit="cycles",
        doc="Quotes are pulled when no book update arrives for this long; 0 disables the "
            "check.")]
