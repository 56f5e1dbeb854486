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

import bisect
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from amaranth.lib import data
from amaranth.sim import Simulator

from hdl.quote.loop import LOOP_STAGES, QuoteLoop
from host.gatesim.loop_world import LoopWorld, Step
from sim.book import Books
from sim.exchange import ExchangeSim
from sim.itch_event import ItchEvent, symbol_int
from sim.market_maker import MarketMakerConfig
from sim.wire.ouch import Message, decode_inbound_stream, decode_outbound_stream

__all__ = ["PROGRESS_CYCLES", "LoopBench", "LoopRun", "SentRecord", "compress"]

#: How often a run reports progress and asks whether to stop.
PROGRESS_CYCLES = 1024
#: Cycles the loop must stay still before the bench ticks through an idle stretch at once.
CALM = 16

BEAT_BYTES = 8
_TOP_FIELDS = ("slot", "locate", "bid_price", "bid_shares", "ask_price", "ask_shares", "seq",
               "timestamp", "halted", "degraded")


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One packet our order port sent: decided by the risk gate in cycle ``time``, first beat
    in ``first_beat``. The gate had then taken the top updates of the first ``feed_items``
    feed items, and the first ``answers_seen`` answers had reached the loop."""

    time: int
    first_beat: int
    feed_items: int
    answers_seen: int
    message: Message
    packet: bytes


@dataclass(frozen=True, slots=True)
class _Shares:
    shares: int


@dataclass
class LoopRun:
    sent: list[SentRecord] = field(default_factory=list)
    answers: list[tuple[int, Message]] = field(default_factory=list)
    decisions: list[dict] = field(default_factory=list)
    fills: list[dict] = field(default_factory=list)
    positions: list[_Shares] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per feed item that moved a top: (cycle its last update entered the loop, item index).
    top_cycles: list[tuple[int, int]] = field(default_factory=list)
    cycles: int = 0
    #: Feed items given to the loop; fewer than the feed's when ``stop`` ended the run early.
    fed: int = 0
    stopped: bool = False

    @property
    def order_stream(self) -> bytes:
        return b"".join(s.packet for s in self.sent)


def _set_block(ctx, port, values) -> None:
    for f in dataclasses.fields(values):
        ctx.set(getattr(port, f.name), int(getattr(values, f.name)))


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
        # As many slots as instruments: a smaller loop simulates faster, and decides alike.
        self.dut = QuoteLoop(n, slot_bits=3, first_user_ref=config.first_user_ref)
        self.books = Books(slots=n)
        for slot, inst in enumerate(config.instruments):
            self.books.track_symbol(slot, symbol_int(inst.symbol))
        self.exchange = ExchangeSim([i.symbol for i in config.instruments], config.clk_hz)

    def run(self, feed: Iterable[tuple[int, ItchEvent | str]], *, settle: int = 64,
            kill_at: int | None = None, cause: str = "killed",
            progress: Callable[[int, int], None] | None = None,
            stop: Callable[[], bool] | None = None,
            exchange_times: Sequence[int] | None = None, until: int | None = None,
            vcd: str | None = None) -> LoopRun:
        """Run ``feed`` (``(cycle, event)``, nondecreasing; a :data:`~sim.market_maker.FEED_GAP`
        item raises ``feed_gap`` for good, as the model's) and on until ``settle`` cycles in a
        row have nothing in flight (the exchange's last answers, the loop's last orders).
        ``kill_at``: the control block's ``armed`` falls in that cycle and ``cause`` (``killed``
        or ``heartbeat_lost``) rises, as a write to ``ctrl.kill`` a cycle earlier, or the
        watchdog ``heartbeat_timeout + 2`` cycles after the last heartbeat, makes them.

        ``progress(fed, total)`` is called every :data:`PROGRESS_CYCLES` cycles with the feed
        items given so far; when ``stop()`` returns true (checked as often) the run ends there,
        with what was done and ``stopped`` set.

        ``exchange_times`` (lockstep with a model run): the ``k``-th order reaches the exchange
        in cycle ``exchange_times[k]`` (the model's ``k``-th order's) instead of ``latency``
        cycles after its last beat, or in the next cycle if that has passed, so the book and
        the exchange see what the model's see, in the same cycles. And the loop is handed its
        inputs one model step at a time, in the model's order: an answer, or a feed item's
        top update, each only once the loop has been still for :data:`CALM` cycles since the
        previous step (it is held until then). The model takes each step whole before the
        next, while the gateware needs some 40 cycles to answer one: without lockstep an
        answer and a top change close together race (the quoter may price the top with the
        position from before the fill), and updates a few cycles apart are priced once, on the
        newest top. Lockstep compares the decisions; the loop's own timing, races included, is
        what a run without it shows.

        ``until``: end the run in that cycle (``stopped`` set) whatever is in flight. ``vcd``:
        write every signal of the loop, from cycle 0 to the end of the run, to that VCD file
        (with ``until``, a window up to a point of interest)."""
        if cause not in ("killed", "heartbeat_lost"):
            raise ValueError(f"cause is killed or heartbeat_lost, not {cause!r}")
        self._cause = cause
        result = LoopRun()
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self._bench(list(feed), result, settle, kill_at, progress, stop,
                                      exchange_times, until))
        if vcd is None:
            sim.run()
        else:
            with sim.write_vcd(vcd):
                sim.run()
        return result

    def _configure(self, ctx) -> None:
        dut, cfg = self.dut, self.config
        for k, inst in enumerate(cfg.instruments):
            _set_block(ctx, dut.quote[k], inst.quote)
            _set_block(ctx, dut.risk[k], inst.risk)
            ctx.set(dut.symbols[k], symbol_int(inst.symbol))
        _set_block(ctx, dut.port, cfg.port)
        for k, char in enumerate(self.clordid_prefix.encode("ascii")):
            ctx.set(dut.clordid_prefix[k], char)

    def _bench(self, feed, result: LoopRun, quiet_cycles: int, kill_at: int | None,
               progress, stop, exchange_times: Sequence[int] | None, until: int | None):
        dut, cfg = self.dut, self.config
        serial = exchange_times is not None
        world = LoopWorld(feed, self.books, self.exchange, len(cfg.instruments), cfg.latency,
                          exchange_times or (), serial)
        # The stale-feed timer can act on its own in an idle stretch: then every cycle is run.
        skip_idle = self.skip_idle and cfg.port.stale_feed_timeout == 0

        async def bench(ctx):
            self._configure(ctx)
            ctx.set(dut.control.armed, 1)
            ctx.set(dut.o.ready, 1)
            answer_beats: deque = deque()     # beats of the answers being delivered
            tops: deque = deque()             # (update, feed item index) for the loop's input
            passed: deque = deque()           # decision cycles of passed actions, in order
            packet, first_beat = bytearray(), 0
            quiet = cycle = calm = 0
            answer_cycles: list[int] = []    # the cycle each answer's last beat was taken

            def give(step: Step) -> None:
                if step.gap:                  # the host learns of an unrecovered gap
                    ctx.set(dut.feed_gap, 1)
                tops.extend(step.tops)
                if step.answer is not None:
                    data = step.answer
                    for message in decode_outbound_stream(data):
                        result.answers.append((cycle, message))
                    for offset in range(0, len(data), BEAT_BYTES):
                        answer_beats.append((data[offset:offset + BEAT_BYTES],
                                             offset + BEAT_BYTES >= len(data)))

            while True:
                if cycle == kill_at:
                    ctx.set(dut.control.armed, 0)
                    ctx.set(getattr(dut.control, self._cause), 1)
                if not serial:                # every step in the cycle it is due
                    while (step := world.next_step(cycle)) is not None:
                        give(step)
                elif not (tops or answer_beats) and calm >= CALM:
                    # One step into a settled loop (the world's events before it taken).
                    step = world.next_step(cycle)
                    if step is not None:
                        give(step)

                if tops:
                    update = tops[0][0]
                    for name in _TOP_FIELDS:
                        ctx.set(getattr(dut.i.payload, name), int(getattr(update, name)))
                ctx.set(dut.i.valid, bool(tops))
                beat = dut.i_answer.payload
                if answer_beats:
                    chunk, last = answer_beats[0]
                    ctx.set(beat.data, int.from_bytes(chunk, "little"))
                    ctx.set(beat.keep, (1 << len(chunk)) - 1)
                    ctx.set(beat.last, last)
                ctx.set(dut.i_answer.valid, bool(answer_beats))
                feeding = bool(tops or answer_beats)    # a transfer may happen this cycle

                if tops and ctx.get(dut.i.ready):
                    result.top_cycles.append((cycle, tops.popleft()[1]))
                if answer_beats and ctx.get(dut.i_answer.ready) and answer_beats.popleft()[1]:
                    answer_cycles.append(cycle)
                if ctx.get(dut.o_decision.valid):
                    decision = _fields(ctx.get(dut.o_decision.payload))
                    result.decisions.append(decision)
                    if decision["passed"]:
                        passed.append(decision["time"])
                if ctx.get(dut.o_fill.valid):
                    result.fills.append(_fields(ctx.get(dut.o_fill.payload)))
                if ctx.get(dut.o.valid):
                    out = ctx.get(dut.o.payload)
                    if out.first:
                        packet, first_beat = bytearray(), cycle
                    packet += int(out.data).to_bytes(BEAT_BYTES, "little")[
                        :bin(int(out.keep)).count("1")]
                    if out.last:
                        data = bytes(packet)
                        (message,) = decode_inbound_stream(data)
                        decided = passed.popleft()
                        # What the gate knew when it decided: the feed items whose top updates
                        # it had taken, the answers that had arrived.
                        known = bisect.bisect_left(result.top_cycles, (decided, -1))
                        items = result.top_cycles[known - 1][1] + 1 if known else 0
                        result.sent.append(SentRecord(
                            decided, first_beat, items,
                            bisect.bisect_left(answer_cycles, decided), message, data))
                        world.send(data, cycle)

                idle = (not world.pending() and (kill_at is None or cycle > kill_at)
                        and not (answer_beats or tops) and not ctx.get(dut.busy))
                quiet = quiet + 1 if idle else 0
                if quiet >= quiet_cycles:
                    break
                if cycle == until:
                    result.stopped = True
                    break
                if cycle % PROGRESS_CYCLES == 0:
                    if progress is not None:
                        progress(world.fed, len(feed))
                    if stop is not None and stop():
                        result.stopped = True
                        break
                # Nothing in flight and nothing due before the next item: tick straight to it
                # (the cycles still run, only the bench's per-cycle work is saved).
                ahead = 1
                still = (not feeding and not ctx.get(dut.busy)
                         and not ctx.get(dut.o_decision.valid) and not ctx.get(dut.o_fill.valid))
                # A strobe between stages (an answer's ``answered``, a reprice) can leave
                # ``busy`` low for a cycle or two: only a loop still for CALM cycles is idle.
                calm = calm + 1 if still else 0
                if skip_idle and calm >= CALM:
                    due = [when for when in (
                        world.next_time(),
                        kill_at if kill_at is not None and kill_at > cycle else None,
                        until) if when is not None]
                    if world.pending():
                        due.append((cycle // PROGRESS_CYCLES + 1) * PROGRESS_CYCLES)
                        ahead = max(1, min(due) - cycle)
                if ahead == 1:
                    await ctx.tick()
                else:
                    await ctx.tick().repeat(ahead)
                cycle += ahead

            result.cycles, result.fed = cycle, world.fed
            result.positions = [_Shares(ctx.get(dut.position[k]))
                                for k in range(len(cfg.instruments))]
            result.stats = {stage: {name: ctx.get(dut.stats[stage][name])
                                    for name, _ in dut.stats[stage].shape()}
                            for stage in LOOP_STAGES}

        return bench


def _fields(value: data.Const) -> dict:
    """A struct's value as nested dicts of plain ints (an enum field as its value)."""
    out = {}
    for name, _ in value.shape():
        field_value = value[name]
        if isinstance(field_value, data.Const):
            out[name] = _fields(field_value)
        else:
            out[name] = int(getattr(field_value, "value", field_value))
    return out


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
