"""One replay run on either side: the reference model in-process, or the gateware under cocotb."""

import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from host.replay.book import BookRun, TrackedSlot, model_books, slot_configs
from host.replay.inputs import ReplayInput
from host.replay.job import ENV_JOB, BenchJob, write_frame_file
from sim.book_mirror import BookGeometry
from sim.ingress import Ingress
from sim.top import FeedBook
from sim.udp_rx import UdpRxConfig

__all__ = ["FeedRun", "decoded_events", "run_gateware", "run_model"]

BEAT_BYTES = 8


@dataclass
class FeedRun:
    """What one side produced from a capture.

    ``events`` and ``gaps`` are lists of plain dicts (field name -> int) so both sides compare
    directly; ``stats`` is ``{stage: {counter: value}}``. A run through the book (``book`` set)
    has the book's counters in ``stats["book"]``; its gateware side sees the events only inside
    the core, so it has no ``events`` (the book's ``events`` counter stands for them).
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
    book: BookRun | None = None

    def as_json(self) -> dict:
        out = {"events": len(self.events), "gaps": self.gaps, "stats": self.stats,
               "wall_seconds": round(self.wall_seconds, 3)}
        if self.side == "gateware":
            out.update(input_beats=self.input_beats, input_cycles=self.input_cycles,
                       stall_cycles=self.stall_cycles)
        return out


def _config(inp: ReplayInput) -> UdpRxConfig:
    return UdpRxConfig(inp.endpoint.mac, inp.endpoint.ip, inp.endpoint.port)


def decoded_events(inp: ReplayInput) -> Iterator[dict]:
    """The capture's events through the ingress model, one at a time (for a first look)."""
    model = Ingress(_config(inp))
    for frame in inp.frames:
        for event in model.push(frame).events:
            yield event.as_dict()


def run_model(inp: ReplayInput, tracked: list[TrackedSlot] | None = None,
              geometry: BookGeometry | None = None) -> FeedRun:
    """Replay through ``sim.ingress.Ingress``, or with ``tracked`` through ``sim.top.FeedBook``
    (the ingress and the book of ``geometry``, default the gateware's), tracking those slots."""
    run = FeedRun("model")
    if tracked is None:
        model = Ingress(_config(inp))
    else:
        model = FeedBook(_config(inp), geometry)
        for slot, what in enumerate(tracked):
            what.apply(model.books, slot)
        run.book = BookRun(list(tracked))
    started = time.perf_counter()
    beat_base = message_base = 0
    for frame in inp.frames:
        out = model.push(frame)
        for event, end in zip(out.events, out.event_ends, strict=True):
            run.events.append(event.as_dict())
            run.event_beats.append(beat_base + end // BEAT_BYTES)
        if run.book is not None:
            for update, index in zip(out.updates, out.update_events, strict=True):
                run.book.updates.append(update.as_dict())
                run.book.update_beats.append(beat_base + out.event_ends[index] // BEAT_BYTES)
                run.book.update_messages.append(message_base + out.event_messages[index])
        beat_base += -(-len(frame) // BEAT_BYTES)
        message_base += out.delivered_messages
    run.wall_seconds = time.perf_counter() - started
    run.gaps = [{"first": gap.first, "count": gap.count} for gap in model.gaps]
    run.stats = model.stats
    run.input_beats = beat_base
    if run.book is not None:
        run.book.books = model_books(model.books, run.book.tracked, model.books.geometry.depth)
    return run


def run_gateware(inp: ReplayInput, *, simulator: str | None = None, expected: FeedRun | None = None,
                 idle: float = 0.0, backpressure: float = 0.0, seed: int = 1,
                 tracked: list[TrackedSlot] | None = None) -> FeedRun:
    """Replay through ``hdl.feed.ingress.FeedIngress`` in a Verilog simulator under cocotb, or
    with ``tracked`` through ``hdl.top.FeedBook`` (the ingress and the book, default geometry).

    ``expected`` (the model's run) provides the message positions for the latency figures. The
    book is built with ``drop_when_full=False``: a capture is replayed back to back, faster than
    it was recorded, and a full book queue then holds the input (counted in ``stall_cycles``)
    instead of losing events that real-time pacing would have left room for.
    """
    from host.gatesim.runner import registered_core, run_cocotb

    if simulator is not None:
        os.environ["TICKGATE_SIM"] = simulator
    if tracked is None:
        (core, cache_key), testcase, build_name = (registered_core("ingress"), "replay_capture",
                                                   "replay-ingress")
    else:
        from hdl.top import FeedBook as FeedBookCore

        # The core's default geometry, whose slots the job configures.
        geometry = BookGeometry()
        core, testcase, build_name = (partial(FeedBookCore, geometry, drop_when_full=False),
                                      "replay_book", "replay-feed-book")
        cache_key = "FeedBook(drop_when_full=False)"
    with tempfile.TemporaryDirectory(prefix="tickgate-replay-") as tmp:
        tmp = Path(tmp)
        job = BenchJob(frames=str(tmp / "frames.bin"), result=str(tmp / "result.json"),
                       mac=inp.endpoint.mac, ip=inp.endpoint.ip, port=inp.endpoint.port,
                       idle=idle, backpressure=backpressure, seed=seed,
                       event_beats=expected.event_beats if expected else [])
        if tracked is not None:
            job.slots = slot_configs(tracked, geometry.slots)
            job.update_beats = expected.book.update_beats if expected and expected.book else []
        write_frame_file(Path(job.frames), inp.frames)
        job.save(tmp / "job.json")
        started = time.perf_counter()
        run_cocotb(core, "host.replay.bench", build_name=build_name, testcase=testcase,
                   cache_key=cache_key, env={ENV_JOB: str(tmp / "job.json")})
        total = time.perf_counter() - started
        result = json.loads(Path(job.result).read_text())
    run = FeedRun("gateware", events=result["events"], gaps=result["gaps"],
                  stats=result["stats"], latencies=result["latencies"],
                  input_beats=result["input_beats"], input_cycles=result["input_cycles"],
                  stall_cycles=result["stall_cycles"], wall_seconds=result["wall_seconds"])
    if tracked is not None:
        run.book = BookRun(list(tracked), updates=result["updates"], books=result["books"],
                           latencies=result["update_latencies"], hazard=result["hazard"])
    run.build_seconds = total - run.wall_seconds
    return run
