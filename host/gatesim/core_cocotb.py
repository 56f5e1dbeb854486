"""The whole core under cocotb, in Icarus Verilog or Verilator: Ethernet frames in, OUCH orders
out, the exchange's answers in, set up by the host driver through the register map.

:func:`run_core_cocotb` converts :class:`~hdl.top.TickgateCore` to Verilog, hands the run's
inputs (configuration, the feed's endpoint, the :class:`~host.gatesim.core_world.CoreWorld`,
the driver's options) to the cocotb test :func:`replay_core` in a file, and reads the
:class:`~host.gatesim.loop_driver.LoopRun` back. The test first runs the unchanged host
:class:`~host.driver.Driver` on the core's CSR bus (a bridge thread whose register accesses are
cocotb coroutines): feed endpoint, instruments tracked by symbol, quote parameters, risk and
port limits, ClOrdID prefix, arm. Then :class:`~host.gatesim.core_driver.CoreDriver` drives the
core cycle by cycle as the loop's bench drives the loop, and at the end the host driver reads
each slot's position and every counter block back through the register map.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import cocotb
from amaranth.hdl import UnusedElaboratable
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from hdl.csr.protocol import BusError
from hdl.top import TickgateCore
from host.driver import Driver
from host.gatesim.core_driver import CoreDriver
from host.gatesim.core_world import CoreWorld, item_beats
from host.gatesim.loop_cocotb import CocotbPorts, run_driver, start_out_of_reset
from host.gatesim.loop_driver import LoopRun
from host.gatesim.runner import bench_job, bench_result
from host.transports.sim import BusTransport
from sim.book import Books
from sim.exchange import ExchangeSim
from sim.itch_event import ItchEvent, symbol_int
from sim.market_maker import FEED_GAP, MarketMakerConfig
from sim.udp_rx import UdpRxConfig

__all__ = ["CORE_SIMULATORS", "replay_core", "run_core", "run_core_cocotb"]

#: Where the whole core runs: its bench is a cocotb test.
CORE_SIMULATORS = ("icarus", "verilator")

_RESET_CYCLES = 4


def _core(config: MarketMakerConfig) -> TickgateCore:
    return TickgateCore(first_user_ref=config.first_user_ref, clk_hz=config.clk_hz)


def run_core(config: MarketMakerConfig, feed: Sequence[tuple[int, ItchEvent | str]],
             frames: Sequence[bytes], endpoint, *, exchange_times: Sequence[int] | None = None,
             settle: int = 64, until: int | None = None, clordid_prefix: str = "TKG",
             simulator: str = "icarus") -> LoopRun:
    """Run the capture's ``frames`` through the whole core, closed by the model's exchange.

    ``feed`` is what the model's loop runs (:func:`host.replay.loop.timed_feed`, paused or
    not): the frames' items, timed, for the world's book and exchange. ``exchange_times``
    (lockstep, as :meth:`host.gatesim.loop_tb.LoopBench.run`): the core gets each item's beats,
    or an answer, once it has settled, and the ``k``-th order reaches the exchange when the
    model's did. Without, the items' beats go in when the feed's clock says. The instruments
    are tracked by symbol in slots 0.., the rest of the core's slots left untracked; the
    heartbeat watchdog stays off (``heartbeat_timeout`` must be 0). A feed gap is the core's
    own: its MoldUDP64 stage finds it in the frames.
    """
    n = len(config.instruments)
    if not 1 <= n <= 8:
        raise ValueError(f"the core quotes 1 to 8 instruments, got {n}")
    if config.heartbeat_timeout:
        raise ValueError("the core bench arms once and sends no heartbeat: heartbeat_timeout "
                         "must be 0")
    if simulator not in CORE_SIMULATORS:
        raise ValueError(f"the whole core runs under cocotb, in {' or '.join(CORE_SIMULATORS)}"
                         f", not {simulator}")
    events, beats = item_beats(frames, UdpRxConfig(endpoint.mac, endpoint.ip, endpoint.port))
    expected = [FEED_GAP if event is None else event for event in events]
    if expected != [item for _, item in feed]:
        raise ValueError("the feed is not the frames' (see host.replay.loop.timed_feed)")
    books = Books(slots=n)
    for slot, inst in enumerate(config.instruments):
        books.track_symbol(slot, symbol_int(inst.symbol))
    exchange = ExchangeSim([i.symbol for i in config.instruments], config.clk_hz)
    world = CoreWorld(list(feed), books, exchange, n, config.latency, beats,
                      exchange_times or (), serial=exchange_times is not None)
    options = dict(clordid_prefix=clordid_prefix, settle=settle, kill_at=None, cause="killed",
                   until=until, skip_idle=True)
    return run_core_cocotb(config, world, endpoint, options, simulator)


def run_core_cocotb(config: MarketMakerConfig, world: CoreWorld, endpoint, options: dict,
                    simulator: str) -> LoopRun:
    """Run the core bench under cocotb in ``simulator`` (``icarus`` or ``verilator``);
    ``endpoint`` (``mac``, ``ip``, ``port``) is the feed the core is set to accept."""
    from host.gatesim.runner import cached_verilog, run_bench

    source = cached_verilog("tickgate-core", lambda: _core(config), config.first_user_ref,
                            config.clk_hz)
    feed = (int(endpoint.mac), int(endpoint.ip), int(endpoint.port))
    run = run_bench("host.gatesim.core_cocotb", "replay_core", build_name="tickgate-core",
                    source=source, simulator=simulator, job=(config, world, feed, options))
    run.simulator = simulator
    return run


class _CocotbBus:
    """The core's CSR bus driven from cocotb, one access at a time, for :class:`BusTransport`
    from a bridge thread. ``cycles`` counts the clock's rising edges since reset."""

    def __init__(self, dut):
        self.dut = dut
        self.cycles = 0

    async def _access(self, address: int, write: int | None) -> tuple[int, BusError]:
        dut = self.dut
        await FallingEdge(dut.clk)        # mid-cycle: the access is this cycle's
        dut.bus__addr.value = address
        if write is None:
            dut.bus__r_stb.value = 1
        else:
            dut.bus__w_data.value = write
            dut.bus__w_stb.value = 1
        await RisingEdge(dut.clk)
        self.cycles += 1
        dut.bus__r_stb.value = 0
        dut.bus__w_stb.value = 0
        await ReadOnly()                  # the answer, registered at that edge
        return int(dut.bus__r_data.value), BusError(int(dut.bus__err.value))

    def bus_access(self, address: int, write: int | None = None) -> tuple[int, BusError]:
        return resume(self._access)(address, write)


def _set_up(bus: _CocotbBus, config: MarketMakerConfig, feed, clordid_prefix: str) -> Driver:
    host = Driver(BusTransport(bus))      # checks the design's identity and register map
    host.set_feed(*feed)
    for slot, inst in enumerate(config.instruments):
        host.track(slot, symbol=inst.symbol)
    host.configure(quotes={k: i.quote for k, i in enumerate(config.instruments)},
                   risk={k: i.risk for k, i in enumerate(config.instruments)},
                   port_limits=config.port)
    host.set_clordid_prefix(clordid_prefix)
    host.arm()
    return host


def _read_back(host: Driver, slots: int) -> tuple[list[int], dict]:
    return [host.position(k).position for k in range(slots)], host.counters()


@cocotb.test()
async def replay_core(dut):
    """One run of the core bench, its inputs from and its result to the launcher's files."""
    config, world, feed, options = bench_job()
    # Only the core's signature is read here (the simulator runs its Verilog).
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    core = _core(config)
    driver = CoreDriver(core, config, world, **options)
    ports = CocotbPorts(dut)
    await start_out_of_reset(dut, core, ports, driver)
    bus = _CocotbBus(dut)
    host = await bridge(_set_up)(bus, config, feed, options["clordid_prefix"])
    await RisingEdge(dut.clk)             # back to driving right after an edge
    start = bus.cycles + 1
    if not world.serial:
        world.start_at(start)
    try:
        cycle = await run_driver(dut, ports, driver, start)
    except Exception:
        # What the core counted so far, to tell where the input went.
        _, counters = await bridge(_read_back)(host, 0)
        dut._log.error("the core's counters: %s", {
            block: {k: v for k, v in values.items() if v} for block, values in counters.items()})
        raise
    positions, counters = await bridge(_read_back)(host, len(config.instruments))
    run = driver.finish_core(cycle, positions, counters)
    bench_result(run)
