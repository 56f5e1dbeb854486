"""Reference model of the pre-trade risk gate: every order action passes here or not at all.

The gate sees order actions (:class:`~sim.orders.OrderAction`), not the quoter's internals. It
reads what the order port knows (the :class:`~sim.orders.OrderTable`, the positions, the book's
top per instrument, the arm/kill/heartbeat state of :class:`~sim.control.Control`) and the
host's :class:`~hdl.csr.params.RiskLimits`, :class:`~hdl.csr.params.PortLimits` and, for the
fair value the collar is centred on, :class:`~hdl.csr.params.QuoteParams`. Time is an integer
cycle count passed in by the caller.

Every decision carries a :class:`RiskReason` and is counted under it (``stats``; the enum is the
counter layout of the gateware's ``stats`` port). Its members are in priority order: when several
checks fail, the decision names the first.

Instrument state (:meth:`RiskGate.state`)
-----------------------------------------
``HALTED`` (no new order, no replace; the gate cancels the instrument's live orders), in this
order of causes: not armed (``DISARMED``: never armed, killed, or heartbeat lost); market-maker
protection tripped (``MMP_TRIPPED``); stale feed (``STALE_FEED``: with ``stale_feed_timeout =
T > 0``, no top-of-book update of the instrument yet, or ``now - last update >= T``); an
unrecovered MoldUDP64 gap (``FEED_GAP``, set by the caller); the book halted, degraded, or
crossed or locked (``BOOK_HALTED``, ``BOOK_DEGRADED``, ``BOOK_CROSSED``: both sides present and
bid >= ask).
``REDUCING`` (only orders that reduce the position): the position is beyond a limit
(``position > max_long`` or ``-position > max_short``, e.g. after the host lowered a limit).
``ACTIVE`` otherwise.

Checks of a new order or replace (in this order)
------------------------------------------------
1. Instrument halted: the cause.
2. ``UNKNOWN_ORDER``: a replace of an order that is not in the table, is busy, or is of another
   instrument or side.
3. ``BAD_ORDER``: quantity outside 1..999,999 or price outside 1..MAX_LIMIT_PRICE.
4. ``NO_FAIR_VALUE``: the instrument has none (:mod:`sim.fair_value`).
5. ``COLLAR``: ``|price - fair value| > collar``.
6. ``LOCKS_BOOK``: a day order would lock or cross the current book (buy at or above the best
   ask, sell at or below the best bid). Immediate-or-cancel orders (hedges) are meant to take
   liquidity and are exempt.
7. ``MAX_ORDER_QTY``: quantity above ``max_order_qty``.
8. Position, with the order's worst-case exposure ``e`` (its quantity; for a replace
   ``max(open shares of the order, quantity)``) and ``E`` that of the instrument's other
   orders on the same side: a buy needs ``position + E + e <= max_long`` (else ``MAX_LONG``), a
   sell ``E + e - position <= max_short`` (else ``MAX_SHORT``); while ``REDUCING``, a buy also
   needs ``position < 0`` and ``position + E + e <= 0``, a sell ``position > 0`` and
   ``position - E - e >= 0`` (else ``REDUCE_ONLY``, checked before the limits).
9. ``MAX_LIVE`` (new orders only): orders not ended, plus this one, above ``max_live_orders``.
10. ``MAX_UNACKED``: enter and replace requests unanswered, plus this one, above
    ``max_unacked_orders``.
11. ``RATE``: the token bucket is empty. A passing new order or replace takes a token; the
    bucket (depth ``rate_tokens``, full when the gate is created, as after a reset) gains one
    every ``rate_refill`` cycles during which it is not full, the count restarting when it
    fills.

Cancels are never rate limited and pass whatever the state (a kill must be able to cancel);
they are denied only as ``UNKNOWN_ORDER`` (no such order, or it is busy).

Forced cancels (:meth:`RiskGate.sweep`)
---------------------------------------
While an instrument is ``HALTED`` the gate cancels each of its orders that is live and not busy
(oldest UserRefNum first, instruments in slot order); orders busy at that moment are canceled
at the first sweep after their answer. Each forced cancel is a decision with the halt's cause
as its reason and origin ``GATE``, counted under ``FORCED_CANCEL``.

Market-maker protection
-----------------------
Filled shares are counted in a window of ``mmp_window`` cycles opened by the first fill after
the previous window closed; when the count reaches ``mmp_threshold`` (0 disables) the
instrument trips and stays ``HALTED`` until the host arms (``ctrl.arm`` re-arms every
instrument, from the next cycle, like the rest of the control state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from hdl.csr.params import PortLimits, QuoteParams, RiskLimits
from sim.book import EMPTY_PRICE, TopUpdate
from sim.control import Control
from sim.fair_value import fair_value
from sim.itch_event import Side
from sim.orders import ActionKind, OrderAction, OrderTable, Origin, Status
from sim.wire.ouch import MAX_LIMIT_PRICE, MAX_QUANTITY, TimeInForce

__all__ = ["Decision", "RiskGate", "RiskReason", "RiskState", "TokenBucket"]


class RiskReason(IntEnum):
    """Why the gate decided as it did; also the layout of its counters (one per member).

    The values are the priority order of the checks.
    """

    PASSED = 0
    DISARMED = 1
    MMP_TRIPPED = 2
    STALE_FEED = 3
    FEED_GAP = 4
    BOOK_HALTED = 5
    BOOK_DEGRADED = 6
    BOOK_CROSSED = 7
    UNKNOWN_ORDER = 8
    BAD_ORDER = 9
    NO_FAIR_VALUE = 10
    COLLAR = 11
    LOCKS_BOOK = 12
    MAX_ORDER_QTY = 13
    REDUCE_ONLY = 14
    MAX_LONG = 15
    MAX_SHORT = 16
    MAX_LIVE = 17
    MAX_UNACKED = 18
    RATE = 19
    #: Not a check: counts the cancels the gate sent itself (their reason is the halt's cause).
    FORCED_CANCEL = 20


class RiskState(IntEnum):
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer to one action, at cycle ``time``."""

    action: OrderAction
    reason: RiskReason
    time: int

    @property
    def passed(self) -> bool:
        return self.reason is RiskReason.PASSED or self.action.origin is Origin.GATE


class TokenBucket:
    """The order-rate limiter (rule 11 above), advanced in closed form to any later cycle."""

    def __init__(self, depth: int, refill: int):
        self.depth = depth
        self.refill = refill
        self.tokens = depth
        self._count = 0   # cycles counted toward the next token
        self._time = 0

    def advance(self, now: int) -> None:
        elapsed, self._time = now - self._time, now
        if elapsed < 0:
            raise ValueError("the token bucket cannot go back in time")
        if self.tokens >= self.depth:
            self.tokens, self._count = self.depth, 0
            return
        self._count += elapsed
        gained, self._count = divmod(self._count, self.refill)
        self.tokens += gained
        if self.tokens >= self.depth:
            self.tokens, self._count = self.depth, 0

    def take(self, now: int) -> bool:
        self.advance(now)
        if self.tokens == 0:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Slot:
    quote: QuoteParams
    limits: RiskLimits
    top: TopUpdate | None = None
    last_update: int | None = None
    mmp_count: int = 0
    mmp_window_start: int | None = None
    mmp_tripped: bool = False
    mmp_clear_at: int | None = None


_HALT_FLAGS = ("halted", "degraded")


class RiskGate:
    """The pre-trade risk gate.

    Parameters
    ----------
    quote_params, limits : sequences, one per instrument slot
        The instruments' :class:`QuoteParams` (fair value mode and reference price, for the
        collar) and :class:`RiskLimits`. The gate keeps references: changing a field takes
        effect at the next decision, as a commit does.
    port : PortLimits
    control : Control
    orders : OrderTable
    positions : object with ``shares(slot) -> int``
        E.g. :class:`~sim.position.PositionBook`.

    Attributes
    ----------
    stats : dict[RiskReason, int]
    feed_gap : bool
        An unrecovered MoldUDP64 gap (set by the caller from the feed's gap reports).
    """

    def __init__(self, quote_params: Sequence[QuoteParams], limits: Sequence[RiskLimits],
                 port: PortLimits, control: Control, orders: OrderTable, positions):
        if len(quote_params) != len(limits):
            raise ValueError("one QuoteParams and one RiskLimits per instrument slot")
        self._slots = [_Slot(q, r) for q, r in zip(quote_params, limits, strict=True)]
        self.port = port
        self.control = control
        self.orders = orders
        self.positions = positions
        self.bucket = TokenBucket(port.rate_tokens, port.rate_refill)
        self.feed_gap = False
        self.stats = {reason: 0 for reason in RiskReason}

    @property
    def slots(self) -> int:
        return len(self._slots)

    # -- inputs ----------------------------------------------------------------------------------

    def on_book(self, update: TopUpdate, now: int) -> None:
        s = self._slots[update.slot]
        s.top, s.last_update = update, now

    def on_fill(self, slot: int, shares: int, now: int) -> None:
        """Count filled shares for market-maker protection."""
        s = self._slots[slot]
        self._settle_mmp(s, now)
        lim = s.limits
        if s.mmp_window_start is None or now - s.mmp_window_start >= lim.mmp_window:
            s.mmp_window_start, s.mmp_count = now, 0
        s.mmp_count += shares
        if lim.mmp_threshold and s.mmp_count >= lim.mmp_threshold:
            s.mmp_tripped = True

    def rearm(self, now: int) -> None:
        """The host armed (``ctrl.arm`` strobed in cycle ``now``): clear every MMP trip from the
        next cycle."""
        for s in self._slots:
            s.mmp_clear_at = now + 1

    def _settle_mmp(self, s: _Slot, now: int) -> None:
        if s.mmp_clear_at is not None and now >= s.mmp_clear_at:
            s.mmp_tripped, s.mmp_count, s.mmp_window_start = False, 0, None
            s.mmp_clear_at = None

    # -- state -----------------------------------------------------------------------------------

    def state(self, slot: int, now: int) -> tuple[RiskState, RiskReason]:
        """The instrument's state in cycle ``now`` and its cause (``PASSED`` when active)."""
        s = self._slots[slot]
        self._settle_mmp(s, now)
        if not self.control.armed(now):
            return RiskState.HALTED, RiskReason.DISARMED
        if s.mmp_tripped:
            return RiskState.HALTED, RiskReason.MMP_TRIPPED
        timeout = self.port.stale_feed_timeout
        if timeout and (s.last_update is None or now - s.last_update >= timeout):
            return RiskState.HALTED, RiskReason.STALE_FEED
        if self.feed_gap:
            return RiskState.HALTED, RiskReason.FEED_GAP
        top = s.top
        if top is not None:
            if top.halted:
                return RiskState.HALTED, RiskReason.BOOK_HALTED
            if top.degraded:
                return RiskState.HALTED, RiskReason.BOOK_DEGRADED
            if (top.bid_price != EMPTY_PRICE and top.ask_price != EMPTY_PRICE
                    and top.bid_price >= top.ask_price):
                return RiskState.HALTED, RiskReason.BOOK_CROSSED
        position = self.positions.shares(slot)
        if position > s.limits.max_long or -position > s.limits.max_short:
            return RiskState.REDUCING, RiskReason.REDUCE_ONLY
        return RiskState.ACTIVE, RiskReason.PASSED

    def fair_value(self, slot: int) -> int | None:
        s = self._slots[slot]
        return None if s.top is None else fair_value(s.top, s.quote)

    # -- decisions -------------------------------------------------------------------------------

    def check(self, action: OrderAction, now: int) -> Decision:
        """Decide on one action from the quoter or the hedger (counted under its reason)."""
        reason = self._reason(action, now)
        self.stats[reason] += 1
        return Decision(action, reason, now)

    def _reason(self, action: OrderAction, now: int) -> RiskReason:
        orders = self.orders
        target = orders.get(action.ref) if action.kind is not ActionKind.NEW else None
        if action.kind is ActionKind.CANCEL:
            if target is None or target.busy or target.slot != action.slot:
                return RiskReason.UNKNOWN_ORDER
            return RiskReason.PASSED
        state, cause = self.state(action.slot, now)
        if state is RiskState.HALTED:
            return cause
        if action.kind is ActionKind.REPLACE and (
                target is None or target.busy or target.status is not Status.LIVE
                or target.slot != action.slot or target.side != action.side):
            return RiskReason.UNKNOWN_ORDER
        if not (1 <= action.quantity <= MAX_QUANTITY and 1 <= action.price <= MAX_LIMIT_PRICE):
            return RiskReason.BAD_ORDER
        s = self._slots[action.slot]
        fv = self.fair_value(action.slot)
        if fv is None:
            return RiskReason.NO_FAIR_VALUE
        if abs(action.price - fv) > s.limits.collar:
            return RiskReason.COLLAR
        if action.tif == TimeInForce.DAY and _locks(action, s.top):
            return RiskReason.LOCKS_BOOK
        if action.quantity > s.limits.max_order_qty:
            return RiskReason.MAX_ORDER_QTY
        reason = self._position_reason(action, target, state, s.limits)
        if reason is not RiskReason.PASSED:
            return reason
        if action.kind is ActionKind.NEW and orders.live_count + 1 > self.port.max_live_orders:
            return RiskReason.MAX_LIVE
        if orders.unacked_count + 1 > self.port.max_unacked_orders:
            return RiskReason.MAX_UNACKED
        bucket = self.bucket
        bucket.depth, bucket.refill = self.port.rate_tokens, self.port.rate_refill
        if not bucket.take(now):
            return RiskReason.RATE
        return RiskReason.PASSED

    def _position_reason(self, action: OrderAction, target, state: RiskState,
                         limits: RiskLimits) -> RiskReason:
        position = self.positions.shares(action.slot)
        mine = action.quantity if target is None else max(target.open, action.quantity)
        others = self.orders.exposure(action.slot, action.side,
                                      exclude=None if target is None else target.ref)
        if action.side == Side.BUY:
            worst = position + others + mine
            if state is RiskState.REDUCING and not (position < 0 and worst <= 0):
                return RiskReason.REDUCE_ONLY
            if worst > limits.max_long:
                return RiskReason.MAX_LONG
        else:
            worst = position - others - mine
            if state is RiskState.REDUCING and not (position > 0 and worst >= 0):
                return RiskReason.REDUCE_ONLY
            if -worst > limits.max_short:
                return RiskReason.MAX_SHORT
        return RiskReason.PASSED

    def sweep(self, now: int) -> list[Decision]:
        """The forced cancels due in cycle ``now`` (see the module notes)."""
        out = []
        for slot in range(self.slots):
            state, cause = self.state(slot, now)
            if state is not RiskState.HALTED:
                continue
            for order in self.orders.of_slot(slot):
                if order.status is Status.LIVE and not order.busy:
                    action = OrderAction(ActionKind.CANCEL, slot, order.side, order.level,
                                         ref=order.ref, origin=Origin.GATE)
                    self.stats[RiskReason.FORCED_CANCEL] += 1
                    out.append(Decision(action, cause, now))
        return out

    def next_deadline(self, now: int) -> int | None:
        """The first cycle after ``now`` in which an instrument's state changes without any
        input (the watchdog, an arm or kill taking effect, a feed going stale), if one has
        orders it would cancel."""
        times = []
        change = self.control.next_change(now)
        if change is not None:
            times.append(change)
        timeout = self.port.stale_feed_timeout
        for slot, s in enumerate(self._slots):
            if s.mmp_clear_at is not None and s.mmp_clear_at > now:
                times.append(s.mmp_clear_at)
            if timeout and s.last_update is not None and s.last_update + timeout > now \
                    and self.orders.live_of(slot):
                times.append(s.last_update + timeout)
        return min(times, default=None)


def _locks(action: OrderAction, top: TopUpdate | None) -> bool:
    if top is None:
        return False
    if action.side == Side.BUY:
        return top.ask_price != EMPTY_PRICE and action.price >= top.ask_price
    return top.bid_price != EMPTY_PRICE and action.price <= top.bid_price
