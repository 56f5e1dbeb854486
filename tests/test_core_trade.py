"""Tick to trade on the whole core, set up by the host driver through the register map: from
the beat carrying the last byte of a top-changing ITCH message to the first beat of the order it
causes (``host/gatesim/trade_bench.py``)."""

from hdl.book.book import CLEAR_LATENCY, EVENT_LATENCY
from hdl.csr.params import FairValueMode
from hdl.quote.loop import TICK_TO_ORDER
from hdl.quote.quoter import QUOTER_MODE_LATENCY
from hdl.quote.risk_gate import MICROPRICE_CYCLES
from host.gatesim.trade_bench import tick_to_trade
from host.replay.loop import FEED_TO_LOOP
from sim.generator import SessionConfig, default_instruments, generate_messages
from sim.itch_decode import ItchDecode
from sim.itch_event import EventKind
from sim.market_maker import MarketMakerConfig
from tests.test_market_maker_model import instruments, port

#: A replace (U) takes the book 3 cycles more; a microprice 9 more in the quoter and, when the
#: collar is checked, 14 more in the gate.
WORST = (FEED_TO_LOOP + 3 + TICK_TO_ORDER + QUOTER_MODE_LATENCY[FairValueMode.MICROPRICE]
         - QUOTER_MODE_LATENCY[FairValueMode.MID] + MICROPRICE_CYCLES)


def test_tick_to_trade_at_the_core_ports(capsys):
    insts = default_instruments(2)   # slot 0 quotes on the mid, slot 1 on the microprice
    messages = generate_messages(SessionConfig(seed=3, messages=40, instruments=insts))
    cfg = MarketMakerConfig(instruments([i.symbol for i in insts]),
                            port(rate_tokens=64, rate_refill=10, max_unacked_orders=12),
                            latency=200)
    run = tick_to_trade(messages, cfg, spacing=400)
    assert len(run.orders) >= 10
    summary = run.summary()
    assert summary is not None and summary["samples"] >= 3
    # An order event's update enters the loop FEED_TO_LOOP cycles after its last beat. The
    # session ends with S 'C', which empties the books: their empty tops leave the book 2 cycles
    # sooner (CLEAR_LATENCY rather than EVENT_LATENCY), and the quotes' cancels follow.
    by_frame = dict(zip(run.sampled, run.latencies, strict=True))
    clear = len(messages) - 1
    event = ItchDecode().push(messages[clear], clear + 1)
    assert event is not None and (event.kind, event.code) == (EventKind.SYSTEM, ord("C"))
    clear_to_trade = FEED_TO_LOOP - EVENT_LATENCY + CLEAR_LATENCY + TICK_TO_ORDER
    assert by_frame.pop(clear) == clear_to_trade == 40
    assert min(by_frame.values()) == FEED_TO_LOOP + TICK_TO_ORDER == 42
    assert summary["max"] <= WORST == 68
    with capsys.disabled():
        print(f"\ntick to trade: {summary}")
