"""AXI-Stream slave ports to the packet beat stream, so MAC and vendor IP attach directly."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream

__all__ = ["AxisRx"]


class AxisRx(wiring.Component):
    """Adapts AXI-Stream slave ports to the packet beat stream (adds the ``first`` flag).

    Ports
    -----
    s_axis_tdata, s_axis_tkeep, s_axis_tlast, s_axis_tuser, s_axis_tvalid : In
        AXI-Stream from the MAC: ``tuser`` on the last beat flags a bad frame (FCS error).
    s_axis_tready : Out
    o : Out(BeatStream)

    Latency 0 (combinational), one beat per cycle.
    """

    s_axis_tdata: In(8 * BEAT_BYTES)
    s_axis_tkeep: In(BEAT_BYTES)
    s_axis_tlast: In(1)
    s_axis_tuser: In(1)
    s_axis_tvalid: In(1)
    s_axis_tready: Out(1)
    o: Out(BeatStream())

    def elaborate(self, platform):
        m = Module()
        # AXI-Stream has no start-of-packet flag: a beat is first when the previous one was last.
        inside = Signal()
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += inside.eq(~self.s_axis_tlast)
        m.d.comb += [
            self.o.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(self.o.ready),
            self.o.payload.data.eq(self.s_axis_tdata),
            self.o.payload.keep.eq(self.s_axis_tkeep),
            self.o.payload.first.eq(~inside),
            self.o.payload.last.eq(self.s_axis_tlast),
            self.o.payload.error.eq(self.s_axis_tlast & self.s_axis_tuser),
        ]
        return m
