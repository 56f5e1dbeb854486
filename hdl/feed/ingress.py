"""The feed ingress core: Ethernet frames on AXI-Stream in, typed ITCH events out.

``UdpRx`` -> ``MoldRx`` -> ``ItchDecode``, joined by streams; its model twin is
``sim/ingress.py``. A ``MoldHintStage`` beside UdpRx's output register makes MoldRx's per-lane
framing tests a cycle early, off MoldRx's critical paths, at no cost in latency.
"""

from amaranth.hdl import Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.feed.itch_decode import ItchDecode
from hdl.feed.itch_event import ItchEventStream
from hdl.feed.mold_hints import MoldHintStage
from hdl.feed.mold_rx import MoldRx
from hdl.net.axis_rx import AxisRx
from hdl.net.udp_rx import UdpRx

__all__ = ["FeedIngress"]


class FeedIngress(wiring.Component):
    """Ethernet/IPv4/UDP receive, MoldUDP64 sequencing and ITCH 5.0 decode in one core.

    Ports
    -----
    s_axis_tdata (64), s_axis_tkeep (8), s_axis_tlast, s_axis_tuser, s_axis_tvalid : In
        Ethernet frames from the MAC, destination MAC first in lane 0, FCS removed; ``tuser`` on
        the last beat marks a bad frame.
    s_axis_tready : Out
        High whenever ``o`` can take an event: the core never stalls legal traffic.
    endpoint : In
        The feed's destination MAC, IPv4 address and UDP port (``UdpRx.endpoint``).
    i_expected : In(stream)
        Sets the next expected MoldUDP64 sequence number (taken between packets), for the host
        after a recovery.
    o : Out(ItchEventStream)
        One event per A/F/E/C/X/D/U/S/R/H message, in feed order.
    o_gap : Out
        MoldUDP64 gaps (first missing sequence number, count), for the host to re-request.
    stats : Out
        Every stage's counters, ``stats.udp_rx``, ``stats.mold_rx``, ``stats.itch_decode``.
    mold_status : Out
        Expected sequence number, session, end-of-session flag.

    Latency
    -------
    3 cycles from the input beat carrying a message's last byte to its event at ``o``
    (one registered stage each for UDP receive, Mold sequencing and ITCH decode).

    Throughput
    ----------
    One 64-bit beat per cycle, back-to-back frames included (10 Gb/s at 156.25 MHz); at most one
    event per beat, which legal ITCH traffic never exceeds.

    Bad input
    ---------
    Each stage drops what it cannot trust and counts it under its own reason (see the stage
    docstrings); nothing stalls or hangs. The UDP stage is cut-through: a frame found damaged only
    at its end (truncated, bad FCS) has already delivered the messages that ended before the
    damage; the message in progress is abandoned and the loss shows up as a Mold gap.
    """

    def __init__(self, *, gap_fifo_depth: int = 16):
        self._udp_rx = UdpRx()
        self._mold_rx = MoldRx(gap_fifo_depth=gap_fifo_depth, hinted=True)
        self._itch_decode = ItchDecode()
        self._axis = AxisRx()
        super().__init__({
            **{name: member for name, member in self._axis.signature.members.items()
               if name.startswith("s_axis_")},
            "endpoint": In(self._udp_rx.endpoint.shape()),
            "i_expected": self._mold_rx.signature.members["i_expected"],
            "o": Out(ItchEventStream()),
            "o_gap": self._mold_rx.signature.members["o_gap"],
            "stats": Out(data.StructLayout({
                "udp_rx": self._udp_rx.stats.shape(),
                "mold_rx": self._mold_rx.stats.shape(),
                "itch_decode": self._itch_decode.stats.shape(),
            })),
            "mold_status": Out(self._mold_rx.status.shape()),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.axis = axis = self._axis
        m.submodules.udp_rx = udp_rx = self._udp_rx
        m.submodules.mold_rx = mold_rx = self._mold_rx
        m.submodules.itch_decode = itch_decode = self._itch_decode
        m.submodules.mold_hints = mold_hints = MoldHintStage()

        for name in ("tdata", "tkeep", "tlast", "tuser", "tvalid"):
            m.d.comb += getattr(axis, f"s_axis_{name}").eq(getattr(self, f"s_axis_{name}"))
        m.d.comb += self.s_axis_tready.eq(axis.s_axis_tready)

        wiring.connect(m, axis.o, udp_rx.i)
        wiring.connect(m, udp_rx.o, mold_rx.i)
        # MoldRx's per-lane tests, made from UdpRx's input and registered beside its output.
        m.d.comb += [
            mold_hints.data.eq(udp_rx.i.payload.data),
            mold_hints.load.eq(udp_rx.out_load),
            mold_hints.expected.eq(mold_rx.status.expected),
            mold_rx.i_hints.eq(mold_hints.hints),
        ]
        wiring.connect(m, mold_rx.o, itch_decode.i)
        wiring.connect(m, itch_decode.o, wiring.flipped(self.o))
        wiring.connect(m, mold_rx.o_gap, wiring.flipped(self.o_gap))
        wiring.connect(m, wiring.flipped(self.i_expected), mold_rx.i_expected)

        m.d.comb += [
            udp_rx.endpoint.eq(self.endpoint),
            self.stats.udp_rx.eq(udp_rx.stats),
            self.stats.mold_rx.eq(mold_rx.stats),
            self.stats.itch_decode.eq(itch_decode.stats),
            self.mold_status.eq(mold_rx.status),
        ]
        return m
