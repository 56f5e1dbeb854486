"""The queue in front of the book's pipeline: absorbs bursts, and counts what it cannot hold.

The pipeline takes one operation every other cycle and stops for refills (up to about 1,200
cycles) and clears, while the decoder may deliver an event every three cycles or so; this queue
sits between them. When it is empty an operation passes straight through in the same cycle, so it
adds no latency; otherwise operations wait in block RAM.
"""

from amaranth.hdl import Module, Mux
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
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
        Entries held (``amaranth.lib.fifo.SyncFIFOBuffered``: block RAM when large).
    drop_when_full : bool
        True: ``i.ready`` is always high and a payload arriving when the queue is full is dropped
        and reported on ``overflow``. False: ``i.ready`` is low while the queue is full.

    Ports
    -----
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        Empty queue: ``o`` shows ``i`` in the same cycle (0 cycles latency); otherwise the oldest
        entry (an entry written to an empty queue that was not taken at once is shown from the
        second cycle after). One transfer per cycle on each side.
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
        width = data.Layout.cast(self._shape).size if isinstance(
            self._shape, data.Layout) else len(self._shape)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=self._depth)

        # Entries in flight inside the FIFO count in ``level`` before ``r_rdy`` shows them, so
        # the bypass never overtakes them.
        empty = fifo.level == 0
        full = ~fifo.w_rdy
        m.d.comb += [
            self.level.eq(fifo.level),
            self.o.valid.eq(Mux(empty, self.i.valid, fifo.r_rdy)),
            self.o.payload.eq(Mux(empty, self.i.payload, fifo.r_data)),
            self.i.ready.eq(1 if self._drop else ~full),
            self.dropped.eq(self.i.payload),
            fifo.r_en.eq(~empty & self.o.ready),
        ]
        bypass = empty & self.o.ready
        arrive = self.i.valid & self.i.ready
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(arrive & ~bypass & ~full),
            self.overflow.eq(arrive & ~bypass & full),
        ]
        return m
