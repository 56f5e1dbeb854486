"""Reference model of the order book stage: ITCH events in, top-of-book updates out.

Two layers, both usable on their own:

- :class:`OrderBook`: one instrument's L3 book (every live order, price levels with aggregated
  shares, best bid/ask, depth). Integer prices in ITCH units (4 implied decimals).
- :class:`Books`: the instruments being tracked, one *slot* each, fed with
  :class:`~sim.itch_event.ItchEvent` objects; it emits a :class:`TopUpdate` whenever a slot's top
  of book or its flags change. With a :class:`~sim.book_mirror.BookGeometry` it also runs out of
  room exactly where the gateware (``hdl/book/``) does, and the two are compared bit for bit;
  without one it has no limits (the mode for looking at a capture).

Semantics (the gateware's too)
------------------------------
- ``A``/``F`` add an order. An add with 0 shares or price 0 (0 is the empty-side value) is
  dropped (``BAD_ORDER``); one whose reference is live is dropped (``DUPLICATE_REF``).
- ``E``/``C`` execute and ``X`` cancels shares of the resting order; ``C``'s price is the trade's
  price and leaves the book's price alone. More shares than remain: the order is removed (the
  remainder counts as executed/cancelled) and ``OVER_EXECUTE``/``OVER_CANCEL`` counted. An order
  left with 0 shares is removed.
- ``D`` removes the order. ``U`` removes the original order and adds the new reference on the same
  slot and side with the new price and shares (the add is checked like an ``A``); the update for a
  ``U`` reflects both halves.
- A reference that is not live (``E``, ``C``, ``X``, ``D``, ``U``) is counted (``UNKNOWN_REF``)
  and changes nothing. Orders are found by reference alone, whatever the message's locate.
- ``S`` with event code ``O`` (start of messages) or ``C`` (end of messages) clears every book
  (``CLEARS``); other system events are ignored. Halted and degraded flags survive a clear.
- ``H`` sets the slot's *halted* flag unless the trading state is ``T`` (trading).
- ``R`` binds the slots configured by that symbol to the message's locate (``BOUND``).
- Events of instruments not tracked are dropped (``FILTERED``), as are ignored system events and
  ``R`` messages that bind nothing.
- Empty side: price 0 and shares 0, for the bid and the ask alike.
- A :class:`TopUpdate` is emitted when a slot's best bid or ask (price or shares) or its flags
  differ from what was last emitted for it, after each event, in slot order for a clear. Updates
  caused by the host (:meth:`Books.clear_degraded`, :meth:`Books.clear_book`) carry seq 0 and
  timestamp 0.
- *degraded* is set when an add is refused for want of room (``TABLE_FULL``, ``LEVEL_FULL``; only
  with a geometry) and stays set until :meth:`Books.clear_degraded`. The gateware also sets it
  when its input queue overflows (``OVERFLOW``), which the model, having no queue, never does.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from sim.book_mirror import BookGeometry, CacheMirror, TableMirror
from sim.itch_event import EventKind, ItchEvent, Side

__all__ = [
    "CLEAR_CODES",
    "EMPTY_PRICE",
    "EMPTY_SHARES",
    "LEVEL_SHARES_BITS",
    "TRADING",
    "BookStat",
    "Books",
    "Level",
    "Order",
    "OrderBook",
    "Outcome",
    "SlotSnapshot",
    "Top",
    "TopUpdate",
]

EMPTY_PRICE = 0
EMPTY_SHARES = 0
# Aggregated shares of a level: enough for 2**16 orders of 2**32 - 1 shares, so never wraps.
LEVEL_SHARES_BITS = 48
# ITCH trading state "T": trading; any other state (halted, paused, quotation only) is a halt.
TRADING = ord("T")
# ITCH system event codes that clear the books: start of messages, end of messages.
CLEAR_CODES = (ord("O"), ord("C"))


class BookStat(IntEnum):
    """What the book stage counts (one 48-bit counter each in the gateware)."""

    EVENTS = 0          # events received
    FILTERED = 1        # dropped: instrument not tracked, ignored S, R binding nothing
    BOUND = 2           # R messages that bound a slot
    CLEARS = 3          # S events that cleared the books
    UNKNOWN_REF = 4     # E/C/X/D/U of a reference that is not live
    OVER_EXECUTE = 5    # E/C of more shares than remain
    OVER_CANCEL = 6     # X of more shares than remain
    DUPLICATE_REF = 7   # A/F/U adding a reference that is live
    BAD_ORDER = 8       # A/F/U with 0 shares or price 0
    TABLE_FULL = 9      # add refused: its order-table set is full (instrument degraded)
    LEVEL_FULL = 10     # add refused: the new level's set is full (instrument degraded)
    OVERFLOW = 11       # events lost because the input queue was full (gateware only)
    REFILLS = 12        # next-best searches: the level cache refilled from the level table
    UPDATES = 13        # top-of-book updates emitted


class Outcome(Enum):
    """Result of an :class:`OrderBook` operation."""

    OK = "ok"
    BAD_ORDER = "bad order"
    DUPLICATE_REF = "duplicate reference"
    UNKNOWN_REF = "unknown reference"
    OVERSIZE = "more shares than remain"


@dataclass(slots=True)
class Order:
    side: Side
    price: int
    shares: int


@dataclass(frozen=True, slots=True)
class Level:
    price: int
    shares: int


EMPTY_LEVEL = Level(EMPTY_PRICE, EMPTY_SHARES)


@dataclass(frozen=True, slots=True)
class Top:
    """Best bid and ask; an empty side is price 0, shares 0."""

    bid_price: int = EMPTY_PRICE
    bid_shares: int = EMPTY_SHARES
    ask_price: int = EMPTY_PRICE
    ask_shares: int = EMPTY_SHARES


@dataclass(frozen=True, slots=True)
class TopUpdate:
    """One top-of-book update, as the gateware emits it (see ``hdl/book/layout.py``)."""

    slot: int
    locate: int
    bid_price: int
    bid_shares: int
    ask_price: int
    ask_shares: int
    seq: int
    timestamp: int
    halted: bool
    degraded: bool

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.__slots__}


class BookSide:
    """The levels of one side: price -> aggregated shares, prices kept sorted best first."""

    def __init__(self, side: Side):
        self.side = Side(side)
        self.shares: dict[int, int] = {}
        self._keys: list[int] = []  # bid prices negated so that ascending order is best first

    def _key(self, price: int) -> int:
        return -price if self.side == Side.BUY else price

    def add(self, price: int, shares: int) -> bool:
        """Add shares at ``price``; True when this opens the level."""
        old = self.shares.get(price)
        if old is None:
            self.shares[price] = shares
            insort(self._keys, self._key(price))
            return True
        self.shares[price] = old + shares
        return False

    def remove(self, price: int, shares: int) -> bool:
        """Take shares off ``price``; True when this empties the level."""
        left = self.shares[price] - shares
        if left:
            self.shares[price] = left
            return False
        del self.shares[price]
        del self._keys[bisect_left(self._keys, self._key(price))]
        return True

    def best(self) -> Level:
        if not self._keys:
            return EMPTY_LEVEL
        price = abs(self._keys[0])
        return Level(price, self.shares[price])

    def depth(self, k: int | None = None) -> list[Level]:
        keys = self._keys if k is None else self._keys[:k]
        return [Level(abs(key), self.shares[abs(key)]) for key in keys]

    def prices(self) -> list[int]:
        """Every price of the side, best first."""
        return [abs(key) for key in self._keys]

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self.shares.clear()
        self._keys.clear()


class OrderBook:
    """One instrument's L3 book.

    Attributes
    ----------
    orders : dict[int, Order]
        Live orders by reference.
    sides : tuple of BookSide
        ``sides[Side.BUY]`` and ``sides[Side.SELL]``.
    """

    def __init__(self):
        self.orders: dict[int, Order] = {}
        self.sides = (BookSide(Side.BUY), BookSide(Side.SELL))

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, ref: int, side: Side, price: int, shares: int) -> Outcome:
        """Add a resting order (``A``/``F``)."""
        if shares == 0 or price == EMPTY_PRICE:
            return Outcome.BAD_ORDER
        if ref in self.orders:
            return Outcome.DUPLICATE_REF
        self._place(ref, side, price, shares)
        return Outcome.OK

    def _place(self, ref: int, side: Side, price: int, shares: int) -> bool:
        self.orders[ref] = Order(Side(side), price, shares)
        return self.sides[side].add(price, shares)

    def execute(self, ref: int, shares: int) -> Outcome:
        """Execute ``shares`` of the order (``E``/``C``)."""
        return self.reduce(ref, shares)[0]

    def cancel(self, ref: int, shares: int) -> Outcome:
        """Cancel ``shares`` of the order (``X``)."""
        return self.reduce(ref, shares)[0]

    def delete(self, ref: int) -> Outcome:
        """Remove the order (``D``)."""
        return self.reduce(ref, None)[0]

    def replace(self, ref: int, new_ref: int, price: int, shares: int) -> Outcome:
        """Remove ``ref`` and add ``new_ref`` on its side (``U``); the removal stands even if the
        add is refused."""
        order = self.orders.get(ref)
        if order is None:
            return Outcome.UNKNOWN_REF
        self.reduce(ref, None)
        return self.add(new_ref, order.side, price, shares)

    def reduce(self, ref: int, shares: int | None) -> tuple[Outcome, Order | None, int, bool]:
        """Take ``shares`` (all if None) off an order.

        Returns the outcome, the order (None if unknown), the shares actually taken and whether
        its level emptied. Asking for more than remains takes what remains (``OVERSIZE``).
        """
        order = self.orders.get(ref)
        if order is None:
            return Outcome.UNKNOWN_REF, None, 0, False
        outcome = Outcome.OK
        taken = order.shares
        if shares is not None:
            if shares > order.shares:
                outcome = Outcome.OVERSIZE
            else:
                taken = shares
        order.shares -= taken
        if order.shares == 0:
            del self.orders[ref]
        emptied = taken > 0 and self.sides[order.side].remove(order.price, taken)
        return outcome, order, taken, emptied

    def best(self, side: Side) -> Level:
        """Best level of ``side``; price 0 and shares 0 when the side is empty."""
        return self.sides[side].best()

    def top(self) -> Top:
        bid, ask = self.sides[Side.BUY].best(), self.sides[Side.SELL].best()
        return Top(bid.price, bid.shares, ask.price, ask.shares)

    def depth(self, side: Side, k: int | None = None) -> list[Level]:
        """The best ``k`` levels of ``side`` (all if None), best first."""
        return self.sides[side].depth(k)

    def clear(self) -> None:
        self.orders.clear()
        for side in self.sides:
            side.clear()


@dataclass
class SlotSnapshot:
    """A slot's book at some point, e.g. at the end of a capture."""

    slot: int
    locate: int
    symbol: int
    top: Top
    bids: list[Level]
    asks: list[Level]
    orders: int
    halted: bool
    degraded: bool


@dataclass
class _Slot:
    enabled: bool = False
    by_symbol: bool = False
    locate: int = 0
    symbol: int = 0
    bound: bool = False
    halted: bool = False
    degraded: bool = False
    book: OrderBook = field(default_factory=OrderBook)
    last_top: Top = field(default_factory=Top)
    last_flags: tuple[bool, bool] = (False, False)
    caches: tuple[CacheMirror, CacheMirror] | None = None


_ADDS = (EventKind.ADD, EventKind.ADD_MPID)
_REDUCES = {EventKind.EXECUTE: BookStat.OVER_EXECUTE, EventKind.EXECUTE_PRICE:
            BookStat.OVER_EXECUTE, EventKind.CANCEL: BookStat.OVER_CANCEL,
            EventKind.DELETE: None}


class Books:
    """The tracked instruments' books, fed event by event.

    Parameters
    ----------
    slots : int or None
        Number of slots, each configured with :meth:`track_locate` or :meth:`track_symbol`.
        ``None`` tracks every instrument seen (a slot per locate, in order of appearance; ``R``
        names them) and has no capacity limits.
    geometry : BookGeometry, optional
        Mirror the gateware's table sizes (``slots`` is then ``geometry.slots``): adds are
        refused where the gateware refuses them and ``REFILLS`` is counted.
    check_cache : bool
        With a geometry, check the level-cache invariant after every event (slow; for tests).

    Attributes
    ----------
    stats : dict[BookStat, int]
    """

    def __init__(self, slots: int | None = 8, geometry: BookGeometry | None = None,
                 check_cache: bool = False):
        self.geometry = geometry
        if geometry is not None:
            slots = geometry.slots
        self.track_all = slots is None
        self._slots: list[_Slot] = [] if slots is None else [self._new_slot() for _ in
                                                              range(slots)]
        self._owner: dict[int, int] = {}
        self._by_locate: dict[int, int] = {}
        self._tables = TableMirror(geometry) if geometry is not None else None
        self._check_cache = check_cache and geometry is not None
        self.stats: dict[BookStat, int] = {member: 0 for member in BookStat}

    def _new_slot(self) -> _Slot:
        slot = _Slot()
        if self.geometry is not None:
            slot.caches = (CacheMirror(Side.BUY, self.geometry),
                           CacheMirror(Side.SELL, self.geometry))
        return slot

    # -- configuration ---------------------------------------------------------------------------

    @property
    def slots(self) -> int:
        return len(self._slots)

    def track_locate(self, slot: int, locate: int) -> None:
        """Track stock locate ``locate`` in ``slot`` (the book is kept; clear it if reused)."""
        s = self._slots[slot]
        s.enabled, s.by_symbol, s.locate, s.bound = True, False, locate, True
        self._rebind()

    def track_symbol(self, slot: int, symbol: int) -> None:
        """Track the instrument whose ``R`` message carries ``symbol`` (see ``symbol_int``)."""
        s = self._slots[slot]
        s.enabled, s.by_symbol, s.symbol, s.bound, s.locate = True, True, symbol, False, 0
        self._rebind()

    def release(self, slot: int) -> None:
        """Stop tracking anything in ``slot``."""
        s = self._slots[slot]
        s.enabled = s.bound = False
        self._rebind()

    def slot_of(self, locate: int) -> int | None:
        """The lowest slot bound to ``locate``."""
        return self._by_locate.get(locate)

    def _rebind(self) -> None:
        self._by_locate = {}
        for n, s in enumerate(self._slots):
            if s.bound:
                self._by_locate.setdefault(s.locate, n)

    # -- queries ---------------------------------------------------------------------------------

    def book(self, slot: int) -> OrderBook:
        return self._slots[slot].book

    def top(self, slot: int) -> Top:
        return self._slots[slot].book.top()

    def depth(self, slot: int, side: Side, k: int | None = None) -> list[Level]:
        return self._slots[slot].book.depth(side, k)

    def locate(self, slot: int) -> int:
        return self._slots[slot].locate

    def halted(self, slot: int) -> bool:
        return self._slots[slot].halted

    def degraded(self, slot: int) -> bool:
        return self._slots[slot].degraded

    def snapshot(self, depth: int | None = None) -> list[SlotSnapshot]:
        """Every slot's book now (``depth`` levels per side, all if None)."""
        return [SlotSnapshot(n, s.locate, s.symbol, s.book.top(),
                             s.book.depth(Side.BUY, depth), s.book.depth(Side.SELL, depth),
                             len(s.book), s.halted, s.degraded)
                for n, s in enumerate(self._slots)]

    # -- events ----------------------------------------------------------------------------------

    def run(self, events: Iterable[ItchEvent | None]) -> Iterator[TopUpdate]:
        """Push every event (``None`` entries are skipped) and yield the updates in order."""
        for event in events:
            if event is not None:
                yield from self.push(event)

    def push(self, event: ItchEvent) -> list[TopUpdate]:
        """Apply one event; returns the top-of-book updates it caused (usually none or one)."""
        stats = self.stats
        stats[BookStat.EVENTS] += 1
        kind = event.kind
        out: list[TopUpdate] = []
        if kind == EventKind.DIRECTORY:
            self._directory(event)
            return out
        if kind == EventKind.SYSTEM:
            if event.code in CLEAR_CODES:
                stats[BookStat.CLEARS] += 1
                self._clear(range(self.slots), event.seq, event.timestamp, out)
            else:
                stats[BookStat.FILTERED] += 1
            return out
        slot = self.slot_of(event.locate)
        if slot is None and self.track_all:
            slot = self._open(event.locate)
        if slot is None:
            stats[BookStat.FILTERED] += 1
            return out
        if kind in _ADDS:
            self._add(slot, event.order_ref, event.side, event.price, event.shares)
        elif kind in _REDUCES:
            shares = None if kind == EventKind.DELETE else event.shares
            slot = self._reduce(event.order_ref, shares, _REDUCES[kind], slot)
        elif kind == EventKind.REPLACE:
            owner = self._owner.get(event.order_ref)
            if owner is None:
                stats[BookStat.UNKNOWN_REF] += 1
            else:
                order = self._slots[owner].book.orders[event.order_ref]
                self._reduce(event.order_ref, None, None, owner)
                self._add(owner, event.new_ref, order.side, event.price, event.shares)
                slot = owner
        elif kind == EventKind.TRADING_ACTION:
            self._slots[slot].halted = event.code != TRADING
        self._emit(slot, event.seq, event.timestamp, out)
        if self._check_cache:
            self.check_caches()
        return out

    # -- host actions ----------------------------------------------------------------------------

    def clear_degraded(self, slots: Iterable[int] | None = None) -> list[TopUpdate]:
        """Clear the degraded flag of ``slots`` (all if None); updates carry seq/timestamp 0."""
        out: list[TopUpdate] = []
        for n in self._selected(slots):
            self._slots[n].degraded = False
            self._emit(n, 0, 0, out)
        return out

    def clear_book(self, slots: Iterable[int] | None = None) -> list[TopUpdate]:
        """Empty the books of ``slots`` (all if None); updates carry seq/timestamp 0."""
        out: list[TopUpdate] = []
        self._clear(self._selected(slots), 0, 0, out)
        return out

    def _selected(self, slots: Iterable[int] | None) -> list[int]:
        return sorted(set(range(self.slots) if slots is None else slots))

    # -- internals -------------------------------------------------------------------------------

    def _open(self, locate: int, symbol: int = 0) -> int:
        slot = self._new_slot()
        slot.enabled = slot.bound = True
        slot.locate, slot.symbol = locate, symbol
        self._slots.append(slot)
        self._by_locate.setdefault(locate, len(self._slots) - 1)
        return len(self._slots) - 1

    def _directory(self, event: ItchEvent) -> None:
        bound = False
        for s in self._slots:
            if s.enabled and s.by_symbol and s.symbol == event.symbol:
                s.locate, s.bound = event.locate, True
                bound = True
        if bound:
            self._rebind()
        if self.track_all:
            slot = self.slot_of(event.locate)
            if slot is None:
                self._open(event.locate, event.symbol)
            else:
                self._slots[slot].symbol = event.symbol
            bound = True
        self.stats[BookStat.BOUND if bound else BookStat.FILTERED] += 1

    def _add(self, slot: int, ref: int, side: Side, price: int, shares: int) -> None:
        stats = self.stats
        s = self._slots[slot]
        if shares == 0 or price == EMPTY_PRICE:
            stats[BookStat.BAD_ORDER] += 1
            return
        if ref in self._owner:
            stats[BookStat.DUPLICATE_REF] += 1
            return
        tables = self._tables
        if tables is not None:
            if tables.order_set_full(ref):
                stats[BookStat.TABLE_FULL] += 1
                s.degraded = True
                return
            if price not in s.book.sides[side].shares and tables.level_set_full(slot, side, price):
                stats[BookStat.LEVEL_FULL] += 1
                s.degraded = True
                return
        new_level = s.book._place(ref, side, price, shares)
        self._owner[ref] = slot
        if tables is not None:
            tables.order_added(ref)
            if new_level:
                tables.level_added(slot, side, price)
            s.caches[side].level_added(price)

    def _reduce(self, ref: int, shares: int | None, oversize: BookStat | None,
                slot: int) -> int:
        """Reduce an order; returns the slot it belonged to (``slot`` if it is unknown)."""
        owner = self._owner.get(ref)
        if owner is None:
            self.stats[BookStat.UNKNOWN_REF] += 1
            return slot
        s = self._slots[owner]
        outcome, order, _, emptied = s.book.reduce(ref, shares)
        if outcome is Outcome.OVERSIZE:
            self.stats[oversize] += 1
        if ref not in s.book.orders:
            del self._owner[ref]
            if self._tables is not None:
                self._tables.order_removed(ref)
        if emptied and self._tables is not None:
            self._tables.level_removed(owner, order.side, order.price)
            side = s.book.sides[order.side]
            if s.caches[order.side].level_emptied(order.price, side.shares):
                self.stats[BookStat.REFILLS] += 1
        return owner

    def _clear(self, slots: Iterable[int], seq: int, timestamp: int,
               out: list[TopUpdate]) -> None:
        for n in slots:
            s = self._slots[n]
            refs = list(s.book.orders)
            for ref in refs:
                del self._owner[ref]
            if self._tables is not None:
                self._tables.clear_slot(n, refs)
                for cache in s.caches:
                    cache.clear()
            s.book.clear()
            self._emit(n, seq, timestamp, out)

    def _emit(self, slot: int, seq: int, timestamp: int, out: list[TopUpdate]) -> None:
        s = self._slots[slot]
        top = s.book.top()
        flags = (s.halted, s.degraded)
        if top == s.last_top and flags == s.last_flags:
            return
        s.last_top, s.last_flags = top, flags
        self.stats[BookStat.UPDATES] += 1
        out.append(TopUpdate(slot, s.locate, top.bid_price, top.bid_shares, top.ask_price,
                             top.ask_shares, seq, timestamp, s.halted, s.degraded))

    def check_caches(self) -> None:
        """Assert every slot's level-cache invariant (with a geometry only)."""
        for s in self._slots:
            for side, cache in zip(s.book.sides, s.caches, strict=True):
                cache.check(side.prices())
