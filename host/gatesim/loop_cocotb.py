"""The gateware loop under cocotb, in Icarus Verilog or Verilator: what
``LoopBench.run(simulator="icarus" | "verilator")`` and ``tickgate replay --sim`` run.

:func:`run_loop_cocotb` converts :class:`~hdl.quote.loop.QuoteLoop` to Verilog
(:func:`hdl.export.export_verilog`), hands the run's inputs (configuration, the world with its
feed, the driver's options) to the cocotb test :func:`replay_loop` in a file, and reads the
:class:`~host.gatesim.loop_driver.LoopRun` back. The test drives the loop with the same
:class:`~host.gatesim.loop_driver.LoopDriver` as Amaranth's testbench, so both simulators run
the same bench, cycle for cycle.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path

import cocotb
from amaranth.hdl import Const, UnusedElaboratable
from amaranth.lib.wiring import In
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hdl.quote.loop import QuoteLoop
from host.gatesim.loop_driver import LoopDriver, LoopRun
from host.gatesim.loop_world import LoopWorld
from sim.market_maker import MarketMakerConfig

__all__ = ["replay_loop", "run_loop_cocotb"]

_JOB = "TICKGATE_LOOP_JOB"
_RUN = "TICKGATE_LOOP_RUN"
_RESET_CYCLES = 4
# Verilog by (slots, first UserRefNum), for this process: a conversion takes seconds.
_SOURCES: dict[tuple[int, int], str] = {}


def _loop(config: MarketMakerConfig) -> QuoteLoop:
    return QuoteLoop(len(config.instruments), slot_bits=3, first_user_ref=config.first_user_ref)


def run_loop_cocotb(config: MarketMakerConfig, world: LoopWorld, options: dict,
                    simulator: str) -> LoopRun:
    """Run the loop bench under cocotb in ``simulator`` (``icarus`` or ``verilator``)."""
    from hdl.export import export_verilog
    from host.gatesim.runner import run_cocotb

    key = (len(config.instruments), config.first_user_ref)
    if key not in _SOURCES:
        _SOURCES[key] = export_verilog(_loop(config))
    saved = os.environ.get("TICKGATE_SIM")
    os.environ["TICKGATE_SIM"] = simulator
    try:
        with tempfile.TemporaryDirectory(prefix="tickgate-loop-") as tmp:
            job, out = Path(tmp) / "job.pickle", Path(tmp) / "run.pickle"
            job.write_bytes(pickle.dumps((config, world, options)))
            run_cocotb(None, "host.gatesim.loop_cocotb", testcase="replay_loop",
                       build_name=f"quote-loop{key[0]}", source=_SOURCES[key],
                       env={_JOB: str(job), _RUN: str(out)})
            run = pickle.loads(out.read_bytes())
    finally:
        if saved is None:
            os.environ.pop("TICKGATE_SIM", None)
        else:
            os.environ["TICKGATE_SIM"] = saved
    run.simulator = simulator
    return run


class _CocotbPorts:
    """The toplevel's ports by name under cocotb."""

    def __init__(self, dut):
        self.dut = dut
        self.handles: dict = {}

    def _handle(self, name: str):
        handle = self.handles.get(name)
        if handle is None:
            handle = self.handles[name] = getattr(self.dut, name)
        return handle

    def set(self, name: str, value: int) -> None:
        self._handle(name).value = value

    def get(self, name: str) -> int:
        return int(self._handle(name).value)


@cocotb.test()
async def replay_loop(dut):
    """One run of the loop bench, its inputs from and its result to the launcher's files.

    Cycle 0 is the first after reset, as in Amaranth's simulator (which starts out of reset):
    the driver sets its inputs right after the edge that ends the reset and samples them at the
    next edge, before the registers take it."""
    config, world, options = pickle.loads(Path(os.environ[_JOB]).read_bytes())
    # Only the loop's signature is read here (the simulator runs its Verilog): no warnings
    # that it and its stages were never elaborated.
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    component = _loop(config)
    driver = LoopDriver(component, config, world, **options)
    ports = _CocotbPorts(dut)
    edge = RisingEdge(dut.clk)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    # Every input starts at 0, as in Amaranth's simulator: an undriven Verilog input is X. Not
    # the constant `ready` of an always-ready output: it is no port, and writing the internal
    # net of that name would hold it at 0 against its driver.
    for path, member, value in component.signature.flatten(component):
        if member.flow == In and not isinstance(value, Const):
            ports.set("__".join(map(str, path)), 0)
    driver.configure(ports)
    for _ in range(_RESET_CYCLES):
        await edge
    dut.rst.value = 0
    cycle = 0
    driver.drive(ports, cycle)
    while True:
        await edge
        ahead = driver.sample(ports, cycle)
        if ahead is None:
            break
        if ahead > 1:
            await ClockCycles(dut.clk, ahead - 1)
        cycle += ahead
        driver.drive(ports, cycle)
    Path(os.environ[_RUN]).write_bytes(pickle.dumps(driver.finish(ports, cycle)))
