"""The risk gate, control and order table models (``sim/risk.py``, ``sim/control.py``,
``sim/orders.py``): each control tripped by a scenario of its own."""

import random

import pytest

from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from sim.book import TopUpdate
from sim.control import Control
from sim.itch_event import Side
from sim.orders import ActionKind, Fill, OrderAction, OrderTable, Origin, Status
from sim.position import PositionBook
from sim.risk import RiskGate, RiskReason, RiskState, TokenBucket
from sim.wire.ouch import (
    Accepted,
    Canceled,
    Executed,
    Rejected,
    Replaced,
    TimeInForce,
)

R = RiskReason
BID, ASK = 1_000_000, 1_000_100  # the book: mid 1_000_050


def top(bid=BID, ask=ASK, slot=0, *, halted=False, degraded=False, bid_shares=100,
        ask_shares=100):
    return TopUpdate(slot, 1, bid, bid_shares if bid else 0, ask, ask_shares if ask else 0, 0, 0,
                     halted, degraded)


class Harness:
    """A gate over two instruments with generous limits, armed in cycle 0, books set at 1."""

    def __init__(self, *, port=None, limits=None, quote=None, heartbeat_timeout=0, arm=True):
        self.quote = [quote or QuoteParams(enable=True), QuoteParams(enable=True)]
        self.limits = [limits or RiskLimits(max_long=1000, max_short=1000, max_order_qty=500,
                                            collar=10_000),
                       RiskLimits(max_long=1000, max_short=1000, max_order_qty=500,
                                  collar=10_000)]
        self.port = port or PortLimits(rate_tokens=1000, rate_refill=1, max_live_orders=100,
                                       max_unacked_orders=100)
        self.control = Control(heartbeat_timeout)
        if arm:
            self.control.strobe(0, arm=True)
        self.orders = OrderTable()
        self.positions = PositionBook(2)
        self.gate = RiskGate(self.quote, self.limits, self.port, self.control, self.orders,
                             self.positions)
        self.gate.on_book(top(slot=0), 1)
        self.gate.on_book(top(slot=1), 1)
        self.next_ref = 1

    def action(self, kind=ActionKind.NEW, side=Side.BUY, price=BID, quantity=100, *, slot=0,
               level=0, ref=0, tif=TimeInForce.DAY):
        return OrderAction(kind, slot, side, level, price, quantity, tif, ref)

    def check(self, now=2, **kw):
        return self.gate.check(self.action(**kw), now).reason

    def enter(self, side=Side.BUY, price=BID, quantity=100, *, slot=0, level=0, accept=True,
              now=2):
        ref = self.next_ref
        self.next_ref += 1
        order = self.orders.entered(ref, self.action(side=side, price=price, quantity=quantity,
                                                     slot=slot, level=level), now)
        if accept:
            self.orders.on_message(Accepted(0, ref, "BS"[side], quantity, "X", price, "0", "Y",
                                            ref, "P", "N", "N", "L", ""), now)
        return order

    def fill(self, slot, side, quantity, now=3):
        self.positions.apply(Fill(now, slot, side, quantity, BID, "A", 0, 0))


# ------------------------------------------------------------------------------------------------
# Control


def test_control_arm_kill_latency():
    c = Control()
    assert not c.armed(0) and c.next_change(0) is None
    c.strobe(5, arm=True)
    assert not c.armed(5) and c.armed(6) and c.next_change(5) == 6
    c.strobe(9, kill=True, arm=True)  # kill wins
    assert c.armed(9) and not c.armed(10) and c.state(10).killed
    c.strobe(20, arm=True)
    assert c.armed(21) and not c.state(21).killed
    with pytest.raises(ValueError, match="in one call"):
        c.strobe(20, heartbeat=True)


def test_control_heartbeat_watchdog():
    c = Control(heartbeat_timeout=100)
    c.strobe(0, arm=True)
    assert c.next_change(1) == 102
    assert c.armed(101) and not c.armed(102) and c.state(102).heartbeat_lost
    c = Control(heartbeat_timeout=100)
    c.strobe(0, arm=True)
    c.strobe(101, heartbeat=True)  # the cycle the age reaches the timeout: still in time
    assert c.armed(202) and not c.armed(203)
    c.strobe(203, heartbeat=True)  # too late: only resets the age
    assert not c.armed(400) and c.state(400).heartbeat_lost and c.next_change(400) is None
    c.strobe(500, arm=True)        # arm clears it and restarts the watchdog
    assert c.armed(501) and not c.state(501).heartbeat_lost and not c.armed(602)
    assert Control(0).next_change(10**9) is None


# ------------------------------------------------------------------------------------------------
# Instrument state and forced cancels


def test_never_armed_denies_everything_but_cancels():
    h = Harness(arm=False)
    assert h.check() is R.DISARMED
    order = h.enter()
    assert h.check(kind=ActionKind.CANCEL, ref=order.ref) is R.PASSED


def test_kill_switch_cancels_every_live_order():
    h = Harness()
    orders = [h.enter(Side.BUY, BID, level=0), h.enter(Side.SELL, ASK, level=0),
              h.enter(Side.BUY, BID - 100, slot=1, level=1)]
    pending = h.enter(Side.SELL, ASK + 100, level=1, accept=False)
    h.control.strobe(10, kill=True)
    assert h.check(now=10) is R.PASSED and h.gate.sweep(10) == []  # kill lands next cycle
    assert h.gate.state(0, 11) == (RiskState.HALTED, R.DISARMED)
    assert h.check(now=11) is R.DISARMED
    assert h.check(now=11, kind=ActionKind.REPLACE, ref=orders[0].ref) is R.DISARMED
    swept = h.gate.sweep(11)
    assert [d.action.ref for d in swept] == [o.ref for o in orders]
    assert all(d.reason is R.DISARMED and d.action.kind is ActionKind.CANCEL and d.passed
               and d.action.origin is Origin.GATE for d in swept)
    assert h.gate.stats[R.FORCED_CANCEL] == 3
    for order in orders:  # sent: now busy until the exchange answers
        h.orders.canceling(order)
    assert h.gate.sweep(11) == []
    # The pending order is canceled by the first sweep after it is accepted.
    h.orders.on_message(Accepted(0, pending.ref, "S", 100, "X", ASK + 100, "0", "Y", 9, "P", "N",
                                 "N", "L", ""), 12)
    assert [d.action.ref for d in h.gate.sweep(12)] == [pending.ref]


def test_heartbeat_loss_halts_and_cancels():
    h = Harness(heartbeat_timeout=1000)
    order = h.enter()
    assert h.gate.next_deadline(5) == 1002
    assert h.gate.sweep(1001) == [] and h.check(now=1001) is R.PASSED
    assert h.check(now=1002) is R.DISARMED
    assert [d.action.ref for d in h.gate.sweep(1002)] == [order.ref]


def test_stale_feed():
    h = Harness(port=PortLimits(rate_tokens=100, rate_refill=1, max_live_orders=10,
                                max_unacked_orders=10, stale_feed_timeout=500))
    h.enter()
    assert h.check(now=500) is R.PASSED          # last update in cycle 1
    assert h.gate.next_deadline(2) == 501
    assert h.check(now=501) is R.STALE_FEED
    assert len(h.gate.sweep(501)) == 1
    h.gate.on_book(top(), 600)
    assert h.check(now=600) is R.PASSED
    fresh = Harness(port=PortLimits(rate_tokens=5, rate_refill=1, max_live_orders=5,
                                    max_unacked_orders=5, stale_feed_timeout=500))
    fresh.gate._slots[0].last_update = None  # never updated
    assert fresh.check(now=2) is R.STALE_FEED


def test_feed_gap():
    h = Harness()
    h.gate.feed_gap = True
    assert h.check() is R.FEED_GAP and h.check(slot=1) is R.FEED_GAP
    h.gate.feed_gap = False
    assert h.check() is R.PASSED


@pytest.mark.parametrize(("book", "reason"), [
    (top(halted=True), R.BOOK_HALTED),
    (top(degraded=True), R.BOOK_DEGRADED),
    (top(BID, BID), R.BOOK_CROSSED),          # locked
    (top(ASK, BID), R.BOOK_CROSSED),          # crossed
    (top(halted=True, degraded=True), R.BOOK_HALTED),
])
def test_bad_books_halt(book, reason):
    h = Harness()
    order = h.enter()
    h.gate.on_book(book, 2)
    assert h.check(now=3, price=BID - 1000) is reason
    assert h.check(now=3, slot=1, price=BID - 1000) is R.PASSED  # the other instrument trades
    assert [d.action.ref for d in h.gate.sweep(3)] == [order.ref]


def test_market_maker_protection():
    h = Harness(limits=RiskLimits(max_long=10_000, max_short=10_000, max_order_qty=500,
                                  collar=10_000, mmp_threshold=300, mmp_window=1000))
    h.gate.on_fill(0, 100, 10)
    h.gate.on_fill(0, 150, 500)
    h.gate.on_fill(0, 100, 1010)      # a new window: 100
    assert h.check(now=1011) is R.PASSED
    h.gate.on_fill(0, 199, 1500)      # 299 in the window
    assert h.check(now=1501) is R.PASSED
    h.gate.on_fill(0, 1, 2009)        # 300: tripped
    order = h.enter(now=2009)
    assert h.check(now=2010) is R.MMP_TRIPPED and h.check(now=2010, slot=1) is R.PASSED
    assert [d.action.ref for d in h.gate.sweep(5000)] == [order.ref]  # stays tripped
    h.control.strobe(6000, arm=True)
    h.gate.rearm(6000)
    assert h.check(now=6000) is R.MMP_TRIPPED and h.check(now=6001) is R.PASSED
    off = Harness()
    off.gate.on_fill(0, 10**6, 5)     # threshold 0 disables
    assert off.check(now=6) is R.PASSED


# ------------------------------------------------------------------------------------------------
# Order checks


def test_position_limits_count_worst_case_exposure():
    h = Harness(limits=RiskLimits(max_long=300, max_short=200, max_order_qty=500, collar=10_000))
    h.fill(0, Side.BUY, 100)
    h.enter(Side.BUY, BID, 100, level=0)
    assert h.check(quantity=100, level=1) is R.PASSED    # 100 + 100 + 100 = 300
    assert h.check(quantity=101, level=1) is R.MAX_LONG
    # A replace counts max(open, new) for itself, not twice.
    first = h.orders.at(0, Side.BUY, 0)
    assert h.check(kind=ActionKind.REPLACE, ref=first.ref, quantity=200) is R.PASSED
    assert h.check(kind=ActionKind.REPLACE, ref=first.ref, quantity=201) is R.MAX_LONG
    # Sells: -(100 - 300) = 200 short at worst.
    assert h.check(side=Side.SELL, price=ASK, quantity=300) is R.PASSED
    assert h.check(side=Side.SELL, price=ASK, quantity=301) is R.MAX_SHORT
    # A pending replace counts the larger of its two sizes.
    h.orders.replacing(first, 99, BID, 150, 4)
    assert h.orders.exposure(0, Side.BUY) == 150
    assert h.check(quantity=50, level=1) is R.PASSED and h.check(quantity=51, level=1) \
        is R.MAX_LONG


def test_reducing_only_reduces():
    h = Harness()
    h.fill(0, Side.BUY, 400)
    h.limits[0].max_long = 300  # the host lowered the limit below the position
    assert h.gate.state(0, 5) == (RiskState.REDUCING, R.REDUCE_ONLY)
    assert h.check(quantity=1) is R.REDUCE_ONLY
    assert h.check(side=Side.SELL, price=ASK, quantity=400) is R.PASSED
    assert h.check(side=Side.SELL, price=ASK, quantity=401) is R.REDUCE_ONLY  # would flip
    h.enter(Side.SELL, ASK, 300)
    assert h.check(side=Side.SELL, price=ASK, quantity=100, level=1) is R.PASSED
    assert h.check(side=Side.SELL, price=ASK, quantity=101, level=1) is R.REDUCE_ONLY
    assert h.gate.sweep(5) == []  # reducing does not cancel


def test_order_size_and_bad_orders():
    h = Harness()
    assert h.check(quantity=500) is R.PASSED
    assert h.check(quantity=501) is R.MAX_ORDER_QTY
    assert h.check(quantity=0) is R.BAD_ORDER
    assert h.check(quantity=1_000_000) is R.BAD_ORDER
    assert h.check(price=0) is R.BAD_ORDER


def test_collar_around_each_fair_value():
    h = Harness(limits=RiskLimits(max_long=1000, max_short=1000, max_order_qty=500, collar=1000))
    assert h.check(price=1_000_050 - 1000) is R.PASSED   # mid 1_000_050
    assert h.check(price=1_000_050 - 1001) is R.COLLAR
    assert h.check(side=Side.SELL, price=1_001_050) is R.PASSED
    assert h.check(side=Side.SELL, price=1_001_051) is R.COLLAR
    h.quote[0].fair_value_mode = FairValueMode.MICROPRICE
    h.gate.on_book(top(bid_shares=300, ask_shares=100), 2)  # microprice 1_000_075
    assert h.check(now=3, price=999_075) is R.PASSED and h.check(now=3, price=999_074) is \
        R.COLLAR
    h.quote[0].fair_value_mode = FairValueMode.REFERENCE
    assert h.check(now=3, price=999_075) is R.NO_FAIR_VALUE  # reference 0: none
    h.quote[0].reference_price = 990_000
    assert h.check(now=3, price=989_000) is R.PASSED and h.check(now=3, price=991_001) is \
        R.COLLAR
    h.quote[0].fair_value_mode = FairValueMode.MID
    h.gate.on_book(top(BID, 0), 4)
    assert h.check(now=5) is R.NO_FAIR_VALUE


def test_never_locks_or_crosses_the_book():
    h = Harness()
    assert h.check(price=ASK - 1) is R.PASSED
    assert h.check(price=ASK) is R.LOCKS_BOOK
    assert h.check(side=Side.SELL, price=BID) is R.LOCKS_BOOK
    assert h.check(side=Side.SELL, price=BID + 1) is R.PASSED
    # An immediate-or-cancel (hedge) order is meant to take liquidity.
    assert h.check(price=ASK, tif=TimeInForce.IOC) is R.PASSED


def test_max_live_and_unacked():
    h = Harness(port=PortLimits(rate_tokens=100, rate_refill=1, max_live_orders=3,
                                max_unacked_orders=1))
    h.enter(level=0)
    h.enter(level=1, accept=False)
    assert h.check(level=2) is R.MAX_UNACKED        # 1 pending + this one > 1
    h.orders.on_message(Accepted(0, 2, "B", 100, "X", BID, "0", "Y", 2, "P", "N", "N", "L", ""),
                        3)
    assert h.check(now=3, level=2) is R.PASSED
    h.enter(side=Side.SELL, price=ASK, level=0)
    assert h.check(now=3, level=2) is R.MAX_LIVE   # 3 live + 1 > 3
    first = h.orders.at(0, Side.BUY, 0)
    assert h.check(now=3, kind=ActionKind.REPLACE, ref=first.ref) is R.PASSED  # not a new one


def test_token_bucket_rate():
    h = Harness(port=PortLimits(rate_tokens=2, rate_refill=10, max_live_orders=100,
                                max_unacked_orders=100))
    assert [h.check(now=1) for _ in range(3)] == [R.PASSED, R.PASSED, R.RATE]
    assert h.check(now=10) is R.RATE
    assert h.check(now=11) is R.PASSED and h.check(now=11) is R.RATE  # one token per 10 cycles
    order = h.enter()
    assert h.check(now=11, kind=ActionKind.CANCEL, ref=order.ref) is R.PASSED  # never limited
    assert h.check(now=1000) is R.PASSED and h.check(now=1000) is R.PASSED  # refilled to 2 only
    assert h.check(now=1000) is R.RATE


def test_token_bucket_matches_a_cycle_by_cycle_counter():
    rng = random.Random(3)
    for _ in range(30):
        depth, refill = rng.randint(1, 5), rng.randint(1, 7)
        bucket = TokenBucket(depth, refill)
        tokens, count = depth, 0
        takes = sorted(rng.sample(range(300), 60))
        for cycle in range(300):
            if cycle in takes:
                expect = tokens > 0
                assert bucket.take(cycle) is expect
                tokens -= expect
            # The gateware's counter, one clock edge at a time.
            if tokens < depth:
                count += 1
                if count == refill:
                    tokens, count = tokens + 1, 0
            else:
                count = 0


def test_unknown_orders_and_priority():
    h = Harness()
    assert h.check(kind=ActionKind.CANCEL, ref=42) is R.UNKNOWN_ORDER
    order = h.enter()
    h.orders.canceling(order)
    assert h.check(kind=ActionKind.CANCEL, ref=order.ref) is R.UNKNOWN_ORDER   # busy
    assert h.check(kind=ActionKind.REPLACE, ref=order.ref) is R.UNKNOWN_ORDER
    other = h.enter(Side.SELL, ASK)
    assert h.check(kind=ActionKind.REPLACE, ref=other.ref, side=Side.BUY) is R.UNKNOWN_ORDER
    # Several failures: the first in enum order is the reason.
    h.gate.feed_gap = True
    assert h.check(price=0, quantity=10**7) is R.FEED_GAP
    h.gate.feed_gap = False
    assert h.check(price=ASK, quantity=501) is R.LOCKS_BOOK
    assert h.gate.stats[R.UNKNOWN_ORDER] == 4 and h.gate.stats[R.FEED_GAP] == 1


def test_counters_match_decisions():
    h = Harness(port=PortLimits(rate_tokens=3, rate_refill=1000, max_live_orders=100,
                                max_unacked_orders=100))
    reasons = [h.check(now=5, price=p) for p in (BID, ASK, 0, BID, BID, BID)]
    assert reasons == [R.PASSED, R.LOCKS_BOOK, R.BAD_ORDER, R.PASSED, R.PASSED, R.RATE]
    assert {r: n for r, n in h.gate.stats.items() if n} == {
        R.PASSED: 3, R.LOCKS_BOOK: 1, R.BAD_ORDER: 1, R.RATE: 1}


# ------------------------------------------------------------------------------------------------
# Order table


def test_order_table_lifecycle():
    h = Harness()
    t = h.orders
    a = h.enter(Side.BUY, BID, 100, accept=False)
    assert a.status is Status.PENDING_NEW and t.unacked_count == 1 and a.busy
    t.on_message(Accepted(0, a.ref, "B", 100, "X", BID, "0", "Y", 1, "P", "N", "N", "L", ""), 5)
    assert a.status is Status.LIVE and a.since == 5 and t.unacked_count == 0
    t.replacing(a, 50, BID + 100, 120, 6)
    assert t.unacked_count == 1 and a.exposure == 120
    slot, fill = t.on_message(Executed(0, a.ref, 30, BID, "A", 1), 7)  # the original trades
    assert slot == 0 and fill.quantity == 30 and a.open == 70
    t.on_message(Replaced(0, a.ref, 50, "B", 90, "X", BID + 100, "0", "Y", 2, "P", "N", "N",
                          "L", ""), 8)
    assert (a.ref, a.price, a.quantity, a.open, a.executed, a.since) == (50, BID + 100, 120, 90,
                                                                         30, 8)
    assert t.get(1) is None and t.get(50) is a and t.unacked_count == 0
    t.replacing(a, 51, BID, 200, 9)
    t.on_message(Rejected(0, 51, 0x13, ""), 10)  # the original stays as it was
    assert a.replace is None and a.ref == 50 and t.live_count == 1
    t.canceling(a)
    t.on_message(Canceled(0, 50, 90, "U"), 11)
    assert t.live_count == 0 and t.at(0, Side.BUY, 0) is None
    assert t.on_message(Canceled(0, 50, 1, "U"), 12) == (None, None) and t.unknown == 1


def test_order_table_end_takes_pending_replace():
    h = Harness()
    t = h.orders
    a = h.enter()
    t.replacing(a, 9, BID, 100, 3)
    t.on_message(Executed(0, a.ref, 100, BID, "A", 1), 4)  # filled before the replace landed
    assert t.live_count == 0 and t.unacked_count == 0
    b = h.enter(accept=False)
    t.on_message(Rejected(0, b.ref, 0x13, ""), 5)
    assert t.live_count == 0
    c = h.enter(accept=False)
    t.on_message(Accepted(0, c.ref, "B", 100, "X", BID, "0", "Y", 1, "P", "N", "N", "D", ""), 6)
    assert t.live_count == 0  # accepted dead
    with pytest.raises(ValueError, match="already holds"):
        h.enter()
        h.enter()


def test_reasons_make_a_counter_layout():
    from hdl.stats import stats_layout  # the gateware's counters: one field per reason

    layout = stats_layout(RiskReason)
    assert [name for name, _ in layout] == [r.name.lower() for r in RiskReason]
    assert [r.value for r in RiskReason] == list(range(len(RiskReason)))  # priority order
