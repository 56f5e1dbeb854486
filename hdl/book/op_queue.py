"""The queue in front of the book's pipeline: absorbs bursts, and counts what it cannot hold.

The pipeline takes one operation every other cycle and stops for refills and clears, while the
decoder may deliver an event every few cycles; this queue sits between them. When it is empty an
operation passes straight through in the same cycle, so it adds no latency.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.stream import Signature
from amaranth.lib.wiring import In, Out

__all__ = ["OpQueue"]


class OpQueue(wiring.Component):
    """A first-in first-out queue of stream payloads with a bypass and an overflow policy.

    Parameters
    ----------
    shape : shape-castable
        Payload shape.
    depth : int
        Entries held (distributed RAM).
    drop_when_full : bool
        True: ``i.ready`` is always high and a payload arriving when the queue is full is dropped
        and reported on ``overflow``. False: ``i.ready`` is low while the queue is full.

    Ports
    -----
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        Empty queue: ``o`` shows ``i`` in the same cycle (0 cycles latency); otherwise the oldest
        entry. One transfer per cycle on each side.
    overflow : Out(1)
        A payload was dropped this cycle (only with ``drop_when_full``); ``dropped`` is it.
    dropped : Out(shape)
    level : Out(range(depth + 1))
        Entries held.
    """

    def __init__(self, shape, depth: int, drop_when_full: bool):
        self._shape = shape
        self._depth = depth
        self._drop = drop_when_full
        super().__init__({
            "i": In(Signature(shape)),
            "o": Out(Signature(shape)),
            "overflow": Out(1),
            "dropped": Out(shape),
            "level": Out(range(depth + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.mem = mem = Memory(shape=self._shape, depth=depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")
        head = Signal(range(depth))
        tail = Signal(range(depth))

        empty = self.level == 0
        full = self.level == depth
        m.d.comb += [
            rp.addr.eq(head),
            self.o.valid.eq(~empty | self.i.valid),
            self.o.payload.eq(Mux(empty, self.i.payload, rp.data)),
            self.i.ready.eq(1 if self._drop else ~full),
            self.dropped.eq(self.i.payload),
        ]
        take = self.o.valid & self.o.ready
        bypass = empty & take
        arrive = self.i.valid & self.i.ready
        push = Signal()
        m.d.comb += [
            push.eq(arrive & ~bypass & ~full),
            self.overflow.eq(arrive & ~bypass & full),
            wp.addr.eq(tail),
            wp.data.eq(self.i.payload),
            wp.en.eq(push),
        ]
        pop = take & ~empty
        with m.If(push):
            m.d.sync += tail.eq(Mux(tail == depth - 1, 0, tail + 1))
        with m.If(pop):
            m.d.sync += head.eq(Mux(head == depth - 1, 0, head + 1))
        m.d.sync += self.level.eq(self.level + push - pop)
        return m
