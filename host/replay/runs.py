"""One replay run on either side: the reference model in-process, or the gateware under cocotb."""

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from host.replay.inputs import ReplayInput
from host.replay.job import ENV_JOB, BenchJob, write_frame_file
from sim.ingress import Ingress
from sim.udp_rx import UdpRxConfig

__all__ = ["FeedRun", "run_gateware", "run_model"]

BEAT_BYTES = 8


@dataclass
class FeedRun:
    """What one side produced from a capture.

    ``events`` and ``gaps`` are lists of plain dicts (field name -> int) so both sides compare
    directly; ``stats`` is ``{stage: {counter: value}}``.
    """

    side: str
    events: list[dict] = field(default_factory=list)
    gaps: list[dict] = field(default_factory=list)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    latencies: list[int] = field(default_factory=list)
    input_beats: int = 0
    input_cycles: int = 0
    stall_cycles: int = 0
    wall_seconds: float = 0.0
    build_seconds: float = 0.0
    # Model only: global input beat index holding the last byte of each event's message.
    event_beats: list[int] = field(default_factory=list)

    def as_json(self) -> dict:
        out = {"events": len(self.events), "gaps": self.gaps, "stats": self.stats,
               "wall_seconds": round(self.wall_seconds, 3)}
        if self.side == "gateware":
            out.update(input_beats=self.input_beats, input_cycles=self.input_cycles,
                       stall_cycles=self.stall_cycles)
        return out


def _config(inp: ReplayInput) -> UdpRxConfig:
    return UdpRxConfig(inp.endpoint.mac, inp.endpoint.ip, inp.endpoint.port)


def run_model(inp: ReplayInput) -> FeedRun:
    """Replay through ``sim.ingress.Ingress``."""
    model = Ingress(_config(inp))
    run = FeedRun("model")
    started = time.perf_counter()
    beat_base = 0
    for frame in inp.frames:
        out = model.push(frame)
        for event, end in zip(out.events, out.event_ends, strict=True):
            run.events.append(event.as_dict())
            run.event_beats.append(beat_base + end // BEAT_BYTES)
        beat_base += -(-len(frame) // BEAT_BYTES)
    run.wall_seconds = time.perf_counter() - started
    run.gaps = [{"first": gap.first, "count": gap.count} for gap in model.gaps]
    run.stats = model.stats
    run.input_beats = beat_base
    return run


def run_gateware(inp: ReplayInput, *, simulator: str | None = None, expected: FeedRun | None = None,
                 idle: float = 0.0, backpressure: float = 0.0, seed: int = 1) -> FeedRun:
    """Replay through ``hdl.feed.ingress.FeedIngress`` in a Verilog simulator under cocotb.

    ``expected`` (the model's run) provides the message positions for the latency figures.
    """
    from hdl.feed.ingress import FeedIngress
    from host.gatesim.runner import run_cocotb

    if simulator is not None:
        os.environ["TICKGATE_SIM"] = simulator
    with tempfile.TemporaryDirectory(prefix="tickgate-replay-") as tmp:
        tmp = Path(tmp)
        job = BenchJob(frames=str(tmp / "frames.bin"), result=str(tmp / "result.json"),
                       mac=inp.endpoint.mac, ip=inp.endpoint.ip, port=inp.endpoint.port,
                       idle=idle, backpressure=backpressure, seed=seed,
                       event_beats=expected.event_beats if expected else [])
        write_frame_file(Path(job.frames), inp.frames)
        job.save(tmp / "job.json")
        started = time.perf_counter()
        run_cocotb(FeedIngress(), "host.replay.bench", build_name="replay-ingress",
                   env={ENV_JOB: str(tmp / "job.json")})
        total = time.perf_counter() - started
        result = json.loads(Path(job.result).read_text())
    run = FeedRun("gateware", events=result["events"], gaps=result["gaps"],
                  stats=result["stats"], latencies=result["latencies"],
                  input_beats=result["input_beats"], input_cycles=result["input_cycles"],
                  stall_cycles=result["stall_cycles"], wall_seconds=result["wall_seconds"])
    run.build_seconds = total - run.wall_seconds
    return run
