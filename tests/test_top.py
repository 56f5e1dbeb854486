"""The core's model (``sim/top.py``): what each frame produced, and where it came from.

The gateware core is scored against this model in ``tests/cocotb/tb_top.py``.
"""

from sim.feed_framer import frame_messages
from sim.itch_event import EventKind
from sim.top import FeedBook
from sim.udp_rx import UdpRxConfig
from sim.wire.itch import encode
from sim.wire.net import TEST_FEED


def _model() -> FeedBook:
    model = FeedBook(UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port))
    model.books.track_locate(0, 7)
    return model


def test_updates_point_at_their_event_and_message():
    messages = [
        encode("P", stock_locate=7, timestamp=1),  # a trade: delivered, decoded to no event
        encode("A", stock_locate=7, timestamp=2, order_ref=1, buy_sell="B", shares=10,
               price=100_000),
        encode("A", stock_locate=9, timestamp=3, order_ref=2, buy_sell="B", shares=10,
               price=100_000),                     # untracked instrument
        encode("A", stock_locate=7, timestamp=4, order_ref=3, buy_sell="B", shares=5,
               price=90_000),                      # below the best bid: no update
        encode("E", stock_locate=7, timestamp=5, order_ref=1, executed_shares=4),
    ]
    (frame,) = frame_messages(messages)
    out = _model().push(frame)
    assert out.delivered_messages == 5
    assert [e.kind for e in out.events] == [EventKind.ADD] * 3 + [EventKind.EXECUTE]
    assert out.event_messages == [1, 2, 3, 4]
    assert [(u.bid_price, u.bid_shares, u.seq) for u in out.updates] == [
        (100_000, 10, 2), (100_000, 6, 5)]
    assert out.update_events == [0, 3]
    assert out.event_ends[out.update_events[1]] == len(frame) - 1


def test_counters_of_every_stage():
    model = _model()
    for frame in frame_messages([encode("D", stock_locate=7, timestamp=1, order_ref=99)]):
        model.push(frame)
    stats = model.stats
    assert list(stats) == ["udp_rx", "mold_rx", "itch_decode", "book"]
    assert stats["book"]["unknown_ref"] == 1 and stats["book"]["events"] == 1
    assert stats["itch_decode"]["order_delete"] == 1
