"""The report of ``tickgate replay --until loop``: per instrument, model and gateware side by
side, in the terminal (rich) and as JSON."""

from pathlib import Path

from rich.console import Console
from rich.table import Table

from host.replay.inputs import ReplayInput
from host.replay.loop import ORDER_COLUMNS, LoopReplay, latency_figures
from host.replay.tables import write_table
from sim.our_quotes import QUOTE_COLUMNS, quote_rows

__all__ = ["loop_json", "print_loop_report", "write_orders", "write_quotes"]

# Per-instrument figures, in the order shown.
_FIGURES = ("messages", "top_changes", "quotes", "orders", "enter", "replace", "cancel",
            "fills", "position", "realized", "unrealized", "rebates", "fees", "net",
            "tick_to_trade_min", "tick_to_trade_median", "tick_to_trade_p99",
            "tick_to_trade_max")
_MONEY = {"realized", "unrealized", "rebates", "fees", "net"}


def _money(units: int) -> str:
    """Price units x shares (1e-4 $) as dollars."""
    return f"{units / 10_000:,.2f} $"


def loop_json(inp: ReplayInput, replay: LoopReplay) -> dict:
    out = {"capture": inp.describe(), "mismatches": replay.mismatches,
           "differences": replay.differences, "stopped": replay.stopped,
           "lockstep": replay.lockstep, "waves": replay.waves,
           "instruments": [i.symbol for i in replay.config.instruments]}
    for side, summary in replay.summaries.items():
        out[side] = {"instruments": summary.per_slot, "orders": len(summary.orders),
                     "tick_to_order_cycles": latency_figures(summary.latencies)}
    out["model"]["denials"] = {reason.name.lower(): count for reason, count in
                               replay.model.denials.items() if count}
    if replay.gateware is not None:
        out["gateware"]["denials"] = {name: count for name, count in
                                      replay.gateware.stats["risk"].items() if count}
    return out


def print_loop_report(inp: ReplayInput, replay: LoopReplay, console: Console | None = None
                      ) -> None:
    console = console or Console()
    console.print(f"[bold]{inp.describe()}[/bold]: the market maker's loop over "
                  f"{sum(1 for _, item in replay.feed if not isinstance(item, str)):,} events")
    if replay.stopped:
        console.print("[yellow]stopped early: both runs cover the events up to the stop; "
                      "orders in flight then are not compared[/yellow]")
    sides = list(replay.summaries)
    for slot, inst in enumerate(replay.config.instruments):
        table = Table(title=f"slot {slot}: {inst.symbol}", title_justify="left")
        table.add_column("figure")
        for side in sides:
            table.add_column(side, justify="right")
        for name in _FIGURES:
            values = [replay.summaries[side].per_slot[slot][name] for side in sides]
            shown = ["-" if v is None else _money(v) if name in _MONEY else f"{v:,}"
                     for v in values]
            table.add_row(name.replace("_", " "), *shown)
        console.print(table)
    gateware = replay.summaries.get("gateware")
    if gateware is not None:
        lat = latency_figures(gateware.latencies)
        if lat:
            console.print(f"gateware tick to order (top update in -> first order beat out; add "
                          f"the feed's 7 cycles for tick to trade): min {lat['min']} / median "
                          f"{lat['median']} / p99 {lat['p99']} / max {lat['max']} cycles "
                          f"({lat['samples']} samples)")
        style = "green" if replay.mismatches == 0 else "red"
        console.print(f"[{style}]mismatches: {replay.mismatches}[/{style}] (orders compared byte "
                      f"for byte: model {len(replay.model.sent)}, gateware "
                      f"{len(replay.gateware.sent)})")
        for diff in replay.differences:
            console.print(f"  order {diff['index']} (cycle {diff['time']:,}, slot "
                          f"{diff['slot']}): model {diff['model']}")
            console.print(f"  {' ' * len(str(diff['index']))}        gateware {diff['gateware']}")
        if replay.waves:
            console.print(f"waveform of the first mismatch -> {replay.waves}")


def write_orders(path: str | Path, replay: LoopReplay) -> int:
    """Both sides' orders, one row each, the ``run`` column saying whose, as CSV or Parquet
    (:func:`~host.replay.tables.write_table`); returns the rows."""
    columns = ("run", *ORDER_COLUMNS)
    rows = [[side, *(row[c] for c in ORDER_COLUMNS)]
            for side, summary in replay.summaries.items() for row in summary.orders]
    return write_table(path, columns, rows)


def write_quotes(path: str | Path, replay: LoopReplay) -> int:
    """Both sides' quotes after each of their orders (:func:`~sim.our_quotes.quote_rows`),
    as CSV or Parquet; returns the rows."""
    rows = [[q[c] for c in QUOTE_COLUMNS] for side, summary in replay.summaries.items()
            for q in quote_rows(side, summary.orders)]
    return write_table(path, QUOTE_COLUMNS, rows)
