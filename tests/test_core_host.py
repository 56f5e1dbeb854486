"""The host driver runs the whole core in simulation: it sets the feed's endpoint and the book's
slots through the registers, then reads back the book, the counters and the MoldUDP64 recovery
state, and each is compared with the model (``sim/top.py``) fed the same frames."""

from collections import deque

import pytest

from hdl.book.layout import top_update_layout
from hdl.top import TickgateCore
from host.driver import Driver, Gap, TopOfBook
from host.transports.sim import SimBoard, SimTransport
from sim.book import EMPTY_PRICE
from sim.feed_framer import frame_messages
from sim.generator import SessionConfig, default_instruments, generate_messages
from sim.itch_event import symbol_int
from sim.top import FeedBook
from sim.udp_rx import UdpRxConfig
from sim.wire.net import TEST_FEED

BEAT_BYTES = 8
_UPDATE_FIELDS = [name for name, _ in top_update_layout(3)]


class TB:
    """The core on a simulated board, a frame feeder on its AXI-Stream input and a collector of
    its top-of-book updates; the host reaches the core only through ``driver``."""

    def __init__(self):
        self.core = TickgateCore()
        self.board = SimBoard(design=self.core)
        self.frames: deque[bytes] = deque()
        self.updates: list[dict] = []
        self.beats_not_taken = 0
        self.board.add_testbench(self._feed)
        self.board.add_testbench(self._collect)
        self.driver = Driver(SimTransport(self.board))

    async def _feed(self, ctx):
        core = self.core
        while True:
            if not self.frames:
                ctx.set(core.s_axis_tvalid, 0)
                await ctx.tick()
                continue
            frame = self.frames.popleft()
            for offset in range(0, len(frame), BEAT_BYTES):
                chunk = frame[offset:offset + BEAT_BYTES]
                ctx.set(core.s_axis_tdata, int.from_bytes(chunk, "little"))
                ctx.set(core.s_axis_tkeep, (1 << len(chunk)) - 1)
                ctx.set(core.s_axis_tlast, offset + BEAT_BYTES >= len(frame))
                ctx.set(core.s_axis_tuser, 0)
                ctx.set(core.s_axis_tvalid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(core.s_axis_tready)
                    if ready:
                        break
                    self.beats_not_taken += 1

    async def _collect(self, ctx):
        o = self.core.o_top
        while True:
            _, _, valid, payload = await ctx.tick().sample(o.valid, o.payload)
            if valid:
                self.updates.append({name: int(getattr(payload, name)) for name in
                                     _UPDATE_FIELDS})

    def run(self, frames, *, updates: int, max_cycles: int = 200_000):
        """Feed ``frames`` and run until ``updates`` top-of-book updates came out, and then until
        the book has had time to settle (a few hundred cycles without a new update)."""
        self.frames.extend(frames)
        start, quiet = self.board.cycle, 0
        while self.frames or len(self.updates) < updates or quiet < 300:
            have = len(self.updates)
            self.board.step(50)
            quiet = 0 if len(self.updates) != have or self.frames else quiet + 50
            if self.board.cycle - start > max_cycles:
                raise TimeoutError(f"{len(self.updates)} of {updates} updates after "
                                   f"{max_cycles} cycles")
        assert len(self.updates) == updates


def _model(instruments) -> FeedBook:
    model = FeedBook(UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port))
    model.books.track_symbol(0, symbol_int(instruments[0].symbol))
    model.books.track_locate(1, instruments[1].locate)
    return model


def _expected_top(model: FeedBook, slot: int, *, bound: bool, locate: int) -> TopOfBook:
    top = model.books.top(slot)
    return TopOfBook(slot, int(bound), locate, top.bid_price, top.bid_shares, top.ask_price,
                     top.ask_shares, int(model.books.halted(slot)),
                     int(model.books.degraded(slot)))


@pytest.fixture(scope="module")
def session():
    instruments = default_instruments(3)
    messages = generate_messages(SessionConfig(seed=5, messages=250, instruments=instruments))
    while messages[-1][:1] == b"S":  # stop before the end of the day empties the books
        messages.pop()
    frames = frame_messages(messages, max_payload=400, end_of_session=True)
    return instruments, frames


def test_the_host_sets_up_the_feed_and_reads_the_book_and_counters(session):
    instruments, frames = session
    model = _model(instruments)
    updates = [update for frame in frames for update in model.push(frame).updates]
    assert len(updates) > 50  # the session moves the tops of both tracked slots

    tb = TB()
    driver = tb.driver
    driver.set_feed(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)
    driver.track(0, symbol=instruments[0].symbol)
    driver.track(1, locate=instruments[1].locate)
    assert driver.top_of_book(0).bound == 0  # bound when the directory message arrives
    tb.run(frames, updates=len(updates))

    assert tb.beats_not_taken == 0
    assert tb.updates == [{name: getattr(u, name) for name in _UPDATE_FIELDS} for u in updates]
    book = driver.book()
    assert book[0] == _expected_top(model, 0, bound=True, locate=instruments[0].locate)
    assert book[1] == _expected_top(model, 1, bound=True, locate=instruments[1].locate)
    assert book[0].bid_price != EMPTY_PRICE and book[1].ask_price != EMPTY_PRICE
    assert all(top == TopOfBook(top.slot, 0, 0, 0, 0, 0, 0, 0, 0) for top in book[2:])

    counters = driver.counters()
    for stage, values in model.stats.items():
        assert counters[f"{stage}_stats"] == values, stage
    status = driver.feed_status()
    assert (status.expected, status.ended) == (model.ingress.mold_rx.expected, True)

    # The host empties a book, then stops tracking the slot.
    driver.clear_book(1)
    tb.board.step(6000)
    assert driver.top_of_book(1) == TopOfBook(1, 1, instruments[1].locate, 0, 0, 0, 0, 0, 0)
    driver.untrack(0)
    tb.board.step(10)
    assert driver.top_of_book(0).bound == 0


def test_a_gap_reaches_the_host_and_the_host_sets_the_expected_sequence(session):
    instruments, frames = session
    lost = 3  # the fourth packet never arrives
    arrived = frames[:lost] + frames[lost + 1:]
    model = _model(instruments)
    updates = [update for frame in arrived for update in model.push(frame).updates]
    assert len(model.gaps) == 1

    tb = TB()
    driver = tb.driver
    driver.set_feed(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)
    driver.track(0, symbol=instruments[0].symbol)
    driver.track(1, locate=instruments[1].locate)
    tb.run(arrived, updates=len(updates))
    assert driver.feed_status().gap_pending
    (gap,) = model.gaps
    first, count = gap.first, gap.count
    assert driver.pop_gap() == Gap(first, count)
    assert driver.pop_gap() is None

    # Recovered elsewhere: the host moves the expected sequence number back, and the lost
    # packet's sequence numbers are then taken as new, not as duplicates.
    driver.set_expected(first)
    tb.board.step(5)
    assert driver.feed_status().expected == first
    model.ingress.mold_rx.set_expected(first)
    updates += model.push(frames[lost]).updates
    delivered = driver.counters()["mold_rx_stats"]["messages"]
    tb.run([frames[lost]], updates=len(updates), max_cycles=20_000)
    counters = driver.counters()
    assert counters["mold_rx_stats"]["messages"] == delivered + count
    assert tb.updates == [{name: getattr(u, name) for name in _UPDATE_FIELDS} for u in updates]
    for stage, values in model.stats.items():
        assert counters[f"{stage}_stats"] == values, stage
