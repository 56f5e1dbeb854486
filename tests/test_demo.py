"""``tickgate demo`` (what ``make demo`` runs), on a short session: it writes every output and
ends with mismatches 0 and the plot's path."""

import csv
import json

from hdl.quote.loop import TICK_TO_ORDER
from host.cli import main
from host.replay.loop import trading_figures


def test_demo_ends_with_no_mismatch_and_a_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--messages", "90", "--instruments", "2", "--quote", "1", "--out",
                 str(out)]) == 0
    text = capsys.readouterr().out
    assert "mismatches: 0" in text
    assert text.rstrip().endswith(f"plot -> {out / 'loop.png'}")
    report = json.loads((out / "replay.json").read_text())
    model, gateware = report["model"], report["gateware"]
    assert report["mismatches"] == 0 and model["orders"] == gateware["orders"] > 10
    assert trading_figures(model["instruments"]) == trading_figures(gateware["instruments"])
    assert gateware["tick_to_order_cycles"]["min"] == TICK_TO_ORDER
    with open(out / "orders.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_run = {run: [r["packet"] for r in rows if r["run"] == run] for run in ("model", "gateware")}
    assert by_run["model"] == by_run["gateware"] and len(by_run["model"]) == model["orders"]
    assert {r["kind"] for r in rows} == {"enter", "replace", "cancel"}
    # Both runs quote alike after each order (only the cycles differ: the gateware's are its own).
    with open(out / "quotes.csv", newline="") as f:
        quotes = list(csv.DictReader(f))
    price_columns = ("slot", "bid_price", "bid_shares", "bid_orders", "ask_price", "ask_shares",
                     "ask_orders")
    by_run = {run: [tuple(q[c] for c in price_columns) for q in quotes if q["run"] == run]
              for run in ("model", "gateware")}
    assert by_run["model"] == by_run["gateware"] and len(by_run["model"]) == model["orders"]
    for name in ("session.pcap", "orders.csv", "quotes.csv", "orders.pcap", "loop.png"):
        assert (out / name).stat().st_size > 0
