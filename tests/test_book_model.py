"""The order book model (``sim/book.py``, ``sim/book_mirror.py``) on its own."""

from itertools import pairwise

import pytest

from sim.book import (
    EMPTY_PRICE,
    Books,
    BookStat,
    Level,
    OrderBook,
    Outcome,
    Top,
)
from sim.book_mirror import BookGeometry
from sim.itch_event import Side, symbol_int
from tests.test_book_cases import (
    TINY,
    Seq,
    aapl_case,
    add,
    binding_case,
    delete,
    execute,
    random_case,
    replace,
    session_case,
    system,
)

# ------------------------------------------------------------------------------------------------
# OrderBook


def test_order_book_operations():
    book = OrderBook()
    assert book.top() == Top(0, 0, 0, 0)
    assert book.add(1, Side.BUY, 1_000_000, 100) is Outcome.OK
    assert book.add(2, Side.BUY, 1_000_100, 50) is Outcome.OK
    assert book.add(3, Side.SELL, 1_000_500, 70) is Outcome.OK
    assert book.add(4, Side.BUY, 1_000_100, 25) is Outcome.OK
    assert book.top() == Top(1_000_100, 75, 1_000_500, 70)
    assert book.depth(Side.BUY) == [Level(1_000_100, 75), Level(1_000_000, 100)]
    assert book.add(4, Side.SELL, 1, 1) is Outcome.DUPLICATE_REF
    assert book.add(5, Side.SELL, EMPTY_PRICE, 1) is Outcome.BAD_ORDER
    assert book.add(5, Side.SELL, 10, 0) is Outcome.BAD_ORDER
    assert book.execute(2, 20) is Outcome.OK
    assert book.cancel(4, 30) is Outcome.OVERSIZE  # takes the 25 left
    assert 4 not in book.orders
    assert book.best(Side.BUY) == Level(1_000_100, 30)
    assert book.delete(2) is Outcome.OK
    assert book.best(Side.BUY) == Level(1_000_000, 100)
    assert book.replace(3, 9, 1_000_400, 10) is Outcome.OK
    assert book.orders[9].side == Side.SELL and book.best(Side.SELL) == Level(1_000_400, 10)
    assert book.replace(3, 10, 1, 1) is Outcome.UNKNOWN_REF
    assert book.execute(77, 1) is Outcome.UNKNOWN_REF
    assert book.delete(1) is Outcome.OK and book.delete(9) is Outcome.OK
    assert book.top() == Top() and len(book) == 0


# ------------------------------------------------------------------------------------------------
# Books


def test_aapl_final_book(itch_data):
    """The capture's known final book, with and without the gateware's geometry."""
    case = aapl_case(BookGeometry())
    mirror = case.model()
    mirrored = [u for e in case.items for u in mirror.push(e)]
    plain = Books(slots=1)
    plain.track_locate(0, 13)
    assert list(plain.run(case.items)) == mirrored
    for books in (mirror, plain):
        assert books.top(0) == Top(3_201_400, 25, 3_203_000, 100)
        assert len(books.book(0)) == 215
    assert mirror.stats[BookStat.REFILLS] == 4
    assert mirror.stats[BookStat.UPDATES] == len(mirrored) == 2792
    # The last update is the final top; every update changes something.
    assert (mirrored[-1].bid_price, mirrored[-1].ask_shares) == (3_201_400, 100)
    assert all((a.bid_price, a.bid_shares, a.ask_price, a.ask_shares) !=
               (b.bid_price, b.bid_shares, b.ask_price, b.ask_shares)
               for a, b in pairwise(mirrored))


def test_track_every_instrument(itch_data):
    case = aapl_case(BookGeometry())
    books = Books(slots=None)
    list(books.run(case.items))
    (snap,) = books.snapshot(depth=2)
    assert snap.locate == 13 and snap.symbol == symbol_int("AAPL")
    assert snap.bids == [Level(3_201_400, 25), Level(3_201_100, 101)]
    assert snap.orders == 215


def test_cache_invariant_holds_on_a_generated_session():
    case = session_case(BookGeometry(slots=4, cache_levels=6, depth=3), 6000, seed=4)
    books = Books(geometry=case.geometry, check_cache=True)
    for n, cfg in enumerate(case.slots):
        books.track_symbol(n, cfg.symbol)
    list(books.run(case.items))
    assert books.stats[BookStat.REFILLS] > 0
    assert books.stats[BookStat.BOUND] == 4


def test_cache_invariant_holds_under_adversarial_input():
    case = random_case(9, TINY, 2000)
    books = Books(geometry=TINY, check_cache=True)
    books.track_locate(0, 11)
    list(books.run(e for e in case.items if not hasattr(e, "mask")))
    assert books.stats[BookStat.TABLE_FULL] > 0


def test_updates_only_when_the_top_changes():
    s = Seq()
    books = Books(slots=1)
    books.track_locate(0, 5)
    assert len(books.push(add(s, 5, 1, Side.BUY, 100, 10))) == 1
    assert books.push(add(s, 5, 2, Side.BUY, 90, 10)) == []   # below the best
    assert books.push(execute(s, 5, 2, 3, price=12345)) == []  # C: trade price ignored
    assert books.book(0).best(Side.BUY) == Level(100, 10)
    # A replace at the same price and size leaves the top alone: no update.
    assert books.push(replace(s, 5, 1, 3, 100, 10)) == []
    (u,) = books.push(replace(s, 5, 3, 4, 101, 10))
    assert (u.bid_price, u.bid_shares, u.seq) == (101, 10, s.n)
    assert books.push(delete(s, 5, 99)) == [] and books.stats[BookStat.UNKNOWN_REF] == 1
    (u,) = books.push(system(s, "C"))
    assert (u.bid_price, u.bid_shares, u.ask_price) == (0, 0, 0)
    assert books.push(system(s, "Q")) == [] and books.stats[BookStat.FILTERED] == 1


def test_full_set_degrades_until_the_host_clears_it():
    g = BookGeometry(slots=2, order_sets=8, order_ways=1, level_sets=4, level_ways=1)
    s = Seq()
    books = Books(geometry=g)
    books.track_locate(0, 5)
    other = [ref for ref in range(3, 100) if g.order_set(ref) != g.order_set(2)]
    twin = next(ref for ref in range(3, 100) if g.order_set(ref) == g.order_set(2))
    sell = other[0]
    sell2 = next(ref for ref in other if g.order_set(ref) != g.order_set(sell))
    books.push(add(s, 5, 2, Side.BUY, 100, 1))
    (u,) = books.push(add(s, 5, twin, Side.BUY, 101, 1))  # the order set of 2: refused
    assert u.degraded and u.bid_price == 100 and books.stats[BookStat.TABLE_FULL] == 1
    (u,) = books.push(add(s, 5, sell, Side.SELL, 300, 1))
    assert u.degraded and u.ask_price == 300
    # Price 303 = 300 mod 3: its level set (one way) already holds 300.
    assert books.push(add(s, 5, sell2, Side.SELL, 303, 1)) == []
    assert books.stats[BookStat.LEVEL_FULL] == 1
    (u,) = books.clear_degraded()
    assert not u.degraded and (u.seq, u.timestamp) == (0, 0)
    assert books.clear_degraded() == []


def test_binding_case_updates():
    case = binding_case(BookGeometry(slots=4))
    updates, stats = case.expected()
    assert stats["bound"] == 1 and stats["clears"] == 2
    assert any(u["halted"] for u in updates) and updates[-1]["slot"] in (0, 1)
    assert {u["locate"] for u in updates} == {13, 4}


def test_geometry_is_checked():
    with pytest.raises(ValueError):
        BookGeometry(order_sets=3000)
    with pytest.raises(ValueError):
        BookGeometry(cache_levels=5, depth=5)
    with pytest.raises(ValueError):
        BookGeometry(level_sets=2)
