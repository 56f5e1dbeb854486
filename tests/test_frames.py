"""The notebook API (``sim/frames.py``): its DataFrames say what the model's own records say."""

from functools import cache

import pytest

from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from sim import frames
from sim.book import Books
from sim.capture import CaptureError, write_binaryfile, write_pcap
from sim.generator import (
    SessionConfig,
    captured,
    default_instruments,
    generate_frames,
    generate_messages,
)
from sim.itch_event import Side, symbol_int
from sim.market_maker import FEED_GAP, QuotedInstrument, timed_events
from sim.udp_rx import UdpRxConfig
from sim.wire.net import TEST_FEED

AAPL_FILE = "aapl-20200130-premarket-10k.itch"
PORT = PortLimits(rate_tokens=8, rate_refill=2_000, max_live_orders=12, max_unacked_orders=6)


@cache
def session():
    insts = default_instruments(3)
    config = SessionConfig(seed=21, messages=3_000, instruments=insts)
    return [i.symbol for i in insts], generate_messages(config)


def quoted(symbols) -> list[QuotedInstrument]:
    return [QuotedInstrument(symbol, QuoteParams(
        enable=True, base_half_spread=1, levels=2, size=100, skew_ticks_per_unit=300,
        fair_value_mode=FairValueMode.MICROPRICE if k else FairValueMode.MID),
        RiskLimits(max_long=300, max_short=300, max_order_qty=200, collar=5_000))
        for k, symbol in enumerate(symbols)]


def test_book_rows_are_the_models_updates():
    symbols, messages = session()
    feed = list(timed_events(messages))
    table = frames.book(feed, symbols[:2])
    books = Books(slots=2)
    for slot, symbol in enumerate(symbols[:2]):
        books.track_symbol(slot, symbol_int(symbol))
    updates = [(time, u) for time, event in feed for u in books.push(event)]
    assert len(table) == len(updates) > 100
    assert set(table["slot"]) == {0, 1}
    for row, (time, update) in zip(table.itertuples(), updates, strict=True):
        assert (row.time, row.slot, row.bid_price, row.bid_shares, row.ask_price,
                row.ask_shares, row.seq) == (time, update.slot, update.bid_price,
                                             update.bid_shares, update.ask_price,
                                             update.ask_shares, update.seq)


def test_run_tables_agree_with_the_result():
    symbols, messages = session()
    insts = quoted(symbols)
    result = frames.run(timed_events(messages), insts, PORT)
    sent, made, filled, history = (frames.orders(result), frames.decisions(result),
                                   frames.fills(result), frames.positions(result))
    assert len(sent) == len(result.sent) > 50
    assert int(made["passed"].sum()) == len(sent)
    assert (made[~made["passed"]]["reason"] != "PASSED").all()
    assert len(filled) == len(result.fills) > 0
    assert len(history) == len(result.fills)
    table = frames.summary(result, insts)
    assert list(table["symbol"]) == symbols
    for row in table.itertuples():
        mine = filled[filled["slot"] == row.slot]
        signed = mine["quantity"].where(mine["side"] == Side.BUY.name, -mine["quantity"])
        assert row.position == int(signed.sum()) == result.positions[row.slot].shares
        assert row.net == result.positions[row.slot].net()
        assert row.messages == int((sent["slot"] == row.slot).sum())
        # The history's last row of the instrument is its state after its last fill.
        last = history[history["slot"] == row.slot].iloc[-1]
        assert last["shares"] == row.position and last["realized"] == row.realized
    # Our quotes: a row per order; every best bid or ask is a price one of its orders placed.
    ours = frames.quotes(result, symbols)
    assert len(ours) == len(sent)
    assert set(ours["symbol"]) == {symbols[slot] for slot in ours["slot"]}
    for slot in ours["slot"].unique():
        placed = set(sent[(sent["slot"] == slot) & (sent["kind"] != "CANCEL")]["price"])
        mine = ours[ours["slot"] == slot]
        assert set(mine["bid_price"]) - {0} <= placed and set(mine["ask_price"]) - {0} <= placed
        assert (mine["bid_orders"] + mine["ask_orders"] > 0).any()


def test_sweep_rows_are_runs_at_each_point():
    symbols, messages = session()
    feed = list(timed_events(messages))
    insts = quoted(symbols[:2])
    table = frames.sweep(feed, insts, PORT, {"base_half_spread": [1, 4], "levels": [1, 2]})
    assert len(table) == 4 * len(insts)
    assert list(table.columns[:2]) == ["base_half_spread", "levels"]
    for half, levels in ((1, 1), (4, 2)):
        point = table[(table["base_half_spread"] == half) & (table["levels"] == levels)]
        for inst in insts:
            inst.quote.base_half_spread, inst.quote.levels = half, levels
        direct = frames.summary(frames.run(feed, insts, PORT), insts)
        assert point.drop(columns=["base_half_spread", "levels"]).reset_index(drop=True) \
            .equals(direct)
    # The parameters really changed the trading.
    assert table.groupby(["base_half_spread", "levels"])["messages"].sum().nunique() > 1


def test_load_feed_from_pcap_and_binaryfile(tmp_path):
    _, messages = session()
    itch = tmp_path / "session.itch"
    write_binaryfile(itch, messages)
    assert frames.load_feed(itch) == list(timed_events(messages))

    config = SessionConfig(seed=21, messages=3_000, instruments=default_instruments(3))
    timed = captured(config, generate_frames(config))
    pcap = tmp_path / "session.pcap"
    write_pcap(pcap, timed[:5] + timed[6:])
    with pytest.raises(CaptureError, match="endpoint"):
        frames.load_feed(pcap)
    feed = frames.load_feed(pcap, endpoint=UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip,
                                                       TEST_FEED.port))
    assert FEED_GAP in [item for _, item in feed]  # the packet left out
    assert len([item for _, item in feed if item != FEED_GAP]) > 1_000


def test_real_aapl_book(itch_data):
    feed = frames.load_feed(itch_data / AAPL_FILE)
    table = frames.book(feed, ["AAPL"])
    last = table.iloc[-1]
    assert (last["bid_price"], last["bid_shares"], last["ask_price"], last["ask_shares"]) == (
        3_201_400, 25, 3_203_000, 100)
