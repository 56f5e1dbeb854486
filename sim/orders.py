"""Our orders at the exchange: what the quoter asks for, and what the order port knows of them.

Two things live here, shared by the quoter, the hedger, the risk gate and the order entry:

- :class:`OrderAction`, the request to enter, replace or cancel one order. The quoter and the
  hedger produce them, the risk gate decides on them, the order entry turns the approved ones
  into OUCH messages.
- :class:`OrderTable`, the state of every order that is not finished, updated by the messages
  sent and by the exchange's answers (the gateware keeps the same table; its counts are the
  ``position.live_orders`` and ``position.unacked_orders`` registers).

An order occupies one *order slot* ``(instrument, side, level)``: quote levels 0 to 2 and
:data:`HEDGE_LEVEL` for the hedger's immediate-or-cancel order. A slot holds at most one order,
and an order with a request in flight (entered and not accepted, replace or cancel sent and not
answered) is *busy*: nobody sends it anything else until the answer arrives.

Bookkeeping rules (the exchange's behaviour they rely on: :mod:`sim.exchange`)
-------------------------------------------------------------------------------
- Accepted: the order is live with the accepted quantity and price; state ``D`` (dead) ends it.
- Replaced: the order continues under the new UserRefNum with the replacement's price, the
  requested total quantity and the open shares reported; state ``D`` or 0 open shares ends it.
- Canceled: the open shares drop by the message's quantity; at 0 the order ends.
- Executed: open shares drop and executed shares grow by the message's quantity (a fill is
  returned for the position); at 0 open shares the order ends.
- Rejected: a rejected Enter Order ends the order; a rejected replacement leaves the original
  order as it was.
- An order that ends while its replace is in flight takes the replace with it: the exchange
  ignores a replace of an order that is no longer live and never answers it.
- A message naming no order we know is counted (:attr:`OrderTable.unknown`) and ignored.

Messages sent, as the gateware records them (:meth:`OrderTable.record`)
-------------------------------------------------------------------------
The methods :meth:`~OrderTable.entered`, :meth:`~OrderTable.replacing` and
:meth:`~OrderTable.canceling` refuse a message the table cannot record by raising. The gateware
learns of a message a few cycles after it was decided, and an answer may end the order in
between, so it records each report by a rule that never raises, counted under
:class:`OrderTableStat`: a replace or cancel naming an order that is no longer in the table is
``STALE`` (the exchange ignores it too); a replace or cancel of a busy order, an enter into an
occupied order slot, with a UserRefNum in use, or for a slot the gateware does not have is a
``CONFLICT``; both change nothing. Anything else is recorded (``SENT``).

Worst-case exposure
-------------------
The shares an order may still buy or sell: its open shares, or while a replace is in flight
``max(open, requested total quantity)`` (either the original or the replacement may trade). The
risk gate bounds ``position + exposure`` on each side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

from sim.itch_event import Side
from sim.wire.ouch import (
    Accepted,
    Canceled,
    Executed,
    Message,
    OrderState,
    Rejected,
    Replaced,
    TimeInForce,
)

__all__ = [
    "HEDGE_LEVEL",
    "MAX_LEVELS",
    "ActionKind",
    "Fill",
    "LiveOrder",
    "OrderAction",
    "OrderTable",
    "OrderTableStat",
    "Origin",
    "PendingReplace",
    "Status",
]

#: Quote levels per side (``QuoteParams.levels`` is at most this).
MAX_LEVELS = 3
#: The order slot of an instrument's hedge order.
HEDGE_LEVEL = MAX_LEVELS


class ActionKind(IntEnum):
    NEW = 0
    REPLACE = 1
    CANCEL = 2


class Origin(IntEnum):
    """Who asked for an action."""

    QUOTER = 0
    HEDGER = 1
    #: The risk gate itself (kill switch, heartbeat loss, an instrument halted).
    GATE = 2


@dataclass(frozen=True, slots=True)
class OrderAction:
    """A request to enter, replace or cancel one order.

    ``ref`` is the UserRefNum of the order replaced or canceled (0 for a new order); ``price``
    and ``quantity`` are the new order's or the replacement's (``quantity`` is the total size,
    see :class:`~sim.wire.ouch.ReplaceOrder`), unused for a cancel.
    """

    kind: ActionKind
    slot: int
    side: Side
    level: int
    price: int = 0
    quantity: int = 0
    tif: TimeInForce = TimeInForce.DAY
    ref: int = 0
    origin: Origin = Origin.QUOTER


class OrderTableStat(IntEnum):
    """What the order table counts (:meth:`OrderTable.record`, :meth:`OrderTable.answer`);
    the gateware has one 48-bit counter per member."""

    #: Messages sent and recorded.
    SENT = 0
    #: A replace or cancel sent for an order that ended before its report arrived.
    STALE = 1
    #: A message sent that contradicts the table (busy order, occupied slot, UserRefNum in use,
    #: slot out of range); nothing is recorded.
    CONFLICT = 2
    #: Answers applied to one of our orders.
    ANSWERS = 3
    #: Answers naming no order we know (:attr:`OrderTable.unknown`).
    UNKNOWN = 4
    #: Fills reported (Executed answers applied).
    FILLS = 5
    #: Gateware only: fills that would take the 32-bit position out of range (it stays at the
    #: bound). The model's position has no bound.
    POSITION_SATURATED = 6


class Status(IntEnum):
    PENDING_NEW = 0
    LIVE = 1


@dataclass(slots=True)
class PendingReplace:
    ref: int
    price: int
    quantity: int
    sent_at: int


@dataclass(slots=True)
class LiveOrder:
    """One order that has not ended.

    ``price`` and ``quantity`` are those in force (the last accepted; while pending, those
    sent); ``open`` the shares open at the exchange; ``executed`` the shares executed over the
    order's replace chain; ``since`` the cycle of its last Accepted or Replaced.
    """

    ref: int
    slot: int
    side: Side
    level: int
    tif: TimeInForce
    price: int
    quantity: int
    open: int
    executed: int
    status: Status
    sent_at: int
    since: int
    replace: PendingReplace | None = None
    cancel_pending: bool = False

    @property
    def busy(self) -> bool:
        return (self.status is Status.PENDING_NEW or self.replace is not None
                or self.cancel_pending)

    @property
    def exposure(self) -> int:
        if self.replace is not None:
            return max(self.open, self.replace.quantity)
        return self.open


@dataclass(frozen=True, slots=True)
class Fill:
    """Shares of one of our orders executed at the exchange."""

    time: int
    slot: int
    side: Side
    quantity: int
    price: int
    liquidity: str
    ref: int
    match_number: int


class OrderTable:
    """Every order that has not ended, by UserRefNum and by order slot.

    Attributes
    ----------
    unknown : int
        Exchange messages that named no order we know (ignored).
    """

    def __init__(self):
        self._by_ref: dict[int, LiveOrder] = {}
        # Keyed with the side as a plain int: hashing an enum member is slow.
        self._by_slot: dict[tuple[int, int, int], LiveOrder] = {}
        self._replacing: dict[int, LiveOrder] = {}  # replacement UserRefNum -> order
        self.unknown = 0
        self.stats = {stat: 0 for stat in OrderTableStat}

    # -- queries ---------------------------------------------------------------------------------

    def get(self, ref: int) -> LiveOrder | None:
        return self._by_ref.get(ref)

    def at(self, slot: int, side: Side, level: int) -> LiveOrder | None:
        """The order in an order slot, if any."""
        return self._by_slot.get((slot, int(side), level))

    def of_slot(self, slot: int) -> list[LiveOrder]:
        """The instrument's orders, oldest UserRefNum first."""
        return sorted((o for o in self._by_ref.values() if o.slot == slot), key=_ref)

    def __iter__(self) -> Iterator[LiveOrder]:
        return iter(sorted(self._by_ref.values(), key=_ref))

    def __len__(self) -> int:
        return len(self._by_ref)

    @property
    def live_count(self) -> int:
        """Orders that may rest at the exchange: entered and not ended."""
        return len(self._by_ref)

    @property
    def unacked_count(self) -> int:
        """Enter and replace requests sent and not yet answered."""
        return (sum(o.status is Status.PENDING_NEW for o in self._by_ref.values())
                + len(self._replacing))

    def live_of(self, slot: int) -> int:
        return sum(o.slot == slot for o in self._by_ref.values())

    def unacked_of(self, slot: int) -> int:
        return sum((o.status is Status.PENDING_NEW) + (o.replace is not None)
                   for o in self._by_ref.values() if o.slot == slot)

    def exposure(self, slot: int, side: Side, exclude: int | None = None) -> int:
        """Worst-case shares the instrument's ``side`` orders may still trade (without the
        order ``exclude``)."""
        return sum(o.exposure for o in self._by_ref.values()
                   if o.slot == slot and o.side == side and o.ref != exclude)

    def hedge_busy(self, slot: int) -> bool:
        """A hedge order of the instrument has not ended."""
        return any(self.at(slot, side, HEDGE_LEVEL) is not None for side in Side)

    # -- what we send ----------------------------------------------------------------------------

    def entered(self, ref: int, action: OrderAction, now: int) -> LiveOrder:
        key = (action.slot, int(action.side), action.level)
        if key in self._by_slot:
            raise ValueError(f"order slot {key} already holds order {self._by_slot[key].ref}")
        if ref in self._by_ref or ref in self._replacing:
            raise ValueError(f"UserRefNum {ref} is in use")
        order = LiveOrder(ref, action.slot, Side(action.side), action.level, action.tif,
                          action.price, action.quantity, action.quantity, 0,
                          Status.PENDING_NEW, now, now)
        self._by_ref[ref] = order
        self._by_slot[key] = order
        return order

    def replacing(self, order: LiveOrder, ref: int, price: int, quantity: int,
                  now: int) -> None:
        if order.busy:
            raise ValueError(f"order {order.ref} is busy")
        order.replace = PendingReplace(ref, price, quantity, now)
        self._replacing[ref] = order

    def canceling(self, order: LiveOrder) -> None:
        if order.busy:
            raise ValueError(f"order {order.ref} is busy")
        order.cancel_pending = True

    def record(self, ref: int, action: OrderAction, now: int,
               slots: int | None = None) -> OrderTableStat:
        """Record one message sent, as the gateware does (see the module notes): ``ref`` is the
        UserRefNum the message carries (for a cancel, the order's); ``slots`` the instrument
        slots the table has (None: any). Returns the verdict, also counted in ``stats``."""
        verdict = self._verdict(ref, action, slots)
        if verdict is OrderTableStat.SENT:
            if action.kind is ActionKind.NEW:
                self.entered(ref, action, now)
            elif action.kind is ActionKind.REPLACE:
                self.replacing(self._by_ref[action.ref], ref, action.price, action.quantity, now)
            else:
                self.canceling(self._by_ref[action.ref])
        self.stats[verdict] += 1
        return verdict

    def _verdict(self, ref: int, action: OrderAction, slots: int | None) -> OrderTableStat:
        if action.kind is ActionKind.NEW:
            if ((slots is not None and action.slot >= slots)
                    or (action.slot, int(action.side), action.level) in self._by_slot
                    or ref in self._by_ref or ref in self._replacing):
                return OrderTableStat.CONFLICT
            return OrderTableStat.SENT
        order = self._by_ref.get(action.ref)
        if order is None:
            return OrderTableStat.STALE
        return OrderTableStat.CONFLICT if order.busy else OrderTableStat.SENT

    def answer(self, message: Message, now: int) -> tuple[int | None, Fill | None]:
        """:meth:`on_message`, counted in ``stats``."""
        slot, fill = self.on_message(message, now)
        self.stats[OrderTableStat.UNKNOWN if slot is None else OrderTableStat.ANSWERS] += 1
        if fill is not None:
            self.stats[OrderTableStat.FILLS] += 1
        return slot, fill

    # -- what the exchange answers ---------------------------------------------------------------

    def on_message(self, message: Message, now: int) -> tuple[int | None, Fill | None]:
        """Apply one exchange message; returns the instrument concerned (None if unknown) and
        the fill it reports, if any."""
        if isinstance(message, Replaced):
            order = self._replacing.get(message.user_ref_num)
            if order is None or order.ref != message.orig_user_ref_num:
                self.unknown += 1
                return None, None
            pending = order.replace
            del self._replacing[pending.ref]
            del self._by_ref[order.ref]
            order.ref, order.replace = pending.ref, None
            order.price, order.quantity, order.open = message.price, pending.quantity, \
                message.quantity
            order.since = now
            self._by_ref[order.ref] = order
            if message.order_state == OrderState.DEAD or order.open == 0:
                self._end(order)
            return order.slot, None
        if isinstance(message, Rejected):
            order = self._replacing.pop(message.user_ref_num, None)
            if order is not None:
                order.replace = None  # the original stays as it was
                return order.slot, None
        order = self._by_ref.get(getattr(message, "user_ref_num", None))
        if order is None:
            self.unknown += 1
            return None, None
        fill = None
        if isinstance(message, Accepted):
            order.status = Status.LIVE
            order.price, order.open, order.since = message.price, message.quantity, now
            if message.order_state == OrderState.DEAD or order.open == 0:
                self._end(order)
        elif isinstance(message, Rejected):
            self._end(order)
        elif isinstance(message, Canceled):
            order.open = max(order.open - message.quantity, 0)
            order.cancel_pending = False
            if order.open == 0:
                self._end(order)
        elif isinstance(message, Executed):
            taken = min(message.quantity, order.open)
            order.open -= taken
            order.executed += taken
            fill = Fill(now, order.slot, order.side, message.quantity, message.price,
                        message.liquidity_flag, message.user_ref_num, message.match_number)
            if order.open == 0:
                self._end(order)
        else:
            self.unknown += 1
            return None, None
        return order.slot, fill

    def _end(self, order: LiveOrder) -> None:
        del self._by_ref[order.ref]
        del self._by_slot[(order.slot, int(order.side), order.level)]
        if order.replace is not None:
            del self._replacing[order.replace.ref]
            order.replace = None


def _ref(order: LiveOrder) -> int:
    return order.ref
