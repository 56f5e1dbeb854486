"""Core test bench (``hdl/top.py``): Ethernet frames in, top-of-book updates out, scored against
``sim.top.FeedBook`` update by update, counter by counter, and final book by final book.

Environment: ``TB_SEED`` (printed, default 1), ``TB_MESSAGES`` (messages of the generated
session), ``TB_PACING`` (``"idle,backpressure;..."``, the pairs the scoreboard runs).
"""

import os
from collections import Counter

import cocotb

from host.gatesim.top_tb import FeedBookTB
from host.replay.book import TrackedSlot, model_books, slot_configs
from sim.feed_framer import frame_messages
from sim.generator import SessionConfig, default_instruments, generate_messages
from sim.itch_event import EventKind
from sim.top import FeedBook
from sim.udp_rx import UdpRxConfig
from sim.wire.itch import encode
from sim.wire.net import TEST_FEED

SEED = int(os.environ.get("TB_SEED", "1"))
MESSAGES = int(os.environ.get("TB_MESSAGES", "800"))
BEAT_BYTES = 8
# Cycles from the beat carrying a message's last byte to its update (the core's docstring).
LATENCY = 7
REPLACE_LATENCY = 10


class TB(FeedBookTB):
    """The core's bench plus its model, fed in lockstep and configured alike."""

    def __init__(self, dut, tracked: list[TrackedSlot]):
        super().__init__(dut)
        self.configure(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)
        self.track(slot_configs(tracked, self.geometry.slots))
        self.tracked = tracked
        self.renew()

    def renew(self) -> None:
        """A fresh model, for a run from reset."""
        self.model = FeedBook(UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port),
                              self.geometry)
        for slot, what in enumerate(self.tracked):
            what.apply(self.model.books, slot)
        self.expected: list[dict] = []
        # Per expected update: the input beat of its message's last byte, and the event's kind.
        self.update_beats: list[int] = []
        self.update_kinds: list[EventKind] = []
        self.beat_base = 0

    def send(self, frame: bytes) -> None:
        out = self.model.push(frame)
        self.source.send(frame)
        for update, index in zip(out.updates, out.update_events, strict=True):
            self.expected.append(update.as_dict())
            self.update_beats.append(self.beat_base + out.event_ends[index] // BEAT_BYTES)
            self.update_kinds.append(out.events[index].kind)
        self.beat_base += -(-len(frame) // BEAT_BYTES)

    async def check(self, what: str) -> None:
        """Everything sent came out as the model says; counters, final books and queues agree."""
        await self.drain()
        for index, want in enumerate(self.expected):
            assert not self.updates.empty(), f"{what}: update {index} missing: {want}"
            got = self.updates.queue.popleft()
            assert got == want, f"{what}: update {index}\n gateware {got}\n model    {want}"
        assert self.updates.empty(), f"{what}: extra updates {list(self.updates.queue)[:3]}"
        gaps = [{"first": g.first, "count": g.count} for g in self.model.gaps]
        assert [g for _, g in self.gaps.transfers] == gaps, f"{what}: gap reports differ"
        got_stats, want_stats = self.stats(), self.model.stats
        assert got_stats == want_stats, f"{what}: counters differ: " + "; ".join(
            f"{stage}.{name} gateware {got_stats[stage][name]} model {value}"
            for stage, counters in want_stats.items()
            for name, value in counters.items() if got_stats[stage][name] != value)
        books = await self.final_books(len(self.tracked))
        want_books = model_books(self.model.books, self.tracked, self.geometry.depth)
        for got, want in zip(books, want_books, strict=True):
            want = {k: v for k, v in want.items() if k != "orders"}
            assert got == want, f"{what}: final book of slot {got['slot']}\n gateware {got}\n " \
                                f"model    {want}"
        assert not self.hazard(), f"{what}: the book's hazard flag is set"


def _price_ladder_messages(locate: int, rounds: int) -> list[bytes]:
    """Messages of which every one changes the top of book, none waiting in the book's queue:
    each round raises the bid and lowers the ask, executes and cancels part of them, replaces
    the best bid with a better one, then adds and deletes a better ask. A replace is followed
    by an add (at least 4 beats), as the book takes a replace every 4 cycles."""
    messages, ref, t = [], 1, 1_000

    def stamp() -> int:
        nonlocal t
        t += 1_000
        return t

    for r in range(rounds):
        bid, ask = 1_000_000 + 200 * r, 2_000_000 - 200 * r
        bid_ref, ask_ref, new_ref, extra_ref = ref, ref + 1, ref + 2, ref + 3
        ref += 4
        common = {"stock_locate": locate, "stock": "TEST"}
        messages += [
            encode("A", **common, timestamp=stamp(), order_ref=bid_ref, buy_sell="B",
                   shares=100 + r, price=bid),
            encode("A", **common, timestamp=stamp(), order_ref=ask_ref, buy_sell="S",
                   shares=200 + r, price=ask),
            encode("E", stock_locate=locate, timestamp=stamp(), order_ref=bid_ref,
                   executed_shares=10, match_number=r + 1),
            encode("X", stock_locate=locate, timestamp=stamp(), order_ref=ask_ref,
                   cancelled_shares=20),
            encode("U", stock_locate=locate, timestamp=stamp(), original_order_ref=bid_ref,
                   new_order_ref=new_ref, shares=50 + r, price=bid + 100),
            encode("A", **common, timestamp=stamp(), order_ref=extra_ref, buy_sell="S",
                   shares=7, price=ask - 100),
            encode("D", stock_locate=locate, timestamp=stamp(), order_ref=extra_ref),
        ]
    return messages


@cocotb.test()
async def latency_at_line_rate(dut):
    """Back-to-back frames: no stall, and 7 cycles from a message's last byte to its update
    (10 for a replace), every message changing the top of book."""
    locate = 7
    tb = TB(dut, [TrackedSlot(locate=locate)])
    await tb.start()
    for frame in frame_messages(_price_ladder_messages(locate, rounds=40)):
        tb.send(frame)
    update_beats, update_kinds = list(tb.update_beats), list(tb.update_kinds)
    await tb.check("latency")
    beats = [cycle for cycle, _ in tb.source.transfers]
    updates = [cycle for cycle, _ in tb.updates.transfers]
    assert beats[-1] - beats[0] + 1 == len(beats), "input beats were not taken back to back"
    assert tb.stall_cycles == 0
    assert len(updates) == len(update_beats) == 7 * 40, "every message must change the top"
    by_kind: dict[str, Counter] = {}
    for cycle, beat, kind in zip(updates, update_beats, update_kinds, strict=True):
        by_kind.setdefault(kind.name.lower(), Counter())[cycle - beats[beat]] += 1
    dut._log.info("latency, last message byte in -> top-of-book update out (cycles): %s",
                  {kind: dict(counts) for kind, counts in by_kind.items()})
    for kind, counts in by_kind.items():
        want = REPLACE_LATENCY if kind == "replace" else LATENCY
        assert set(counts) == {want}, f"{kind}: latencies {dict(counts)}, expected {want}"
    assert tb.stats()["book"]["overflow"] == 0


def _pacing() -> list[tuple[float, float]]:
    spec = os.environ.get("TB_PACING", "0,0;0.3,0.5")
    return [tuple(float(x) for x in pair.split(",")) for pair in spec.split(";")]


@cocotb.test()
async def scoreboard_generated_session(dut):
    """A generated session of 12 instruments, 8 tracked (half by symbol through the stock
    directory, half by locate), over idle x backpressure, each from reset. The session's last
    message, end of messages, is left out: it would empty every book before they are compared."""
    instruments = default_instruments(12)
    tracked = [TrackedSlot(symbol=inst.symbol) for inst in instruments[:4]]
    tracked += [TrackedSlot(locate=inst.locate) for inst in instruments[6:10]]
    config = SessionConfig(seed=SEED, messages=MESSAGES, instruments=instruments)
    messages = generate_messages(config)
    assert messages[-1][:1] + messages[-1][-1:] == b"SC", "the session ends with S 'C'"
    frames = frame_messages(messages[:-1])
    tb = TB(dut, tracked)
    await tb.start()
    for run, (idle, backpressure) in enumerate(_pacing()):
        seed = SEED + int(100 * idle) + int(1000 * backpressure)
        dut._log.info("session of %d messages, idle %.2f, backpressure %.2f, seed %d",
                      MESSAGES, idle, backpressure, seed)
        if run:
            await tb.reset()
            await tb.book_ready()
        tb.renew()
        tb.gaps.transfers.clear()
        tb.source.set_idle(idle, seed)
        tb.updates.set_backpressure(backpressure, seed + 1)
        for frame in frames:
            tb.send(frame)
        await tb.check(f"session idle={idle} backpressure={backpressure}")
        book = tb.model.stats["book"]
        assert book["bound"] == 4 and book["clears"] == 1 and book["updates"] > 50, book
        assert any(b.orders for b in tb.model.books.snapshot()), "every final book is empty"
