"""cocotb testbench of the OUCH encoder and decoder, each scored against its model.

``tx_*`` tests drive ``OuchTx`` (random approved and bad actions in, every packet compared byte for
byte with ``sim/order_entry.py``, every UserRefNum report and counter too); ``rx_*`` tests drive
``OuchRx`` (random answers and damaged frames in, every answer and counter compared with
``sim/ouch_rx.py``). Each runs under idle cycles on the inputs and backpressure on the outputs;
without them the measured latency and throughput must be the docstrings'.

Environment: ``TB_SEED`` (printed; rerun with it to reproduce a failure), ``TB_MESSAGES``.
"""

import os
import random

import cocotb
from streams import StreamSink, StreamSource, TBBase, pack, unpack

from hdl.arch.beat import BEAT_BYTES, Beat
from hdl.quote.order_action import OrderActionLayout
from hdl.quote.ouch_rx import AnswerLayout
from hdl.quote.ouch_tx import SentLayout
from hdl.stats import stats_layout
from sim.order_entry import OuchTxStat
from sim.ouch_rx import OuchRxStat
from tests.test_mold_rx import payload_beats
from tests.test_ouch_rx import model_run, random_frames
from tests.test_ouch_tx import (
    SYMBOLS,
    PacketCollector,
    expected,
    prefix_chars,
    random_steps,
    symbol_word,
)

PREFIX = "TKG"


def seed() -> int:
    return int(os.environ.get("TB_SEED", "1"))


def messages() -> int:
    return int(os.environ.get("TB_MESSAGES", "150"))


class TxTB(TBBase):
    def __init__(self, dut):
        super().__init__(dut)
        self.source = StreamSource(self, "i", OrderActionLayout)
        self.sink = StreamSink(self, "o", Beat)
        self.sent = StreamSink(self, "o_sent", SentLayout)
        dut.i_next_ref__valid.value = 0
        dut.symbols.value = sum(symbol_word(s) << (64 * k) for k, s in enumerate(SYMBOLS))
        dut.clordid_prefix.value = sum(c << (8 * k) for k, c in enumerate(prefix_chars(PREFIX)))


class RxTB(TBBase):
    def __init__(self, dut):
        super().__init__(dut)
        self.source = StreamSource(self, "i", Beat)
        self.sink = StreamSink(self, "o", AnswerLayout)


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.4])
async def tx_random_test(dut, idle, backpressure):
    tb = TxTB(dut)
    await tb.start()
    tb.source.set_idle(idle, seed())
    tb.sink.set_backpressure(backpressure, seed() + 1)
    tb.sent.set_backpressure(backpressure, seed() + 2)
    dut._log.info(f"OuchTx: TB_SEED={seed()} idle={idle} backpressure={backpressure}")

    clean = idle == 0.0 and backpressure == 0.0
    # A refused action takes an input cycle and gives no packet: the throughput run has none.
    steps = random_steps(random.Random(f"{seed()}-tx-{idle}-{backpressure}"), messages(),
                         bad=0.0 if clean else 0.1)
    want_packets, want_reports, want_stats, want_next, _ = expected(steps, 1, PREFIX)
    for step in steps:
        tb.source.send(pack(OrderActionLayout, step.fields))
    await tb.source.wait_idle()
    await tb.cycles(20)

    collector = PacketCollector()
    beat_cycles = [cycle for cycle, _ in tb.sink.transfers]
    while not tb.sink.empty():
        collector.push(await tb.sink.recv())
    reports = []
    while not tb.sent.empty():
        report = await tb.sent.recv()
        reports.append((report["user_ref"], report["action"]))
    assert collector.idle(), "a packet is left open"
    for n, (got, want) in enumerate(zip(collector.packets, want_packets, strict=False)):
        assert got == want, f"packet {n}: gateware {got.hex(' ')}, model {want.hex(' ')}"
    assert len(collector.packets) == len(want_packets)
    assert reports == [(ref, {k: int(v) for k, v in f.items()}) for ref, f in want_reports]
    assert unpack(stats_layout(OuchTxStat), int(dut.stats.value)) == want_stats
    assert int(dut.next_ref.value) == want_next
    if clean:
        # Actions keep coming: every packet follows the previous one with no gap.
        assert beat_cycles[-1] - beat_cycles[0] + 1 == len(beat_cycles)
        # The first action met an idle output: 2 cycles to its first beat.
        assert beat_cycles[0] - tb.source.transfers[0][0] == 2
    assert tb.sink.empty() and tb.sent.empty()
    dut._log.info(f"OuchTx: {len(want_packets)} packets, {len(beat_cycles)} beats, "
                  f"counters {want_stats}")


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.4])
async def rx_random_test(dut, idle, backpressure):
    tb = RxTB(dut)
    await tb.start()
    tb.source.set_idle(idle, seed())
    tb.sink.set_backpressure(backpressure, seed() + 1)
    dut._log.info(f"OuchRx: TB_SEED={seed()} idle={idle} backpressure={backpressure}")

    rng = random.Random(f"{seed()}-rx-{idle}-{backpressure}")
    faulty = 0.0 if idle == 0.0 and backpressure == 0.0 else 0.3
    frames = random_frames(rng, messages(), faulty)
    want, want_stats, elements = model_run(frames)
    for f in frames:
        for beat in payload_beats(f.raw, 0, f.error, rng):
            tb.source.send(beat)
    await tb.source.wait_idle()
    await tb.cycles(20)

    got = []
    while not tb.sink.empty():
        got.append(await tb.sink.recv())
    for n, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"answer {n}: gateware {g}, model {w}"
    assert len(got) == len(want)
    assert unpack(stats_layout(OuchRxStat), int(dut.stats.value)) == want_stats
    if idle == 0.0 and backpressure == 0.0:
        # Every frame here is an answer or a System Event: n beats, then 1 cycle of checks, 1 per
        # TagValue element and 1 of hand-over for an answer.
        taken = [cycle for cycle, _ in tb.source.transfers]
        beats = sum(-(-len(f.raw) // BEAT_BYTES) for f in frames)
        gaps = len(frames) + want_stats["answers"] + sum(elements)
        last = frames[-1].raw
        tail = 1 + (1 + elements[-1] if model_run(frames[-1:])[0] else 0)
        assert taken[-1] - taken[0] + 1 == beats + gaps - tail, f"{len(last)}-byte last frame"
        answer_cycles = [cycle for cycle, _ in tb.sink.transfers]
        last_beats = [cycle for cycle, beat in tb.source.transfers if beat["last"]]
        answer_ends = [end for end, f in zip(last_beats, frames, strict=True)
                       if model_run([f])[0]]
        assert [a - e for a, e in zip(answer_cycles, answer_ends, strict=True)] == \
            [2 + n for n in elements]
    assert tb.sink.empty()
    dut._log.info(f"OuchRx: {len(frames)} frames, {len(got)} answers, counters {want_stats}")
