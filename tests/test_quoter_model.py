"""The quoter, fair value and hedger models (``sim/quoter.py``, ``sim/fair_value.py``,
``sim/hedger.py``): every rounding rule of the quoter's docstring on an edge case."""

import pytest

from hdl.csr.params import FairValueMode, QuoteParams, RiskLimits
from sim.book import TopUpdate
from sim.fair_value import fair_value, microprice, mid_price
from sim.hedger import Hedger
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, LiveOrder, Origin, Status
from sim.quoter import VOL_FRAC_BITS, Quoter, ceil_tick, floor_tick
from sim.wire.ouch import MAX_LIMIT_PRICE, TimeInForce

BIG = RiskLimits(max_long=10_000, max_short=10_000)


def top(bid: int, ask: int, bid_shares: int = 100, ask_shares: int = 100, *, halted=False,
        degraded=False) -> TopUpdate:
    return TopUpdate(0, 1, bid, bid_shares if bid else 0, ask, ask_shares if ask else 0, 0, 0,
                     halted, degraded)


def params(**kw) -> QuoteParams:
    base = dict(enable=True, base_half_spread=1, tick_size=100, levels=1, size=100)
    base.update(kw)
    return QuoteParams(**base)


def quoter(book: TopUpdate | None = None, limits: RiskLimits = BIG, **kw) -> Quoter:
    q = Quoter(0, params(**kw), limits)
    if book is not None:
        q.on_book(book, 0)
    return q


def prices(quotes) -> tuple[list, list]:
    return ([b and b.price for b in quotes.bids], [a and a.price for a in quotes.asks])


# ------------------------------------------------------------------------------------------------
# Fair value


def test_tick_rounding_helpers():
    assert floor_tick(1_000_099, 100) == 1_000_000 and ceil_tick(1_000_001, 100) == 1_000_100
    assert floor_tick(1_000_000, 100) == ceil_tick(1_000_000, 100) == 1_000_000
    assert floor_tick(-1, 100) == -100 and ceil_tick(-199, 100) == -100


def test_fair_value_modes():
    book = top(1_000_000, 1_000_101, 1, 2)
    assert mid_price(book) == 1_000_050  # (2_000_101) >> 1 rounds down
    # (1_000_000 * 2 + 1_000_101 * 1) // 3 = 3_000_101 // 3 = 1_000_033 (rounded down)
    assert microprice(book) == 1_000_033
    # A heavy bid pulls the microprice toward the ask.
    assert microprice(top(1_000_000, 1_000_100, 300, 100)) == 1_000_075
    assert fair_value(book, params(fair_value_mode=FairValueMode.REFERENCE)) is None
    assert fair_value(top(0, 0), params(fair_value_mode=FairValueMode.REFERENCE,
                                        reference_price=555_500)) == 555_500
    for mode in (FairValueMode.MID, FairValueMode.MICROPRICE):
        assert fair_value(top(1_000_000, 0), params(fair_value_mode=mode)) is None
        assert fair_value(top(0, 1_000_000), params(fair_value_mode=mode)) is None


# ------------------------------------------------------------------------------------------------
# Prices


def test_basic_quote_and_rounding():
    # mid 1_000_050, half one tick: 999_950 rounds down to 999_900, 1_000_150 up to 1_000_200.
    q = quoter(top(1_000_000, 1_000_100))
    assert prices(q.quotes(0)) == ([999_900, None, None], [1_000_200, None, None])
    quotes = q.quotes(0)
    assert (quotes.fair_value, quotes.half_spread, quotes.skew) == (1_000_050, 100, 0)


def test_zero_half_spread_never_self_locks():
    # Centre on the tick grid with no spread: bid and ask would be equal; the ask moves up.
    q = quoter(top(999_900, 1_000_100), base_half_spread=0)
    assert prices(q.quotes(0)) == ([1_000_000, None, None], [1_000_100, None, None])


def test_post_only_at_the_touch():
    # One-tick market, no spread: we join both sides of the touch and lock nothing.
    q = quoter(top(1_000_000, 1_000_100), base_half_spread=0)
    assert prices(q.quotes(0)) == ([1_000_000, None, None], [1_000_100, None, None])
    # A skew pushes the centre three ticks up: the bid would cross, it stops below the ask.
    q = quoter(top(1_000_000, 1_000_100), base_half_spread=0, skew_ticks_per_unit=3 * 65536)
    assert prices(q.quotes(-1)) == ([1_000_000, None, None], [1_000_400, None, None])
    q = quoter(top(1_000_000, 1_000_100), base_half_spread=0, skew_ticks_per_unit=3 * 65536)
    assert prices(q.quotes(1)) == ([999_700, None, None], [1_000_100, None, None])
    # A book price off our tick grid: the bid stays strictly below the ask, on our grid.
    q = quoter(top(999_950, 1_000_050), base_half_spread=0)
    assert prices(q.quotes(0)) == ([1_000_000, None, None], [1_000_100, None, None])
    q = quoter(top(999_990, 1_000_050), base_half_spread=0, skew_ticks_per_unit=10 * 65536)
    # Centre 1_000_020 + 1_000: the bid stops at 1_000_000, the ask rounds up to 1_001_100.
    assert prices(q.quotes(-1)) == ([1_000_000, None, None], [1_001_100, None, None])


def test_skew_rounds_toward_minus_infinity():
    # 655/65536 tick per share: 100 shares skew 6_550_000 / 65536 = 99.94 price units.
    q = quoter(top(1_000_000, 1_000_200), skew_ticks_per_unit=655, base_half_spread=2)
    assert q.quotes(100).skew == 99
    assert q.quotes(-100).skew == -100
    # Long: both quotes move down (centre 1_000_001: 999_801 rounds down, 1_000_201 up).
    assert prices(q.quotes(100)) == ([999_800, None, None], [1_000_300, None, None])
    # Short: both move up (centre 1_000_200).
    assert prices(q.quotes(-100)) == ([1_000_000, None, None], [1_000_400, None, None])


def test_volatility_ewma():
    q = quoter(top(1_000_000, 1_000_200), vol_ewma_shift=1, vol_multiplier=256)
    assert q.vol == 0
    q.on_book(top(1_000_100, 1_000_300), 1)       # mid moved 100
    assert q.vol == (100 << VOL_FRAC_BITS) >> 1 == 12_800
    q.on_book(top(1_000_100, 1_000_300, 5, 5), 2)  # a sample of 0
    assert q.vol == 6_400
    # half = 1 tick + (6_400 * 256) >> 16 = 100 + 25
    assert q.quotes(0).half_spread == 125
    q.on_book(top(1_000_100, 0), 3)                # one side gone: no sample, mid forgotten
    assert q.vol == 6_400
    q.on_book(top(1_000_500, 1_000_700), 4)        # first mid again: still no sample
    assert q.vol == 6_400
    for t in range(5, 40):
        q.on_book(top(1_000_500, 1_000_700, t, t), t)
    # The arithmetic shift rounds toward minus infinity, so the EWMA decays all the way to 0
    # (a truncating shift would stop at 1).
    assert q.vol == 0


def test_vol_multiplier_fraction():
    q = quoter(top(1_000_000, 1_000_200), vol_ewma_shift=0, vol_multiplier=384)  # 1.5
    q.on_book(top(1_000_030, 1_000_230), 1)  # mid moved 30: vol = 30 << 8
    assert q.quotes(0).half_spread == 100 + 45


def test_levels_spacing_and_price_band():
    book = top(1_000_000, 1_000_100)
    q = quoter(book, levels=3, level_spacing=2)
    assert prices(q.quotes(0)) == ([999_900, 999_700, 999_500], [1_000_200, 1_000_400, 1_000_600])
    # Levels outside the band are dropped, not clamped onto the band's edge.
    q = quoter(book, levels=3, level_spacing=2, price_floor=999_600, price_ceiling=1_000_400)
    assert prices(q.quotes(0)) == ([999_900, 999_700, None], [1_000_200, 1_000_400, None])
    # The band includes its edges; levels beyond `levels` are never quoted.
    q = quoter(book, levels=2, price_floor=999_900, price_ceiling=1_000_200)
    assert prices(q.quotes(0)) == ([999_900, None, None], [1_000_200, None, None])
    q = quoter(top(1_999_999_800, 1_999_999_900), levels=2)
    assert prices(q.quotes(0))[1] == [None, None, None]  # above MAX_LIMIT_PRICE
    assert MAX_LIMIT_PRICE == 1_999_999_900
    q = quoter(top(100, 200), levels=3)
    assert prices(q.quotes(0))[0] == [None, None, None]  # 0 and below are no price


def test_size_shrinks_near_the_limit():
    book = top(1_000_000, 1_000_100)
    q = quoter(book, RiskLimits(max_long=250, max_short=120), levels=3, size=100)
    quotes = q.quotes(0)
    assert [b and b.quantity for b in quotes.bids] == [100, 100, 50]
    assert [a and a.quantity for a in quotes.asks] == [100, 20, None]
    quotes = q.quotes(200)
    assert [b and b.quantity for b in quotes.bids] == [50, None, None]
    assert [a and a.quantity for a in quotes.asks] == [100, 100, 100]
    quotes = q.quotes(260)  # beyond the limit: no bid at all
    assert quotes.bids == (None, None, None)
    assert q.quotes(-120).asks == (None, None, None)


def test_no_quotes_without_enable_book_or_fair_value():
    assert quoter(top(1_000_000, 1_000_100), enable=False).quotes(0).quotes == []
    assert quoter(None).quotes(0).quotes == []
    assert quoter(top(1_000_000, 0)).quotes(0).quotes == []
    q = quoter(top(1_000_000, 0), fair_value_mode=FairValueMode.REFERENCE,
               reference_price=990_000)
    assert prices(q.quotes(0)) == ([989_900, None, None], [1_000_100, None, None])


# ------------------------------------------------------------------------------------------------
# Actions


def resting(price: int, quantity: int = 100, *, side=Side.BUY, level=0, since=0, ref=7,
            busy=False) -> LiveOrder:
    order = LiveOrder(ref, 0, side, level, TimeInForce.DAY, price, quantity, quantity, 0,
                      Status.PENDING_NEW if busy else Status.LIVE, since, since)
    return order


def table(*orders: LiveOrder):
    slots = {(o.side, o.level): o for o in orders}
    return lambda side, level: slots.get((side, level))


def kinds(actions):
    return [(a.kind, a.side, a.level, a.price, a.quantity, a.ref) for a in actions]


def test_new_and_cancel_actions():
    q = quoter(top(1_000_000, 1_000_100), levels=1)
    actions = q.actions(q.quotes(0), table(), 0)
    assert kinds(actions) == [(ActionKind.NEW, Side.BUY, 0, 999_900, 100, 0),
                              (ActionKind.NEW, Side.SELL, 0, 1_000_200, 100, 0)]
    assert all(a.tif == TimeInForce.DAY and a.origin is Origin.QUOTER for a in actions)
    # A level no longer wanted is canceled; one quoted as wanted is left alone.
    stale = resting(999_500, level=1, ref=9)
    now_ok = resting(999_900, ref=8)
    ask = resting(1_000_200, side=Side.SELL, ref=10)
    assert kinds(q.actions(q.quotes(0), table(stale, now_ok, ask), 5)) == [
        (ActionKind.CANCEL, Side.BUY, 1, 0, 0, 9)]


def test_requote_threshold_and_quote_life():
    q = quoter(top(1_000_000, 1_000_200), levels=1, requote_threshold=2, min_quote_life=1000)
    quotes = q.quotes(0)  # bid 1_000_000, ask 1_000_200
    ask = resting(1_000_200, side=Side.SELL, ref=3)
    one_tick = resting(999_900, since=0)
    assert q.actions(quotes, table(one_tick, ask), 5000) == []  # moved 1 tick < 2
    two_ticks = resting(999_800, since=0)
    assert kinds(q.actions(quotes, table(two_ticks, ask), 999)) == []  # too young
    assert kinds(q.actions(quotes, table(two_ticks, ask), 1000)) == [
        (ActionKind.REPLACE, Side.BUY, 0, 1_000_000, 100, 7)]
    resized = resting(1_000_000, quantity=60, since=0)
    assert kinds(q.actions(quotes, table(resized, ask), 1000)) == [
        (ActionKind.REPLACE, Side.BUY, 0, 1_000_000, 100, 7)]
    assert q.actions(quotes, table(resized, ask), 999) == []
    busy = resting(990_000, busy=True)
    assert q.actions(quotes, table(busy, ask), 10_000) == []


def test_resting_quote_through_the_book_moves_at_once():
    q = quoter(top(1_000_000, 1_000_200), levels=1, requote_threshold=50, min_quote_life=10**9)
    q.on_book(top(999_700, 999_900), 1)  # the market dropped through our bid
    ask = resting(1_000_300, side=Side.SELL, ref=3)
    bid = resting(999_900, since=0)  # locks the new best ask
    actions = q.actions(q.quotes(0), table(bid, ask), 2)
    assert kinds(actions)[0] == (ActionKind.REPLACE, Side.BUY, 0, 999_700, 100, 7)


def test_zero_threshold_does_not_replace_an_unchanged_quote():
    q = quoter(top(1_000_000, 1_000_100), levels=1, requote_threshold=0)
    quotes = q.quotes(0)
    same = (resting(999_900), resting(1_000_200, side=Side.SELL, ref=3))
    assert q.actions(quotes, table(*same), 10**6) == []


# ------------------------------------------------------------------------------------------------
# Hedger


def test_hedger():
    limits = RiskLimits(hedge_enable=True, hedge_threshold=300, hedge_size=200)
    hedger = Hedger(2, limits)
    book = top(1_000_000, 1_000_100)
    assert hedger.action(book, 300, False) is None        # not past the threshold
    sell = hedger.action(book, 301, False)
    assert (sell.side, sell.price, sell.quantity, sell.level, sell.tif, sell.slot) == (
        Side.SELL, 1_000_000, 200, HEDGE_LEVEL, TimeInForce.IOC, 2)
    assert sell.origin is Origin.HEDGER
    buy = hedger.action(book, -350, False)
    assert (buy.side, buy.price, buy.quantity) == (Side.BUY, 1_000_100, 200)
    assert hedger.action(top(1_000_000, 1_000_100), 301, True) is None  # one already open
    assert hedger.action(top(0, 1_000_100), 400, False) is None           # no bid to hit
    small = Hedger(0, RiskLimits(hedge_enable=True, hedge_threshold=0, hedge_size=500))
    assert small.action(book, 40, False).quantity == 40  # never turns the position around
    assert Hedger(0, RiskLimits(hedge_threshold=0, hedge_size=5)).action(book, 9, False) is None


@pytest.mark.parametrize("position", [-7, 0, 7])
def test_quotes_never_lock_or_cross(position):
    # A sweep over books, spreads and skews: the post-only rule always holds, bid < ask.
    for bid in range(999_000, 1_001_000, 37):
        for width in (1, 50, 100, 101, 250):
            book = top(bid, bid + width)
            for half in (0, 1, 3):
                q = quoter(book, base_half_spread=half, levels=3, skew_ticks_per_unit=40_000)
                quotes = q.quotes(position)
                for b in quotes.bids:
                    assert b is None or (b.price < book.ask_price and b.price % 100 == 0)
                for a in quotes.asks:
                    assert a is None or (a.price > book.bid_price and a.price % 100 == 0)
                assert quotes.bids[0].price < quotes.asks[0].price
