"""The closed loop (``sim/market_maker.py``) on generated sessions and the real AAPL file.

An independent checker replays each run's output against its own book and asserts the risk
invariants over the whole order stream: never beyond position or size limits, never outside the
collar, never over the rate, nothing locking or crossing the book, nothing on a halted or stale
instrument, nothing after a kill or a heartbeat loss. It shares no code with the risk gate: it
works from the order bytes, the exchange's answers and the feed.
"""

import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from sim.book import Books
from sim.capture import read_binaryfile
from sim.generator import (
    SessionConfig,
    captured,
    default_instruments,
    generate_frames,
    generate_messages,
)
from sim.itch_event import symbol_int
from sim.market_maker import (
    FEED_GAP,
    HostAction,
    HostKind,
    MarketMaker,
    MarketMakerConfig,
    QuotedInstrument,
    Trigger,
    timed_events,
    timed_frame_events,
)
from sim.orders import Origin
from sim.risk import RiskReason
from sim.udp_rx import UdpRxConfig
from sim.wire.net import TEST_FEED
from sim.wire.ouch import (
    Accepted,
    Canceled,
    CancelOrder,
    EnterOrder,
    Executed,
    Rejected,
    Replaced,
    ReplaceOrder,
    decode_inbound_stream,
    decode_outbound_stream,
    frame,
)

R = RiskReason
AAPL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "itch" / \
    "aapl-20200130-premarket-10k.itch"


@cache
def session_feed(seed: int, messages: int, count: int) -> tuple[tuple[str, ...], tuple]:
    insts = default_instruments(count)
    cfg = SessionConfig(seed=seed, messages=messages, instruments=insts)
    return tuple(i.symbol for i in insts), tuple(timed_events(generate_messages(cfg)))


def instruments(symbols, **overrides) -> list[QuotedInstrument]:
    out = []
    for k, symbol in enumerate(symbols):
        quote = QuoteParams(enable=True, base_half_spread=1, levels=3, level_spacing=1,
                            size=100, skew_ticks_per_unit=400, vol_multiplier=128,
                            requote_threshold=1, min_quote_life=2_000,
                            fair_value_mode=(FairValueMode.MID, FairValueMode.MICROPRICE)[k % 2])
        risk = RiskLimits(max_long=400, max_short=300, max_order_qty=100, collar=300,
                          hedge_enable=k == 0, hedge_threshold=250, hedge_size=100)
        for name, value in overrides.items():
            target = quote if hasattr(quote, name) else risk
            setattr(target, name, value)
        out.append(QuotedInstrument(symbol, quote, risk))
    if len(out) > 2:
        out[2].risk.max_order_qty = 0  # the reset value: every order of this one is refused
    return out


def port(**kw) -> PortLimits:
    base = dict(rate_tokens=4, rate_refill=3_000, max_live_orders=10, max_unacked_orders=3,
                stale_feed_timeout=0)
    base.update(kw)
    return PortLimits(**base)


def run(symbols, feed, host=None, **kw):
    config_kw = {k: kw.pop(k) for k in ("heartbeat_timeout", "latency") if k in kw}
    cfg = MarketMakerConfig(instruments(symbols, **kw.pop("overrides", {})), port(**kw),
                            **config_kw)
    mm = MarketMaker(cfg)
    return cfg, mm, mm.run(feed, host)


# ------------------------------------------------------------------------------------------------
# The independent checker


def armed_spans(host, heartbeat_timeout):
    """Cycle spans [start, end) in which trading is allowed, from the host actions alone."""
    spans, start, beat = [], None, None
    by_time = {}
    for action in host:
        by_time.setdefault(action.time, set()).add(action.kind)
    for time in sorted(by_time):
        kinds = by_time[time]
        if start is not None and heartbeat_timeout and beat + heartbeat_timeout + 2 <= time:
            spans.append((start, beat + heartbeat_timeout + 2))  # the watchdog fired
            start = None
        if HostKind.KILL in kinds:
            if start is not None:
                spans.append((start, time + 1))
            start = None
        elif HostKind.ARM in kinds and start is None:
            start = time + 1
        if kinds & {HostKind.ARM, HostKind.HEARTBEAT}:
            beat = time
    if start is not None:
        spans.append((start, beat + heartbeat_timeout + 2 if heartbeat_timeout else None))
    return spans


def check_invariants(cfg, feed, result, host=None):
    """Assert every risk invariant over a run's output; returns what it checked."""
    host = host if host is not None else [HostAction(0, HostKind.ARM)]
    n = len(cfg.instruments)
    books = Books(slots=n)
    for slot, inst in enumerate(cfg.instruments):
        books.track_symbol(slot, symbol_int(inst.symbol))
    slot_of_symbol = {inst.symbol.ljust(8): k for k, inst in enumerate(cfg.instruments)}
    tops, last_update, gap = {}, {}, False
    spans = armed_spans(host, cfg.heartbeat_timeout)
    order_slot, order_side = {}, {}
    fed, last_ref, sends = 0, 0, []
    # The output decodes to exactly the messages recorded.
    assert decode_inbound_stream(result.order_stream) == [r.message for r in result.sent]

    for record in result.sent:
        while fed < record.feed_items:
            time, item = feed[fed]
            if item == FEED_GAP:
                gap = True
            else:
                for update in books.push(item):
                    tops[update.slot], last_update[update.slot] = update, time
            fed += 1
        m = record.message
        if isinstance(m, CancelOrder):
            assert m.quantity == 0 and m.user_ref_num in order_slot
            continue
        if isinstance(m, EnterOrder):
            slot, side, ref = slot_of_symbol[m.symbol], m.side, m.user_ref_num
        else:
            assert isinstance(m, ReplaceOrder)
            slot, side, ref = order_slot[m.orig_user_ref_num], order_side[m.orig_user_ref_num], \
                m.user_ref_num
        assert ref > last_ref, "UserRefNum must strictly increase"
        last_ref = ref
        order_slot[ref], order_side[ref] = slot, side
        inst = cfg.instruments[slot]
        t = record.time
        # Nothing outside an armed span (kill, heartbeat loss, never armed).
        assert any(s <= t and (e is None or t < e) for s, e in spans), f"order at {t} disarmed"
        assert not gap, "an order after an unrecovered feed gap"
        timeout = cfg.port.stale_feed_timeout
        assert not timeout or t - last_update[slot] < timeout, "an order on a stale feed"
        assert 1 <= m.quantity <= inst.risk.max_order_qty
        top = tops[slot]
        assert not top.halted and not top.degraded
        bid, ask = top.bid_price, top.ask_price
        assert not (bid and ask and bid >= ask), "an order on a crossed or locked book"
        mode = inst.quote.fair_value_mode
        assert mode == FairValueMode.REFERENCE or (bid and ask), "no fair value"
        if mode == FairValueMode.MID:
            fv = (bid + ask) // 2
        elif mode == FairValueMode.MICROPRICE:
            fv = (bid * top.ask_shares + ask * top.bid_shares) // (top.bid_shares
                                                                   + top.ask_shares)
        else:
            fv = inst.quote.reference_price
        assert abs(m.price - fv) <= inst.risk.collar, "outside the collar"
        if m.time_in_force == "0":
            assert (not ask or m.price < ask) if side == "B" else (not bid or m.price > bid), \
                "locks or crosses"
        sends.append(t)

    # Never over the rate: the documented bucket (full at the start, a token per `refill`
    # cycles spent below full) has a token for every order sent.
    depth, refill = cfg.port.rate_tokens, cfg.port.rate_refill
    tokens, count, last = depth, 0, 0
    for t in sends:
        if tokens < depth:
            count += t - last
            tokens, count = min(depth, tokens + count // refill), count % refill
            count = 0 if tokens == depth else count
        last = t
        assert tokens > 0, f"over the rate at cycle {t}"
        tokens -= 1

    # Positions from the exchange's executions: never beyond a limit.
    position = [0] * n
    for _, m in result.answers:
        if isinstance(m, Executed):
            slot = order_slot[m.user_ref_num]
            position[slot] += m.quantity if order_side[m.user_ref_num] == "B" else -m.quantity
            risk = cfg.instruments[slot].risk
            assert -risk.max_short <= position[slot] <= risk.max_long, "beyond a position limit"
        elif isinstance(m, Replaced):
            order_slot[m.user_ref_num] = order_slot[m.orig_user_ref_num]
    assert position == [p.shares for p in result.positions]

    # Live and unacknowledged orders, answers and sends in the order the loop took them.
    events = sorted([(k, 1, m) for k, (_, m) in enumerate(result.answers)]
                    + [(r.answers_seen, 0, r.message) for r in result.sent],
                    key=lambda e: (e[0], e[1]))
    live, pending, replacing, open_shares = set(), set(), {}, {}
    for _, is_answer, m in events:
        is_send = not is_answer
        if is_send and isinstance(m, EnterOrder):
            live.add(m.user_ref_num)
            pending.add(m.user_ref_num)
        elif is_send and isinstance(m, ReplaceOrder):
            replacing[m.user_ref_num] = m.orig_user_ref_num
        elif isinstance(m, Accepted):
            pending.discard(m.user_ref_num)
            open_shares[m.user_ref_num] = m.quantity
            if m.order_state == "D":
                live.discard(m.user_ref_num)
        elif isinstance(m, Replaced):
            replacing.pop(m.user_ref_num, None)
            live.discard(m.orig_user_ref_num)
            if m.order_state == "L" and m.quantity:
                live.add(m.user_ref_num)
                open_shares[m.user_ref_num] = m.quantity
        elif isinstance(m, Rejected):
            if replacing.pop(m.user_ref_num, None) is None:
                pending.discard(m.user_ref_num)
                live.discard(m.user_ref_num)
        elif isinstance(m, Canceled | Executed):
            open_shares[m.user_ref_num] -= m.quantity
            if open_shares[m.user_ref_num] == 0:
                live.discard(m.user_ref_num)
                for new, orig in list(replacing.items()):
                    if orig == m.user_ref_num:
                        del replacing[new]
        if is_send:
            assert len(live) <= cfg.port.max_live_orders, "too many live orders"
            assert len(pending) + len(replacing) <= cfg.port.max_unacked_orders, "unacked"
    return Counter(type(r.message).__name__ for r in result.sent)


# ------------------------------------------------------------------------------------------------
# Generated sessions


@pytest.mark.parametrize("seed", [1, 2])
def test_invariants_over_a_generated_session(seed):
    symbols, feed = session_feed(seed, 6_000, 3)
    cfg, mm, result = run(symbols, feed)
    sent = check_invariants(cfg, feed, result)
    assert sent["EnterOrder"] and sent["ReplaceOrder"] and sent["CancelOrder"]
    assert result.fills and result.history
    denials = result.denials
    # The limits were reached, so the invariants above were tested where they bind.
    for reason in (R.PASSED, R.RATE, R.COLLAR, R.MAX_ORDER_QTY, R.MAX_UNACKED):
        assert denials[reason] > 0, reason
    assert denials[R.MAX_LONG] + denials[R.MAX_SHORT] > 0
    # Instrument 2 quotes more than max_order_qty: refused by that check or an earlier one.
    third = [d for d in result.decisions if d.action.slot == 2]
    assert third and all(not d.passed and d.reason <= R.MAX_ORDER_QTY for d in third)
    # Every denial is counted, and every decision carries its reason.
    counted = Counter(d.reason for d in result.decisions if d.action.origin is not Origin.GATE)
    assert all(denials[r] == counted[r] for r in RiskReason if r is not R.FORCED_CANCEL)
    # Nothing is left unanswered: the order table agrees with the exchange.
    assert mm.orders.unacked_count == 0 and result.unknown_answers == 0
    assert {o.ref for o in mm.orders} == set(mm.exchange.orders)


def test_gate_alone_holds_the_position_limits():
    # The quoter sizes its quotes as if there were no limit: only the gate stands in the way.
    symbols, feed = session_feed(1, 6_000, 3)
    cfg = MarketMakerConfig(instruments(symbols, max_long=120, max_short=120,
                                        hedge_enable=False), port())
    mm = MarketMaker(cfg)
    for quoter in mm.quoters:
        quoter.limits = RiskLimits(max_long=10**6, max_short=10**6)
    result = mm.run(feed)
    check_invariants(cfg, feed, result)
    assert result.denials[R.MAX_LONG] > 0 and result.denials[R.MAX_SHORT] > 0
    assert max(abs(r.shares) for r in result.history) >= 100  # the limit was approached


def test_hedger_takes_liquidity_in_the_loop():
    symbols, feed = session_feed(1, 6_000, 3)
    cfg, _, result = run(symbols, feed, overrides={"hedge_threshold": 50, "max_long": 400})
    check_invariants(cfg, feed, result)
    hedges = [r for r in result.sent if isinstance(r.message, EnterOrder)
              and r.message.time_in_force == "3"]
    assert hedges and all(r.decision.action.origin is Origin.HEDGER for r in hedges)
    assert all(not r.message.options for r in hedges)  # no post-only flag
    assert any(f.liquidity == "R" for f in result.fills)
    assert result.positions[0].fees > 0


def test_deterministic():
    symbols, feed = session_feed(3, 3_000, 2)
    streams = [run(symbols, feed)[2] for _ in range(2)]
    assert streams[0].order_stream == streams[1].order_stream
    assert streams[0].fills == streams[1].fills and streams[0].history == streams[1].history
    assert streams[0].order_stream  # not vacuous
    # Stopping early gives a prefix of the same run.
    until = feed[1_500][0]
    cfg = MarketMakerConfig(instruments(symbols), port())
    partial = MarketMaker(cfg).run(feed, until=until)
    assert partial.sent and all(r.time <= until for r in partial.sent)
    assert streams[0].order_stream.startswith(partial.order_stream)
    assert len(partial.sent) < len(streams[0].sent)


def test_kill_stops_everything_and_cancels_all():
    symbols, feed = session_feed(2, 6_000, 3)
    kill = feed[3_000][0]
    host = [HostAction(0, HostKind.ARM), HostAction(kill, HostKind.KILL)]
    cfg, mm, result = run(symbols, feed, host)
    check_invariants(cfg, feed, result, host)
    after = [r for r in result.sent if r.time > kill]
    assert after and all(isinstance(r.message, CancelOrder) for r in after)
    assert all(r.decision.action.origin is Origin.GATE and r.decision.reason is R.DISARMED
               for r in after)
    assert result.denials[R.FORCED_CANCEL] == len(after)
    assert len(mm.orders) == 0 and mm.exchange.orders == {}   # every order canceled
    assert result.denials[R.DISARMED] > 0


def test_rearm_after_kill_resumes_quoting():
    symbols, feed = session_feed(2, 6_000, 3)
    kill, arm = feed[2_000][0], feed[3_000][0]
    host = [HostAction(0, HostKind.ARM), HostAction(kill, HostKind.KILL),
            HostAction(arm, HostKind.ARM)]
    cfg, _, result = run(symbols, feed, host)
    check_invariants(cfg, feed, result, host)
    assert any(isinstance(r.message, EnterOrder) and r.time > arm for r in result.sent)


def test_heartbeat_loss_cancels_everything():
    symbols, feed = session_feed(1, 6_000, 3)
    timeout = 400_000
    # Market hours open hours after the directory messages: arm there (feed[9] is the first
    # order event of a three-instrument session) and beat until the middle of the session.
    start, last_beat = feed[9][0], feed[2_500][0]
    host = [HostAction(start, HostKind.ARM)] + [
        HostAction(t, HostKind.HEARTBEAT) for t in range(start + timeout // 2, last_beat,
                                                         timeout // 2)]
    assert 10 < len(host) < 1000
    beat = host[-1].time
    cfg, mm, result = run(symbols, feed, host, heartbeat_timeout=timeout)
    check_invariants(cfg, feed, result, host)
    trip = beat + timeout + 2
    assert any(r.time < trip and isinstance(r.message, EnterOrder | ReplaceOrder)
               for r in result.sent)
    after = [r for r in result.sent if r.time >= trip]
    assert after and all(isinstance(r.message, CancelOrder) for r in after)
    assert min(r.time for r in after) == trip and after[0].trigger is Trigger.DEADLINE
    assert len(mm.orders) == 0


def test_stale_feed_pulls_quotes():
    symbols, feed = session_feed(1, 6_000, 3)
    cfg, _, result = run(symbols, feed, stale_feed_timeout=8_000)
    check_invariants(cfg, feed, result)
    assert result.denials[R.STALE_FEED] > 0
    swept = [r for r in result.sent if r.decision.action.origin is Origin.GATE]
    assert swept and all(r.decision.reason is R.STALE_FEED for r in swept)
    assert any(r.trigger is Trigger.DEADLINE for r in swept)


def test_market_maker_protection_in_the_loop():
    symbols, feed = session_feed(1, 6_000, 3)
    cfg, _, result = run(symbols, feed, overrides={"mmp_threshold": 150,
                                                   "mmp_window": 10**12})
    check_invariants(cfg, feed, result)
    assert result.denials[R.MMP_TRIPPED] > 0
    for slot in range(3):
        fills = [f.time for f in result.fills if f.slot == slot]
        shares = 0
        for f in (f for f in result.fills if f.slot == slot):
            shares += f.quantity
            if shares >= 150:
                tripped = f.time
                break
        else:
            continue
        assert fills
        late = [r for r in result.sent if r.time > tripped and r.decision.action.slot == slot]
        assert all(isinstance(r.message, CancelOrder) for r in late)


def test_feed_gap_from_frames():
    insts = default_instruments(2)
    cfg = SessionConfig(seed=4, messages=3_000, instruments=insts)
    frames = generate_frames(cfg, max_payload=400)
    lost = len(frames) // 2
    kept = captured(cfg, frames[:lost] + frames[lost + 1:])
    udp = UdpRxConfig(mac=TEST_FEED.mac, ip=TEST_FEED.ip, port=TEST_FEED.port)
    feed = list(timed_frame_events(kept, udp))
    gaps = [k for k, (_, item) in enumerate(feed) if item == FEED_GAP]
    assert len(gaps) == 1
    mcfg, mm, result = run(tuple(i.symbol for i in insts), feed)
    check_invariants(mcfg, feed, result)
    before = [r for r in result.sent if r.feed_items <= gaps[0]]
    after = [r for r in result.sent if r.feed_items > gaps[0]]
    assert any(isinstance(r.message, EnterOrder) for r in before)
    assert after and all(isinstance(r.message, CancelOrder) for r in after)
    assert len(mm.orders) == 0


def test_host_feed_gap_and_recovery():
    symbols, feed = session_feed(1, 3_000, 2)
    gap, recovered = feed[1_000][0], feed[2_000][0]
    host = [HostAction(0, HostKind.ARM), HostAction(gap, HostKind.FEED_GAP),
            HostAction(recovered, HostKind.FEED_RECOVERED)]
    _, _, result = run(symbols, feed, host)
    between = [r for r in result.sent if gap <= r.time < recovered]
    assert between and all(isinstance(r.message, CancelOrder) for r in between)
    assert any(isinstance(r.message, EnterOrder) for r in result.sent if r.time >= recovered)
    assert result.denials[R.FEED_GAP] > 0


def test_reference_fair_value_in_the_loop():
    symbols, feed = session_feed(2, 3_000, 2)
    starts = {i.symbol: i.start_price for i in default_instruments(2)}
    cfg = MarketMakerConfig(instruments(symbols, fair_value_mode=FairValueMode.REFERENCE,
                                        collar=2_000), port())
    for inst in cfg.instruments:
        inst.quote.reference_price = starts[inst.symbol]
    result = MarketMaker(cfg).run(feed)
    check_invariants(cfg, feed, result)
    entered = [r.message for r in result.sent if isinstance(r.message, EnterOrder)]
    assert entered
    assert all(abs(m.price - starts[m.symbol.strip()]) <= 2_000 for m in entered)


def test_answers_round_trip_the_wire():
    symbols, feed = session_feed(1, 2_000, 2)
    _, _, result = run(symbols, feed)
    answers = [m for _, m in result.answers]
    assert decode_outbound_stream(b"".join(frame(m) for m in answers)) == answers
    assert Counter(type(m).__name__ for m in answers)["Accepted"] > 0


# ------------------------------------------------------------------------------------------------
# The real AAPL file


def test_invariants_on_real_aapl():
    if not AAPL.is_file():
        pytest.skip(f"real ITCH captures not found at {AAPL.parent} (see its README)")
    feed = tuple(timed_events(read_binaryfile(AAPL)))
    cfg, mm, result = run(("AAPL",), feed, overrides={"base_half_spread": 2, "collar": 2_000,
                                                      "max_order_qty": 200})
    sent = check_invariants(cfg, feed, result)
    assert sent["EnterOrder"] > 0 and result.fills
    assert result.denials[R.RATE] > 0
    position = result.positions[0]
    assert position.shares == sum(f.quantity if f.side == 0 else -f.quantity
                                  for f in result.fills)
    assert position.net() == position.cash + position.shares * position.mark + \
        position.rebates - position.fees
    assert mm.orders.unacked_count == 0


def test_model_imports_no_amaranth():
    modules = ("sim.wire.soupbin", "sim.wire.ouch", "sim.fair_value", "sim.quoter",
               "sim.hedger", "sim.orders", "sim.control", "sim.risk", "sim.order_entry",
               "sim.position", "sim.exchange", "sim.market_maker", "sim.frames", "sim.ouch_rx")
    code = f"import sys, {', '.join(modules)}; sys.exit('amaranth' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
