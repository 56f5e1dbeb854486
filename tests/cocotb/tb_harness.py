"""Self-test of the cocotb harness: beats through a FIFO under idle cycles and backpressure."""

import os
import random

import cocotb
from streams import StreamSink, StreamSource, TBBase

from hdl.arch.beat import Beat


class TB(TBBase):
    def __init__(self, dut):
        super().__init__(dut)
        self.source = StreamSource(self, "i", Beat)
        self.sink = StreamSink(self, "o", Beat)


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.4], backpressure=[0.0, 0.4])
async def fifo_passes_every_beat_in_order(dut, idle, backpressure):
    seed = int(os.environ.get("TB_SEED", "1"))
    tb = TB(dut)
    await tb.start()
    tb.source.set_idle(idle, seed)
    tb.sink.set_backpressure(backpressure, seed + 1)
    rng = random.Random(seed)
    beats = [{"data": rng.getrandbits(64), "keep": rng.getrandbits(8), "first": rng.getrandbits(1),
              "last": rng.getrandbits(1), "error": rng.getrandbits(1)} for _ in range(300)]
    for beat in beats:
        tb.source.send(beat)
    for expected in beats:
        assert await tb.sink.recv() == expected
    await tb.source.wait_idle()
    await tb.cycles(5)
    assert tb.sink.empty()
    if idle == 0.0 and backpressure == 0.0:
        # With neither, a buffered FIFO moves one beat per cycle.
        cycles = [cycle for cycle, _ in tb.sink.transfers]
        assert cycles[-1] - cycles[0] == len(beats) - 1
