"""The loop bench's work in each cycle, the same in Amaranth's simulator and under cocotb.

:class:`LoopDriver` drives the gateware loop's inputs (parameters, top updates, answer beats,
arm and kill) and records its outputs (decisions, fills, order packets) through a
:class:`Ports` object that reads and writes the toplevel's ports by their Verilog names
(``i__payload``, ``quote__0__size``, ...; Amaranth's flattening of the signature), as plain
unsigned integers. A simulator adapter calls, per cycle, :meth:`LoopDriver.drive` with the
inputs of that cycle, then :meth:`LoopDriver.sample` with the settled values of the same
cycle, which says how many cycles to advance (or to stop). Amaranth's testbench does both
between two ticks; a cocotb coroutine drives after one rising edge and samples at the next.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Protocol

from hdl.quote.loop import LOOP_STAGES
from host.gatesim.loop_world import LoopWorld, Step
from host.gatesim.streams import pack, unpack
from sim.itch_event import symbol_int
from sim.market_maker import MarketMakerConfig
from sim.wire.ouch import Message, decode_inbound_stream, decode_outbound_stream

__all__ = ["CALM", "PROGRESS_CYCLES", "LoopDriver", "LoopRun", "Ports", "SentRecord",
           "payload_layout"]

#: How often a run reports progress and asks whether to stop.
PROGRESS_CYCLES = 1024
#: Cycles the loop must stay still before it counts as settled (lockstep's next step goes in,
#: or the bench ticks through an idle stretch at once).
CALM = 16
#: Cycles an input may wait to be taken, or the loop stay busy with nothing coming in, before
#: the run fails as stuck (the loop answers any input within a few hundred cycles).
STUCK = 20_000

BEAT_BYTES = 8
_TOP_FIELDS = ("slot", "locate", "bid_price", "bid_shares", "ask_price", "ask_shares", "seq",
               "timestamp", "halted", "degraded")
_POSITION_BITS = 32


class Ports(Protocol):
    """The toplevel's ports by Verilog name, as unsigned integers."""

    def set(self, name: str, value: int) -> None: ...

    def get(self, name: str) -> int: ...


@dataclasses.dataclass(frozen=True, slots=True)
class SentRecord:
    """One packet our order port sent: decided by the risk gate in cycle ``time``, first beat
    in ``first_beat``. The gate had then taken the top updates of the first ``feed_items``
    feed items, and the first ``answers_seen`` answers had reached the loop. ``feed_time`` is
    the feed's clock then: in lockstep the time of the input it answers (the model's decision
    cycle for the same order), otherwise ``time``."""

    time: int
    first_beat: int
    feed_items: int
    answers_seen: int
    message: Message
    packet: bytes
    feed_time: int


@dataclasses.dataclass(frozen=True, slots=True)
class Shares:
    shares: int


@dataclasses.dataclass
class LoopRun:
    sent: list[SentRecord] = dataclasses.field(default_factory=list)
    answers: list[tuple[int, Message]] = dataclasses.field(default_factory=list)
    decisions: list[dict] = dataclasses.field(default_factory=list)
    fills: list[dict] = dataclasses.field(default_factory=list)
    positions: list[Shares] = dataclasses.field(default_factory=list)
    stats: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: Per feed item that moved a top: (cycle its last update entered the loop, item index).
    top_cycles: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    #: The instrument slot of each of those updates.
    top_slots: list[int] = dataclasses.field(default_factory=list)
    #: A run of the whole core: per feed item, the cycle the Ethernet input took the beat
    #: holding its message's last byte.
    feed_ends: dict[int, int] = dataclasses.field(default_factory=dict)
    cycles: int = 0
    #: Feed items given to the loop; fewer than the feed's when ``stop`` ended the run early.
    fed: int = 0
    stopped: bool = False
    #: The simulator that ran it.
    simulator: str = "amaranth"

    @property
    def order_stream(self) -> bytes:
        return b"".join(s.packet for s in self.sent)


def payload_layout(component, name: str):
    return component.signature.members[name].signature.members["payload"].shape


class LoopDriver:
    """One run of the loop bench (see :meth:`host.gatesim.loop_tb.LoopBench.run` for the
    parameters' meaning). ``component`` is a :class:`~hdl.quote.loop.QuoteLoop` of the design
    simulated (its port layouts are read, nothing else)."""

    def __init__(self, component, config: MarketMakerConfig, world: LoopWorld, *,
                 clordid_prefix: str, settle: int, kill_at: int | None, cause: str,
                 until: int | None, skip_idle: bool,
                 progress: Callable[[int, int], None] | None = None,
                 stop: Callable[[], bool] | None = None):
        self.config, self.world = config, world
        self.slots = len(config.instruments)
        self.clordid_prefix = clordid_prefix
        self.settle, self.kill_at, self.cause, self.until = settle, kill_at, cause, until
        self.progress, self.stop = progress, stop
        # The stale-feed timer can act on its own in an idle stretch: then every cycle is run.
        self.skip_idle = skip_idle and config.port.stale_feed_timeout == 0
        self._read_layouts(component)
        self.result = LoopRun()
        self._answer_beats: deque = deque()   # beats of the answers being delivered
        self._tops: deque = deque()           # (update, feed item index) for the loop's input
        self._passed: deque = deque()         # decision cycles of passed actions, in order
        self._packet, self._first_beat = bytearray(), 0
        self._quiet = self._calm = 0
        self._answer_cycles: list[int] = []   # the cycle each answer's last beat was taken
        self._gap = False
        self._feeding = False
        self._mark = self._moved = 0          # inputs taken and decisions; the cycle they moved

    def _read_layouts(self, component) -> None:
        self.top_layout = payload_layout(component, "i")
        self.beat_layout = payload_layout(component, "i_answer")
        self.out_layout = payload_layout(component, "o")
        self.decision_layout = payload_layout(component, "o_decision")
        self.fill_layout = payload_layout(component, "o_fill")
        self.stats_layout = component.signature.members["stats"].shape

    # -- set-up ----------------------------------------------------------------------------------

    def configure(self, ports: Ports) -> None:
        """Parameters, symbols, the ClOrdID prefix; armed, ``o`` ready."""
        for k, inst in enumerate(self.config.instruments):
            for block, values in (("quote", inst.quote), ("risk", inst.risk)):
                for f in dataclasses.fields(values):
                    ports.set(f"{block}__{k}__{f.name}", int(getattr(values, f.name)))
        for f in dataclasses.fields(self.config.port):
            ports.set(f"port__{f.name}", int(getattr(self.config.port, f.name)))
        ports.set("symbols", sum(symbol_int(inst.symbol) << (64 * k)
                                 for k, inst in enumerate(self.config.instruments)))
        ports.set("clordid_prefix", int.from_bytes(self.clordid_prefix.encode("ascii"),
                                                   "little"))
        ports.set("control__armed", 1)
        ports.set("o__ready", 1)

    # -- each cycle ------------------------------------------------------------------------------

    def _give(self, step: Step, cycle: int) -> None:
        if step.gap:                          # the host learns of an unrecovered gap
            self._gap = True
        self._tops.extend(step.tops)
        if step.answer is not None:
            data = step.answer
            for message in decode_outbound_stream(data):
                self.result.answers.append((cycle, message))
            for offset in range(0, len(data), BEAT_BYTES):
                self._answer_beats.append((data[offset:offset + BEAT_BYTES],
                                           offset + BEAT_BYTES >= len(data)))

    def drive(self, ports: Ports, cycle: int) -> None:
        """Set the inputs of ``cycle``."""
        world = self.world
        if cycle == self.kill_at:
            ports.set("control__armed", 0)
            ports.set(f"control__{self.cause}", 1)
        if not world.serial:                  # every step in the cycle it is due
            while (step := world.next_step(cycle)) is not None:
                self._give(step, cycle)
        elif not self._waiting() and self._calm >= CALM:
            # The next step into a settled loop, whatever its time on the feed's clock (the
            # world's events before it taken).
            step = world.next_step()
            if step is not None:
                self._give(step, cycle)
        self._drive_feed(ports)
        if self._answer_beats:
            chunk, last = self._answer_beats[0]
            self._drive_answer(ports, int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1,
                               last)
        else:
            self._drive_answer(ports, None, 0, False)
        self._feeding = self._waiting()       # a transfer may happen

    # -- the loop's own input and output ports (a bench of a larger design overrides them) --

    def _waiting(self) -> bool:
        """Inputs given to the design and not yet taken (or, for a core, not yet seen)."""
        return bool(self._tops or self._answer_beats)

    def _drive_feed(self, ports: Ports) -> None:
        ports.set("feed_gap", int(self._gap))
        if self._tops:
            update = self._tops[0][0]
            ports.set("i__payload", pack(self.top_layout, {
                name: int(getattr(update, name)) for name in _TOP_FIELDS}))
        ports.set("i__valid", int(bool(self._tops)))

    def _drive_answer(self, ports: Ports, data: int | None, keep: int, last: bool) -> None:
        if data is not None:
            ports.set("i_answer__payload", pack(self.beat_layout, {
                "data": data, "keep": keep, "last": int(last)}))
        ports.set("i_answer__valid", int(data is not None))

    def _take_feed(self, ports: Ports, cycle: int) -> None:
        """Record the top update the loop took in ``cycle``, if any."""
        if self._tops and ports.get("i__ready"):
            update, index = self._tops.popleft()
            self.result.top_cycles.append((cycle, index))
            self.result.top_slots.append(update.slot)

    def _answer_taken(self, ports: Ports) -> bool:
        return bool(ports.get("i_answer__ready"))

    def _out_beat(self, ports: Ports) -> dict | None:
        """The order port's beat in this cycle (``first``, ``data``, ``keep``, ``last``)."""
        return unpack(self.out_layout, ports.get("o__payload")) if ports.get("o__valid") else None

    def _stuck_detail(self) -> str:
        return (f"inputs waiting: {len(self._tops)} top updates, {len(self._answer_beats)} "
                f"answer beats")

    def _progress_mark(self) -> int:
        """A count that moves whenever the design takes an input or decides."""
        return len(self.result.top_cycles) + len(self._answer_beats) + len(self.result.decisions)

    def sample(self, ports: Ports, cycle: int) -> int | None:
        """Record the outputs of ``cycle`` (its inputs driven); the cycles to advance, or None
        when the run ends in this cycle."""
        result, world = self.result, self.world
        self._take_feed(ports, cycle)
        if (self._answer_beats and self._answer_taken(ports)
                and self._answer_beats.popleft()[1]):
            self._answer_cycles.append(cycle)
        decision_valid = ports.get("o_decision__valid")
        if decision_valid:
            decision = unpack(self.decision_layout, ports.get("o_decision__payload"))
            result.decisions.append(decision)
            if decision["passed"]:
                self._passed.append(decision["time"])
        fill_valid = ports.get("o_fill__valid")
        if fill_valid:
            result.fills.append(unpack(self.fill_layout, ports.get("o_fill__payload")))
        beat = self._out_beat(ports)
        if beat is not None:
            self._take_beat(beat, cycle)

        busy = ports.get("busy")
        mark = self._progress_mark()
        if mark != self._mark:
            self._mark, self._moved = mark, cycle
        elif (self._waiting() or busy) and cycle - self._moved > STUCK:
            raise RuntimeError(
                f"the loop is stuck in cycle {cycle}: for {STUCK} cycles it took no input and "
                f"decided nothing ({self._stuck_detail()}; busy {busy}; feed items given "
                f"{world.fed} of {len(world.feed)})")
        idle = (not world.pending() and (self.kill_at is None or cycle > self.kill_at)
                and not self._waiting() and not busy)
        self._quiet = self._quiet + 1 if idle else 0
        if self._quiet >= self.settle:
            return None
        if cycle == self.until:
            result.stopped = True
            return None
        if cycle % PROGRESS_CYCLES == 0:
            if self.progress is not None:
                self.progress(world.fed, len(world.feed))
            if self.stop is not None and self.stop():
                result.stopped = True
                return None
        still = not (self._feeding or busy or decision_valid or fill_valid)
        # A strobe between stages (an answer's ``answered``, a reprice) can leave ``busy`` low
        # for a cycle or two: only a loop still for CALM cycles is settled.
        self._calm = self._calm + 1 if still else 0
        if self.skip_idle and self._calm >= CALM and not world.serial and world.pending():
            # Nothing in flight and nothing due before the next event: tick straight to it
            # (the cycles still run, only the bench's per-cycle work is saved).
            due = [when for when in (
                world.next_time(),
                self.kill_at if self.kill_at is not None and self.kill_at > cycle else None,
                self.until, (cycle // PROGRESS_CYCLES + 1) * PROGRESS_CYCLES)
                if when is not None]
            return max(1, min(due) - cycle)
        return 1

    def _take_beat(self, beat: dict, cycle: int) -> None:
        if beat["first"]:
            self._packet, self._first_beat = bytearray(), cycle
        self._packet += beat["data"].to_bytes(BEAT_BYTES, "little")[:beat["keep"].bit_count()]
        if not beat["last"]:
            return
        result, data = self.result, bytes(self._packet)
        (message,) = decode_inbound_stream(data)
        decided = self._passed.popleft()
        # What the gate knew when it decided: the feed items whose top updates it had taken,
        # the answers that had arrived.
        known = bisect.bisect_left(result.top_cycles, (decided, -1))
        items = result.top_cycles[known - 1][1] + 1 if known else 0
        result.sent.append(SentRecord(
            decided, self._first_beat, items, bisect.bisect_left(self._answer_cycles, decided),
            message, data, self.world.now if self.world.serial else decided))
        self.world.send(data, cycle)

    def finish(self, ports: Ports, cycle: int) -> LoopRun:
        """The run's end: its cycles, the positions and every stage's counters."""
        result = self.result
        result.cycles, result.fed = cycle, self.world.fed
        raw, mask = ports.get("position"), (1 << _POSITION_BITS) - 1
        positions = [(raw >> (_POSITION_BITS * k)) & mask for k in range(self.slots)]
        result.positions = [Shares(p - (1 << _POSITION_BITS) if p >> (_POSITION_BITS - 1)
                                   else p) for p in positions]
        stats = unpack(self.stats_layout, ports.get("stats"))
        result.stats = {stage: dict(stats[stage]) for stage in LOOP_STAGES}
        return result

