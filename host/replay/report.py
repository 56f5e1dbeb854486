"""The side-by-side replay report, in the terminal (rich) and as JSON."""

import statistics
from collections import Counter

from rich.console import Console
from rich.table import Table

from host.replay.compare import Comparison
from host.replay.inputs import ReplayInput
from host.replay.runs import FeedRun
from sim.itch_event import EventKind

__all__ = ["latency_summary", "print_report", "report_json"]

# Counters that are totals, not drop reasons.
_NOT_DROPS = {"udp_rx": {"frames", "accepted"},
              "mold_rx": {"packets", "messages", "heartbeats", "end_of_session", "gaps",
                          "gap_messages"}}
_ITCH_ERRORS = ("unknown_type", "bad_length")


def events_by_kind(run: FeedRun) -> dict[str, int]:
    counts = Counter(EventKind(event["kind"]).name.lower() for event in run.events)
    return {kind.name.lower(): counts.get(kind.name.lower(), 0) for kind in EventKind}


def messages_by_type(run: FeedRun) -> dict[str, int]:
    return {name: value for name, value in run.stats.get("itch_decode", {}).items()
            if name not in _ITCH_ERRORS}


def drops_by_reason(run: FeedRun) -> dict[str, int]:
    drops = {}
    for stage, counters in run.stats.items():
        for name, value in counters.items():
            if stage == "itch_decode" and name not in _ITCH_ERRORS:
                continue
            if name in _NOT_DROPS.get(stage, ()):
                continue
            drops[f"{stage}.{name}"] = value
    return drops


def latency_summary(latencies: list[int]) -> dict[str, float] | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, (99 * len(ordered)) // 100)],
            "max": ordered[-1], "samples": len(ordered)}


def _side_json(run: FeedRun) -> dict:
    out = run.as_json()
    out["messages_by_type"] = messages_by_type(run)
    out["events_by_kind"] = events_by_kind(run)
    out["drops_by_reason"] = drops_by_reason(run)
    if run.side == "gateware":
        out["latency_cycles"] = latency_summary(run.latencies)
    return out


def report_json(inp: ReplayInput, model: FeedRun, gateware: FeedRun | None,
                comparison: Comparison | None) -> dict:
    return {
        "capture": {"path": str(inp.path), "format": inp.format, "frames": len(inp.frames),
                    "feed": str(inp.endpoint), "vlan": inp.vlan},
        "model": _side_json(model),
        "gateware": _side_json(gateware) if gateware else None,
        "mismatches": comparison.mismatches if comparison else None,
        "differences": comparison.as_json(model, gateware) if comparison else None,
    }


def _table(title: str, model: dict, gateware: dict | None, *, hide_zero: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    table.add_column("model", justify="right")
    if gateware is not None:
        table.add_column("gateware", justify="right")
        table.add_column("", justify="center")
    for name, value in model.items():
        other = gateware.get(name) if gateware is not None else None
        if hide_zero and not value and not other:
            continue
        row = [name, f"{value:,}"]
        if gateware is not None:
            row += [f"{other:,}" if other is not None else "-", "" if other == value else "≠"]
        table.add_row(*row)
    return table


def print_report(inp: ReplayInput, model: FeedRun, gateware: FeedRun | None,
                 comparison: Comparison | None, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]replay[/bold] {inp.describe()}")
    gw = gateware is not None
    console.print(_table("messages by type", messages_by_type(model),
                         messages_by_type(gateware) if gw else None))
    console.print(_table("events by kind", events_by_kind(model),
                         events_by_kind(gateware) if gw else None))
    console.print(_table("drops by reason (non-zero)", drops_by_reason(model),
                         drops_by_reason(gateware) if gw else None))
    summary = Table(title="summary", title_justify="left", show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    messages = sum(messages_by_type(model).values())
    summary.add_row("events (model)", f"{len(model.events):,}")
    summary.add_row("gap reports (model)", f"{len(model.gaps):,}")
    rate = messages / model.wall_seconds if model.wall_seconds else 0
    summary.add_row("model speed", f"{rate:,.0f} messages/s")
    if gw:
        summary.add_row("events (gateware)", f"{len(gateware.events):,}")
        lat = latency_summary(gateware.latencies)
        if lat:
            summary.add_row("latency, last message byte in -> event out (cycles)",
                            f"min {lat['min']} / median {lat['median']:g} / max {lat['max']}")
        summary.add_row("input stall cycles (tready low)", f"{gateware.stall_cycles:,}")
        summary.add_row("input beats / cycles", f"{gateware.input_beats:,} / "
                        f"{gateware.input_cycles:,}")
        rate = messages / gateware.wall_seconds if gateware.wall_seconds else 0
        summary.add_row("gateware simulation speed", f"{rate:,.0f} messages/s")
        style = "green" if comparison.mismatches == 0 else "bold red"
        summary.add_row("mismatches", f"[{style}]{comparison.mismatches}[/{style}]")
    console.print(summary)
    if gw and comparison.mismatches:
        for diff in comparison.first_differences(model, gateware):
            console.print(f"[red]first differing event at index {diff['index']}[/red]")
            for side in ("model", "gateware"):
                for offset, event in enumerate(diff[side]):
                    console.print(f"  {side:8} #{diff['context_start'] + offset}: {event}")
        for stage, name, ours, theirs in comparison.stat_diffs[:20]:
            console.print(f"[red]counter {stage}.{name}: model {ours}, gateware {theirs}[/red]")
