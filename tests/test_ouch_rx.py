"""OUCH decoder on the Amaranth simulator, compared field for field with ``sim/ouch_rx.py``.

Random answers of every type (random fields, none to several TagValue elements, Canceled and
Rejected with and without their optional appendage), System Events, and frames damaged in
every way the receiver counts, under idle cycles on the input and backpressure on the output.
Every answer must equal the model's, every counter too. The stimulus helpers are shared with
``tests/cocotb/tb_ouch.py``.
"""

import os
import random
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.quote.ouch_rx import AnswerLayout, OuchRx
from host.gatesim.streams import unpack
from sim.ouch_rx import ANSWER_MESSAGES, DEFAULT_MAX_PACKET, OuchRxStat, answer_values
from sim.ouch_rx import OuchRx as OuchRxModel
from sim.wire.ouch import (
    MAX_LIMIT_PRICE,
    OUTBOUND_SPECS,
    Accepted,
    Appendage,
    Canceled,
    CancelReason,
    Executed,
    LiquidityFlag,
    Option,
    OptionTag,
    OrderState,
    Rejected,
    RejectReason,
    Replaced,
    SystemEvent,
    frame,
)
from sim.wire.soupbin import LENGTH_BYTES, encode_packet
from tests.test_mold_rx import payload_beats

SEED = int(os.environ.get("TB_SEED", "1"))
SETTLE_CYCLES = 6


@dataclass(frozen=True)
class Frame:
    raw: bytes
    error: bool = False


# ------------------------------------------------------------------------------------------------
# Stimulus (shared with the cocotb testbench)


def random_options(rng: random.Random, most: int = 3) -> tuple[Option, ...]:
    return tuple(Option(rng.choice(list(OptionTag)), rng.randbytes(rng.randrange(0, 9)))
                 for _ in range(rng.randrange(most + 1)))


def random_message(rng: random.Random):
    """An outbound message of any type, fields over their whole range and their edges."""
    ts = rng.choice((rng.randrange(1 << 64), 0, (1 << 64) - 1, rng.randrange(86_400 * 10**9)))
    ref = rng.choice((rng.randrange(1, 1 << 32), (1 << 32) - 1, 1))
    qty = rng.choice((rng.randrange(1, 1_000_000), (1 << 32) - 1, 0))
    price = rng.choice((rng.randrange(1, MAX_LIMIT_PRICE + 1), (1 << 64) - 1, 0))
    state = rng.choice(list(OrderState))
    cl = f"TKG{ref:08X}"
    kind = rng.choice(("A", "U", "C", "E", "J", "S"))
    if kind == "A":
        return Accepted(ts, ref, "B", qty, "AAPL", price, "0", "Y", rng.randrange(1 << 64), "P",
                        "N", "N", state, cl, random_options(rng))
    if kind == "U":
        return Replaced(ts, rng.randrange(1, 1 << 32), ref, "S", qty, "MSFT", price, "3", "Y",
                        rng.randrange(1 << 64), "P", "N", "N", state, cl, random_options(rng))
    if kind == "C":
        return Canceled(ts, ref, qty, rng.choice(list(CancelReason)),
                        rng.choice((None, random_options(rng))))
    if kind == "E":
        return Executed(ts, ref, qty, price, rng.choice(list(LiquidityFlag)),
                        rng.randrange(1 << 64), random_options(rng))
    if kind == "J":
        return Rejected(ts, ref, rng.choice((*RejectReason, 0xFFFF)), cl,
                        rng.choice((None, random_options(rng))))
    return SystemEvent(ts, rng.choice("SE"))


def damaged(rng: random.Random, raw: bytes) -> Frame:
    """``raw`` (a framed message) spoiled in one of the ways the receiver counts."""
    how = rng.choice(("error", "cut", "trailing", "other", "oversized", "type", "app_len",
                      "tlv", "empty", "zero_length", "short"))
    body = raw[LENGTH_BYTES + 1:]
    if how == "error":
        return Frame(raw, error=True)
    if how == "cut":
        return Frame(raw[:rng.randrange(1, len(raw))])
    if how == "trailing":
        return Frame(raw + rng.randbytes(rng.randrange(1, 10)))
    if how == "other":
        return Frame(encode_packet(ord(rng.choice("HALZ+")), rng.randbytes(rng.randrange(12))))
    if how == "oversized":
        big = (Option(OptionTag.FIRM, rng.randbytes(60)), Option(OptionTag.ROUTE, b"X" * 40))
        return Frame(frame(Executed(1, 2, 3, 4, "A", 5, big)))
    if how == "type":
        bad = rng.choice([c for c in range(256) if chr(c) not in OUTBOUND_SPECS])
        return Frame(encode_packet(ord("S"), bytes((bad,)) + body[1:]))
    if how == "app_len":
        cls = rng.choice(ANSWER_MESSAGES)
        fixed = cls.SPEC.fixed_length
        extra = rng.choice((b"\x00", b"\x00\x05\x01", b"\x00\x01", b"\x00\x00\x07"))
        return Frame(encode_packet(ord("S"), body[:1] + rng.randbytes(fixed - 1) + extra))
    if how == "tlv":
        # A valid Appendage Length over elements that run past it, or of length 0.
        elements = rng.choice((b"\x03\x0cP", b"\x02\x0cP\x00", b"\x01\x0c\x05", b"\x00\x00"))
        fixed = OUTBOUND_SPECS["E"].fixed_length
        body = b"E" + rng.randbytes(fixed - 1)
        return Frame(encode_packet(ord("S"), body + len(elements).to_bytes(2, "big") + elements))
    if how == "empty":
        return Frame(encode_packet(ord("S"), b""))
    if how == "zero_length":
        return Frame(b"\x00\x00" + raw[LENGTH_BYTES:])
    spec = rng.choice(list(OUTBOUND_SPECS.values()))
    short = bytes((spec.code,)) + rng.randbytes(rng.randrange(spec.fixed_length - 1))
    if spec.appendage is Appendage.NONE:
        short = bytes((spec.code,)) + rng.randbytes(spec.fixed_length)   # one byte too many
    return Frame(encode_packet(ord("S"), short))


def random_frames(rng: random.Random, count: int, faulty: float) -> list[Frame]:
    frames = []
    for _ in range(count):
        raw = frame(random_message(rng))
        frames.append(damaged(rng, raw) if rng.random() < faulty else Frame(raw))
    return frames


def model_run(frames: list[Frame]) -> tuple[list[dict], dict[str, int], list[int]]:
    """The answers (as gateware fields), the counters and each answer's TagValue count."""
    model = OuchRxModel(DEFAULT_MAX_PACKET)
    answers, elements = [], []
    for f in frames:
        message = model.push(f.raw, f.error)
        if message is not None:
            answers.append({"type": ord(message.SPEC.type), **answer_values(message)})
            elements.append(len(message.options or ()))
    return answers, {s.name.lower(): v for s, v in model.stats.items()}, elements


# ------------------------------------------------------------------------------------------------
# Amaranth simulation


@dataclass
class Run:
    answers: list[dict] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    ends: list[int] = field(default_factory=list)     # cycle of each frame's last beat taken
    offers: list[int] = field(default_factory=list)   # cycle each answer is first offered
    first_take: int | None = None


def simulate(frames: list[Frame], *, idle=0.0, backpressure=0.0, seed=0) -> Run:
    dut = OuchRx()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    rng = random.Random(seed)
    beats = [b for f in frames for b in payload_beats(f.raw, 0, f.error, rng)]

    async def testbench(ctx):
        index, cycle, quiet, presenting, offered = 0, 0, 0, False, False
        while index < len(beats) or quiet < SETTLE_CYCLES:
            offer = index < len(beats) and (presenting or rng.random() >= idle)
            if offer:
                presenting = True
                ctx.set(Value.cast(dut.i.payload), _pack_beat(beats[index]))
            ctx.set(dut.i.valid, offer)
            ready = rng.random() >= backpressure
            ctx.set(dut.o.ready, ready)
            o_valid = ctx.get(dut.o.valid)
            if o_valid and not offered:
                run.offers.append(cycle)
            offered = o_valid and not ready
            if o_valid and ready:
                run.answers.append(unpack(AnswerLayout, ctx.get(Value.cast(dut.o.payload))))
            if offer and ctx.get(dut.i.ready):
                run.first_take = cycle if run.first_take is None else run.first_take
                if beats[index]["last"]:
                    run.ends.append(cycle)
                presenting = False
                index += 1
            quiet = 0 if (o_valid or index < len(beats)) else quiet + 1
            await ctx.tick()
            cycle += 1
        run.stats = unpack(dut.stats.shape(), ctx.get(Value.cast(dut.stats)))

    sim.add_testbench(testbench)
    sim.run()
    return run


def _pack_beat(beat: dict) -> int:
    return (beat["data"] | beat["keep"] << 64 | beat["first"] << 72 | beat["last"] << 73
            | beat["error"] << 74)


def check(frames: list[Frame], **kwargs) -> Run:
    want, want_stats, _ = model_run(frames)
    run = simulate(frames, **kwargs)
    for n, (g, w) in enumerate(zip(run.answers, want, strict=False)):
        assert g == w, f"answer {n}: gateware {g}, model {w}"
    assert len(run.answers) == len(want)
    assert run.stats == want_stats
    assert sum(want_stats.values()) == len(frames), "a frame was not counted exactly once"
    return run


# ------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize(("idle", "backpressure", "faulty"),
                         [(0.0, 0.0, 0.0), (0.3, 0.0, 0.3), (0.0, 0.5, 0.3), (0.3, 0.5, 0.5)])
def test_random_answers_match_the_model(idle, backpressure, faulty):
    rng = random.Random(f"{SEED}-{idle}-{backpressure}-{faulty}")
    run = check(random_frames(rng, 80, faulty), idle=idle, backpressure=backpressure, seed=SEED)
    assert run.stats["answers"] > 20


def test_every_bad_frame_is_counted():
    rng = random.Random(SEED + 7)
    frames = [damaged(rng, frame(random_message(rng))) for _ in range(150)]
    run = check(frames, idle=0.2, backpressure=0.2, seed=SEED)
    for stat in OuchRxStat:
        if stat not in (OuchRxStat.ANSWERS, OuchRxStat.SKIPPED):
            assert run.stats[stat.name.lower()] > 0, f"no frame counted as {stat.name}"


def test_latency_and_throughput():
    """2 cycles from a frame's last beat to its answer, plus one per TagValue element; a frame
    of n beats every n + 2 cycles (n + 1 for a skipped message) with no idle or backpressure."""
    rng = random.Random(SEED + 3)
    frames = [Frame(frame(random_message(rng))) for _ in range(60)]
    want, stats, elements = model_run(frames)
    run = check(frames)
    answer_ends = []
    for f, end in zip(frames, run.ends, strict=True):
        if OuchRxModel().classify(f.raw)[0] is OuchRxStat.ANSWERS:
            answer_ends.append(end)
    assert [offer - end for offer, end in zip(run.offers, answer_ends, strict=True)] == \
        [2 + n for n in elements]
    beats = sum(-(-len(f.raw) // 8) for f in frames)
    busy = beats + len(frames) + stats["answers"] + sum(elements)
    # The last frame's check, walk and hand-over come after its last beat.
    tail = 1 + 1 + elements[-1] if want and run.ends[-1] == answer_ends[-1] else 1
    assert run.ends[-1] - run.first_take + 1 == busy - tail


def test_model_verdicts_on_hand_made_frames():
    """The receiver model's order of reasons, on one frame of each kind."""
    accepted = frame(Accepted(1, 2, "B", 3, "AAPL", 4, "0", "Y", 5, "P", "N", "N", "L",
                              "TKG00000002", (Option.post_only(),)))
    big = frame(Executed(1, 2, 3, 4, "A", 5, (Option(OptionTag.FIRM, bytes(100)),)))
    cases = [
        (accepted, False, OuchRxStat.ANSWERS),
        (accepted, True, OuchRxStat.FRAME_ERROR),
        (accepted[:-1], False, OuchRxStat.TRUNCATED),
        (b"\x00\x00S", False, OuchRxStat.TRUNCATED),
        (b"\x00", False, OuchRxStat.TRUNCATED),
        (accepted + b"\x00", False, OuchRxStat.TRAILING_BYTES),
        (encode_packet(ord("H"), b""), False, OuchRxStat.OTHER_PACKETS),
        (big, False, OuchRxStat.OVERSIZED),
        (encode_packet(ord("S"), b"Q" + bytes(20)), False, OuchRxStat.UNKNOWN_TYPE),
        (encode_packet(ord("S"), b""), False, OuchRxStat.BAD_MESSAGE),
        (accepted[:-4] + b"\x00\x02\x00\x00", False, OuchRxStat.BAD_MESSAGE),
        (frame(SystemEvent(1, "S")), False, OuchRxStat.SKIPPED),
    ]
    model = OuchRxModel()
    for raw, error, stat in cases:
        assert model.classify(raw, error)[0] is stat, (raw.hex(" "), stat)
    assert len(big) > DEFAULT_MAX_PACKET
    check([Frame(raw, error) for raw, error, _ in cases], idle=0.2, backpressure=0.3, seed=SEED)
