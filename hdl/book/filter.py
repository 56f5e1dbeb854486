"""The instrument filter: keeps the events of the tracked instruments, as book operations.

A slot tracks one instrument, chosen by the host either by stock locate or by symbol; a symbol
slot is bound to a locate when the instrument's stock directory message (``R``) names it, and is
unbound again when the host changes that slot's configuration. Events of other instruments are
dropped here and cost the rest of the book nothing.
"""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.book.layout import LOCATE_BITS, BookOpKind, SlotConfigLayout, book_op_stream
from hdl.feed.itch_event import ItchEventStream
from sim.book import CLEAR_CODES, TRADING
from sim.itch_event import EventKind

__all__ = ["InstrumentFilter"]

_OP_OF_EVENT = {
    EventKind.ADD: BookOpKind.ADD,
    EventKind.ADD_MPID: BookOpKind.ADD,
    EventKind.EXECUTE: BookOpKind.EXECUTE,
    EventKind.EXECUTE_PRICE: BookOpKind.EXECUTE,
    EventKind.CANCEL: BookOpKind.CANCEL,
    EventKind.DELETE: BookOpKind.DELETE,
    EventKind.REPLACE: BookOpKind.REPLACE,
    EventKind.TRADING_ACTION: BookOpKind.HALT,
}


class InstrumentFilter(wiring.Component):
    """Turn the ITCH events of tracked instruments into book operations.

    Parameters
    ----------
    slots : int
        Tracked instruments (a power of two).

    Ports
    -----
    i : In(ItchEventStream())
        Decoded events.
    o : Out(book_op_stream(slot_bits))
        One operation per kept event: order events and ``H`` of a bound locate (with the lowest
        matching slot), and ``S`` with a clearing code (``sim.book.CLEAR_CODES``).
    cfg : In(ArrayLayout(SlotConfigLayout, slots))
        Per slot: ``enable``; track ``locate``, or with ``by_symbol`` the locate announced for
        ``symbol``. Changing a slot's configuration unbinds a symbol slot.
    bound : Out(slots), locates : Out(ArrayLayout(16, slots))
        Which slots are bound, and to which locate.
    filtered, bound_now, clear_now : Out(1)
        Count strobes for this cycle's transfer: dropped (untracked instrument, ignored ``S``,
        an ``R`` binding nothing); an ``R`` bound a slot; a clearing ``S`` passed.

    Latency 0 (combinational, ``o.valid`` follows ``i.valid``); throughput one event per cycle;
    a dropped event is taken at once whatever ``o.ready`` says. Nothing is bad input here: every
    event is either kept, used for binding or counted as filtered.
    """

    def __init__(self, slots: int):
        self._slots = slots
        self._slot_bits = max(1, (slots - 1).bit_length())
        super().__init__({
            "i": In(ItchEventStream()),
            "o": Out(book_op_stream(self._slot_bits)),
            "cfg": In(data.ArrayLayout(SlotConfigLayout, slots)),
            "bound": Out(slots),
            "locates": Out(data.ArrayLayout(LOCATE_BITS, slots)),
            "filtered": Out(1),
            "bound_now": Out(1),
            "clear_now": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._slots
        ev = self.i.payload

        learned = Signal(n)
        learned_locate = Signal(data.ArrayLayout(LOCATE_BITS, n))
        prev_cfg = Signal.like(self.cfg)
        m.d.sync += prev_cfg.eq(self.cfg)

        for s in range(n):
            cfg = self.cfg[s]
            m.d.comb += [
                self.bound[s].eq(cfg.enable & (~cfg.by_symbol | learned[s])),
                self.locates[s].eq(Mux(cfg.by_symbol, learned_locate[s], cfg.locate)),
            ]

        is_directory = ev.kind == EventKind.DIRECTORY
        is_system = ev.kind == EventKind.SYSTEM
        clearing = is_system & _one_of(ev.code, CLEAR_CODES)

        match = Signal(n)
        for s in range(n):
            m.d.comb += match[s].eq(self.bound[s] & (self.locates[s] == ev.locate))
        first = match & (~match + 1)
        slot = Signal(self._slot_bits)
        for s in range(n):
            with m.If(first[s]):
                m.d.comb += slot.eq(s)

        binds = Signal(n)
        for s in range(n):
            cfg = self.cfg[s]
            m.d.comb += binds[s].eq(is_directory & cfg.enable & cfg.by_symbol &
                                    (cfg.symbol == ev.symbol))

        kind = Signal(BookOpKind)
        tracked_kind = Signal()
        for event_kind, op_kind in _OP_OF_EVENT.items():
            with m.If(ev.kind == event_kind):
                m.d.comb += [kind.eq(op_kind), tracked_kind.eq(1)]
        with m.If(clearing):
            m.d.comb += kind.eq(BookOpKind.CLEAR)

        keep = Signal()
        m.d.comb += keep.eq(clearing | (tracked_kind & match.any()))
        op = self.o.payload
        m.d.comb += [
            op.kind.eq(kind),
            op.slot.eq(slot),
            op.order_ref.eq(ev.order_ref),
            op.new_ref.eq(ev.new_ref),
            op.side.eq(ev.side),
            op.shares.eq(ev.shares),
            op.price.eq(ev.price),
            op.halt.eq(ev.code != TRADING),
            op.seq.eq(ev.seq),
            op.timestamp.eq(ev.timestamp),
            self.o.valid.eq(self.i.valid & keep),
            self.i.ready.eq(self.o.ready | ~keep),
        ]

        take = self.i.valid & self.i.ready
        m.d.comb += [
            self.filtered.eq(take & ~keep & ~binds.any()),
            self.bound_now.eq(take & binds.any()),
            self.clear_now.eq(take & clearing),
        ]

        for s in range(n):
            with m.If(self.cfg[s].as_value() != prev_cfg[s].as_value()):
                m.d.sync += learned[s].eq(0)
            with m.If(take & binds[s]):
                m.d.sync += [learned[s].eq(1), learned_locate[s].eq(ev.locate)]
        return m


def _one_of(value, codes):
    """1 when ``value`` equals one of ``codes``."""
    result = Const(0, 1)
    for code in codes:
        result = result | (value == code)
    return result
