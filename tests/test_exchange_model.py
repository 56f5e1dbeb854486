"""The exchange simulator and the position/PnL model (``sim/exchange.py``,
``sim/position.py``): every answer rule and the fill rule, on hand-made orders."""

import random

import pytest

from sim.book import Books, TopUpdate
from sim.exchange import ExchangeSim, FeedTrade, feed_trade
from sim.itch_event import EventKind, ItchEvent, Side, symbol_int
from sim.orders import Fill
from sim.position import FeeSchedule, Position, PositionBook
from sim.wire.ouch import (
    Accepted,
    Canceled,
    CancelOrder,
    EnterOrder,
    Executed,
    Option,
    Rejected,
    RejectReason,
    Replaced,
    ReplaceOrder,
    frame,
)

BID, ASK = 1_000_000, 1_000_200


def exchange(bid=BID, ask=ASK, bid_shares=300, ask_shares=200) -> ExchangeSim:
    ex = ExchangeSim(["AAPL", "MSFT"], clk_hz=1_000_000_000)  # 1 cycle = 1 ns
    ex.on_top(TopUpdate(0, 1, bid, bid_shares, ask, ask_shares, 0, 0, False, False))
    return ex


def enter(ref, side="B", price=BID, quantity=100, *, tif="0", post_only=True, symbol="AAPL"):
    return EnterOrder(ref, side, quantity, symbol, price, tif, "Y", "P", "N", "N",
                      f"C{ref}", (Option.post_only(),) if post_only else ())


def replace(orig, ref, price, quantity):
    return ReplaceOrder(orig, ref, quantity, price, "0", "Y", "N", f"C{ref}",
                        (Option.post_only(),))


def send(ex, message, now=10):
    return ex.receive(frame(message), now)


def summary(answers):
    out = []
    for m in answers:
        if isinstance(m, Accepted):
            out.append(("A", m.user_ref_num, m.quantity, m.order_state))
        elif isinstance(m, Replaced):
            out.append(("U", m.orig_user_ref_num, m.user_ref_num, m.quantity, m.price,
                        m.order_state))
        elif isinstance(m, Executed):
            out.append(("E", m.user_ref_num, m.quantity, m.price, m.liquidity_flag))
        elif isinstance(m, Canceled):
            out.append(("C", m.user_ref_num, m.quantity, m.reason))
        elif isinstance(m, Rejected):
            out.append(("J", m.user_ref_num, m.reason))
    return out


# ------------------------------------------------------------------------------------------------
# Answers


def test_accept_and_rest():
    ex = exchange()
    answers = send(ex, enter(1), now=1234)
    assert summary(answers) == [("A", 1, 100, "L")]
    accepted = answers[0]
    assert accepted.timestamp == 1234 and accepted.symbol == "AAPL    "
    assert accepted.order_reference_number == 1 and accepted.cl_ord_id.strip() == "C1"
    assert set(ex.orders) == {1}


def test_post_only_marketable_is_dead():
    ex = exchange()
    assert summary(send(ex, enter(1, "B", ASK))) == [("A", 1, 0, "D")]
    assert summary(send(ex, enter(2, "S", BID))) == [("A", 2, 0, "D")]
    assert ex.orders == {}


def test_ioc_takes_the_top_and_cancels_the_rest():
    ex = exchange()
    answers = send(ex, enter(1, "S", BID, 500, tif="3", post_only=False))
    assert summary(answers) == [("A", 1, 500, "L"), ("E", 1, 300, BID, "R"),
                                ("C", 1, 200, "I")]
    assert summary(send(ex, enter(2, "B", ASK - 100, 50, tif="3", post_only=False))) == [
        ("A", 2, 50, "L"), ("C", 2, 50, "I")]
    assert ex.orders == {}


def test_marketable_day_order_rests_the_remainder():
    ex = exchange()
    assert summary(send(ex, enter(1, "B", ASK + 100, 250, post_only=False))) == [
        ("A", 1, 250, "L"), ("E", 1, 200, ASK, "R")]
    assert ex.orders[1].open == 50


def test_retransmissions_and_rejects():
    ex = exchange()
    send(ex, enter(5))
    assert send(ex, enter(5)) == [] and send(ex, enter(4)) == []
    assert summary(send(ex, enter(6, symbol="NOPE"))) == [("J", 6, RejectReason.INVALID_SYMBOL)]
    assert summary(send(ex, enter(7, quantity=0))) == [("J", 7, RejectReason.INVALID_QUANTITY)]
    assert summary(send(ex, enter(8, quantity=1_000_000))) == [
        ("J", 8, RejectReason.INVALID_QUANTITY)]
    assert summary(send(ex, enter(9, price=0))) == [("J", 9, RejectReason.INVALID_PRICE)]
    assert ex.stats.ignored == 2 and ex.stats.rejected == 4


def test_replace_rules():
    ex = exchange()
    send(ex, enter(1, quantity=100))
    ex.on_trade(FeedTrade(0, Side.BUY, BID, 30), 11)  # 30 of 100 executed
    answers = send(ex, replace(1, 2, BID - 100, 100))
    assert summary(answers) == [("U", 1, 2, 70, BID - 100, "L")]  # chain total 100, 30 done
    assert answers[0].order_reference_number == 2 and set(ex.orders) == {2}
    assert summary(send(ex, replace(2, 3, BID - 100, 30))) == [("U", 2, 3, 0, BID - 100, "D")]
    assert ex.orders == {}
    # The original is gone: ignored, and the new UserRefNum is not consumed.
    assert send(ex, replace(2, 4, BID, 100)) == []
    assert summary(send(ex, enter(4))) == [("A", 4, 100, "L")]
    # Invalid replace: the original is canceled, the UserRefNum not consumed.
    assert summary(send(ex, replace(4, 5, BID, 0))) == [("C", 4, 100, "Z")]
    assert summary(send(ex, enter(5))) == [("A", 5, 100, "L")]
    # A post-only replacement that would cross is dead.
    assert summary(send(ex, replace(5, 6, ASK, 100))) == [("U", 5, 6, 0, ASK, "D")]


def test_cancel_rules():
    ex = exchange()
    send(ex, enter(1, quantity=100))
    assert send(ex, CancelOrder(1, 100)) == []          # does not reduce: ignored
    assert summary(send(ex, CancelOrder(1, 40))) == [("C", 1, 60, "U")]
    assert summary(send(ex, CancelOrder(1, 0))) == [("C", 1, 40, "U")]
    assert send(ex, CancelOrder(1, 0)) == [] and ex.orders == {}


# ------------------------------------------------------------------------------------------------
# Fills from the feed


def test_fill_rule_at_or_through():
    ex = exchange()
    for ref, side, price in ((1, "B", BID), (2, "B", BID - 100), (3, "B", BID + 100),
                             (4, "S", ASK), (5, "S", ASK + 100)):
        send(ex, enter(ref, side, price, 100))
    # A trade at BID: bids at or above it fill, best price first, shares capped by the trade.
    answers = ex.on_trade(FeedTrade(0, Side.BUY, BID, 150), 20)
    assert summary(answers) == [("E", 3, 100, BID + 100, "A"), ("E", 1, 50, BID, "A")]
    assert [m.match_number for m in answers] == [1, 2]
    assert ex.on_trade(FeedTrade(1, Side.BUY, BID, 150), 21) == []  # other instrument
    assert ex.on_trade(None, 21) == []
    # A trade at ASK + 100 on the sell side fills both asks.
    assert summary(ex.on_trade(FeedTrade(0, Side.SELL, ASK + 100, 1000), 22)) == [
        ("E", 4, 100, ASK, "A"), ("E", 5, 100, ASK + 100, "A")]
    # Time priority among equal prices: the older order reference number first.
    send(ex, enter(6, "B", BID, 100))
    assert summary(ex.on_trade(FeedTrade(0, Side.SELL, BID - 100, 60), 23)) == [
        ("E", 1, 50, BID, "A"), ("E", 6, 10, BID, "A")]


def test_feed_trade_reads_the_book_before_the_event():
    books = Books(slots=2)
    books.track_locate(0, 7)
    books.push(ItchEvent(EventKind.ADD, 7, 1, 1, order_ref=11, side=Side.SELL, shares=100,
                         price=ASK, symbol=symbol_int("AAPL")))
    execute = ItchEvent(EventKind.EXECUTE, 7, 2, 2, order_ref=11, shares=40)
    assert feed_trade(books, execute) == FeedTrade(0, Side.SELL, ASK, 40)
    with_price = ItchEvent(EventKind.EXECUTE_PRICE, 7, 2, 2, order_ref=11, shares=500,
                           price=ASK + 7)
    assert feed_trade(books, with_price) == FeedTrade(0, Side.SELL, ASK + 7, 100)  # capped
    assert feed_trade(books, ItchEvent(EventKind.EXECUTE, 7, 2, 2, order_ref=99,
                                       shares=1)) is None
    assert feed_trade(books, ItchEvent(EventKind.DELETE, 7, 2, 2, order_ref=11)) is None


# ------------------------------------------------------------------------------------------------
# Position and PnL


def fill(side, quantity, price, liquidity="A", slot=0):
    return Fill(0, slot, side, quantity, price, liquidity, 0, 0)


def test_fifo_realized_pnl():
    fees = FeeSchedule(maker_rebate=20, taker_fee=30)
    p = Position()
    p.apply(fill(Side.BUY, 100, 1_000_000), fees)
    p.apply(fill(Side.BUY, 100, 1_000_200), fees)
    p.apply(fill(Side.SELL, 150, 1_000_300, "R"), fees)  # closes 100 @ 1_000_000, 50 @ 1_000_200
    assert p.shares == 50 and p.realized == 100 * 300 + 50 * 100
    assert list(p.lots) == [(1_000_200, 50)]
    p.apply(fill(Side.SELL, 120, 999_900), fees)         # closes 50, opens 70 short
    assert p.shares == -70 and p.realized == 35_000 - 50 * 300
    assert list(p.lots) == [(999_900, 70)]
    assert p.unrealized(1_000_000) == -70 * 100
    assert p.rebates == 20 * (100 + 100 + 120) and p.fees == 30 * 150
    assert (p.bought, p.sold) == (200, 270)


def test_net_pnl_identity_over_random_fills():
    rng = random.Random(11)
    book = PositionBook(2, FeeSchedule(maker_rebate=15, taker_fee=25))
    for _ in range(3000):
        slot = rng.randrange(2)
        side = rng.choice((Side.BUY, Side.SELL))
        f = fill(side, rng.randint(1, 400), rng.randrange(990_000, 1_010_000, 100),
                 rng.choice("AAR"), slot)
        position = book.apply(f)
        mark = rng.randrange(990_000, 1_010_000)
        assert position.net(mark) == (position.cash + position.shares * mark
                                      + position.rebates - position.fees)
        assert sum(lot for _, lot in position.lots) == abs(position.shares)
    book.set_mark(0, None)
    book.set_mark(1, 1_000_000)
    assert book[1].mark == 1_000_000 and book.shares(0) == book[0].shares


@pytest.mark.parametrize("clk_hz", [156_250_000, 1_000_000_000])
def test_timestamps_follow_the_clock(clk_hz):
    ex = ExchangeSim(["AAPL"], clk_hz=clk_hz)
    assert ex.timestamp(clk_hz * 3600) == 3_600_000_000_000
