"""Levels of logic of a synthesized netlist (boards.logic_depth), on small hand-made netlists.

The real thing (Yosys's netlist of a core) is checked in ``tests/test_synth.py``'s packing test.
"""

import json

import pytest

from boards.logic_depth import CARRY_STEP, LogicDepth


class Netlist:
    """A flattened ECP5 netlist in Yosys's JSON form, built cell by cell; bits are numbers."""

    def __init__(self):
        self.cells = {}
        self.netnames = {}
        self._next = 10

    def bit(self, name: str | None = None) -> int:
        self._next += 1
        if name is not None:
            self.netnames[name] = {"hide_name": 0, "bits": [self._next]}
        return self._next

    def cell(self, kind: str, inputs: dict, outputs: dict, name: str | None = None) -> None:
        self.cells[name or f"c{len(self.cells)}"] = {
            "type": kind,
            "port_directions": {**{p: "input" for p in inputs}, **{p: "output" for p in outputs}},
            "connections": {p: (v if isinstance(v, list) else [v])
                            for p, v in {**inputs, **outputs}.items()},
        }

    def ff(self, d: int, name: str, ce="1") -> int:
        q = self.bit(name)
        self.cell("TRELLIS_FF", {"CLK": self.bit(), "DI": d, "CE": ce, "LSR": "0"}, {"Q": q})
        return q

    def lut(self, *ins) -> int:
        z = self.bit()
        pins = dict(zip("ABCD", [*ins, "0", "0", "0"][:4], strict=True))
        self.cell("LUT4", pins, {"Z": z})
        return z

    def json(self) -> dict:
        return {"modules": {"top": {"cells": self.cells, "netnames": self.netnames}}}


def _levels(depth: LogicDepth) -> dict:
    return {(r.name, r.port): r.levels for r in depth.deepest}


def test_luts_count_one_level_each_and_wide_lut_muxes_none():
    n = Netlist()
    a = n.ff(n.bit(), "core.a")
    b = n.ff(n.bit(), "core.b")
    x = n.lut(n.lut(a, b), b)                       # two LUT levels
    lo, hi = n.lut(x, a), n.lut(x, b)               # a LUT5 made of two LUT4s and a PFUMX
    wide = n.bit()
    n.cell("PFUMX", {"ALUT": lo, "BLUT": hi, "C0": a}, {"Z": wide})
    n.ff(wide, "core.wide")
    n.ff(x, "core.x", ce=a)
    depth = LogicDepth.from_netlist(n.json(), prefix="core.")
    levels = _levels(depth)
    assert levels[("wide", "DI")] == 3
    assert levels[("x", "DI")] == 2
    assert levels[("x", "CE")] == 0
    assert depth.worst == 3
    assert depth.deepest[0].name == "wide"
    # One entry per register input bit driven by a signal: the four DIs and x's CE (the
    # constant enables and resets are no paths).
    assert sum(depth.histogram.values()) == 5
    assert depth.histogram[3] == 1 and depth.histogram[2] == 1


def test_a_carry_chain_counts_one_level_in_and_a_step_per_cell_rippled():
    n = Netlist()
    a = [n.ff(n.bit(), f"a{k}") for k in range(8)]
    carry = "0"
    sums = []
    for k in range(0, 8, 2):                         # an 8-bit adder: 4 carry cells
        s0, s1, cout = n.bit(), n.bit(), n.bit()
        n.cell("CCU2C", {"A0": a[k], "B0": "0", "C0": "0", "D0": "0",
                         "A1": a[k + 1], "B1": "0", "C1": "0", "D1": "0", "CIN": carry},
               {"S0": s0, "S1": s1, "COUT": cout})
        sums += [s0, s1]
        carry = cout
    n.ff(sums[0], "sum0")
    n.ff(sums[7], "sum7")
    n.ff(n.lut(carry), "carry_out")
    levels = _levels(LogicDepth.from_netlist(n.json()))
    assert levels[("sum0", "DI")] == 1
    # Entered at cell 0, rippled through cells 1 and 2 into cell 3's sum.
    assert levels[("sum7", "DI")] == 1 + 2 * CARRY_STEP
    assert levels[("carry_out", "DI")] == 1 + 3 * CARRY_STEP + 1


def test_ram_reads_count_as_luts_and_block_rams_start_and_end_paths():
    n = Netlist()
    addr = n.ff(n.bit(), "addr")
    do = n.bit()
    n.cell("TRELLIS_DPR16X4", {"RAD": [n.lut(addr)], "WAD": [addr], "DI": [addr], "WRE": addr,
                               "WCK": n.bit()}, {"DO": [do]}, name="lutram")
    bram_out = n.bit()
    n.cell("DP16KD", {"CLKA": n.bit(), "ADA0": n.lut(do), "DIA0": addr}, {"DOA0": bram_out},
           name="bram")
    n.ff(n.lut(bram_out), "after_bram")
    depth = LogicDepth.from_netlist(n.json(), show=20)
    levels = _levels(depth)
    assert levels[("after_bram", "DI")] == 1          # a block RAM's output is a register
    assert levels[("bram", "ADA0")] == 3              # LUT, RAM read, LUT into the address
    assert levels[("bram", "DIA0")] == 0
    assert levels[("lutram", "WAD")] == 0
    assert ("bram", "CLKA") not in levels


def test_a_combinational_loop_ends_and_counts_once():
    n = Netlist()
    a = n.ff(n.bit(), "a")
    loop = n.bit()
    z = n.bit()
    n.cell("LUT4", {"A": a, "B": loop, "C": "0", "D": "0"}, {"Z": z})
    n.cell("LUT4", {"A": z, "B": "0", "C": "0", "D": "0"}, {"Z": loop})
    n.ff(z, "looped")
    assert _levels(LogicDepth.from_netlist(n.json()))[("looped", "DI")] == 2


def test_register_names_prefer_the_core_and_the_signal_own_name():
    n = Netlist()
    q = n.ff(n.bit(), "harness.core.stage.valid")
    # Aliases of the same bit: the harness's view of a port, and a name derived by the mapper.
    n.netnames["harness.valid"] = {"hide_name": 0, "bits": [q]}
    n.netnames["harness.core.stage.valid_TRELLIS_FF_Q_DI"] = {"hide_name": 0, "bits": [q]}
    n.ff(n.lut(q), "harness.core.out")
    depth = LogicDepth.from_netlist(n.json(), prefix="harness.core.")
    assert {r.name for r in depth.deepest} == {"stage.valid", "out"}
    table = depth.format_table()
    assert "worst 1.0" in table and "out.DI (1 bits)" in table
    summary = json.loads(json.dumps(depth.to_json()))
    assert summary["worst_levels"] == 1 and summary["deepest"][0]["register"] == "out"


@pytest.mark.parametrize("netlist", [{}, {"modules": {}}, {"modules": {"top": {}}}])
def test_not_a_netlist_or_no_register(netlist):
    with pytest.raises(ValueError):
        LogicDepth.from_netlist(netlist)


def test_from_file_rejects_non_json(tmp_path):
    path = tmp_path / "top.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        LogicDepth.from_file(path)
