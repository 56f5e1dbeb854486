"""The feed ingress under cocotb: drivers, monitors and counters of ``hdl/feed/ingress.py``.

Used by the ingress test bench (``tests/cocotb/tb_ingress.py``) and by ``tickgate replay``, so a
replay drives the gateware exactly as the verified test bench does. :class:`FeedInputTB` is what
every core with the ingress at its input shares (``host/gatesim/top_tb.py`` builds on it).
"""

from cocotb.triggers import RisingEdge

from hdl.feed.ingress import FeedIngress
from hdl.feed.itch_event import ItchEventLayout
from host.gatesim.streams import AxisSource, StreamSink, TBBase, pack, unpack

__all__ = ["FeedInputTB", "IngressTB"]


class FeedInputTB(TBBase):
    """Testbench of a toplevel with the ingress's ports: frames in, gap reports and counters out.

    Parameters
    ----------
    dut
        The cocotb toplevel.
    core : wiring.Component
        An instance of the design under test (its port layouts are read, nothing else).

    Attributes
    ----------
    source : AxisSource
        Frames into ``s_axis``.
    gaps : StreamSink
        Gap reports from ``o_gap``.
    stall_cycles : int
        Cycles where the input stalled (``tvalid`` high, ``tready`` low).
    """

    def __init__(self, dut, core):
        super().__init__(dut)
        members = dict(core.signature.members)
        self.endpoint_layout = members["endpoint"].shape
        self.stats_layout = members["stats"].shape
        self.status_layout = members["mold_status"].shape
        gap_layout = members["o_gap"].signature.members["payload"].shape
        self.source = AxisSource(self, "s_axis")
        self.gaps = StreamSink(self, "o_gap", gap_layout)
        self.stall_cycles = 0
        self.dut.i_expected__valid.value = 0

    def outputs(self) -> list[StreamSink]:
        """The sinks :meth:`drain` waits on."""
        return [self.gaps]

    def configure(self, mac: int, ip: int, port: int):
        self.dut.endpoint.value = pack(self.endpoint_layout, {"mac": mac, "ip": ip, "port": port})

    def sample(self):
        if int(self.dut.s_axis_tvalid.value) and not int(self.dut.s_axis_tready.value):
            self.stall_cycles += 1

    def drive(self):
        pass

    def stats(self) -> dict[str, dict[str, int]]:
        return unpack(self.stats_layout, int(self.dut.stats.value))

    def mold_status(self) -> dict:
        return unpack(self.status_layout, int(self.dut.mold_status.value))

    async def drain(self, quiet_cycles: int = 32, limit: int = 1_000_000):
        """Wait until every frame went in and the outputs stayed quiet for ``quiet_cycles``."""
        await self.source.wait_idle()
        quiet, seen = 0, [len(sink.transfers) for sink in self.outputs()]
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            now = [len(sink.transfers) for sink in self.outputs()]
            quiet = quiet + 1 if now == seen else 0
            seen = now
            if quiet >= quiet_cycles:
                return
        raise TimeoutError(f"outputs still moving after {limit} cycles")


class IngressTB(FeedInputTB):
    """Testbench of a ``FeedIngress`` toplevel.

    Attributes
    ----------
    events : StreamSink
        Events from ``o`` as dicts of the ``ItchEvent`` fields.
    """

    def __init__(self, dut):
        super().__init__(dut, FeedIngress())
        self.events = StreamSink(self, "o", ItchEventLayout)
        self.attach(self)

    def outputs(self) -> list[StreamSink]:
        return [self.events, self.gaps]
