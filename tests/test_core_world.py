"""The whole core's bench world (``host/gatesim/core_world.py``): which Ethernet beats bring
which feed item."""

import pytest

from host.gatesim.core_world import BEAT_BYTES, CoreWorld, item_beats
from host.gatesim.streams import frame_beats
from host.replay.inputs import ReplayInput
from host.replay.loop import timed_feed
from sim.book import Books
from sim.exchange import ExchangeSim
from sim.feed_framer import frame_messages
from sim.generator import SessionConfig, default_instruments, generate_messages
from sim.ingress import Ingress
from sim.market_maker import FEED_GAP
from sim.udp_rx import UdpRxConfig
from sim.wire.net import TEST_FEED, FeedEndpoint

ENDPOINT = UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)


def _frames(messages: int = 120):
    config = SessionConfig(seed=5, messages=messages, instruments=default_instruments(2))
    return frame_messages(generate_messages(config))


def test_every_beat_goes_in_once_in_order_and_each_item_ends_on_its_last_byte():
    frames = _frames()
    # A frame for another port (dropped: it brings no item) and one that skips sequence
    # numbers (its events, then the gap it opens).
    elsewhere = FeedEndpoint(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port + 1)
    other = frame_messages(generate_messages(SessionConfig(seed=6, messages=20)),
                           endpoint=elsewhere)[0]
    gapped = frame_messages(generate_messages(SessionConfig(seed=7, messages=20)),
                            first_seq=10_000)[0]
    frames = [frames[0], other, *frames[1:], gapped]
    events, beats = item_beats(frames, ENDPOINT)
    assert [beat for run in beats for beat in run] == [b for f in frames for b in frame_beats(f)]
    feed, _ = timed_feed(ReplayInput(None, "pcap", frames, TEST_FEED, None))
    assert [FEED_GAP if e is None else e for e in events] == [item for _, item in feed]
    assert events[-1] is None and beats[-1] == ()       # the gap: nothing more to send

    # Where each event's message ends in the byte stream of all frames, found on its own.
    ends, base = [], 0
    ingress = Ingress(ENDPOINT)
    for frame in frames:
        ends.extend(base + end for end in ingress.push(frame).event_ends)
        base += len(frame)
    # Each event's last byte comes in its own run of beats: not before, not after.
    sent, k = 0, 0
    for event, run in zip(events, beats, strict=True):
        before = sent
        sent += sum(bin(keep).count("1") for _, keep, _, _ in run)
        if event is not None:
            assert before <= ends[k] < sent, f"event {k}"
            k += 1
    assert k == len(ends)


def test_a_world_whose_beats_do_not_match_its_feed_is_refused():
    with pytest.raises(ValueError, match="2 beat runs for 1 feed items"):
        CoreWorld([(0, FEED_GAP)], Books(slots=1), ExchangeSim(["AAPL"], 1), 1, 10,
                  [(), ()])
    assert BEAT_BYTES == 8
