"""The feed ingress under cocotb: drivers, monitors and counters of ``hdl/feed/ingress.py``.

Used by the ingress test bench (``tests/cocotb/tb_ingress.py``) and by ``tickgate replay``, so a
replay drives the gateware exactly as the verified test bench does.
"""

from cocotb.triggers import RisingEdge

from hdl.feed.ingress import FeedIngress
from hdl.feed.itch_event import ItchEventLayout
from host.gatesim.streams import AxisSource, StreamSink, TBBase, pack, unpack

__all__ = ["IngressTB"]


def _members(component) -> dict:
    return dict(component.signature.members)


class IngressTB(TBBase):
    """Testbench of a ``FeedIngress`` toplevel.

    Attributes
    ----------
    source : AxisSource
        Frames into ``s_axis``.
    events : StreamSink
        Events from ``o`` as dicts of the ``ItchEvent`` fields.
    gaps : StreamSink
        Gap reports from ``o_gap``.
    """

    def __init__(self, dut):
        super().__init__(dut)
        members = _members(FeedIngress())
        self.endpoint_layout = members["endpoint"].shape
        self.stats_layout = members["stats"].shape
        self.status_layout = members["mold_status"].shape
        gap_layout = members["o_gap"].signature.members["payload"].shape
        self.source = AxisSource(self, "s_axis")
        self.events = StreamSink(self, "o", ItchEventLayout)
        self.gaps = StreamSink(self, "o_gap", gap_layout)
        # Where the input stalled (tvalid high, tready low): legal traffic must never see one.
        self.stall_cycles = 0
        self.dut.i_expected__valid.value = 0
        self.attach(self)

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
        quiet, seen = 0, (len(self.events.transfers), len(self.gaps.transfers))
        for _ in range(limit):
            await RisingEdge(self.dut.clk)
            now = (len(self.events.transfers), len(self.gaps.transfers))
            quiet = quiet + 1 if now == seen else 0
            seen = now
            if quiet >= quiet_cycles:
                return
        raise TimeoutError(f"outputs still moving after {limit} cycles")

