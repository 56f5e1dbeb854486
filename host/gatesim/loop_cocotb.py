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

import warnings

import cocotb
from amaranth.hdl import Const, UnusedElaboratable
from amaranth.lib.wiring import In
from cocotb.triggers import ClockCycles, RisingEdge

from hdl.quote.loop import QuoteLoop
from host.gatesim.loop_driver import LoopDriver, LoopRun
from host.gatesim.loop_world import LoopWorld
from host.gatesim.runner import bench_job, bench_result
from host.gatesim.streams import start_clock
from sim.market_maker import MarketMakerConfig

__all__ = ["CocotbPorts", "replay_loop", "run_driver", "run_loop_cocotb", "start_out_of_reset"]

_RESET_CYCLES = 4


def _loop(config: MarketMakerConfig) -> QuoteLoop:
    return QuoteLoop(len(config.instruments), slot_bits=3, first_user_ref=config.first_user_ref)


def run_loop_cocotb(config: MarketMakerConfig, world: LoopWorld, options: dict,
                    simulator: str) -> LoopRun:
    """Run the loop bench under cocotb in ``simulator`` (``icarus`` or ``verilator``)."""
    from host.gatesim.runner import cached_verilog, run_bench

    key = (len(config.instruments), config.first_user_ref)
    source = cached_verilog(f"quote-loop{key[0]}", lambda: _loop(config), *key)
    run = run_bench("host.gatesim.loop_cocotb", "replay_loop", build_name=f"quote-loop{key[0]}",
                    source=source, simulator=simulator, job=(config, world, options))
    run.simulator = simulator
    return run


class CocotbPorts:
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


async def start_out_of_reset(dut, component, ports: CocotbPorts, driver) -> None:
    """Start the clock, hold reset for a few cycles with every input of ``component`` at 0 and
    the bench's set-up (``driver.configure``) applied, and release it right after an edge:
    the cycle that edge begins is the design's cycle 0."""
    start_clock(dut.clk)
    dut.rst.value = 1
    # Every input starts at 0, as in Amaranth's simulator: an undriven Verilog input is X. Not
    # the constant `ready` of an always-ready output: it is no port, and writing the internal
    # net of that name would hold it at 0 against its driver.
    for path, member, value in component.signature.flatten(component):
        if member.flow == In and not isinstance(value, Const):
            ports.set("__".join(map(str, path)), 0)
    driver.configure(ports)
    await ClockCycles(dut.clk, _RESET_CYCLES)
    dut.rst.value = 0


async def run_driver(dut, ports: CocotbPorts, driver, cycle: int) -> int:
    """Run ``driver`` (a :class:`LoopDriver`) from ``cycle``, entered right after a rising
    edge, to the end of its run; the last cycle. Inputs are driven right after an edge and
    sampled at the next, before the registers take it, as Amaranth's testbench does between
    two ticks."""
    edge = RisingEdge(dut.clk)
    driver.drive(ports, cycle)
    while True:
        await edge
        ahead = driver.sample(ports, cycle)
        if ahead is None:
            return cycle
        if ahead > 1:
            await ClockCycles(dut.clk, ahead - 1)
        cycle += ahead
        driver.drive(ports, cycle)


@cocotb.test()
async def replay_loop(dut):
    """One run of the loop bench, its inputs from and its result to the launcher's files.

    Cycle 0 is the first after reset, as in Amaranth's simulator (which starts out of reset):
    the driver sets its inputs right after the edge that ends the reset and samples them at the
    next edge, before the registers take it."""
    config, world, options = bench_job()
    # Only the loop's signature is read here (the simulator runs its Verilog): no warnings
    # that it and its stages were never elaborated.
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    component = _loop(config)
    driver = LoopDriver(component, config, world, **options)
    ports = CocotbPorts(dut)
    await start_out_of_reset(dut, component, ports, driver)
    cycle = await run_driver(dut, ports, driver, 0)
    bench_result(driver.finish(ports, cycle))
