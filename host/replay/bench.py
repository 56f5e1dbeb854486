"""cocotb module run by ``tickgate replay``: feeds a capture to the gateware and records it.

``replay_capture`` runs the feed ingress (``hdl/feed/ingress.py``), ``replay_book`` the core with
the order book (``hdl/top.py``, ``--until book``).
"""

import json
import os
import time

import cocotb

from host.gatesim.ingress_tb import FeedInputTB, IngressTB
from host.gatesim.top_tb import FeedBookTB
from host.replay.job import ENV_JOB, BenchJob, read_frame_file


def _latencies(out_cycles: list[int], beat_cycles: list[int], beats: list[int]) -> list[int]:
    """Cycles from the beat ``beats[i]`` (an input beat index) to output ``i``; none when the
    outputs are not the ones expected (the comparison reports that)."""
    if len(beats) != len(out_cycles):
        return []
    return [out_cycles[i] - beat_cycles[beat] for i, beat in enumerate(beats)]


async def _feed(tb: FeedInputTB, job: BenchJob, output) -> float:
    """Send every frame of the job, paced as it says; returns the wall time to drain."""
    tb.source.set_idle(job.idle, job.seed)
    output.set_backpressure(job.backpressure, job.seed + 1)
    started = time.perf_counter()
    for frame, error in read_frame_file(job.frames):
        tb.source.send(frame, error)
    await tb.drain()
    return time.perf_counter() - started


def _common(tb: FeedInputTB, wall: float) -> dict:
    beat_cycles = [cycle for cycle, _ in tb.source.transfers]
    return {
        "gaps": [payload for _, payload in tb.gaps.transfers],
        "stats": tb.stats(),
        "mold_status": dict(tb.mold_status()),
        "input_beats": len(beat_cycles),
        "input_cycles": beat_cycles[-1] - beat_cycles[0] + 1 if beat_cycles else 0,
        "stall_cycles": tb.stall_cycles,
        "wall_seconds": wall,
    }


@cocotb.test()
async def replay_capture(dut):
    job = BenchJob.load(os.environ[ENV_JOB])
    tb = IngressTB(dut)
    tb.configure(job.mac, job.ip, job.port)
    await tb.start()
    wall = await _feed(tb, job, tb.events)
    beat_cycles = [cycle for cycle, _ in tb.source.transfers]
    result = {
        **_common(tb, wall),
        "events": [payload for _, payload in tb.events.transfers],
        "latencies": _latencies([cycle for cycle, _ in tb.events.transfers], beat_cycles,
                                job.event_beats),
    }
    with open(job.result, "w") as f:
        json.dump(result, f)


@cocotb.test()
async def replay_book(dut):
    job = BenchJob.load(os.environ[ENV_JOB])
    tb = FeedBookTB(dut)
    tb.configure(job.mac, job.ip, job.port)
    tb.track(job.slots)
    await tb.start()
    wall = await _feed(tb, job, tb.updates)
    beat_cycles = [cycle for cycle, _ in tb.source.transfers]
    tracked = sum(slot["enable"] for slot in job.slots)
    result = {
        **_common(tb, wall),
        # The events stay inside the core; the book's ``events`` counter stands for them.
        "events": [],
        "latencies": [],
        "updates": [payload for _, payload in tb.updates.transfers],
        "update_latencies": _latencies([cycle for cycle, _ in tb.updates.transfers],
                                       beat_cycles, job.update_beats),
        "books": await tb.final_books(tracked),
        "hazard": tb.hazard(),
    }
    with open(job.result, "w") as f:
        json.dump(result, f)
