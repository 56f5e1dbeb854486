"""The side-by-side replay report, in the terminal (rich) and as JSON."""

import statistics
from collections import Counter

from rich.console import Console
from rich.table import Table

from host.replay.book import BOOK_FIELDS, describe_tracking, directory_of
from host.replay.compare import Comparison
from host.replay.inputs import ReplayInput
from host.replay.runs import FeedRun
from sim.itch_event import EventKind

__all__ = ["format_price", "latency_summary", "print_report", "report_json"]

# Counters that are totals, not drop reasons.
_NOT_DROPS = {"udp_rx": {"frames", "accepted"},
              "mold_rx": {"packets", "messages", "heartbeats", "end_of_session", "gaps",
                          "gap_messages"},
              "book": {"events", "bound", "clears", "refills", "updates"}}
PRICE_DECIMALS = 4  # ITCH Price(4)
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


def _events_observed(run: FeedRun) -> bool:
    """Through the book, the gateware's events stay inside the core."""
    return run.side == "model" or run.book is None


def _side_json(run: FeedRun, directory: dict[int, str]) -> dict:
    out = run.as_json()
    out["messages_by_type"] = messages_by_type(run)
    if _events_observed(run):
        out["events_by_kind"] = events_by_kind(run)
    else:
        out["events"] = None
    out["drops_by_reason"] = drops_by_reason(run)
    if run.side == "gateware" and _events_observed(run):
        out["latency_cycles"] = latency_summary(run.latencies)
    if run.book is not None:
        out.update(run.book.as_json(directory))
        if run.side == "gateware":
            out["top_of_book_latency_cycles"] = latency_summary(run.book.latencies)
            out["book_hazard"] = run.book.hazard
    return out


def report_json(inp: ReplayInput, model: FeedRun, gateware: FeedRun | None,
                comparison: Comparison | None) -> dict:
    directory = directory_of(model.events)
    out = {
        "capture": {"path": str(inp.path), "format": inp.format, "frames": len(inp.frames),
                    "feed": str(inp.endpoint), "vlan": inp.vlan},
        "model": _side_json(model, directory),
        "gateware": _side_json(gateware, directory) if gateware else None,
        "mismatches": comparison.mismatches if comparison else None,
        "differences": comparison.as_json(model, gateware) if comparison else None,
    }
    if model.book is not None:
        out["tracking"] = [{"slot": slot, **tracked.as_json()}
                           for slot, tracked in enumerate(model.book.tracked)]
    return out


def format_price(price: int) -> str:
    """An ITCH price in dollars, exactly (integer arithmetic): 3201400 -> ``320.1400``."""
    whole, fraction = divmod(price, 10**PRICE_DECIMALS)
    return f"{whole}.{fraction:0{PRICE_DECIMALS}d}"


def _quote(price: int, shares: int) -> str:
    return f"{format_price(price)} x {shares:,}" if shares else "-"


def _books_table(model: FeedRun, gateware: FeedRun | None) -> Table:
    books = model.book.as_json(directory_of(model.events))["final_books"]
    table = Table(title="final books (best bid / best ask)", title_justify="left")
    for name in ("slot", "instrument", "bid", "ask", "levels", "orders", "flags"):
        table.add_column(name, justify="left" if name == "instrument" else "right")
    if gateware is not None:
        table.add_column("gateware", justify="center")
    theirs = gateware.book.books if gateware is not None else []
    for index, book in enumerate(books):
        symbol = book["symbol"]
        where = f"locate {book['locate']}" if book["locate"] else "unbound"
        flags = ", ".join(name for name in ("halted", "degraded") if book[name]) or "-"
        row = [str(book["slot"]), f"{symbol} ({where})" if symbol else where,
               _quote(book["bid_price"], book["bid_shares"]),
               _quote(book["ask_price"], book["ask_shares"]),
               f"{len(book['bids'])} / {len(book['asks'])}", f"{book['orders']:,}", flags]
        if gateware is not None:
            other = theirs[index] if index < len(theirs) else None
            same = other is not None and all(book[k] == other[k] for k in BOOK_FIELDS)
            row.append("=" if same else "≠")
        table.add_row(*row)
    return table


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
                         events_by_kind(gateware) if gw and _events_observed(gateware) else None))
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
    if model.book is not None:
        summary.add_row("tracked instruments", describe_tracking(model.book.tracked))
        summary.add_row("top-of-book updates (model)", f"{len(model.book.updates):,}")
    if gw:
        if _events_observed(gateware):
            summary.add_row("events (gateware)", f"{len(gateware.events):,}")
            lat = latency_summary(gateware.latencies)
            if lat:
                summary.add_row("latency, last message byte in -> event out (cycles)",
                                f"min {lat['min']} / median {lat['median']:g} / "
                                f"max {lat['max']}")
        else:
            summary.add_row("top-of-book updates (gateware)", f"{len(gateware.book.updates):,}")
            lat = latency_summary(gateware.book.latencies)
            if lat:
                summary.add_row("latency, last message byte in -> top-of-book update out "
                                "(cycles)",
                                f"min {lat['min']} / median {lat['median']:g} / "
                                f"max {lat['max']}")
            if gateware.book.hazard:
                summary.add_row("book hazard flag", "[bold red]raised[/bold red]")
        summary.add_row("input stall cycles (tready low)", f"{gateware.stall_cycles:,}")
        summary.add_row("input beats / cycles", f"{gateware.input_beats:,} / "
                        f"{gateware.input_cycles:,}")
        rate = messages / gateware.wall_seconds if gateware.wall_seconds else 0
        summary.add_row("gateware simulation speed", f"{rate:,.0f} messages/s")
        style = "green" if comparison.mismatches == 0 else "bold red"
        summary.add_row("mismatches", f"[{style}]{comparison.mismatches}[/{style}]")
    if model.book is not None:
        console.print(_books_table(model, gateware))
    console.print(summary)
    if gw and comparison.mismatches:
        for diff in comparison.first_differences(model, gateware):
            console.print(f"[red]first differing {diff['what']} at index {diff['index']}[/red]")
            for side in ("model", "gateware"):
                for offset, item in enumerate(diff[side]):
                    console.print(f"  {side:8} #{diff['context_start'] + offset}: {item}")
        for ours, theirs in comparison.book_diffs:
            console.print(f"[red]final book of slot {ours['slot']}: model {ours}, "
                          f"gateware {theirs}[/red]")
        for stage, name, ours, theirs in comparison.stat_diffs[:20]:
            console.print(f"[red]counter {stage}.{name}: model {ours}, gateware {theirs}[/red]")
