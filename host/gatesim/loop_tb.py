"""The gateware market-maker loop (:class:`~hdl.quote.loop.QuoteLoop`) in Amaranth's simulator,
closed by the model's book and exchange simulator.

Around the gateware, everything the model's :class:`~sim.market_maker.MarketMaker` does outside
its quoter, gate, order entry and order table is done by the same model code, in
:class:`~host.gatesim.loop_world.LoopWorld`: the book turns feed events into top-of-book updates
for the loop's input, the exchange simulator sees the feed's trades and tops, receives our
packets ``latency`` cycles after they left (or, in lockstep, when the model's did) and its
answers reach the loop's answer input ``latency`` cycles after it sent them, all in the model's
order.

The result has the shape of :class:`~sim.market_maker.MarketMakerResult` where the checks need
it (``sent``, ``answers``, ``positions``, ``order_stream``), so the same independent checker
runs over either; each sent record's ``time`` is the risk gate's decision cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.quote.loop import QuoteLoop
from host.gatesim.loop_driver import PROGRESS_CYCLES, LoopDriver, LoopRun, SentRecord
from host.gatesim.loop_world import LoopWorld
from sim.book import Books
from sim.exchange import ExchangeSim
from sim.itch_event import ItchEvent, symbol_int
from sim.market_maker import MarketMakerConfig

__all__ = ["PROGRESS_CYCLES", "SIMULATORS", "LoopBench", "LoopRun", "SentRecord", "compress"]

#: Where the loop can run: Amaranth's simulator in this process, or Icarus Verilog or Verilator
#: under cocotb (:mod:`host.gatesim.loop_cocotb`).
SIMULATORS = ("amaranth", "icarus", "verilator")


class _AmaranthPorts:
    """The toplevel's ports by Verilog name in Amaranth's testbench."""

    def __init__(self, ctx, component):
        self.ctx = ctx
        self.signals = {"__".join(map(str, path)): Value.cast(value)
                        for path, _, value in component.signature.flatten(component)}

    def set(self, name: str, value: int) -> None:
        self.ctx.set(self.signals[name], value)

    def get(self, name: str) -> int:
        return self.ctx.get(self.signals[name])


class LoopBench:
    """Runs one feed through the gateware loop.

    Parameters
    ----------
    config : MarketMakerConfig
        Instruments (slot ``k`` is ``instruments[k]``), port limits, exchange latency, clock.
        At most 8 instruments (the loop's slots). ``armed`` is driven high from cycle 1 (the
        model's arm in cycle 0); the heartbeat watchdog is the control block's, not the loop's,
        so ``heartbeat_timeout`` must be 0.
    clordid_prefix : str
        The ClOrdID prefix register (the model's ``OrderEntry`` default).
    """

    def __init__(self, config: MarketMakerConfig, *, clordid_prefix: str = "TKG"):
        n = len(config.instruments)
        if not 1 <= n <= 8:
            raise ValueError(f"the loop quotes 1 to 8 instruments, got {n}")
        if config.heartbeat_timeout:
            raise ValueError("the bench drives `armed` directly: no heartbeat watchdog")
        self.config = config
        self.clordid_prefix = clordid_prefix
        #: Tick through idle stretches at once (the cycles still run; the bench does less).
        self.skip_idle = True
        self._dut: QuoteLoop | None = None
        self.books = Books(slots=n)
        for slot, inst in enumerate(config.instruments):
            self.books.track_symbol(slot, symbol_int(inst.symbol))
        self.exchange = ExchangeSim([i.symbol for i in config.instruments], config.clk_hz)

    @property
    def dut(self) -> QuoteLoop:
        """The loop simulated in Amaranth's simulator, built on first use: as many slots as
        instruments (a smaller loop simulates faster, and decides alike)."""
        if self._dut is None:
            self._dut = QuoteLoop(len(self.config.instruments), slot_bits=3,
                                  first_user_ref=self.config.first_user_ref)
        return self._dut

    def run(self, feed: Iterable[tuple[int, ItchEvent | str]], *, settle: int = 64,
            kill_at: int | None = None, cause: str = "killed",
            progress: Callable[[int, int], None] | None = None,
            stop: Callable[[], bool] | None = None,
            exchange_times: Sequence[int] | None = None, until: int | None = None,
            vcd: str | None = None, simulator: str = "amaranth") -> LoopRun:
        """Run ``feed`` (``(cycle, event)``, nondecreasing; a :data:`~sim.market_maker.FEED_GAP`
        item raises ``feed_gap`` for good, as the model's) and on until ``settle`` cycles in a
        row have nothing in flight (the exchange's last answers, the loop's last orders).
        ``kill_at``: the control block's ``armed`` falls in that cycle and ``cause`` (``killed``
        or ``heartbeat_lost``) rises, as a write to ``ctrl.kill`` a cycle earlier, or the
        watchdog ``heartbeat_timeout + 2`` cycles after the last heartbeat, makes them.

        ``progress(fed, total)`` is called every :data:`PROGRESS_CYCLES` cycles with the feed
        items given so far; when ``stop()`` returns true (checked as often) the run ends there,
        with what was done and ``stopped`` set.

        ``exchange_times`` (lockstep with a model run): the book and the exchange keep the
        model's clock, the feed's, and the ``k``-th order reaches the exchange in cycle
        ``exchange_times[k]`` (the model's ``k``-th order's), so they see what the model's see
        when it sees it. The loop is handed its inputs one model step at a time, in the
        model's order: an answer, or a feed item's top update, each once the loop has been
        still for :data:`CALM` cycles since the previous step, at once, whatever the step's
        time on the feed's clock. The model takes each step whole before the next, while the
        gateware needs some 40 cycles to answer one: without lockstep an answer and a top
        change close together race (the quoter may price the top with the position from before
        the fill), and updates a few cycles apart are priced once, on the newest top. Lockstep
        compares the decisions, and its cycles are those the loop works: idle stretches of the
        feed cost nothing, and a run of a few instruments costs what their inputs do. Rules on
        elapsed time (quote life, rate refill, stale feed, protection window) see the loop's
        own clock, which then runs from step to step; a run without lockstep gives every input
        in the cycle it is due, so those rules and the loop's own timing, races included, are
        what it shows.

        ``until``: end the run in that cycle (``stopped`` set) whatever is in flight. ``vcd``:
        write every signal of the loop, from cycle 0 to the end of the run, to that VCD file
        (with ``until``, a window up to a point of interest).

        ``simulator``: ``amaranth`` (this process), or ``icarus`` or ``verilator``: the loop's
        Verilog under cocotb, driven by the same :class:`~host.gatesim.loop_driver.LoopDriver`
        (no ``vcd``, ``progress`` or ``stop`` there; ``TICKGATE_WAVES=1`` dumps an FST)."""
        if cause not in ("killed", "heartbeat_lost"):
            raise ValueError(f"cause is killed or heartbeat_lost, not {cause!r}")
        if simulator not in SIMULATORS:
            raise ValueError(f"simulator is one of {', '.join(SIMULATORS)}, not {simulator!r}")
        world = LoopWorld(list(feed), self.books, self.exchange, len(self.config.instruments),
                          self.config.latency, exchange_times or (),
                          serial=exchange_times is not None)
        options = dict(clordid_prefix=self.clordid_prefix, settle=settle, kill_at=kill_at,
                       cause=cause, until=until, skip_idle=self.skip_idle)
        if simulator != "amaranth":
            if vcd is not None or progress is not None or stop is not None:
                raise ValueError("a run under cocotb takes no vcd, progress or stop (set "
                                 "TICKGATE_WAVES=1 for its waveform)")
            from host.gatesim.loop_cocotb import run_loop_cocotb

            return run_loop_cocotb(self.config, world, options, simulator)
        driver = LoopDriver(self.dut, self.config, world, progress=progress, stop=stop,
                            **options)
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self._bench(driver))
        if vcd is None:
            sim.run()
        else:
            with sim.write_vcd(vcd):
                sim.run()
        return driver.result

    def _bench(self, driver: LoopDriver):
        async def bench(ctx):
            ports = _AmaranthPorts(ctx, self.dut)
            driver.configure(ports)
            cycle = 0
            while True:
                driver.drive(ports, cycle)
                ahead = driver.sample(ports, cycle)
                if ahead is None:
                    break
                if ahead == 1:
                    await ctx.tick()
                else:
                    await ctx.tick().repeat(ahead)
                cycle += ahead
            driver.finish(ports, cycle)

        return bench


def compress(feed: Iterable[tuple[int, ItchEvent]], max_gap: int) -> list[tuple[int, ItchEvent]]:
    """The feed with every pause between two items shortened to at most ``max_gap`` cycles
    (order and ties kept), so a simulation spends its cycles on trading, not on waiting."""
    out, last, now = [], None, 0
    for cycle, item in feed:
        if last is not None:
            now += min(cycle - last, max_gap)
        last = cycle
        out.append((now, item))
    return out
