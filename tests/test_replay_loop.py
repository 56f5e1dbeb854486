"""``tickgate replay`` (the loop): parameters from TOML, the timed feed, the reports and outputs,
errors, and a stopped run. A whole run, model and gateware compared order by order, is
``tests/test_demo.py``'s."""

import json

import dpkt
import pytest

from hdl.quote.loop import TICK_TO_ORDER
from host.cli import main
from host.replay.loop import (
    FEED_TO_LOOP,
    load_params,
    run_loop,
    timed_feed,
    trading_figures,
)
from sim.capture import read_frames, write_pcap
from sim.generator import SessionConfig, captured, default_instruments, generate_frames
from sim.market_maker import FEED_GAP
from sim.wire.net import TEST_FEED
from sim.wire.ouch import decode_inbound_stream


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    config = SessionConfig(seed=3, messages=160, instruments=default_instruments(2))
    path = tmp_path_factory.mktemp("loop") / "session.pcap"
    write_pcap(path, captured(config, generate_frames(config)))
    return path


def test_params_are_the_defaults_then_the_file(tmp_path):
    instruments, port = load_params(None, ["AAPL", "MSFT"])
    assert [i.symbol for i in instruments] == ["AAPL", "MSFT"]
    assert instruments[0].quote.levels == 2 and instruments[0].risk.collar == 1_000
    assert port.max_live_orders == 48
    params = tmp_path / "p.toml"
    params.write_text('[quote.1]\nlevels = 3\nfair_value_mode = "MICROPRICE"\n'
                      '[risk.all]\nmax_long = 7\n[port_limits]\nmax_live_orders = 5\n')
    instruments, port = load_params(params, ["AAPL", "MSFT"])
    assert [i.quote.levels for i in instruments] == [2, 3]
    assert instruments[1].quote.fair_value_mode.name == "MICROPRICE"
    assert [i.risk.max_long for i in instruments] == [7, 7]
    assert port.max_live_orders == 5


@pytest.mark.parametrize(("text", "message"), [
    ("[quote.all]\nlevelz = 2\n", "levelz"),
    ("[risk.all]\nmax_long = -1\n", "max_long"),
    ("[quote.all\n", "p.toml"),
])
def test_bad_params_name_the_culprit(tmp_path, capsys, capture, text, message):
    params = tmp_path / "p.toml"
    params.write_text(text)
    assert main(["replay", str(capture), "--until", "loop", "--model-only",
                 "--params", str(params)]) == 1
    assert message in capsys.readouterr().err


def test_loop_options_need_until_loop(capsys, capture):
    assert main(["replay", str(capture), "--until", "events", "--symbols", "AAPL"]) == 1
    assert "need --until loop" in capsys.readouterr().err


def test_timed_feed_follows_the_itch_clock(capture):
    from host.replay.inputs import load_capture

    feed, symbols = timed_feed(load_capture(capture))
    assert symbols[:2] == ["AAPL", "MSFT"]
    cycles = [cycle for cycle, _ in feed]
    assert cycles == sorted(cycles) and cycles[0] == 0 and cycles[-1] > 0
    assert FEED_GAP not in [item for _, item in feed]
    assert 100 < len(feed) <= 160     # the skipped message types make no event


def test_model_only_run_reports_each_instrument(tmp_path, capture):
    """The whole loop is what replay runs by default; the outputs a quant opens."""
    report, plot, pcap = tmp_path / "r.json", tmp_path / "loop.png", tmp_path / "orders.pcap"
    assert main(["replay", str(capture), "--model-only", "--symbols", "MSFT", "--json",
                 str(report), "--plot", str(plot), "--orders-pcap", str(pcap)]) == 0
    data = json.loads(report.read_text())
    assert data["instruments"] == ["MSFT"] and "gateware" not in data
    assert data["stopped"] is False
    (msft,) = data["model"]["instruments"]
    assert msft["symbol"] == "MSFT" and msft["orders"] == data["model"]["orders"] > 0
    assert msft["orders"] == msft["enter"] + msft["replace"] + msft["cancel"]
    assert msft["messages"] > msft["top_changes"] > 0 and 0 < msft["quotes"] <= msft["orders"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    stream = b"".join(dpkt.ethernet.Ethernet(f.frame).data.data.data for f in read_frames(pcap))
    assert len(decode_inbound_stream(stream)) == msft["orders"]


def test_unknown_symbol_is_an_error(capsys, capture):
    assert main(["replay", str(capture), "--model-only", "--symbols", "ZZZZ"]) == 1
    assert "ZZZZ not in the capture's stock directory" in capsys.readouterr().err


def test_the_loop_runs_alike_under_cocotb(tmp_path, capsys, capture):
    """``--sim icarus`` (``verilator`` with ``pytest --sim verilator``): the loop's Verilog
    under cocotb, driven by the same bench as in Amaranth's simulator, sends the same orders in
    the same cycles."""
    import csv

    from host.gatesim.runner import selected_simulator
    from host.replay.inputs import load_capture

    sim = selected_simulator()
    amaranth = run_loop(load_capture(capture), max_gap=300, latency=200)
    assert amaranth.mismatches == 0 and len(amaranth.gateware.sent) > 40
    assert len(amaranth.gateware.fills) >= 2
    orders, report = tmp_path / "orders.csv", tmp_path / "r.json"
    assert main(["replay", str(capture), "--sim", sim, "--max-gap", "300", "--latency", "200",
                 "--orders-out", str(orders), "--json", str(report)]) == 0
    assert json.loads(report.read_text())["mismatches"] == 0
    with open(orders, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["run"] == "gateware"]
    assert [(int(r["cycle"]), int(r["time"]), r["packet"]) for r in rows] == [
        (s.time, s.feed_time, s.packet.hex()) for s in amaranth.gateware.sent]
    capsys.readouterr()
    # Amaranth's VCD needs Amaranth's simulator.
    assert main(["replay", str(capture), "--sim", sim, "--waves", str(tmp_path / "w.vcd")]) == 1
    assert "TICKGATE_WAVES=1" in capsys.readouterr().err


def test_feed_for_the_wrong_port_is_an_error(capsys, capture):
    assert main(["replay", str(capture), "--until", "loop", "--model-only",
                 "--port", str(TEST_FEED.port + 1)]) == 1
    assert str(TEST_FEED.port + 1) in capsys.readouterr().err


def test_a_stopped_run_reports_what_was_done(capture):
    """What Ctrl-C does: the gateware run ends at the next progress point, the model replays
    the same items, and the orders the gateware sent are compared."""
    from host.gatesim.loop_tb import PROGRESS_CYCLES
    from host.replay.inputs import load_capture

    calls = []
    replay = run_loop(load_capture(capture), max_gap=300, latency=200,
                      progress=lambda done, total: calls.append((done, total)),
                      stop=lambda: len(calls) >= 4)
    assert replay.stopped and replay.gateware.stopped
    assert replay.gateware.cycles == 3 * PROGRESS_CYCLES
    fed, total = calls[-1]
    assert 0 < fed < total and len(replay.feed) == fed == replay.gateware.fed
    assert replay.gateware.sent and replay.mismatches == 0


def test_real_aapl_loop_matches_the_model(itch_data):
    """The real AAPL file's first 600 messages through both loops, in lockstep: the same orders
    byte for byte. The stretch holds what races in a free-running gateware: execution sweeps
    that move the top several times in one cycle, and answers reaching us in the cycle of a top
    change."""
    from collections import Counter

    from host.replay.inputs import load_capture
    from sim.book import Books
    from sim.itch_event import symbol_int

    inp = load_capture(itch_data / "aapl-20200130-premarket-10k.itch", limit=600)
    replay = run_loop(inp, symbols=["AAPL"], max_gap=300, latency=200)
    assert replay.mismatches == 0
    assert len(replay.gateware.sent) == len(replay.model.sent) > 350
    assert (trading_figures(replay.summaries["gateware"].per_slot)
            == trading_figures(replay.summaries["model"].per_slot))
    (aapl,) = replay.summaries["gateware"].per_slot
    assert aapl["tick_to_trade_min"] == FEED_TO_LOOP + TICK_TO_ORDER
    books = Books(slots=1)
    books.track_symbol(0, symbol_int("AAPL"))
    tops = Counter(cycle for cycle, item in replay.feed if item != FEED_GAP and books.push(item))
    assert sum(1 for n in tops.values() if n > 1) >= 5
    assert len({cycle for cycle, _ in replay.model.answers} & set(tops)) >= 2
