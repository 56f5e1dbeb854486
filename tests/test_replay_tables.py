"""The replay's tables: our quotes after each order (``sim/our_quotes.py``) and the files
they go to, CSV or Parquet (``host/replay/tables.py``)."""

import csv

import pandas as pd

from host.cli import main
from host.replay.tables import write_table
from sim.our_quotes import QUOTE_COLUMNS, quote_rows
from tests.test_replay_loop import capture  # noqa: F401  (the fixture)


def _order(index, kind, user_ref, *, side="", price=0, quantity=100, orig_ref=0, slot=0):
    return {"index": index, "time": 10 * index, "kind": kind, "slot": slot, "symbol": "AAPL",
            "user_ref": user_ref, "orig_ref": orig_ref, "side": side, "quantity": quantity,
            "price": price}


def test_quotes_follow_enters_replaces_and_cancels():
    orders = [
        _order(0, "enter", 1, side="B", price=1000),
        _order(1, "enter", 2, side="S", price=1010, quantity=60),
        _order(2, "enter", 3, side="B", price=999),          # a second level
        _order(3, "enter", 4, side="S", price=1010, quantity=40, slot=1),   # another instrument
        _order(4, "replace", 5, price=1001, orig_ref=1),     # the bid moves up
        _order(5, "cancel", 2, quantity=25),                 # the ask cut to 25 shares
        _order(6, "enter", 6, side="S", price=1010, quantity=50),   # joins it at the same price
        _order(7, "cancel", 5, quantity=0),                  # the best bid pulled
        _order(8, "cancel", 3, quantity=0),                  # no bid left
        _order(9, "replace", 7, price=1020, quantity=0, orig_ref=6),  # a replace to 0 shares
    ]
    rows = quote_rows("model", orders)
    assert len(rows) == len(orders)
    assert all(set(r) == set(QUOTE_COLUMNS) and r["run"] == "model" for r in rows)
    quotes = [(r["slot"], r["bid_price"], r["bid_shares"], r["bid_orders"], r["ask_price"],
               r["ask_shares"], r["ask_orders"]) for r in rows]
    assert quotes == [
        (0, 1000, 100, 1, 0, 0, 0),
        (0, 1000, 100, 1, 1010, 60, 1),
        (0, 1000, 100, 2, 1010, 60, 1),
        (1, 0, 0, 0, 1010, 40, 1),
        (0, 1001, 100, 2, 1010, 60, 1),
        (0, 1001, 100, 2, 1010, 25, 1),
        (0, 1001, 100, 2, 1010, 75, 2),
        (0, 999, 100, 1, 1010, 75, 2),
        (0, 0, 0, 0, 1010, 75, 2),
        (0, 0, 0, 0, 1010, 25, 1),
    ]


def test_csv_and_parquet_hold_the_same_rows(tmp_path):
    columns = ("time", "symbol", "price")
    rows = [(1, "AAPL", 3_209_300), (2**40, "MSFT", 0)]
    assert write_table(tmp_path / "t.csv", columns, rows) == 2
    assert write_table(tmp_path / "t.parquet", columns, rows) == 2
    with open(tmp_path / "t.csv", newline="") as f:
        text = list(csv.reader(f))
    assert text == [list(columns), ["1", "AAPL", "3209300"], [str(2**40), "MSFT", "0"]]
    frame = pd.read_parquet(tmp_path / "t.parquet")
    assert list(frame.columns) == list(columns)
    assert frame["time"].dtype == "int64" and frame["time"].tolist() == [1, 2**40]
    assert frame.equals(pd.read_csv(tmp_path / "t.csv"))


def test_replay_writes_orders_and_quotes_as_parquet(tmp_path, capture):  # noqa: F811
    orders, quotes = tmp_path / "orders.parquet", tmp_path / "quotes.parquet"
    assert main(["replay", str(capture), "--model-only", "--symbols", "AAPL,MSFT",
                 "--orders-out", str(orders), "--quotes-out", str(quotes)]) == 0
    o, q = pd.read_parquet(orders), pd.read_parquet(quotes)
    assert len(o) == len(q) > 10 and set(o["run"]) == set(q["run"]) == {"model"}
    assert set(q["symbol"]) == {"AAPL", "MSFT"}
    assert q["order"].tolist() == o["index"].tolist()
    # Every quote is one the instrument's orders placed.
    for symbol in ("AAPL", "MSFT"):
        placed = set(o[(o["symbol"] == symbol) & (o["kind"] != "cancel")]["price"])
        mine = q[q["symbol"] == symbol]
        assert set(mine["bid_price"]) - {0} <= placed and set(mine["ask_price"]) - {0} <= placed
