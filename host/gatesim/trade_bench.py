"""Tick to trade on the whole core: Ethernet frames in, OUCH orders out, in Amaranth's simulator.

:class:`~hdl.top.TickgateCore` runs on a simulated board (:class:`~host.transports.sim.SimBoard`);
the host driver sets it up through the register map exactly as on hardware (feed endpoint,
instruments tracked by symbol, quote parameters, risk and port limits, arm). Each ITCH message
goes in its own MoldUDP64 packet, so the beat carrying a message's last byte is its frame's last
beat. The model's exchange simulator answers our orders (accepts, fills from the feed's trades)
``latency`` cycles after their last beat, so the quotes keep moving with the book.

Tick to trade is counted for every frame that finds the core quiet (no order leaving, no answer
arriving for a while) and after which an order leaves before the next frame, with no answer
arriving in between: that order was caused by the market data. It is the number of cycles from
the one in which the frame's last beat is taken to the one in which the order's first beat is
offered on ``m_axis``.
"""

from __future__ import annotations

import dataclasses
import heapq
import statistics
from collections import deque
from collections.abc import Sequence

from hdl.top import TickgateCore
from host.driver import Driver
from host.transports.sim import SimBoard, SimTransport
from sim.book import Books
from sim.exchange import ExchangeSim, feed_trade
from sim.feed_framer import frame_messages
from sim.itch_decode import ItchDecode
from sim.itch_event import symbol_int
from sim.market_maker import MarketMakerConfig
from sim.wire.net import TEST_FEED
from sim.wire.ouch import Message, decode_inbound_stream, frame

__all__ = ["TradeRun", "tick_to_trade"]

BEAT_BYTES = 8
#: Cycles without an order out or an answer in before a frame for it to count.
_QUIET = 150
#: Most cycles from a message's last beat to its top update when the book is not busy (a
#: replace's 10, see FeedBook).
_FEED_MAX = 10


@dataclasses.dataclass
class TradeRun:
    """What the core sent: ``orders`` as ``(first beat cycle, message)``; ``latencies`` the
    tick-to-trade samples in cycles, and ``sampled`` the index of the frame (message) each one
    is of; ``frame_ends`` the cycle each frame's last beat was taken."""

    orders: list[tuple[int, Message]]
    latencies: list[int]
    frame_ends: list[int]
    cycles: int
    sampled: list[int] = dataclasses.field(default_factory=list)

    def summary(self) -> dict[str, float] | None:
        if not self.latencies:
            return None
        return {"min": min(self.latencies), "median": statistics.median(self.latencies),
                "max": max(self.latencies), "samples": len(self.latencies)}


def _beats(data: bytes):
    for offset in range(0, len(data), BEAT_BYTES):
        chunk = data[offset:offset + BEAT_BYTES]
        yield int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1, \
            offset + BEAT_BYTES >= len(data)


def tick_to_trade(messages: Sequence[bytes], config: MarketMakerConfig, *,
                  spacing: int = 400) -> TradeRun:
    """Run ``messages`` (raw ITCH, in order) through the core, one frame each, ``spacing``
    cycles from one frame's start to the next, with ``config``'s instruments (at most 8, tracked
    by symbol in slots 0..), parameters and exchange latency."""
    core = TickgateCore()
    board = SimBoard(design=core)
    n = len(config.instruments)

    books = Books(slots=n)
    for slot, inst in enumerate(config.instruments):
        books.track_symbol(slot, symbol_int(inst.symbol))
    decoder = ItchDecode()
    exchange = ExchangeSim([i.symbol for i in config.instruments], config.clk_hz)
    frames = [frame_messages([m], first_seq=seq)[0] for seq, m in enumerate(messages, 1)]
    latency = config.latency
    state = {"done": False, "go": False}

    async def ready_to_go(ctx):
        """Wait, ports idle, until the host has set the core up."""
        ctx.set(core.m_axis_tready, 1)
        while not state["go"]:
            await ctx.tick()

    run = TradeRun([], [], [], 0)
    answers_in: list[int] = []
    tops: list[int] = []                 # cycles a top-of-book update entered the loop
    to_exchange: list = []
    to_core: list = []
    order = iter(range(1 << 62))

    # Each testbench counts the cycles it waits; they all start in the same cycle, 0. A value
    # sampled at a clock edge belongs to the cycle that edge ends.
    async def feeder(ctx):
        await ready_to_go(ctx)
        cycle = 0
        for seq, (data, message) in enumerate(zip(frames, messages, strict=True), 1):
            start = cycle
            for tdata, tkeep, tlast in _beats(data):
                ctx.set(core.s_axis_tdata, tdata)
                ctx.set(core.s_axis_tkeep, tkeep)
                ctx.set(core.s_axis_tlast, tlast)
                ctx.set(core.s_axis_tvalid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(core.s_axis_tready)
                    cycle += 1
                    if ready:
                        break
            ctx.set(core.s_axis_tvalid, 0)
            end = cycle - 1
            run.frame_ends.append(end)
            # The exchange sees the market as the book does, once the message is in.
            event = decoder.push(message, seq)
            if event is not None:
                for answer in exchange.on_trade(feed_trade(books, event), end):
                    heapq.heappush(to_core, (end + latency, next(order), frame(answer)))
                for update in books.push(event):
                    if update.slot < n:
                        exchange.on_top(update)
            wait = max(spacing - (cycle - start), 1)
            await ctx.tick().repeat(wait)
            cycle += wait
        state["done"] = True

    async def order_port(ctx):
        await ready_to_go(ctx)
        packet, first, cycle = bytearray(), None, 0
        while True:
            _, _, top, valid, tdata, tkeep, tlast = await ctx.tick().sample(
                core.o_top.valid, core.m_axis_tvalid, core.m_axis_tdata, core.m_axis_tkeep,
                core.m_axis_tlast)
            now, cycle = cycle, cycle + 1
            if top:
                tops.append(now)
            if not valid:
                continue
            first = now if first is None else first
            packet += int(tdata).to_bytes(BEAT_BYTES, "little")[:bin(int(tkeep)).count("1")]
            if tlast:
                data = bytes(packet)
                (message,) = decode_inbound_stream(data)
                run.orders.append((first, message))
                heapq.heappush(to_exchange, (now + latency, next(order), data))
                packet, first = bytearray(), None

    async def answers(ctx):
        await ready_to_go(ctx)
        pending: deque = deque()
        now = 0
        while True:
            while to_exchange and to_exchange[0][0] <= now:
                for answer in exchange.receive(heapq.heappop(to_exchange)[2], now):
                    heapq.heappush(to_core, (now + latency, next(order), frame(answer)))
            while to_core and to_core[0][0] <= now:
                pending.extend(_beats(heapq.heappop(to_core)[2]))
            if pending:
                tdata, tkeep, tlast = pending[0]
                ctx.set(core.s_axis_answer_tdata, tdata)
                ctx.set(core.s_axis_answer_tkeep, tkeep)
                ctx.set(core.s_axis_answer_tlast, tlast)
            ctx.set(core.s_axis_answer_tvalid, bool(pending))
            _, _, ready = await ctx.tick().sample(core.s_axis_answer_tready)
            if pending and ready and pending.popleft()[2]:
                answers_in.append(now)
            now += 1

    board.add_testbench(feeder)
    board.add_testbench(order_port)
    board.add_testbench(answers)
    driver = Driver(SimTransport(board))   # the board runs from here
    driver.set_feed(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)
    for slot, inst in enumerate(config.instruments):
        driver.track(slot, symbol=inst.symbol)
    driver.configure(quotes={k: i.quote for k, i in enumerate(config.instruments)},
                     risk={k: i.risk for k, i in enumerate(config.instruments)},
                     port_limits=config.port)
    driver.arm()
    state["go"] = True
    while not state["done"]:
        board.step(spacing)
    board.step(spacing)
    run.cycles = run.frame_ends[-1] + spacing if run.frame_ends else 0

    # One sample per frame that finds the core quiet (no order out, no answer in and no top
    # update for _QUIET cycles before its last beat) and whose top update comes out at once
    # (the book was not busy, e.g. clearing for a start-of-day message): its first order, if it
    # leaves before the next frame with no answer arriving in between. That order was caused
    # by this frame.
    ends = run.frame_ends
    firsts = [cycle for cycle, _ in run.orders]
    for k, end in enumerate(ends):
        limit = ends[k + 1] if k + 1 < len(ends) else run.cycles
        out = next((c for c in firsts if end < c < limit), None)
        if out is None or any(end - _QUIET <= c <= end for c in firsts + tops):
            continue
        if not any(end < t <= end + _FEED_MAX for t in tops):
            continue
        if not any(end - _QUIET <= a < out for a in answers_in):
            run.latencies.append(out - end)
            run.sampled.append(k)
    return run
