# amaranth: UnusedElaboratable=no
"""The ``tickgate`` command line and the Verilog export behind ``tickgate verilog``."""

import re
import subprocess
import sys

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BeatStream
from hdl.export import (
    CORES,
    PortInfo,
    build_core,
    core_ports,
    export_verilog,
    lazy,
    verilog_ports,
)
from host.cli import main
from host.commands import COMMANDS
from host.gatesim.runner import design_verilog, registered_core

# Emitted by Amaranth for the sync domain of any core with registers.
CLOCK_AND_RESET = [PortInfo("clk", "input", 1), PortInfo("rst", "input", 1)]


class CountingPassThrough(wiring.Component):
    """Stand-in core with a stream in, a stream out, a struct output and an array input.

    Passes beats from ``i`` to ``o`` unchanged (combinational, zero latency) and counts
    transfers in ``stats.beats`` and packets in ``stats.packets``.
    """

    i: In(BeatStream())
    o: Out(BeatStream())
    stats: Out(data.StructLayout({"beats": 48, "packets": 48}))
    mask: In(4).array(2)

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.stats.beats.eq(self.stats.beats + 1)
            with m.If(self.i.payload.last):
                m.d.sync += self.stats.packets.eq(self.stats.packets + 1)
        return m


class NotAComponent:
    pass


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tickgate")
    for command in COMMANDS:
        name = command.__name__.rsplit(".", 1)[1]
        assert re.search(rf"^ +{name}\b", out, re.MULTILINE), name


def test_help_from_a_shell():
    result = subprocess.run([sys.executable, "-m", "host.cli", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "verilog" in result.stdout
    assert "synth" in result.stdout


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_unknown_core_is_an_error_not_a_crash(capsys):
    assert main(["verilog", "no-such-core"]) == 1
    err = capsys.readouterr().err
    assert "unknown core 'no-such-core'" in err
    assert "known cores" in err


def test_list_shows_registered_cores(monkeypatch, capsys):
    monkeypatch.setitem(CORES, "test_passthrough", CountingPassThrough)
    assert main(["verilog", "--list"]) == 0
    assert "test_passthrough" in capsys.readouterr().out.split()


def test_verilog_ports_follow_the_signature(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(CORES, "test_passthrough", CountingPassThrough)
    out = tmp_path / "rtl" / "passthrough.v"
    assert main(["verilog", "test_passthrough", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module tickgate_test_passthrough(" in text
    assert "(* src" not in text  # reproducible output: no source paths
    ports = {p.name: p for p in verilog_ports(text, "tickgate_test_passthrough")}
    beat = 64 + 8 + 1 + 1 + 1
    assert ports == {p.name: p for p in [
        *CLOCK_AND_RESET,
        PortInfo("i__payload", "input", beat),
        PortInfo("i__valid", "input", 1),
        PortInfo("i__ready", "output", 1),
        PortInfo("o__payload", "output", beat),
        PortInfo("o__valid", "output", 1),
        PortInfo("o__ready", "input", 1),
        PortInfo("stats", "output", 96),
        PortInfo("mask__0", "input", 4),
        PortInfo("mask__1", "input", 4),
    ]}
    assert "wrote" in capsys.readouterr().err


def test_verilog_to_stdout_with_module_name(monkeypatch, capsys):
    monkeypatch.setitem(CORES, "test_passthrough", CountingPassThrough)
    assert main(["verilog", "test_passthrough", "--top", "my_core"]) == 0
    text = capsys.readouterr().out
    assert verilog_ports(text, "my_core")
    with pytest.raises(ValueError, match="no module"):
        verilog_ports(text, "tickgate_test_passthrough")


def test_core_ports_matches_export():
    ports = core_ports(CountingPassThrough())
    assert [p.name for p in ports] == ["i__payload", "i__valid", "i__ready", "o__payload",
                                       "o__valid", "o__ready", "stats", "mask__0", "mask__1"]


def test_flattened_export_is_one_module_with_the_same_ports():
    # The registered ingress's conversions, kept on disk for these gateware sources (the flat
    # one is what its benches simulate).
    build, key = registered_core("ingress")
    nested, flat = (design_verilog(key, build, flatten=flatten) for flatten in (False, True))
    assert len(re.findall(r"^module ", nested, re.MULTILINE)) > 3
    assert re.findall(r"^module (\w+)", flat, re.MULTILINE) == ["top"]
    assert verilog_ports(flat, "top") == verilog_ports(nested, "top")
    # The submodules' registers keep their names, under their path.
    assert "mold_rx.expected" in flat


def test_lazy_factory_imports_on_call(monkeypatch):
    factory = lazy("tests.test_cli", "CountingPassThrough")
    assert factory.__qualname__ == "tests.test_cli.CountingPassThrough"
    monkeypatch.setitem(CORES, "test_lazy", factory)
    core = build_core("test_lazy")
    assert isinstance(core, CountingPassThrough)
    assert verilog_ports(export_verilog(core), "top")
    monkeypatch.setitem(CORES, "test_broken", lazy("tests.no_such_module", "Core"))
    with pytest.raises(ModuleNotFoundError):
        build_core("test_broken")


def test_factory_must_return_a_component(monkeypatch):
    monkeypatch.setitem(CORES, "test_not_component", NotAComponent)
    with pytest.raises(TypeError, match=r"not a wiring\.Component"):
        build_core("test_not_component")


@pytest.mark.parametrize("core", sorted(CORES) or [None])
def test_registered_core_exports(core):
    """Every registered core converts, and its Verilog ports are exactly its signature's, each a
    plain identifier: a port named after a Verilog keyword comes out escaped (``\\config``),
    which every instance in a vendor flow would then have to spell escaped too.

    The conversion is :func:`~hdl.export.export_verilog`'s, as ``tickgate verilog`` makes it
    (the tests above run the command) under the module name ``top``, kept on disk for these
    gateware sources and shared with the benches of the same core: the whole core alone takes
    most of a minute."""
    if core is None:
        pytest.skip("no core is registered in hdl.export.CORES yet")
    build, key = registered_core(core)
    ports = verilog_ports(design_verilog(key, build), "top")
    assert [p.name for p in ports if p.name.startswith("\\")] == [], \
        "rename these ports: their names are Verilog keywords"
    declared = [PortInfo(p.name.removeprefix("\\"), p.direction, p.width) for p in ports]
    instance = build_core(core)
    expected = core_ports(instance)
    Fragment.get(instance, None)  # elaborated, so Amaranth does not flag it as unused
    assert {p.name: p for p in declared if p not in CLOCK_AND_RESET} == {
        p.name: p for p in expected}
    assert {p.name for p in declared} - {p.name for p in expected} <= {"clk", "rst"}


def test_keyword_port_is_reported(tmp_path, monkeypatch, capsys):
    class KeywordPort(wiring.Component):
        config: In(3)
        q: Out(3)

        def elaborate(self, platform):
            m = Module()
            m.d.sync += self.q.eq(self.config)
            return m

    monkeypatch.setitem(CORES, "test_keyword", KeywordPort)
    assert main(["verilog", "test_keyword", "-o", str(tmp_path / "keyword.v")]) == 0
    assert "warning: \\config: escaped" in capsys.readouterr().err
