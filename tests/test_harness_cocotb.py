"""The cocotb harness itself works on the selected simulator (drivers, monitors, pacing)."""

from amaranth.hdl import Module
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import Beat, BeatStream
from tests.cocotb.runner import run_cocotb


class BeatFifo(wiring.Component):
    i: In(BeatStream())
    o: Out(BeatStream())

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=Beat.as_shape().size, depth=4)
        wiring.connect(m, wiring.flipped(self.i), buf.w_stream)
        wiring.connect(m, buf.r_stream, wiring.flipped(self.o))
        return m


def test_harness_moves_beats_under_idle_and_backpressure():
    run_cocotb(BeatFifo(), "tb_harness", build_name="harness")
