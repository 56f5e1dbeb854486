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
from sim.market_maker import MarketMaker, MarketMakerConfig
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
    symbols, feed = session_feed(3, 160, 2)
    return symbols, compress(feed, MAX_GAP)


def test_the_gateware_loop_sends_the_models_orders(session):
    """With port rate and unacknowledged limits that leave room, every decision depends on
    the book, the orders and the position only, not on the cycle it is taken in: the gateware
    then sends the model's orders byte for byte."""
    symbols, feed = session
    kw = dict(rate_tokens=64, rate_refill=10, max_unacked_orders=12)
    cfg = _config(symbols, **kw)
    model = MarketMaker(cfg).run(feed)
    gateware = LoopBench(_config(symbols, **kw)).run(feed)
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
    # The first order of an idle loop leaves TICK_TO_ORDER cycles after its top update.
    first = gateware.sent[0]
    trigger = max(cycle for cycle, _ in gateware.top_cycles if cycle <= first.time)
    assert first.first_beat - trigger == TICK_TO_ORDER == 35


def test_tight_limits_hold_in_gateware(session):
    """With the model tests' tight port (4 tokens, a token per 3,000 cycles, 3 unacknowledged
    orders) the rate and unacknowledged limits deny, and the gateware never breaks them."""
    symbols, feed = session
    cfg = _config(symbols)
    gateware = LoopBench(cfg).run(feed[:60])
    check_invariants(cfg, feed, gateware)
    denied = gateware.stats["risk"]
    assert denied["rate"] > 0 and denied["collar"] > 0
    assert len(gateware.sent) == denied["passed"]


@pytest.mark.parametrize("cause", ["killed", "heartbeat_lost"])
def test_disarm_cancels_every_live_order(session, cause):
    """A kill, or the heartbeat watchdog firing, between two feed items: every live order is
    canceled and nothing else is sent; before it, the model's orders. The cycles are those the
    docs state."""
    symbols, feed = session
    kill_at = feed[44][0] + 250   # the loop has sent what the last item asked for
    cfg = _config(symbols, rate_tokens=64, rate_refill=10, max_unacked_orders=12)
    bench = LoopBench(cfg)
    gateware = bench.run(feed[:45], kill_at=kill_at, cause=cause)
    model = MarketMaker(cfg).run(feed[:45])
    before = [r.packet for r in gateware.sent if r.time < kill_at]
    assert before == [r.packet for r in model.sent if r.time < kill_at]
    after = [r for r in gateware.sent if r.time >= kill_at]
    assert len(after) >= 2 and all(isinstance(r.message, CancelOrder) for r in after)
    # Exactly the orders live at the kill (the sweeper takes them instrument by instrument,
    # each instrument's oldest first).
    live = sorted(ref for ref, _ in model_live_at(model, kill_at))
    assert sorted(r.message.user_ref_num for r in after) == live
    # The exchange has nothing open left.
    assert not [o for o in bench.exchange.orders.values() if o.open > 0]
    # The first cancel leaves DISARM_TO_CANCEL cycles after `armed` falls; each further one
    # waits for the table to record the previous (and may wait for a denied quote action).
    beats = [r.first_beat - kill_at for r in after]
    assert DISARM_TO_CANCEL - 1 <= beats[0] <= DISARM_TO_CANCEL == 18
    assert all(15 <= b - a <= 32 for a, b in itertools.pairwise(beats)), beats
    print(f"{cause}: {len(after)} cancels, the first {beats[0]} and the last {beats[-1]} "
          "cycles after armed falls")


def model_live_at(result, time: int) -> list[tuple[int, object]]:
    """The orders the model's exchange holds open just before cycle ``time``: replay the
    exchange's answers up to then (UserRefNum -> open shares)."""
    from sim.wire.ouch import Accepted, Canceled, Executed, Rejected, Replaced
    open_shares = {}
    for when, message in result.answers:
        if when >= time:
            break
        if isinstance(message, Accepted) and message.order_state != "D":
            open_shares[message.user_ref_num] = message.quantity
        elif isinstance(message, Replaced):
            open_shares.pop(message.orig_user_ref_num, None)
            if message.order_state != "D" and message.quantity:
                open_shares[message.user_ref_num] = message.quantity
        elif isinstance(message, Canceled | Executed):
            left = open_shares.get(message.user_ref_num, 0) - message.quantity
            if left > 0:
                open_shares[message.user_ref_num] = left
            else:
                open_shares.pop(message.user_ref_num, None)
        elif isinstance(message, Rejected):
            open_shares.pop(message.user_ref_num, None)
    return list(open_shares.items())


def test_a_run_ends_at_until_and_writes_its_waveform(session, tmp_path):
    """What replay's --waves uses: the run ends in the cycle asked for, and the VCD holds the
    loop's signals up to there."""
    symbols, feed = session
    waves = tmp_path / "loop.vcd"
    run = LoopBench(_config(symbols)).run(feed, until=1_500, vcd=str(waves))
    assert run.stopped and run.cycles == 1_500 and run.fed < len(feed)
    text = waves.read_text()
    assert "$enddefinitions" in text and "quoter" in text and "ouch_tx" in text
    times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
    assert times and 1_400 * 10**7 < max(times) <= 1_501 * 10**7   # 10 ns a cycle, in fs
