"""Split a loop replay by instrument, run the shards in worker processes or on a Dask cluster,
and merge them into one replay.

Why by instrument: the gateware simulation is the slow part, and each instrument's quotes,
orders, fills and PnL depend only on its own book, orders and position while the port-wide
limits (rate, live and unacknowledged orders) leave room, as the replay's defaults do. A shard
quotes some of the instruments over the whole feed; its model and gateware runs are compared
within it, byte for byte. The merged report gives every instrument the figures the unsharded run
gives it (``tests/test_replay_shards.py`` checks this); what differs is only the UserRefNums and
ClOrdIDs, which each shard numbers from 1, and the interleaving of orders of different
instruments.

Each shard is a plain function call on picklable arguments (:func:`run_shard`), so it runs the
same in a local process pool and on a Dask cluster (``distributed.Client.map``); a worker needs
tickgate installed and the capture at the same path.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from host.replay.inputs import load_capture
from host.replay.loop import DEFAULT_MAX_GAP, LoopReplay, SideSummary, run_loop

__all__ = ["ShardSpec", "merge", "run_loop_sharded", "run_shard", "run_sharded", "split"]


@dataclass(frozen=True)
class ShardSpec:
    """One shard: the capture (path and feed selection), its instruments and the options of
    :func:`~host.replay.loop.run_loop`."""

    capture: str
    symbols: tuple[str, ...]
    loader: dict
    options: dict
    index: int = 0


def split(symbols: Sequence[str], shards: int) -> list[tuple[str, ...]]:
    """``symbols`` dealt round robin into at most ``shards`` non-empty groups."""
    shards = max(1, min(shards, len(symbols)))
    return [tuple(symbols[k::shards]) for k in range(shards)]


def run_shard(spec: ShardSpec) -> LoopReplay:
    """Run one shard; the result carries no feed (the caller has it), to keep it small."""
    # Under cocotb, shards in parallel processes must not share a simulator build.
    os.environ["TICKGATE_BUILD_TAG"] = f"shard{spec.index}"
    replay = run_loop(load_capture(spec.capture, **spec.loader), symbols=list(spec.symbols),
                      **spec.options)
    replay.feed = []
    return replay


def run_sharded(specs: list[ShardSpec], *, jobs: int = 1, dask: str | None = None,
                done: Callable[[int], None] | None = None) -> list[LoopReplay]:
    """Run ``specs`` in ``jobs`` local worker processes, or on the Dask scheduler at ``dask``;
    ``done(k)`` after each shard that finished (in any order). Results in ``specs`` order."""
    if dask is not None:
        from distributed import Client, as_completed

        with Client(dask) as client:
            futures = client.map(run_shard, specs, pure=False)
            index = {future.key: k for k, future in enumerate(futures)}
            for future in as_completed(futures):
                if done is not None:
                    done(index[future.key])
            return client.gather(futures)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker, so no simulator or thread state is inherited.
    with ProcessPoolExecutor(max_workers=jobs,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(run_shard, spec): k for k, spec in enumerate(specs)}
        results: list[LoopReplay | None] = [None] * len(specs)
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if done is not None:
                done(futures[future])
    return results


def _remap(items, slots: list[int]):
    return [dataclasses.replace(item, slot=slots[item.slot]) for item in items]


def _sum_stats(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for stats in parts:
        for stage, counters in stats.items():
            out.setdefault(stage, Counter()).update(counters)
    return {stage: dict(counters) for stage, counters in out.items()}


def merge(symbols: Sequence[str], specs: list[ShardSpec], parts: list[LoopReplay],
          feed: list) -> LoopReplay:
    """One replay of ``symbols`` from the shards' replays (slot ``k`` is ``symbols[k]``)."""
    where = {symbol: k for k, symbol in enumerate(symbols)}
    maps = [[where[s] for s in spec.symbols] for spec in specs]
    by_symbol = {inst.symbol: inst for part in parts for inst in part.config.instruments}
    config = dataclasses.replace(parts[0].config,
                                 instruments=[by_symbol[s] for s in symbols])
    model = dataclasses.replace(
        parts[0].model,
        sent=sorted((r for p in parts for r in p.model.sent), key=lambda r: r.time),
        answers=sorted((a for p in parts for a in p.model.answers), key=lambda a: a[0]),
        decisions=sorted((d for p in parts for d in p.model.decisions), key=lambda d: d.time),
        fills=sorted((f for p, m in zip(parts, maps, strict=True)
                      for f in _remap(p.model.fills, m)), key=lambda f: f.time),
        history=sorted((h for p, m in zip(parts, maps, strict=True)
                        for h in _remap(p.model.history, m)), key=lambda h: h.time),
        denials=sum((Counter(p.model.denials) for p in parts), Counter()),
        positions=[None] * len(symbols))
    for part, slots in zip(parts, maps, strict=True):
        for local, position in enumerate(part.model.positions):
            model.positions[slots[local]] = position
    gateware = None
    if all(p.gateware is not None for p in parts):
        gateware = dataclasses.replace(
            parts[0].gateware,
            sent=sorted((r for p in parts for r in p.gateware.sent), key=lambda r: r.feed_time),
            answers=sorted((a for p in parts for a in p.gateware.answers), key=lambda a: a[0]),
            fills=sorted(({**f, "slot": m[f["slot"]]} for p, m in zip(parts, maps, strict=True)
                          for f in p.gateware.fills), key=lambda f: f["time"]),
            stats=_sum_stats([p.gateware.stats for p in parts]),
            positions=[None] * len(symbols),
            cycles=max(p.gateware.cycles for p in parts),
            stopped=any(p.gateware.stopped for p in parts))
        for part, slots in zip(parts, maps, strict=True):
            for local, position in enumerate(part.gateware.positions):
                gateware.positions[slots[local]] = position
    summaries = {}
    for side in parts[0].summaries:
        orders = sorted(({**row, "slot": m[row["slot"]] if row["slot"] >= 0 else -1}
                         for p, m in zip(parts, maps, strict=True)
                         for row in p.summaries[side].orders), key=lambda row: row["time"])
        for index, row in enumerate(orders):
            row["index"] = index
        per_slot = sorted(({**row, "slot": m[row["slot"]]}
                           for p, m in zip(parts, maps, strict=True)
                           for row in p.summaries[side].per_slot), key=lambda row: row["slot"])
        latencies = [x for p in parts for x in p.summaries[side].latencies]
        summaries[side] = SideSummary(orders, per_slot, latencies)
    differences = [{**diff, "shard": k, "slot": maps[k][diff["slot"]]}
                   for k, part in enumerate(parts) for diff in part.differences]
    return LoopReplay(config, feed, model, gateware, summaries,
                      mismatches=sum(p.mismatches for p in parts), differences=differences,
                      stopped=any(p.stopped for p in parts), lockstep=parts[0].lockstep,
                      waves=", ".join(p.waves for p in parts if p.waves) or None)


def _shard_options(options: dict, k: int, shards: int) -> dict:
    """A shard's options: its own waveform file, if any."""
    if options.get("waves") is None or shards == 1:
        return options
    waves = Path(options["waves"])
    return {**options, "waves": str(waves.with_suffix(f".shard{k}{waves.suffix}"))}


def run_loop_sharded(capture: str, loader: dict, symbols: list[str] | None, options: dict, *,
                     jobs: int = 1, dask: str | None = None,
                     done: Callable[[int, int], None] | None = None) -> LoopReplay:
    """The loop replay of :func:`~host.replay.loop.run_loop`, one shard per instrument group:
    ``jobs`` groups in as many local processes, or (with ``dask``) one group per instrument
    unless ``jobs`` says fewer, on the cluster. ``done(finished, shards)`` after each shard."""
    from host.replay.loop import replay_feed

    feed, directory = replay_feed(load_capture(capture, **loader),
                                  options.get("max_gap", DEFAULT_MAX_GAP))
    symbols = list(symbols or directory[:2])
    groups = split(symbols, jobs if dask is None or jobs > 1 else len(symbols))
    specs = [ShardSpec(capture, group, loader, _shard_options(options, k, len(groups)), k)
             for k, group in enumerate(groups)]
    finished = []

    def one_done(k: int) -> None:
        finished.append(k)
        if done is not None:
            done(len(finished), len(specs))

    parts = run_sharded(specs, jobs=len(specs), dask=dask, done=one_done)
    return merge(symbols, specs, parts, feed)
