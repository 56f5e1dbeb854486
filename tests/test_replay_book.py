"""``tickgate replay --until book``: instrument selection, the BBO CSV, and full replays through
the model and the core's gateware (a generated session, and the real AAPL file when present)."""

import csv
import json

import pytest

from host.cli import main
from host.replay.book import (
    BBO_COLUMNS,
    BookRun,
    TrackedSlot,
    bbo_rows,
    default_tracking,
    parse_track,
    slot_configs,
)
from sim.book import Books
from sim.book_mirror import BookGeometry
from sim.capture import write_pcap
from sim.feed_framer import frame_packets
from sim.generator import SessionConfig, captured, default_instruments, generate_messages
from sim.ingress import Ingress
from sim.itch_event import EventKind, symbol_int
from sim.udp_rx import UdpRxConfig
from sim.wire.net import TEST_FEED

AAPL_FILE = "aapl-20200130-premarket-10k.itch"


# ------------------------------------------------------------------------------------------------
# Instrument selection

def test_track_takes_symbols_and_locates():
    assert parse_track("AAPL, msft,13", 8) == [
        TrackedSlot(symbol="AAPL"), TrackedSlot(symbol="MSFT"), TrackedSlot(locate=13)]
    cfgs = slot_configs(parse_track("AAPL,13", 8), 4)
    assert cfgs[0] == {"enable": 1, "by_symbol": 1, "locate": 0, "symbol": symbol_int("AAPL")}
    assert cfgs[1] == {"enable": 1, "by_symbol": 0, "locate": 13, "symbol": 0}
    assert [c["enable"] for c in cfgs] == [1, 1, 0, 0]


@pytest.mark.parametrize(("spec", "message"), [
    ("AAPL,,MSFT", "empty entry"),
    ("0", r"not in 1\.\.65535"),
    ("70000", r"not in 1\.\.65535"),
    ("TOOLONGSYM", "not a stock symbol"),
    ("AAPL,aapl", "listed twice"),
    ("1,2,3,4,5,6,7,8,9", "9 instruments, but the book has 8 slots"),
])
def test_track_errors_name_the_culprit(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_track(spec, 8)


def _event(kind: EventKind, locate: int) -> dict:
    return {"kind": kind, "locate": locate}


def test_default_tracking_takes_the_directory_first_then_order_locates():
    events = [_event(EventKind.SYSTEM, 0), _event(EventKind.ADD, 40),
              _event(EventKind.DIRECTORY, 5), _event(EventKind.DIRECTORY, 3),
              _event(EventKind.DELETE, 3), _event(EventKind.ADD, 41), _event(EventKind.ADD, 40)]
    assert default_tracking(events, 8) == [TrackedSlot(locate=n) for n in (5, 3, 40, 41)]
    assert default_tracking(events, 3) == [TrackedSlot(locate=n) for n in (5, 3, 40)]

    def endless():
        yield _event(EventKind.DIRECTORY, 1)
        yield _event(EventKind.DIRECTORY, 2)
        raise AssertionError("read past the directory entries it needed")

    assert default_tracking(endless(), 2) == [TrackedSlot(locate=1), TrackedSlot(locate=2)]


def _update(slot, bid, ask, seq, halted=False) -> dict:
    return {"slot": slot, "locate": 10 + slot, "bid_price": bid[0], "bid_shares": bid[1],
            "ask_price": ask[0], "ask_shares": ask[1], "seq": seq, "timestamp": 1000 * seq,
            "halted": int(halted), "degraded": 0}


def test_bbo_rows_leave_out_flag_only_updates():
    run = BookRun([TrackedSlot(locate=10), TrackedSlot(locate=11)])
    run.updates = [
        _update(0, (0, 0), (0, 0), 1, halted=True),        # a halt before any order
        _update(0, (100, 5), (0, 0), 2, halted=True),
        _update(1, (100, 5), (0, 0), 3),                  # same prices, another slot
        _update(0, (100, 5), (0, 0), 4),                  # resumed: flags only
        _update(0, (100, 5), (200, 7), 5),
        _update(0, (0, 0), (0, 0), 6),                    # cleared
    ]
    run.update_messages = [0, 4, 6, 9, 11, 20]
    assert list(bbo_rows(run)) == [
        (4, 2, 2000, 10, 100, 5, 0, 0),
        (6, 3, 3000, 11, 100, 5, 0, 0),
        (11, 5, 5000, 10, 100, 5, 200, 7),
        (20, 6, 6000, 10, 0, 0, 0, 0),
    ]


def test_book_options_need_until_book(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "x.pcap"), "--bbo-out", str(tmp_path / "b.csv")]) == 1
    assert "need --until book" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "x.pcap"), "--until", "book", "--track", "0"]) == 1
    assert "not in 1..65535" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Full replays

def _read_csv(path) -> tuple[list[str], list[tuple[int, ...]]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [tuple(int(x) for x in row) for row in rows[1:]]


def _expected_rows(frames: list[bytes], locates: list[int]) -> list[tuple[int, ...]]:
    """The CSV the replay must write, straight from the stage models: a session framed by our
    own framer delivers every message, numbered from 1, so a message's index is its seq - 1."""
    ingress = Ingress(UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port))
    books = Books(geometry=BookGeometry())
    for slot, locate in enumerate(locates):
        books.track_locate(slot, locate)
    rows, last = [], {}
    for frame in frames:
        for event in ingress.push(frame).events:
            for u in books.push(event):
                top = (u.bid_price, u.bid_shares, u.ask_price, u.ask_shares)
                if last.get(u.slot, (0, 0, 0, 0)) != top:
                    last[u.slot] = top
                    rows.append((u.seq - 1, u.seq, u.timestamp, u.locate, *top))
    return rows


def test_generated_session_through_the_core(tmp_path):
    """12 instruments, the first 8 of the stock directory tracked by default: the gateware's
    updates equal the model's, and the CSV equals the models' updates. The session's last
    message (end of messages, which empties every book) is left out, so final books have
    orders in them."""
    config = SessionConfig(seed=3, messages=600, instruments=default_instruments(12))
    messages = generate_messages(config)
    frames = frame_packets(messages[:-1], end_of_session=True)
    capture = tmp_path / "session.pcap"
    write_pcap(capture, captured(config, frames))
    report, bbo = tmp_path / "replay.json", tmp_path / "bbo.csv"
    status = main(["replay", str(capture), "--until", "book", "--json", str(report),
                   "--bbo-out", str(bbo)])
    data = json.loads(report.read_text())
    assert status == 0 and data["mismatches"] == 0, data["differences"]
    assert data["tracking"] == [{"slot": n, "locate": n + 1} for n in range(8)]
    header, rows = _read_csv(bbo)
    assert tuple(header) == BBO_COLUMNS
    assert rows == _expected_rows([f.frame for f in frames], list(range(1, 9)))
    model, gateware = data["model"], data["gateware"]
    assert gateware["top_of_book_updates"] == model["top_of_book_updates"] >= len(rows) > 50
    assert len(gateware["final_books"]) == 8 and gateware["final_books"] == [
        {k: v for k, v in book.items() if k != "orders"} for book in model["final_books"]]
    assert sum(book["orders"] for book in model["final_books"]) > 0
    assert model["stats"]["book"]["filtered"] > 0  # the 4 untracked instruments
    assert {k for k in gateware["drops_by_reason"] if k.startswith("book.")} >= {
        "book.filtered", "book.unknown_ref", "book.table_full", "book.overflow"}
    assert gateware["top_of_book_latency_cycles"]["samples"] == model["top_of_book_updates"]


AAPL_FINAL = {"slot": 0, "locate": 13, "bid_price": 3_201_400, "bid_shares": 25,
              "ask_price": 3_203_000, "ask_shares": 100, "halted": 0, "degraded": 0,
              "symbol": "AAPL"}


def _replay_aapl(itch_data, tmp_path, *options: str) -> tuple[dict, list[tuple[int, ...]]]:
    """Replay the AAPL file tracked by symbol (in the gateware, bound by the file's stock
    directory message); returns the JSON report and the CSV rows."""
    report, bbo = tmp_path / "replay.json", tmp_path / "bbo.csv"
    status = main(["replay", str(itch_data / AAPL_FILE), "--until", "book", "--track", "AAPL",
                   "--json", str(report), "--bbo-out", str(bbo), *options])
    data = json.loads(report.read_text())
    assert status == (1 if data["mismatches"] else 0)
    assert data["model"]["stats"]["book"]["bound"] == 1
    return data, _read_csv(bbo)[1]


def test_aapl_final_book_model(itch_data, tmp_path):
    """All 10,000 messages through the model: final book 320.14 x 25 / 320.30 x 100 with 215
    live orders, and the CSV's last row is that top of book."""
    data, rows = _replay_aapl(itch_data, tmp_path, "--model-only")
    (book,) = data["model"]["final_books"]
    assert {k: book[k] for k in AAPL_FINAL} == AAPL_FINAL
    assert book["orders"] == 215
    # The file has no halt: every update is a change of price or shares.
    assert len(rows) == data["model"]["top_of_book_updates"] > 2000
    assert rows[-1][4:] == (3_201_400, 25, 3_203_000, 100)
    assert data["gateware"] is None and data["mismatches"] is None


def test_aapl_prefix_through_the_core(itch_data, tmp_path):
    """The first 1,500 messages through model and gateware, with idle input and backpressure
    on the top-of-book output: not one update of difference (about a minute on Icarus; the
    whole file is the soak test below)."""
    data, rows = _replay_aapl(itch_data, tmp_path, "--limit", "1500", "--idle", "0.2",
                              "--backpressure", "0.3", "--seed", "7")
    assert data["mismatches"] == 0, data["differences"]
    assert data["gateware"]["top_of_book_updates"] == len(rows) > 200


@pytest.mark.soak
def test_aapl_final_book_through_the_core(itch_data, tmp_path):
    """All 10,000 messages through model and gateware (about 3.5 minutes on Icarus): final
    book 320.14 x 25 / 320.30 x 100 on both sides, 215 live orders, not one update of
    difference."""
    data, rows = _replay_aapl(itch_data, tmp_path)
    assert data["mismatches"] == 0, data["differences"]
    for side in ("model", "gateware"):
        (book,) = data[side]["final_books"]
        assert {k: book[k] for k in AAPL_FINAL} == AAPL_FINAL, side
    assert data["model"]["final_books"][0]["orders"] == 215
    assert len(rows) == data["gateware"]["top_of_book_updates"]
    assert data["gateware"]["top_of_book_latency_cycles"]["min"] == 7
