"""cocotb testbench of the ITCH decode stage: every event and counter scored against the model.

Environment: ``TB_SEED`` (printed; rerun with it to reproduce a failure), ``ITCH_FILE`` (a
BinaryFILE of real messages, for ``real_capture``), ``TB_MESSAGES`` (messages per random mix).
"""

import os
import random

import cocotb
from streams import StreamSink, StreamSource, TBBase, unpack

from hdl.feed.itch_event import ItchEventLayout
from hdl.feed.message_beat import MessageBeat
from hdl.stats import stats_layout
from sim.itch_decode import EVENT_SOURCES, ItchDecodeStat
from sim.wire.itch import MESSAGE_SPECS
from tests.test_itch_decode import Item, bad_messages, expected, message_beats, random_message

LANES = 8


class TB(TBBase):
    def __init__(self, dut):
        super().__init__(dut)
        self.source = StreamSource(self, "i", MessageBeat)
        self.sink = StreamSink(self, "o", ItchEventLayout)

    def stats(self) -> dict[str, int]:
        return unpack(stats_layout(ItchDecodeStat), int(self.dut.stats.value))


def seed() -> int:
    return int(os.environ.get("TB_SEED", "1"))


def random_mix(rng: random.Random, mix: str, count: int) -> list[Item]:
    """``count`` messages: only event types ("events"), every type plus bad ones ("all")."""
    types = list(EVENT_SOURCES) if mix == "events" else list(MESSAGE_SPECS)
    raws = [random_message(rng, rng.choice(types)) for _ in range(count)]
    if mix == "all":
        bad = bad_messages(rng)
        raws += rng.sample(bad, min(len(bad), count // 8))
        rng.shuffle(raws)
    items = []
    for n, raw in enumerate(raws):
        # Gaps as the Mold stage makes them: a length prefix, a packet header between packets,
        # nothing at all (messages back to back), a skipped duplicate.
        gap = rng.choice((2, 2, 2, 0, 22, 1, 7, 40))
        abandon = mix == "all" and rng.random() < 0.03
        if abandon:
            items.append(Item(raw[:rng.randrange(LANES + 1, len(raw))], n, gap=gap,
                              abandon=True, length=len(raw)))
        else:
            items.append(Item(raw, n, gap=gap))
    return items


async def run(dut, items: list[Item], idle: float, backpressure: float, name: str):
    tb = TB(dut)
    await tb.start()
    run_seed = seed()
    dut._log.info("%s: %d messages, idle %.2f, backpressure %.2f, TB_SEED=%d",
                  name, len(items), idle, backpressure, run_seed)
    tb.source.set_idle(idle, run_seed + 1)
    tb.sink.set_backpressure(backpressure, run_seed + 2)
    rng = random.Random(run_seed + 3)
    beats, end_beat = message_beats(items, rng, first=rng.randrange(LANES))
    want_events, want_stats = expected(items)
    for beat in beats:
        tb.source.send(beat)

    for index, event in want_events:
        got = await tb.sink.recv()
        assert got == event.as_dict(), f"message {index}: got {got}, expected {event}"
    await tb.source.wait_idle()
    await tb.cycles(8)
    assert tb.stats() == want_stats
    assert tb.sink.empty()

    if idle == 0.0 and backpressure == 0.0:
        accepted = [cycle for cycle, _ in tb.source.transfers]
        assert accepted[-1] - accepted[0] == len(beats) - 1, "input was held with o ready"
        latencies = {cycle - accepted[end_beat[index]]
                     for (index, _), (cycle, _) in zip(want_events, tb.sink.transfers,
                                                       strict=True)}
        assert latencies == {1}, f"latency {latencies}"
        dut._log.info("%s: %d beats in %d cycles, %d events, latency %s cycle(s)", name,
                      len(beats), accepted[-1] - accepted[0] + 1, len(want_events),
                      sorted(latencies))


@cocotb.test()
@cocotb.parametrize(mix=["events", "all"], idle=[0.0, 0.3], backpressure=[0.0, 0.5])
async def random_mix_test(dut, mix, idle, backpressure):
    count = int(os.environ.get("TB_MESSAGES", "400"))
    rng = random.Random(seed() * 7919 + (mix == "all"))
    await run(dut, random_mix(rng, mix, count), idle, backpressure, f"random {mix}")


PACED_MESSAGES = 2_000


@cocotb.test()
@cocotb.parametrize(pacing=[(0.0, 0.0), (0.2, 0.3)])
async def real_capture_test(dut, pacing):
    from sim.capture import read_binaryfile

    path = os.environ["ITCH_FILE"]
    messages = list(read_binaryfile(path))
    if pacing != (0.0, 0.0):
        # The whole file runs back to back here and through the whole ingress in
        # tests/test_ingress_cocotb.py; idle and backpressure get a prefix, which keeps the
        # suite short and still mixes every message type of the file.
        messages = messages[:PACED_MESSAGES]
    # As in a MoldUDP64 packet: each message behind its 2-byte length prefix.
    items = [Item(raw, 1 + n, gap=2) for n, raw in enumerate(messages)]
    await run(dut, items, *pacing, name=os.path.basename(path))
