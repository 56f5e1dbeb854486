"""A small exchange simulator: takes our OUCH orders, answers them, and fills them from the feed.

It closes the market maker's loop in the model, in the cocotb benches and in the replay. It is
not a matching engine: it knows the public book only through the feed (the top of book per
instrument and the feed's executions), and our orders never appear in that book.

Rules (one OUCH port, UserRefIdx 0, every answer in order in a SoupBinTCP sequenced packet)
--------------------------------------------------------------------------------------------
Enter Order
    A UserRefNum not above the last one consumed is a retransmission: ignored, no answer.
    Otherwise it is consumed, and: an unknown symbol is Rejected (``INVALID_SYMBOL``), a
    quantity outside 1..999,999 (``INVALID_QUANTITY``), a price outside 1..MAX_LIMIT_PRICE
    (``INVALID_PRICE``). Side ``B`` buys, ``S``/``T``/``E`` sell. A valid order gets the next
    order reference number and is *marketable* when it would lock or cross the current top of
    its instrument (buy at or above the best ask, sell at or below the best bid):
    - post-only (option 12 = ``P``) and marketable: Accepted with order state ``D`` (dead);
    - marketable otherwise: Accepted, then Executed against the best opposite level for
      ``min(quantity, shares there)`` at that level's price, liquidity ``R``; what is left is
      Canceled (reason ``I``) for an IOC order, or rests;
    - not marketable: Accepted; an IOC order is then Canceled (reason ``I``) whole, a day
      order rests.
Replace Order Request
    Ignored (the new UserRefNum not consumed) when the original is not live or the new
    UserRefNum is not above the last one consumed. Invalid quantity or price: the original is
    Canceled (reason ``Z``), the new UserRefNum not consumed. Otherwise the new UserRefNum is
    consumed, the original leaves the book, and the replacement (side and symbol of the
    original, time priority lost: a new order reference number) opens with ``quantity -
    shares executed over the chain``: Replaced with order state ``D`` if that is 0 or less or
    if it is post-only and marketable; else handled like an entered order (marketable day or
    IOC replacements trade against the top first) and answered with Replaced.
Cancel Order Request
    Ignored if the order is not live or the requested size does not reduce it; otherwise
    Canceled (reason ``U``) for ``open - quantity`` shares.
Fills from the feed
    Each execution in the feed (ITCH ``E`` and ``C``, taken from the book before the event is
    applied: :func:`feed_trade`) at price ``p`` for ``n`` shares fills our resting orders of
    that instrument that it trades at or through: bids priced at or above ``p``, asks at or
    below ``p``. Best price first, then oldest order reference number first, each taking
    ``min(its open shares, what is left of n)``. A fill is Executed at our order's price with
    liquidity ``A`` and the next match number. The book moving through a resting order without
    a trade fills nothing.

Timestamps are nanoseconds: ``now * 1_000_000_000 // clk_hz`` for the cycle ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sim.book import EMPTY_PRICE, Books, TopUpdate
from sim.itch_event import EventKind, ItchEvent, Side
from sim.wire.ouch import (
    MAX_LIMIT_PRICE,
    MAX_QUANTITY,
    Accepted,
    Canceled,
    CancelOrder,
    CancelReason,
    EnterOrder,
    Executed,
    LiquidityFlag,
    Message,
    OptionTag,
    OrderState,
    Rejected,
    RejectReason,
    Replaced,
    ReplaceOrder,
    SideCode,
    TimeInForce,
    decode_inbound_stream,
)

__all__ = ["DEFAULT_CLK_HZ", "ExchangeSim", "ExchangeStats", "FeedTrade", "feed_trade"]

DEFAULT_CLK_HZ = 156_250_000


@dataclass(frozen=True, slots=True)
class FeedTrade:
    """An execution in the feed: instrument slot, side of the resting order, price, shares."""

    slot: int
    side: Side
    price: int
    shares: int


def feed_trade(books: Books, event: ItchEvent) -> FeedTrade | None:
    """The execution an ``E``/``C`` event reports, read from ``books`` *before* the event is
    pushed (the order is gone after); None for other events and unknown orders."""
    if event.kind not in (EventKind.EXECUTE, EventKind.EXECUTE_PRICE):
        return None
    for slot in range(books.slots):
        order = books.book(slot).orders.get(event.order_ref)
        if order is not None:
            price = event.price if event.kind == EventKind.EXECUTE_PRICE else order.price
            return FeedTrade(slot, order.side, price, min(event.shares, order.shares))
    return None


@dataclass
class _Order:
    user_ref: int
    slot: int
    side: Side
    symbol: str
    price: int
    open: int
    executed: int
    tif: str
    display: str
    capacity: str
    intermarket_sweep: str
    cross_type: str
    cl_ord_id: str
    post_only: bool
    order_ref: int = 0


@dataclass
class ExchangeStats:
    accepted: int = 0
    rejected: int = 0
    replaced: int = 0
    canceled: int = 0
    executions: int = 0
    executed_shares: int = 0
    ignored: int = 0
    dead: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class ExchangeSim:
    """The exchange side of one OUCH port.

    Parameters
    ----------
    symbols : sequence of str
        Symbol of each instrument slot, as in our Enter Orders.
    clk_hz : int
        Cycles per second, for the message timestamps.
    first_order_ref, first_match : int
        First order reference number and match number handed out.
    """

    def __init__(self, symbols: Sequence[str], clk_hz: int = DEFAULT_CLK_HZ,
                 first_order_ref: int = 1, first_match: int = 1):
        self._slot_of = {symbol.ljust(8): slot for slot, symbol in enumerate(symbols)}
        self.clk_hz = clk_hz
        self.tops: dict[int, TopUpdate] = {}
        self.orders: dict[int, _Order] = {}
        self.last_user_ref = 0
        self.next_order_ref = first_order_ref
        self.next_match = first_match
        self.stats = ExchangeStats()

    # -- inputs ----------------------------------------------------------------------------------

    def on_top(self, update: TopUpdate) -> None:
        """The feed's top of book changed."""
        self.tops[update.slot] = update

    def receive(self, stream: bytes, now: int) -> list[Message]:
        """Our SoupBinTCP unsequenced packets in; the exchange's answers, in order."""
        out: list[Message] = []
        for message in decode_inbound_stream(stream):
            if isinstance(message, EnterOrder):
                self._enter(message, now, out)
            elif isinstance(message, ReplaceOrder):
                self._replace(message, now, out)
            elif isinstance(message, CancelOrder):
                self._cancel(message, now, out)
        return out

    def on_trade(self, trade: FeedTrade | None, now: int) -> list[Message]:
        """Fill our resting orders that a feed execution trades at or through."""
        out: list[Message] = []
        if trade is None:
            return out
        bids = sorted((o for o in self.orders.values()
                       if o.slot == trade.slot and o.side == Side.BUY and o.price >= trade.price),
                      key=lambda o: (-o.price, o.order_ref))
        asks = sorted((o for o in self.orders.values()
                       if o.slot == trade.slot and o.side == Side.SELL
                       and o.price <= trade.price),
                      key=lambda o: (o.price, o.order_ref))
        left = trade.shares
        for order in bids + asks:
            if left == 0:
                break
            taken = min(order.open, left)
            left -= taken
            self._execute(order, taken, order.price, LiquidityFlag.ADDED, now, out)
        return out

    # -- helpers ---------------------------------------------------------------------------------

    def timestamp(self, now: int) -> int:
        return now * 1_000_000_000 // self.clk_hz

    def _consume(self, user_ref: int) -> bool:
        if user_ref <= self.last_user_ref:
            self.stats.ignored += 1
            return False
        self.last_user_ref = user_ref
        return True

    def _reject(self, message, reason: RejectReason, now: int, out: list[Message]) -> None:
        self.stats.rejected += 1
        out.append(Rejected(self.timestamp(now), message.user_ref_num, reason,
                            message.cl_ord_id))

    @staticmethod
    def _invalid(quantity: int, price: int) -> RejectReason | None:
        if not 1 <= quantity <= MAX_QUANTITY:
            return RejectReason.INVALID_QUANTITY
        if not 1 <= price <= MAX_LIMIT_PRICE:
            return RejectReason.INVALID_PRICE
        return None

    def _marketable(self, order: _Order) -> tuple[int, int] | None:
        """The opposite best level (price, shares) when the order would lock or cross it."""
        top = self.tops.get(order.slot)
        if top is None:
            return None
        if order.side == Side.BUY:
            price, shares = top.ask_price, top.ask_shares
            hit = price != EMPTY_PRICE and order.price >= price
        else:
            price, shares = top.bid_price, top.bid_shares
            hit = price != EMPTY_PRICE and order.price <= price
        return (price, shares) if hit else None

    def _answer(self, order: _Order, now: int, state: str, orig: int | None) -> Message:
        common = dict(side=SideCode.BUY if order.side == Side.BUY else SideCode.SELL,
                      quantity=order.open if state == OrderState.LIVE else 0,
                      symbol=order.symbol, price=order.price, time_in_force=order.tif,
                      display=order.display, order_reference_number=order.order_ref,
                      capacity=order.capacity, intermarket_sweep=order.intermarket_sweep,
                      cross_type=order.cross_type, order_state=state,
                      cl_ord_id=order.cl_ord_id)
        if orig is None:
            return Accepted(self.timestamp(now), order.user_ref, **common)
        return Replaced(self.timestamp(now), orig, order.user_ref, **common)

    def _open(self, order: _Order, now: int, out: list[Message], orig: int | None) -> None:
        """Give the order its reference number and answer it (rules of Enter Order)."""
        order.order_ref = self.next_order_ref
        self.next_order_ref += 1
        level = self._marketable(order)
        if order.open <= 0 or (level is not None and order.post_only):
            self.stats.dead += 1
            out.append(self._answer(order, now, OrderState.DEAD, orig))
            return
        if orig is None:
            self.stats.accepted += 1
        else:
            self.stats.replaced += 1
        out.append(self._answer(order, now, OrderState.LIVE, orig))
        self.orders[order.user_ref] = order
        if level is not None:
            price, shares = level
            taken = min(order.open, shares)
            if taken:
                self._execute(order, taken, price, LiquidityFlag.REMOVED, now, out)
        if order.tif == TimeInForce.IOC and order.open:
            self._cancel_shares(order, order.open, CancelReason.IMMEDIATE_OR_CANCEL, now, out)

    def _execute(self, order: _Order, shares: int, price: int, liquidity: str, now: int,
                 out: list[Message]) -> None:
        order.open -= shares
        order.executed += shares
        self.stats.executions += 1
        self.stats.executed_shares += shares
        out.append(Executed(self.timestamp(now), order.user_ref, shares, price, liquidity,
                            self.next_match))
        self.next_match += 1
        if order.open == 0:
            del self.orders[order.user_ref]

    def _cancel_shares(self, order: _Order, shares: int, reason: str, now: int,
                       out: list[Message]) -> None:
        order.open -= shares
        self.stats.canceled += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        out.append(Canceled(self.timestamp(now), order.user_ref, shares, reason))
        if order.open == 0:
            del self.orders[order.user_ref]

    # -- inbound messages ------------------------------------------------------------------------

    def _enter(self, m: EnterOrder, now: int, out: list[Message]) -> None:
        if not self._consume(m.user_ref_num):
            return
        slot = self._slot_of.get(m.symbol)
        if slot is None:
            self._reject(m, RejectReason.INVALID_SYMBOL, now, out)
            return
        invalid = self._invalid(m.quantity, m.price)
        if invalid is not None:
            self._reject(m, invalid, now, out)
            return
        post_only = any(o.tag == OptionTag.POST_ONLY and o.value == b"P" for o in m.options)
        order = _Order(m.user_ref_num, slot, Side.BUY if m.side == SideCode.BUY else Side.SELL,
                       m.symbol, m.price, m.quantity, 0, m.time_in_force, m.display,
                       m.capacity, m.intermarket_sweep, m.cross_type, m.cl_ord_id, post_only)
        self._open(order, now, out, None)

    def _replace(self, m: ReplaceOrder, now: int, out: list[Message]) -> None:
        orig = self.orders.get(m.orig_user_ref_num)
        if orig is None or m.user_ref_num <= self.last_user_ref:
            self.stats.ignored += 1
            return
        if self._invalid(m.quantity, m.price) is not None:
            self._cancel_shares(orig, orig.open, CancelReason.SYSTEM, now, out)
            return
        self.last_user_ref = m.user_ref_num
        del self.orders[orig.user_ref]
        post_only = any(o.tag == OptionTag.POST_ONLY and o.value == b"P" for o in m.options)
        order = _Order(m.user_ref_num, orig.slot, orig.side, orig.symbol, m.price,
                       m.quantity - orig.executed, orig.executed, m.time_in_force, m.display,
                       orig.capacity, m.intermarket_sweep, orig.cross_type, m.cl_ord_id,
                       post_only)
        self._open(order, now, out, orig.user_ref)

    def _cancel(self, m: CancelOrder, now: int, out: list[Message]) -> None:
        order = self.orders.get(m.user_ref_num)
        if order is None or m.quantity >= order.open:
            self.stats.ignored += 1
            return
        self._cancel_shares(order, order.open - m.quantity, CancelReason.USER_REQUESTED, now,
                            out)
