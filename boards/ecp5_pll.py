"""ECP5 ``EHXPLLL``: divider search and a component that makes one clock from a reference.

Ref: Lattice FPGA-TN-02200 (ECP5 and ECP5-5G sysCLOCK PLL/DLL Design and User Guide), section 4
(PLL frequency ranges) and section 6 (primitive ports and attributes).
"""

from dataclasses import dataclass

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ecp5Pll", "PllParams", "pll_params"]

# Datasheet ranges, in MHz: phase detector input, VCO, and the divider limits of the primitive.
_PFD_MIN, _PFD_MAX = 3.125, 400.0
_VCO_MIN, _VCO_MAX = 400.0, 800.0
_CLKI_DIV_MAX, _CLKFB_DIV_MAX, _CLKOP_DIV_MAX = 128, 80, 128


@dataclass(frozen=True)
class PllParams:
    """Divider settings with the feedback taken from CLKOP (so CLKOP = CLKI / CLKI_DIV * CLKFB_DIV).

    ``clki_mhz`` and ``clkop_mhz`` are the reference and the achieved output frequency.
    """

    clki_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def clkop_mhz(self) -> float:
        return self.clki_mhz / self.clki_div * self.clkfb_div

    @property
    def vco_mhz(self) -> float:
        return self.clkop_mhz * self.clkop_div


def pll_params(clki_mhz: float, clkop_mhz: float, *, tolerance: float = 1e-6) -> PllParams:
    """Dividers that make ``clkop_mhz`` from ``clki_mhz`` within ``tolerance`` (relative).

    Among exact solutions the one with the highest phase detector frequency wins (least jitter),
    then the VCO nearest the middle of its range.

    Raises
    ------
    ValueError
        No divider setting reaches the requested frequency; the message gives the nearest one.
    """
    best, best_key, nearest = None, None, None
    vco_mid = (_VCO_MIN + _VCO_MAX) / 2
    for clki_div in range(1, _CLKI_DIV_MAX + 1):
        pfd = clki_mhz / clki_div
        if pfd < _PFD_MIN:
            break
        if pfd > _PFD_MAX:
            continue
        for clkfb_div in range(1, _CLKFB_DIV_MAX + 1):
            out = pfd * clkfb_div
            for clkop_div in range(1, _CLKOP_DIV_MAX + 1):
                if not _VCO_MIN <= out * clkop_div <= _VCO_MAX:
                    continue
                params = PllParams(clki_mhz, clki_div, clkfb_div, clkop_div)
                error = abs(out - clkop_mhz) / clkop_mhz
                if nearest is None or error < nearest[0]:
                    nearest = (error, params)
                if error > tolerance:
                    continue
                key = (-pfd, abs(params.vco_mhz - vco_mid))
                if best_key is None or key < best_key:
                    best, best_key = params, key
    if best is None:
        hint = f"; nearest is {nearest[1].clkop_mhz:.4f} MHz" if nearest else ""
        raise ValueError(f"the ECP5 PLL cannot make {clkop_mhz} MHz from {clki_mhz} MHz{hint}")
    return best


class Ecp5Pll(wiring.Component):
    """One ``EHXPLLL`` producing a single clock on CLKOP, fed back from CLKOP.

    Parameters
    ----------
    params : PllParams
        From :func:`pll_params`.

    Ports
    -----
    clk_in : In(1)
        Reference clock, from a pin buffer.
    clk_out : Out(1)
        ``params.clkop_mhz``, phase aligned to ``clk_in``.
    locked : Out(1)
        High once the PLL has locked; asynchronous to both clocks, so synchronize it before use
        (e.g. with :class:`amaranth.lib.cdc.ResetSynchronizer`).
    """

    clk_in: In(1)
    clk_out: Out(1)
    locked: Out(1)

    def __init__(self, params: PllParams):
        self._params = params
        super().__init__()

    def elaborate(self, platform):
        p = self._params
        m = Module()
        # Loop filter settings and the frequency annotations are what Lattice's generator and
        # ecppll emit; nextpnr uses FREQUENCY_PIN_* to derive the output clock's constraint.
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{p.clki_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{p.clkop_mhz:g}",
            a_ICP_CURRENT="12",
            a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED",
            p_INTFB_WAKE="DISABLED",
            p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA",
            p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC",
            p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=p.clkop_div,
            # Zero phase: the coarse phase counts CLKOP_DIV - 1 VCO cycles, as Lattice's
            # generator sets it.
            p_CLKOP_CPHASE=p.clkop_div - 1,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p.clkfb_div,
            i_RST=0,
            i_STDBY=0,
            i_CLKI=self.clk_in,
            i_CLKFB=self.clk_out,
            i_PHASESEL0=0,
            i_PHASESEL1=0,
            i_PHASEDIR=1,
            i_PHASESTEP=1,
            i_PHASELOADREG=1,
            i_PLLWAKESYNC=0,
            i_ENCLKOP=0,
            o_CLKOP=self.clk_out,
            o_LOCK=self.locked,
        )
        return m

