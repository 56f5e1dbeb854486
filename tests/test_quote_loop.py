"""The gateware loop (quoter -> requoter -> risk gate -> OUCH -> exchange -> answers -> order
table -> quoter) closed by the model's book and exchange simulator (``host/gatesim/loop_tb.py``).

Every order the gateware sends is checked by the independent checker of the model's tests
(position, size, collar, rate, live and unacknowledged limits, nothing on a locked, crossed,
halted or stale book, UserRefNums increasing, positions equal to the exchange's executions),
and compared with the model's closed loop on the same feed.
"""

import itertools

import pytest

from hdl.quote.loop import DISARM_TO_CANCEL, TICK_TO_ORDER
from host.gatesim.loop_tb import LoopBench, compress
from sim.market_maker import HostAction, HostKind, MarketMaker, MarketMakerConfig
from sim.wire.ouch import CancelOrder
from tests.test_market_maker_model import check_invariants, instruments, port, session_feed

# Pauses between feed items are cut to this many cycles: long enough for the loop to answer
# every update (its tick to order is 44 cycles) and the exchange round trip, short enough to
# simulate a few hundred messages in a minute.
MAX_GAP = 300
LATENCY = 200


def _config(symbols, **port_kw) -> MarketMakerConfig:
    return MarketMakerConfig(instruments(symbols), port(**port_kw), latency=LATENCY)


@pytest.fixture(scope="module")
def session():
    symbols, feed = session_feed(3, 200, 2)
    return symbols, compress(feed, MAX_GAP)


@pytest.fixture(scope="module")
def generous(session):
    """A run where the port's rate and unacknowledged limits leave room: every decision then
    depends on the book, the orders and the position only, not on the cycle it is taken in."""
    symbols, feed = session
    kw = dict(rate_tokens=64, rate_refill=10, max_unacked_orders=12)
    model = MarketMaker(_config(symbols, **kw)).run(feed)
    gateware = LoopBench(_config(symbols, **kw)).run(feed)
    return _config(symbols, **kw), feed, model, gateware


def test_the_gateware_loop_sends_the_models_orders(generous):
    cfg, feed, model, gateware = generous
    kinds = check_invariants(cfg, feed, gateware)
    assert kinds["EnterOrder"] and kinds["ReplaceOrder"] and kinds["CancelOrder"]
    assert len(gateware.sent) == len(model.sent)
    for k, (want, got) in enumerate(zip(model.sent, gateware.sent, strict=True)):
        assert got.packet == want.packet, f"order {k}: model {want.message}, gateware {got.message}"
    assert [p.shares for p in gateware.positions] == [p.shares for p in model.positions]
    assert gateware.stats["order_table"]["fills"] == len(model.fills)
    assert gateware.stats["ouch_rx"]["answers"] == len(model.answers)
    quoter = gateware.stats["quoter"]
    assert quoter["updates"] + quoter["reprices"] == (quoter["superseded"] + quoter["quote_sets"]
                                                      + quoter["bad_slot"])


def test_tight_limits_hold_in_gateware(session):
    """With the model tests' tight port (4 tokens, a token per 3,000 cycles, 3 unacknowledged
    orders) the rate and unacknowledged limits deny, and the gateware never breaks them."""
    symbols, feed = session
    cfg = _config(symbols)
    gateware = LoopBench(cfg).run(feed[:80])
    check_invariants(cfg, feed, gateware)
    denied = gateware.stats["risk"]
    assert denied["rate"] > 0 and denied["collar"] > 0
    assert len(gateware.sent) == denied["passed"]


def test_tick_to_order(generous):
    """The first order of an idle loop leaves TICK_TO_ORDER cycles after its top update."""
    _, _, _, gateware = generous
    first = gateware.sent[0]
    trigger = max(cycle for cycle, _ in gateware.top_cycles if cycle <= first.time)
    assert first.first_beat - trigger == TICK_TO_ORDER == 44


@pytest.mark.parametrize("cause", ["killed", "heartbeat_lost"])
def test_disarm_cancels_every_live_order(session, cause):
    """A kill, or the heartbeat watchdog firing, between two feed items: every live order is
    canceled, nothing else is sent, and the cancels are the model's (its kill at the cycle
    before ``armed`` falls). The cycles are those the docs state."""
    symbols, feed = session
    kill_at = feed[59][0] + 250   # the loop has sent what the last item asked for
    cfg = _config(symbols, rate_tokens=64, rate_refill=10, max_unacked_orders=12)
    bench = LoopBench(cfg)
    gateware = bench.run(feed[:60], kill_at=kill_at, cause=cause)
    model = MarketMaker(cfg).run(feed[:60], [HostAction(0, HostKind.ARM),
                                             HostAction(kill_at - 1, HostKind.KILL)])
    after = [r for r in gateware.sent if r.time >= kill_at]
    assert len(after) >= 2 and all(isinstance(r.message, CancelOrder) for r in after)
    assert [r.packet for r in after] == [r.packet for r in model.sent if r.time >= kill_at - 1]
    assert [r.packet for r in gateware.sent] == [r.packet for r in model.sent]
    # Every order live at the kill is canceled: the exchange has none left.
    assert not [o for o in bench.exchange.orders.values() if o.open > 0]
    # The first cancel leaves DISARM_TO_CANCEL cycles after `armed` falls; each further one
    # waits for the table to record the previous (and may wait for a denied quote action).
    beats = [r.first_beat - kill_at for r in after]
    assert DISARM_TO_CANCEL - 1 <= beats[0] <= DISARM_TO_CANCEL == 21
    assert all(16 <= b - a <= 32 for a, b in itertools.pairwise(beats)), beats
    print(f"{cause}: {len(after)} cancels, the first {beats[0]} and the last {beats[-1]} "
          "cycles after armed falls")
