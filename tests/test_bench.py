"""``tickgate bench``: its figures come from real runs and agree with the documented ones."""

import json

from hdl.book.book import CLEAR_LATENCY, EVENT_LATENCY
from host.cli import main
from sim.book_mirror import BookGeometry

# hdl/feed/ingress.py and hdl/top.py: 3 cycles to an event, 4 more to a top-of-book update (the
# events themselves stay inside the core; tests/test_ingress_cocotb.py measures the 3 cycles).
INGRESS_LATENCY = 3


def test_bench_through_the_book_reports_the_documented_latencies(tmp_path, capsys):
    figures_file = tmp_path / "bench.json"
    status = main(["bench", "--until", "book", "--messages", "400", "--instruments", "8",
                   "--json", str(figures_file)])
    figures = json.loads(figures_file.read_text())
    icarus = figures["icarus"]
    assert status == 0 and icarus["mismatches"] == 0
    # An order event's update takes the pipeline's 7 cycles; a clear's own updates leave
    # CLEAR_LATENCY cycles after the S enters the book, and on a book that has had no orders it
    # sweeps nothing, so no event waits for the 4,097-cycle table sweep.
    book = icarus["top_of_book_latency_cycles"]
    assert book["median"] == INGRESS_LATENCY + EVENT_LATENCY
    assert book["min"] >= INGRESS_LATENCY + CLEAR_LATENCY
    assert book["max"] < BookGeometry().order_sets
    assert book["samples"] == icarus["top_of_book_updates"] > 20
    assert icarus["stall_cycles"] == 0  # the book kept up: its queue absorbed the clears
    assert figures["model_messages_per_s_generated"] > 0
    out = capsys.readouterr().out
    assert "top-of-book update out" in out and f"min {book['min']} / " in out


def test_model_only_bench_measures_both_models(tmp_path):
    figures_file = tmp_path / "bench.json"
    assert main(["bench", "--model-only", "--messages", "3000", "--json",
                 str(figures_file)]) == 0
    figures = json.loads(figures_file.read_text())
    assert figures["messages"] > 2_500
    assert figures["model_messages_per_s_generated"] > 0
    assert figures["loop_model_events_per_s_generated"] > 0
    assert "icarus" not in figures
