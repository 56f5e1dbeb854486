"""cocotb module run by ``tickgate replay``: feeds a capture to the feed ingress and records it."""

import json
import os
import time

import cocotb

from host.gatesim.ingress_tb import IngressTB
from host.replay.job import ENV_JOB, BenchJob, read_frame_file


@cocotb.test()
async def replay_capture(dut):
    job = BenchJob.load(os.environ[ENV_JOB])
    tb = IngressTB(dut)
    tb.configure(job.mac, job.ip, job.port)
    await tb.start()
    tb.source.set_idle(job.idle, job.seed)
    tb.events.set_backpressure(job.backpressure, job.seed + 1)
    started = time.perf_counter()
    for frame, error in read_frame_file(job.frames):
        tb.source.send(frame, error)
    await tb.drain()
    wall = time.perf_counter() - started

    beat_cycles = [cycle for cycle, _ in tb.source.transfers]
    event_cycles = [cycle for cycle, _ in tb.events.transfers]
    latencies = []
    if len(job.event_beats) == len(event_cycles):
        latencies = [event_cycles[i] - beat_cycles[beat] for i, beat in enumerate(job.event_beats)]
    result = {
        "events": [payload for _, payload in tb.events.transfers],
        "gaps": [payload for _, payload in tb.gaps.transfers],
        "stats": tb.stats(),
        "mold_status": {k: v for k, v in tb.mold_status().items()},
        "latencies": latencies,
        "input_beats": len(beat_cycles),
        "input_cycles": beat_cycles[-1] - beat_cycles[0] + 1 if beat_cycles else 0,
        "stall_cycles": tb.stall_cycles,
        "wall_seconds": wall,
    }
    with open(job.result, "w") as f:
        json.dump(result, f)
