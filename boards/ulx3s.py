"""ULX3S 85F (LFE5U-85F-6BG381C): a board top that measures one core at the 10G Ethernet clock.

Clocking: the board's 25 MHz oscillator (pin G2) feeds one ``EHXPLLL`` that makes the core
clock, 156.25 MHz by default (the 64-bit word clock of 10GBASE-R: 10.3125 Gbd * 64/66 / 64). The
core and the :class:`~hdl.synth.SynthHarness` around it run in ``sync`` on that clock, held in
reset until the PLL locks. The harness's serial input is button FIRE1 (R1) and its folded output
is LED 0 (B2).

The figure that matters is the post-route Fmax of the core clock, reported by nextpnr.
"""

from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Module
from amaranth.lib import io, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from boards.ecp5_pll import Ecp5Pll, pll_params
from boards.nextpnr_report import SynthReport
from boards.toolchain import run_trellis_build
from hdl.synth import SynthHarness

__all__ = ["DEFAULT_CORE_MHZ", "ULX3SCoreTop", "build"]

#: 10GBASE-R's 64-bit word clock.
DEFAULT_CORE_MHZ = 156.25

_OSCILLATOR_MHZ = 25.0
# The core's place in the netlist: ULX3SCoreTop's ``harness``, SynthHarness's ``core``.
_CORE_PATH = "harness.core."


class ULX3SCoreTop(wiring.Component):
    """Board top: oscillator -> PLL -> ``sync`` domain running ``SynthHarness(core)``.

    No ports: everything it touches is a board resource requested from the platform.

    Parameters
    ----------
    core : wiring.Component
        Any core whose logic is in the ``sync`` domain.
    core_mhz : float
        Core clock; must be reachable by the PLL from 25 MHz (see :func:`pll_params`).
    """

    def __init__(self, core: wiring.Component, *, core_mhz: float = DEFAULT_CORE_MHZ):
        self.harness = SynthHarness(core)
        self.pll_params = pll_params(_OSCILLATOR_MHZ, core_mhz)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()

        m.submodules.clk25_buf = clk25 = io.Buffer("i", platform.request("clk25", dir="-"))
        m.submodules.pll = pll = Ecp5Pll(self.pll_params)
        m.d.comb += pll.clk_in.eq(clk25.i)

        # No explicit constraint on the core clock: nextpnr derives it from the PLL's dividers
        # and the oscillator's constraint, under whichever name the net keeps after synthesis.
        m.domains.sync = ClockDomain("sync")
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        m.submodules.reset_sync = ResetSynchronizer(~pll.locked, domain="sync")

        m.submodules.harness = self.harness
        m.submodules.sdi_buf = sdi = io.Buffer("i", platform.request("button_fire", 0, dir="-"))
        m.submodules.led_buf = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [self.harness.sdi.eq(sdi.i), led.o.eq(self.harness.fold)]
        return m


def build(core: wiring.Component, build_dir: Path, *, seed: int = 1, router: str = "router1",
          pack_only: bool = False, core_mhz: float = DEFAULT_CORE_MHZ) -> SynthReport:
    """Synthesize, place and route ``core`` on the ULX3S 85F; return nextpnr's figures.

    With ``pack_only`` nextpnr stops after packing: the utilisation in a minute or two, for a
    core that takes hours to place and route, with no clock (``core_clock`` is None).

    Runs Yosys, nextpnr-ecp5 and ecppack (the YoWASP builds unless overridden through the
    ``YOSYS``, ``NEXTPNR_ECP5`` and ``ECPPACK`` environment variables) in ``build_dir``. Timing
    failure is not an error: the report says whether the target was met.

    Raises
    ------
    boards.toolchain.BuildError
        A tool is missing or failed; the message names the log file to read.
    """
    top = ULX3SCoreTop(core, core_mhz=core_mhz)
    report = run_trellis_build(ULX3S_85F_Platform(), top, build_dir, seed=seed, router=router,
                               pack_only=pack_only, depth_prefix=_CORE_PATH)
    if not pack_only:
        report.core_clock = report.find_clock(top.pll_params.clkop_mhz)
    report.notes["harness_overhead_ffs"] = top.harness.overhead_ffs
    report.notes["core_in_bits"] = top.harness.in_width
    report.notes["core_out_bits"] = top.harness.out_width
    report.notes["pll"] = (f"{_OSCILLATOR_MHZ:g} MHz /{top.pll_params.clki_div} "
                           f"*{top.pll_params.clkfb_div} (VCO {top.pll_params.vco_mhz:g} MHz)")
    return report
