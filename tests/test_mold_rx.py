"""MoldUDP64 stage on the Amaranth simulator, compared message by message with ``sim/mold_rx.py``.

Every scenario runs the gateware and the model on the same packets; after each packet marked for
it, the testbench lets the pipelines settle and compares every counter, ``expected``, the session
latch and the gaps. The stimulus helpers (:func:`payload_beats`, :class:`MessageCollector`,
:func:`random_messages`) are shared with ``tests/cocotb/tb_mold_rx.py``.
"""

import itertools
import os
import random
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import Module, Signal, Value
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from hdl.arch.beat import BEAT_BYTES, Beat
from hdl.feed.message_beat import MessageBeat
from hdl.feed.mold_hints import MoldHintStage
from hdl.feed.mold_rx import GapLayout, MoldRx
from sim.mold_rx import Gap, Message
from sim.mold_rx import MoldRx as MoldRxModel
from sim.wire.itch import MIN_MESSAGE_LENGTH
from sim.wire.mold import (
    END_OF_SESSION_COUNT,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_PREFIX,
    decode_header,
    encode_packet,
    packetize,
)

SEED = int(os.environ.get("TB_SEED", "1"))
SESSION = b"0000004242"
OTHER_SESSION = b"0000004243"
LANES = range(BEAT_BYTES)

# ------------------------------------------------------------------------------------------------
# Stimulus helpers (shared with tests/cocotb/tb_mold_rx.py)


@dataclass(frozen=True)
class Packet:
    """One UDP payload as ``udp_rx`` delivers it: first byte in ``lane``, ``error`` on the end."""

    payload: bytes
    lane: int = 2
    error: bool = False
    check: bool = True   # compare counters and status once this packet has settled
    ragged: bool = False  # random keep on middle beats, which the stage must ignore


@dataclass(frozen=True)
class Jump:
    """The host sets ``expected`` (through ``i_expected``) between packets."""

    seq: int


def payload_beats(payload: bytes, lane: int, error: bool = False,
                  rng: random.Random | None = None, ragged: bool = False) -> list[dict]:
    """``payload`` as ``Beat`` dicts starting in ``lane``; lanes outside ``keep`` hold junk.

    ``ragged`` gives the middle beats a random ``keep`` (their lanes all carry payload bytes).
    """
    if not payload:
        raise ValueError("a stream packet cannot be empty")
    rng = rng or random.Random(len(payload) * 8 + lane)
    lanes = [None] * lane + list(payload)
    lanes += [None] * (-len(lanes) % BEAT_BYTES)
    beats = []
    for offset in range(0, len(lanes), BEAT_BYTES):
        chunk = lanes[offset:offset + BEAT_BYTES]
        last = offset + BEAT_BYTES >= len(lanes)
        raw = bytes(rng.randrange(256) if b is None else b for b in chunk)
        beats.append({
            "data": int.from_bytes(raw, "little"),
            "keep": sum(1 << k for k, b in enumerate(chunk) if b is not None),
            "first": int(offset == 0), "last": int(last), "error": int(last and error),
        })
    if ragged:
        for beat in beats[1:-1]:
            beat["keep"] = rng.randrange(1 << BEAT_BYTES)
    return beats


def random_messages(rng: random.Random, count: int, max_length: int = 60) -> list[bytes]:
    """``count`` messages of random bytes, each at least ``MIN_MESSAGE_LENGTH`` long."""
    return [rng.randbytes(rng.randrange(MIN_MESSAGE_LENGTH, max_length + 1))
            for _ in range(count)]


class MessageCollector:
    """Rebuilds messages from ``MessageBeat`` dicts and checks the message-beat contract."""

    def __init__(self):
        self.messages: list[Message] = []
        self.abandoned = 0
        self._open: tuple[int, int, bytearray] | None = None

    def push(self, beat: dict) -> None:
        raw = beat["data"].to_bytes(BEAT_BYTES, "little")
        assert beat["start"] or beat["end"] or self._open, "a beat with no message bytes"
        if beat["end"]:
            assert self._open is not None, "end without a message in progress"
            seq, length, body = self._open
            self._open = None
            if beat["error"]:
                self.abandoned += 1
            else:
                if beat["start"]:
                    assert beat["end_lane"] < beat["start_lane"], "messages overlap in a beat"
                body += raw[:beat["end_lane"] + 1]
                assert len(body) == length, f"message {seq}: {len(body)} bytes, length {length}"
                self.messages.append(Message(seq, bytes(body)))
        elif self._open is not None:
            self._open[2].extend(raw)
        if beat["start"]:
            assert self._open is None, "start while a message is in progress"
            self._open = (beat["seq"], beat["length"], bytearray(raw[beat["start_lane"]:]))

    def idle(self) -> bool:
        return self._open is None


@dataclass
class Snapshot:
    stats: dict[str, int]
    expected: int
    session: int | None
    ended: bool
    gaps: list[Gap]


def model_snapshot(model: MoldRxModel) -> Snapshot:
    return Snapshot({stat.name.lower(): value for stat, value in model.stats.items()},
                    model.expected,
                    None if model.session is None else int.from_bytes(model.session, "big"),
                    model.ended, list(model.gaps))


def run_model(steps) -> tuple[list[Message], list[Snapshot]]:
    """The model's messages and a snapshot after every packet marked ``check``."""
    model = MoldRxModel()
    messages, snapshots = [], []
    for step in steps:
        if isinstance(step, Jump):
            model.set_expected(step.seq)
            continue
        messages += model.push(step.payload, step.error)
        if step.check:
            snapshots.append(model_snapshot(model))
    return messages, snapshots


# ------------------------------------------------------------------------------------------------
# Amaranth simulation

SETTLE_CYCLES = 6   # the counter pipeline commits 4 cycles after a packet's last beat


def unpack(layout: data.Layout, word: int) -> dict:
    return {name: (word >> member.offset) & ((1 << member.width) - 1) for name, member in layout}


@dataclass
class Run:
    collector: MessageCollector = field(default_factory=MessageCollector)
    snapshots: list[Snapshot] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    stalls: int = 0                  # cycles a beat was offered, o was ready and i was not
    latencies: list[int] = field(default_factory=list)   # accept -> first valid, per output beat
    beats_in: int = 0
    busy_cycles: int = 0             # from the first beat offered to the last beat taken


class HintedMoldRx(wiring.Component):
    """``MoldRx(hinted=True)`` as the feed ingress runs it: behind a one-beat register (where
    UdpRx's output register is), with a ``MoldHintStage`` beside that register. The ports are
    MoldRx's; the latency is one cycle more."""

    def __init__(self, gap_fifo_depth: int):
        self._mold = MoldRx(gap_fifo_depth=gap_fifo_depth, hinted=True)
        super().__init__({name: member for name, member in self._mold.signature.members.items()
                          if name != "i_hints"})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mold = mold = self._mold
        m.submodules.hints = hints = MoldHintStage()
        held, held_valid = Signal(Beat), Signal()
        load = Signal()
        m.d.comb += [
            self.i.ready.eq(~held_valid | mold.i.ready),
            load.eq(self.i.valid & self.i.ready),
            mold.i.valid.eq(held_valid),
            mold.i.payload.eq(held),
            hints.data.eq(self.i.payload.data),
            hints.load.eq(load),
            hints.expected.eq(mold.status.expected),
            mold.i_hints.eq(hints.hints),
            self.stats.eq(mold.stats),
            self.status.eq(mold.status),
        ]
        with m.If(load):
            m.d.sync += held.eq(self.i.payload)
        with m.If(self.i.ready):
            m.d.sync += held_valid.eq(self.i.valid)
        wiring.connect(m, mold.o, wiring.flipped(self.o))
        wiring.connect(m, mold.o_gap, wiring.flipped(self.o_gap))
        wiring.connect(m, wiring.flipped(self.i_expected), mold.i_expected)
        return m


def simulate(steps, *, idle: float = 0.0, backpressure: float = 0.0, gap_ready: bool = True,
             seed: int = 0, gap_fifo_depth: int = 16, hinted: bool = False) -> Run:
    """Drive ``steps`` through a fresh ``MoldRx`` (or :class:`HintedMoldRx`) and record what it
    does."""
    dut = HintedMoldRx(gap_fifo_depth) if hinted else MoldRx(gap_fifo_depth=gap_fifo_depth)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    rng = random.Random(seed)
    ops = []
    for step in steps:
        if isinstance(step, Jump):
            ops.append(("jump", step.seq))
            continue
        ops += [("beat", beat) for beat in
                payload_beats(step.payload, step.lane, step.error, rng, step.ragged)]
        if step.check:
            ops.append(("settle", True))
    if not ops or ops[-1][0] != "settle":
        ops.append(("settle", False))

    async def testbench(ctx):
        index, cycle, quiet = 0, 0, 0
        presenting = False
        accepted: list[tuple[int, int]] = []    # (cycle, data) of every beat taken
        prev_valid, prev_taken = False, False
        first_offer, last_take = None, 0
        while index < len(ops):
            kind, arg = ops[index]
            offer = False
            if kind == "beat" and (presenting or rng.random() >= idle):
                offer = presenting = True
                ctx.set(dut.i.payload, arg)
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i_expected.valid, kind == "jump")
            if kind == "jump":
                ctx.set(dut.i_expected.payload, arg)
            ready = kind == "settle" or rng.random() >= backpressure
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.o_gap.ready, gap_ready)

            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            if o_valid and (not prev_valid or prev_taken):
                beat = unpack(MessageBeat.as_shape(), ctx.get(Value.cast(dut.o.payload)))
                # The beat taken last (hinted: one of the last two, the register holding one).
                taken = [at for at, word in accepted[-1 - hinted:] if word == beat["data"]]
                assert taken, f"cycle {cycle}: not a beat just taken"
                run.latencies.append(cycle - taken[-1])
            if o_valid and ready:
                run.collector.push(
                    unpack(MessageBeat.as_shape(), ctx.get(Value.cast(dut.o.payload))))
            if ctx.get(dut.o_gap.valid) and gap_ready:
                gap = unpack(GapLayout, ctx.get(Value.cast(dut.o_gap.payload)))
                run.gaps.append(Gap(gap["first"], gap["count"]))
            if offer:
                first_offer = cycle if first_offer is None else first_offer
                if i_ready:
                    accepted.append((cycle, arg["data"]))
                    run.beats_in += 1
                    last_take = cycle
                    presenting = False
                    index += 1
                elif ready:
                    run.stalls += 1
            if kind == "jump" and ctx.get(dut.i_expected.ready):
                index += 1
            if kind == "settle":
                quiet = quiet + 1 if not o_valid else 0
                if quiet >= SETTLE_CYCLES:
                    quiet = 0
                    index += 1
                    if arg:
                        status = unpack(dut.status.shape(), ctx.get(Value.cast(dut.status)))
                        assert status["session_valid"] or status["session"] == 0, \
                            "a session is shown before one is latched"
                        run.snapshots.append(Snapshot(
                            unpack(dut.stats.shape(), ctx.get(Value.cast(dut.stats))),
                            status["expected"],
                            status["session"] if status["session_valid"] else None,
                            bool(status["ended"]), list(run.gaps)))
            prev_valid, prev_taken = o_valid, o_valid and ready
            await ctx.tick()
            cycle += 1
        run.busy_cycles = last_take - (first_offer or 0) + 1

    sim.add_testbench(testbench)
    sim.run()
    return run


def check(steps, **kwargs) -> Run:
    """Run ``steps`` through gateware and model; compare messages, counters, status and gaps."""
    want_messages, want_snapshots = run_model(steps)
    run = simulate(steps, **kwargs)
    assert run.collector.idle(), "a message is left open"
    got = run.collector.messages
    for n, (g, w) in enumerate(zip(got, want_messages, strict=False)):
        assert g == w, f"message {n}: gateware {g}, model {w}"
    assert len(got) == len(want_messages)
    assert len(run.snapshots) == len(want_snapshots)
    for n, (g, w) in enumerate(zip(run.snapshots, want_snapshots, strict=True)):
        assert g.stats == w.stats, f"after checked packet {n}: counters differ"
        assert (g.expected, g.session, g.ended) == (w.expected, w.session, w.ended), \
            f"after checked packet {n}: status differs"
        assert g.gaps == w.gaps, f"after checked packet {n}: gaps differ"
    return run


def packet(seq: int, messages, *, lane: int = 2, count: int | None = None,
           session: bytes = SESSION, error: bool = False, check: bool = True) -> Packet:
    return Packet(encode_packet(session, seq, messages, count), lane, error, check)


def message(n: int, length: int) -> bytes:
    """A recognisable message: its number, then filler, ``length`` bytes in all."""
    return bytes([n & 0xFF]) + bytes((n * 7 + k) & 0xFF for k in range(1, length))


def counters(run: Run) -> dict[str, int]:
    return run.snapshots[-1].stats


# ------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("hinted", [False, True])
def test_every_start_lane_and_message_alignment(hinted):
    # Lengths 12..19 walk the block boundaries through every lane; packets of 1 to 5 messages.
    steps, seq = [], 1
    for lane in LANES:
        for n in range(1, 6):
            lengths = [MIN_MESSAGE_LENGTH + (lane + n + k) % BEAT_BYTES for k in range(n)]
            raw = encode_packet(SESSION, seq, [message(seq + k, length)
                                               for k, length in enumerate(lengths)])
            steps.append(Packet(raw, lane=lane, ragged=n % 2 == 0))
            seq += n
    run = check(steps, hinted=hinted)
    assert counters(run)["messages"] == seq - 1
    assert counters(run)["packets"] == len(steps)


def test_latency_is_one_cycle_and_input_never_stalls():
    rng = random.Random(SEED)
    packets = packetize(random_messages(rng, 120), session=SESSION, max_payload=200)
    steps = [Packet(p, lane=rng.choice(LANES), check=False) for p in packets]
    steps.append(packet(1 + 120, [message(0, 20)]))   # checked: settles and compares everything
    run = check(steps)
    assert run.latencies and set(run.latencies) == {1}
    assert run.stalls == 0
    # Back to back: one beat per cycle, header beats and packet boundaries included.
    assert run.busy_cycles == run.beats_in


@pytest.mark.parametrize("hinted", [False, True])
def test_heartbeats_and_end_of_session(hinted):
    steps = [
        packet(1, [message(1, 20)]),
        packet(2, [], count=HEARTBEAT_COUNT),            # in order: nothing happens
        packet(5, [], count=HEARTBEAT_COUNT, lane=6),    # 2..4 lost: gap, expected 5
        packet(3, [], count=HEARTBEAT_COUNT, lane=0),    # old heartbeat: ignored
        packet(5, [message(5, 30), message(6, 12)], lane=7),
        Packet(encode_packet(SESSION, 7, [], HEARTBEAT_COUNT) + b"xyz", lane=3),  # trailing
        packet(9, [], count=END_OF_SESSION_COUNT, lane=1),   # 7..8 lost, session ends
        packet(9, [message(9, 16)], lane=5),
    ]
    run = check(steps, hinted=hinted)
    assert run.snapshots[-1].ended
    assert run.gaps == [Gap(2, 3), Gap(7, 2)]


@pytest.mark.parametrize("hinted", [False, True])
def test_duplicates_and_partial_overlap(hinted):
    msgs = {n: message(n, 12 + n % 9) for n in range(1, 40)}
    steps = [
        packet(1, [msgs[n] for n in range(1, 6)]),
        packet(1, [msgs[n] for n in range(1, 6)], lane=6),     # whole duplicate
        packet(3, [msgs[n] for n in range(3, 9)], lane=0),     # 3..5 old, 6..8 new
        packet(8, [msgs[8]], lane=7),                          # duplicate single
        # A duplicate with broken framing counts only as a duplicate.
        Packet(encode_packet(SESSION, 2, [msgs[2]], 3)[:-5], lane=1),
        packet(9, [msgs[n] for n in range(9, 12)], lane=4),
        packet(5, [msgs[n] for n in range(5, 15)], lane=3),    # mostly old
        packet(15, [msgs[15]]),
    ]
    run = check(steps, hinted=hinted)
    c = counters(run)
    assert c["dup_packets"] == 3
    assert c["dup_messages"] == 3 + 7
    assert c["messages"] == 15


@pytest.mark.parametrize("hinted", [False, True])
def test_back_to_back_across_a_byte_boundary_of_expected(hinted):
    """The next packet's first block can be in its third beat, the first after expected is
    written: its duplicate test must see the new expected, here in the upper bytes (which move
    from 0x00FFFF.. to 0x010000..)."""
    steps = []
    for k, lane in enumerate((0, 1)):
        base = (k + 1 << 24) - 2
        steps += [packet(base, [message(n, 16) for n in range(4)], lane=5, check=False),
                  packet(base + 2, [message(n, 16) for n in range(2, 6)], lane=lane)]
    run = check(steps, hinted=hinted)
    c = counters(run)
    assert c["dup_messages"] == 2 * 2
    assert c["messages"] == 2 * 6


def test_gaps_and_their_stream():
    steps = [
        packet(1, [message(1, 14)]),
        packet(10, [message(10, 14), message(11, 40)], lane=5),   # gap 2..9
        packet(12, [message(12, 13)], lane=0),
        packet(100, [message(100, 20)], lane=6),                  # gap 13..99
        packet(2, [message(2, 14)]),                              # a late retransmission: old
        packet(1 << 40, [message(7, 20)], lane=1),                # a huge gap
    ]
    run = check(steps)
    assert run.gaps == [Gap(2, 8), Gap(13, 87), Gap(101, (1 << 40) - 101)]
    assert counters(run)["gap_messages"] == 8 + 87 + (1 << 40) - 101


def test_gap_fifo_overflow_is_counted():
    steps = [packet(1 + 3 * n, [message(n, 20)], lane=n % 8) for n in range(8)]
    want_messages, want = run_model(steps)
    run = simulate(steps, gap_ready=False, gap_fifo_depth=4)
    got = run.snapshots[-1]
    assert run.collector.messages == want_messages
    assert got.stats["gaps"] == want[-1].stats["gaps"] == 7
    assert got.stats["gap_overflow"] == 7 - 4
    assert {k: v for k, v in got.stats.items() if k != "gap_overflow"} == \
        {k: v for k, v in want[-1].stats.items() if k != "gap_overflow"}


def test_session_latch_and_mismatch():
    steps = [
        packet(1, [message(1, 20)], lane=4),
        packet(2, [message(2, 20)], session=OTHER_SESSION, lane=0),   # dropped
        packet(2, [message(2, 20)], lane=7),
        packet(3, [], count=HEARTBEAT_COUNT, session=OTHER_SESSION),
        packet(3, [message(3, 25)], lane=1),
    ]
    run = check(steps)
    assert counters(run)["session_mismatch"] == 2
    assert run.snapshots[-1].session == int.from_bytes(SESSION, "big")


def test_no_session_before_a_complete_header():
    """Headers cut short in their last bytes (the beat holding the header's end is there) latch
    no session, and the status shows none until a complete one does."""
    good = encode_packet(SESSION, 1, [message(1, 20)])
    steps = [Packet(good[:cut], lane=lane) for cut in (HEADER_LENGTH - 1, HEADER_LENGTH - 2)
             for lane in range(0, 8, 3)]
    run = check([*steps, Packet(good)])
    assert [snap.session for snap in run.snapshots[:-1]] == [None] * len(steps)
    assert run.snapshots[-1].session == int.from_bytes(SESSION, "big")


def test_short_headers_at_every_lane():
    # Each after a good packet (whose state must not leak into the short one), settled or not.
    steps = []
    for cut in range(1, HEADER_LENGTH):
        good = encode_packet(SESSION, cut, [message(cut, 20)])
        steps.append(Packet(good, lane=(cut + 5) % 8, check=cut % 2 == 0))
        steps.append(Packet(good[:cut], lane=cut % 8))
        steps.append(Packet(good[:cut], lane=(cut + 3) % 8, error=True))
    run = check(steps)
    assert counters(run)["short_header"] == HEADER_LENGTH - 1
    assert counters(run)["frame_error"] == HEADER_LENGTH - 1
    assert counters(run)["packets"] == counters(run)["messages"] == HEADER_LENGTH - 1


@pytest.mark.parametrize("bad_length", [0, 1, MIN_MESSAGE_LENGTH - 1])
def test_length_below_minimum_drops_the_rest(bad_length):
    steps, seq = [], 1
    for lane in LANES:
        raw = encode_packet(SESSION, seq, [message(seq, 17)], 3)
        raw += bad_length.to_bytes(LENGTH_PREFIX, "big") + bytes(bad_length)
        raw += encode_packet(SESSION, 0, [message(99, 20)])[HEADER_LENGTH:]
        steps.append(Packet(raw, lane=lane))
        steps.append(packet(seq + 1, [message(seq + 1, 12 + lane)], lane=7 - lane))
        seq += 2
    run = check(steps)
    assert counters(run)["length_short"] == len(LANES)
    assert counters(run)["messages"] == 2 * len(LANES)


def test_truncation_at_every_byte_with_and_without_error():
    # Three messages; the packet is cut after every byte, clean (the count is then too large or a
    # block runs past the end) and flagged as damaged; a good packet follows each.
    msgs = [message(1, 13), message(2, 12), message(3, 21)]
    full = encode_packet(SESSION, 1, msgs)
    steps, seq = [], 1
    for cut in range(HEADER_LENGTH, len(full) + 1):
        for error in (False, True):
            lane = (cut + error) % 8
            raw = encode_packet(SESSION, seq, msgs)[:cut]
            steps.append(Packet(raw, lane=lane, error=error))
            seq += 3
            steps.append(packet(seq, [message(seq, 14)], lane=(lane + 5) % 8))
            seq += 1
    run = check(steps)
    c = counters(run)
    assert c["count_short"] > 0 and c["length_past_end"] > 0 and c["frame_error"] > 0
    assert run.collector.abandoned > 0


def test_count_larger_than_blocks_and_trailing_bytes():
    steps = [
        packet(1, [message(1, 20), message(2, 12)], count=5, lane=0),    # count short
        packet(6, [message(6, 15)], lane=3),
        Packet(encode_packet(SESSION, 7, [message(7, 16), message(8, 12)], 1), lane=6),  # trails
        Packet(encode_packet(SESSION, 8, [message(8, 12)]) + b"\x00", lane=5),  # one byte more
        Packet(encode_packet(SESSION, 9, [message(9, 14)]) + b"\x00\x20", lane=2),
        packet(10, [message(10, 30)], lane=1),
    ]
    run = check(steps)
    c = counters(run)
    assert (c["count_short"], c["trailing_bytes"]) == (1, 3)


def test_trailing_bytes_of_every_size_and_lane():
    # The extra bytes start in the beat where the last block ends or in a later one.
    steps, seq = [], 1
    for lane in LANES:
        for extra in range(1, BEAT_BYTES + 2):
            raw = encode_packet(SESSION, seq, [message(seq, 12 + lane)]) + bytes(extra)
            steps.append(Packet(raw, lane=lane))
            steps.append(Packet(encode_packet(SESSION, seq + 1, [], HEARTBEAT_COUNT)
                                + bytes(extra), lane=lane, check=extra == 1))
            seq += 1
    steps.append(packet(seq, [message(seq, 20)]))
    run = check(steps)
    assert counters(run)["trailing_bytes"] == 2 * len(LANES) * (BEAT_BYTES + 1)


def test_packets_ending_at_or_just_after_the_header():
    # The packet's last beat is the header's own or the next one, so the duplicate decision
    # (taken a few cycles after the header) must still reach the counters.
    steps, seq = [], 1
    for lane in LANES:
        head = encode_packet(SESSION, seq, [], 3)
        for extra in (b"", b"\x00", b"\x00\x0c", b"\x00\x0c\x41", bytes(9)):
            steps.append(Packet(head + extra, lane=lane))                      # new: framing
            steps.append(Packet(encode_packet(SESSION, 1, [], 2) + extra, lane=lane))  # old
            steps.append(Packet(encode_packet(SESSION, seq - 1, [], 3) + extra, lane=lane))
        steps.append(packet(seq, [message(seq, 20)], lane=(lane + 3) % 8))
        seq += 1
    run = check(steps)
    c = counters(run)
    assert c["dup_packets"] > 0 and c["count_short"] > 0 and c["length_past_end"] > 0


def test_error_flag_on_a_complete_packet():
    steps = [
        packet(1, [message(1, 20), message(2, 40)], lane=2, error=True),
        packet(3, [message(3, 16)], lane=6, error=True),
        packet(4, [message(4, 16)], lane=0),
    ]
    run = check(steps)
    assert counters(run)["frame_error"] == 2


@pytest.mark.parametrize("hinted", [False, True])
def test_host_sets_expected(hinted):
    steps = [
        Jump(1000),
        packet(990, [message(n, 14) for n in range(990, 1005)], lane=3),   # 990..999 old
        packet(1005, [message(1005, 20)]),
        Jump(1003),
        packet(1003, [message(n, 12) for n in range(1003, 1007)], lane=1),  # again from 1003
        # Straight after a packet's last beat: the jump waits for that packet's own update.
        packet(1007, [message(n, 12) for n in range(1007, 1010)], lane=5, check=False),
        Jump(1008),
        packet(1008, [message(n, 13) for n in range(1008, 1011)], lane=0),
    ]
    run = check(steps, hinted=hinted)
    assert counters(run)["dup_messages"] == 10
    assert counters(run)["messages"] == 5 + 1 + 4 + 3 + 3


@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.0, 0.4),
                                                    (0.3, 0.4)])
def test_random_traffic_with_idle_and_backpressure(idle, backpressure):
    rng = random.Random(SEED + int(idle * 10) + int(backpressure * 100))
    msgs = random_messages(rng, 150)
    packets = packetize(msgs, session=SESSION, max_payload=rng.choice((120, 300)))
    steps, sent = [], []
    for raw in packets:
        lane = rng.choice(LANES)
        steps.append(Packet(raw, lane=lane, check=rng.random() < 0.2))
        sent.append(raw)
        if rng.random() < 0.15 and sent:     # a retransmission of something already seen
            steps.append(Packet(rng.choice(sent), lane=rng.choice(LANES)))
        if rng.random() < 0.05:
            steps.pop(-1)                     # lost: a gap
    steps.append(packet(len(msgs) + 1, [message(0, 33)]))
    check(steps, idle=idle, backpressure=backpressure, seed=rng.randrange(1 << 30))


def test_beat_helper_round_trip():
    for lane in LANES:
        for size in (1, 7, 8, 9, 30):
            payload = bytes(range(size))
            beats = payload_beats(payload, lane)
            got = b"".join(
                beat["data"].to_bytes(BEAT_BYTES, "little")[k:k + 1]
                for beat in beats for k in range(BEAT_BYTES) if beat["keep"] >> k & 1)
            assert got == payload
            assert beats[0]["first"] and beats[-1]["last"]
            assert beats[0]["keep"] & ((1 << lane) - 1) == 0


def test_wire_format_round_trip():
    raw = encode_packet(SESSION, 0x0102030405060708, [b"A" * 12, b"BC" * 10])
    assert raw[:HEADER_LENGTH] == SESSION + bytes.fromhex("0102030405060708") + b"\x00\x02"
    assert raw[HEADER_LENGTH:HEADER_LENGTH + LENGTH_PREFIX] == b"\x00\x0c"
    header = decode_header(raw)
    assert (header.session, header.seq, header.count) == (SESSION, 0x0102030405060708, 2)
    assert decode_header(encode_packet(SESSION, 5, [], HEARTBEAT_COUNT)).heartbeat
    assert decode_header(encode_packet(SESSION, 5, [], END_OF_SESSION_COUNT)).end_of_session
    with pytest.raises(ValueError, match="header"):
        decode_header(raw[:HEADER_LENGTH - 1])
    with pytest.raises(ValueError, match="session"):
        encode_packet(b"short", 1, [])


def test_packetize_fills_packets_in_order():
    rng = random.Random(SEED)
    msgs = random_messages(rng, 200, max_length=100)
    packets = packetize(msgs, session=SESSION, first_seq=7, max_payload=300)
    assert all(len(p) <= 300 for p in packets)
    model, seq = MoldRxModel(), 7
    model.set_expected(7)
    delivered = []
    for raw in packets:
        header = decode_header(raw)
        assert header.seq == seq
        seq += header.count
        delivered += model.push(raw)
    assert [m.data for m in delivered] == msgs
    assert [m.seq for m in delivered] == list(range(7, 207))
    # Full: the next message would not have fitted.
    for raw, following in itertools.pairwise(packets):
        first_next = following[HEADER_LENGTH:]
        assert len(raw) + LENGTH_PREFIX + int.from_bytes(first_next[:2], "big") > 300
    with pytest.raises(ValueError, match="does not fit"):
        packetize([bytes(300)], session=SESSION, max_payload=300)


@pytest.mark.parametrize("backpressure", [0.0, 0.4])
def test_hinted_back_to_back_with_duplicates_jumps_and_gaps(backpressure):
    # The lane tests made a cycle ahead: packets back to back, each one's first block a
    # duplicate or not depending on the packet just before, so a test made with a stale
    # ``expected`` would show; every lane; jumps; heartbeats; a gap.
    rng = random.Random(SEED + int(backpressure * 10))
    msgs = {n: message(n, rng.randrange(MIN_MESSAGE_LENGTH, 40)) for n in range(1, 400)}
    steps, seq = [], 1
    while seq < 360:
        n = rng.randrange(1, 5)
        steps.append(packet(seq, [msgs[k] for k in range(seq, seq + n)],
                            lane=rng.choice(LANES), check=False))
        back = rng.randrange(0, n + 2)   # a retransmission overlapping what was just sent
        if back:
            start = max(1, seq + n - back)
            steps.append(packet(start, [msgs[k] for k in range(start, start + back + 1)],
                                lane=rng.choice(LANES), check=False))
            seq = start + back + 1
        else:
            seq += n
        if rng.random() < 0.1:
            steps.append(packet(seq, [], count=HEARTBEAT_COUNT, lane=rng.choice(LANES),
                                check=False))
        if rng.random() < 0.05:
            seq += 2                     # lost: a gap
        if rng.random() < 0.05:
            steps.append(Jump(seq))
    steps.append(packet(seq, [msgs[seq]]))
    run = check(steps, backpressure=backpressure, seed=rng.randrange(1 << 30), hinted=True)
    c = counters(run)
    assert c["dup_messages"] > 50 and c["messages"] > 300
    if backpressure == 0.0:
        assert run.stalls == 0 and set(run.latencies) == {2}

