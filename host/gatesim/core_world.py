"""What surrounds the whole core in its bench: the same world as the loop's, with the feed as
Ethernet frames.

:class:`CoreWorld` is :class:`~host.gatesim.loop_world.LoopWorld` whose feed items also carry
the beats of the capture's own frames that bring them: the beats up to and including the one
that holds the item's last byte, after those of any frame or frame tail that brought nothing
(a heartbeat, a dropped frame, a message type the decoder skips). Every feed item is then a
step, top update or not, since the core's book must see every message; in lockstep the bench
pauses the frame (``tvalid`` low) after each item's beats until the core has settled, so the
core takes the model's inputs one at a time while reading the capture as it was framed.
"""

from __future__ import annotations

from collections.abc import Sequence

from host.gatesim.loop_world import LoopWorld, Step
from host.gatesim.streams import frame_beats
from sim.ingress import Ingress
from sim.itch_event import ItchEvent
from sim.udp_rx import UdpRxConfig

__all__ = ["BEAT_BYTES", "CoreWorld", "item_beats"]

BEAT_BYTES = 8
Beat = tuple[int, int, int, int]


def item_beats(frames: Sequence[bytes], endpoint: UdpRxConfig
               ) -> tuple[list[ItchEvent | None], list[tuple[Beat, ...]]]:
    """Per feed item of ``frames`` (as :func:`host.replay.loop.timed_feed` lists them: each
    frame's events, then ``None`` for the feed gap the frame opened, if any): the item's
    event, and the beats that bring it."""
    ingress = Ingress(endpoint)
    events: list[ItchEvent | None] = []
    beats: list[list[Beat]] = []
    carry: list[Beat] = []
    gaps = 0
    for frame in frames:
        out = ingress.push(frame)
        its = frame_beats(frame)
        cursor = 0
        for event, end in zip(out.events, out.event_ends, strict=True):
            last = end // BEAT_BYTES      # end: the frame offset of its last byte
            carry.extend(its[cursor:last + 1])
            cursor = last + 1
            events.append(event)
            beats.append(carry)
            carry = []
        # The frame's tail brings no event: it follows the frame's last one, if any.
        (beats[-1] if out.events else carry).extend(its[cursor:])
        if len(ingress.gaps) > gaps:
            gaps = len(ingress.gaps)
            events.append(None)
            beats.append([])
    if carry and beats:
        beats[-1].extend(carry)
    return events, [tuple(b) for b in beats]


class CoreWorld(LoopWorld):
    """:class:`LoopWorld` with ``beats[k]`` the Ethernet beats of feed item ``k``."""

    def __init__(self, feed, books, exchange, slots: int, latency: int,
                 beats: Sequence[tuple[Beat, ...]], exchange_times: Sequence[int] = (),
                 serial: bool = False):
        if len(beats) != len(feed):
            raise ValueError(f"{len(beats)} beat runs for {len(feed)} feed items")
        super().__init__(feed, books, exchange, slots, latency, exchange_times, serial)
        self.beats = list(beats)

    def start_at(self, cycle: int) -> None:
        """Free running: the feed's cycle 0 is the core's ``cycle`` (the first after its
        set-up), so that the set-up does not bunch the feed's first items together."""
        if self.serial or self.fed or self.now:
            raise RuntimeError("only a free-running world that has not started can be moved")
        self.feed = [(time + cycle, item) for time, item in self.feed]
        self.exchange_times = [time + cycle for time in self.exchange_times]

    def _feed_item(self, time: int) -> Step:
        index = self.fed
        step = super()._feed_item(time)
        beats = self.beats[index]
        if step is None:
            return Step(time, beats=beats, item=index)
        return Step(step.time, tops=step.tops, gap=step.gap, beats=beats, item=index)
