"""cocotb testbench of the MoldUDP64 stage: every message, gap and counter scored against the model.

Random message mixes (random lengths from ``MIN_MESSAGE_LENGTH``, random bytes) are packetized,
then lost, retransmitted, reordered into duplicates and, in the ``faulty`` mix, damaged in every
way the stage counts. Each mix runs under idle cycles on the input and backpressure on the output.

Environment: ``TB_SEED`` (printed; rerun with it to reproduce a failure), ``TB_MESSAGES``
(messages per run).
"""

import os
import random

import cocotb
from streams import StreamSink, StreamSource, TBBase, unpack

from hdl.arch.beat import Beat
from hdl.feed.message_beat import MessageBeat
from hdl.feed.mold_rx import GapLayout, MoldRxStatusLayout
from hdl.stats import stats_layout
from sim.mold_rx import Gap, MoldRxStat
from sim.mold_rx import MoldRx as MoldRxModel
from sim.wire.itch import MIN_MESSAGE_LENGTH
from sim.wire.mold import (
    END_OF_SESSION_COUNT,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_PREFIX,
    encode_packet,
    packetize,
)
from tests.test_mold_rx import (
    OTHER_SESSION,
    SESSION,
    MessageCollector,
    Packet,
    payload_beats,
    random_messages,
)

LANES = 8


class TB(TBBase):
    def __init__(self, dut):
        super().__init__(dut)
        self.source = StreamSource(self, "i", Beat)
        self.sink = StreamSink(self, "o", MessageBeat)
        self.gaps = StreamSink(self, "o_gap", GapLayout)
        self.expected = StreamSource(self, "i_expected", 64)

    def stats(self) -> dict[str, int]:
        return unpack(stats_layout(MoldRxStat), int(self.dut.stats.value))


def seed() -> int:
    return int(os.environ.get("TB_SEED", "1"))


def damaged(rng: random.Random, raw: bytes) -> Packet:
    """``raw`` spoiled in one of the ways the stage must count and survive."""
    lane = rng.randrange(LANES)
    how = rng.choice(("cut", "cut_error", "error", "short_length", "trailing", "session",
                      "short_header", "count"))
    if how in ("cut", "cut_error"):
        return Packet(raw[:rng.randrange(1, len(raw))], lane, error=how == "cut_error")
    if how == "error":
        return Packet(raw, lane, error=True)
    if how == "short_length":
        # Overwrite one block's length (the first, as the others' offsets are unknown here).
        bad = rng.randrange(MIN_MESSAGE_LENGTH)
        at = HEADER_LENGTH
        return Packet(raw[:at] + bad.to_bytes(LENGTH_PREFIX, "big") + raw[at + LENGTH_PREFIX:],
                      lane)
    if how == "trailing":
        return Packet(raw + rng.randbytes(rng.randrange(1, 12)), lane)
    if how == "session":
        return Packet(OTHER_SESSION + raw[len(OTHER_SESSION):], lane)
    if how == "short_header":
        return Packet(raw[:rng.randrange(1, HEADER_LENGTH)], lane)
    count = int.from_bytes(raw[HEADER_LENGTH - 2:HEADER_LENGTH], "big")
    return Packet(raw[:HEADER_LENGTH - 2] + (count + rng.randrange(1, 4)).to_bytes(2, "big")
                  + raw[HEADER_LENGTH:], lane)


def traffic(rng: random.Random, mix: str, count: int) -> list[Packet]:
    """A feed of ``count`` messages with losses, duplicates, heartbeats and (``faulty``) damage."""
    messages = random_messages(rng, count)
    packets = packetize(messages, session=SESSION, max_payload=rng.choice((90, 150, 400, 1472)))
    steps: list[Packet] = []
    seq = 1
    for raw in packets:
        n = int.from_bytes(raw[HEADER_LENGTH - 2:HEADER_LENGTH], "big")
        if seq > 1 and rng.random() < 0.1:
            # A retransmission overlapping this packet: old messages, then some of these.
            back = rng.randrange(1, min(seq, 4))
            again = messages[seq - 1 - back:seq - 1 + rng.randrange(1, n + 1)]
            steps.append(Packet(encode_packet(SESSION, seq - back, again),
                                rng.randrange(LANES)))
        if mix == "faulty" and rng.random() < 0.3:
            steps.append(damaged(rng, raw))
        if rng.random() >= 0.06:                    # otherwise lost: a gap
            steps.append(Packet(raw, rng.randrange(LANES)))
        if steps and rng.random() < 0.12:           # a retransmission of something seen
            steps.append(Packet(rng.choice(steps).payload, rng.randrange(LANES)))
        seq += n
        if rng.random() < 0.08:
            steps.append(Packet(encode_packet(SESSION, seq, [], HEARTBEAT_COUNT),
                                rng.randrange(LANES)))
    steps.append(Packet(encode_packet(SESSION, seq, [], END_OF_SESSION_COUNT), 0))
    return steps


async def run(dut, steps: list[Packet], idle: float, backpressure: float, name: str):
    tb = TB(dut)
    await tb.start()
    tb.source.set_idle(idle, seed())
    tb.sink.set_backpressure(backpressure, seed() + 1)
    tb.gaps.set_backpressure(backpressure, seed() + 2)
    dut._log.info(f"{name}: TB_SEED={seed()} idle={idle} backpressure={backpressure}, "
                  f"{len(steps)} packets")

    model = MoldRxModel()
    want = []
    rng = random.Random(seed() + 3)
    beats = 0
    for step in steps:
        want += model.push(step.payload, step.error)
        for beat in payload_beats(step.payload, step.lane, step.error, rng):
            tb.source.send(beat)
            beats += 1

    await tb.source.wait_idle()
    await tb.cycles(20)
    collector = MessageCollector()
    while not tb.sink.empty():
        collector.push(await tb.sink.recv())
    gaps = []
    while not tb.gaps.empty():
        raw = await tb.gaps.recv()
        gaps.append(Gap(raw["first"], raw["count"]))

    assert collector.idle(), "a message is left open"
    for n, (got, exp) in enumerate(zip(collector.messages, want, strict=False)):
        assert got == exp, f"message {n}: gateware {got}, model {exp}"
    assert len(collector.messages) == len(want)
    assert gaps == model.gaps
    assert tb.stats() == {stat.name.lower(): value for stat, value in model.stats.items()}
    status = unpack(MoldRxStatusLayout, int(dut.status.value))
    assert status["expected"] == model.expected
    assert status["session"] == int.from_bytes(model.session, "big")
    assert status["ended"] == int(model.ended)
    if idle == 0.0 and backpressure == 0.0:
        # Nothing holds the input back: one beat per cycle, packet boundaries included.
        cycles = [cycle for cycle, _ in tb.source.transfers]
        assert cycles[-1] - cycles[0] == beats - 1
    assert tb.sink.empty() and tb.gaps.empty()
    dut._log.info(f"{name}: {len(want)} messages, {len(gaps)} gaps, {beats} beats; "
                  f"counters {tb.stats()}")


@cocotb.test()
@cocotb.parametrize(mix=["clean", "faulty"], idle=[0.0, 0.3], backpressure=[0.0, 0.4])
async def random_mix_test(dut, mix, idle, backpressure):
    count = int(os.environ.get("TB_MESSAGES", "300"))
    rng = random.Random(f"{seed()}-{mix}")
    await run(dut, traffic(rng, mix, count), idle, backpressure, f"{mix} mix")
