"""What surrounds the gateware loop in its bench: the feed, the book and the exchange.

:class:`LoopWorld` is the part of the model's :class:`~sim.market_maker.MarketMaker` outside its
quoter, gate, order entry and order table, run by the same model code: the book
(:class:`~sim.book.Books`) turns feed events into top-of-book updates for the loop; the exchange
simulator (:class:`~sim.exchange.ExchangeSim`) sees the feed's trades and tops, receives our
packets and answers them ``latency`` cycles later. Its events are taken in the model's order:
by time, and in one cycle answers reaching us, then packets reaching the exchange, then feed
items, each kind in arrival order.

Each event that concerns the loop becomes a :class:`Step` for the loop's inputs: one answer
packet, or one feed item's top update (or a feed gap). The bench either hands every step over
in the cycle it is due (free running) or one at a time into a settled loop (lockstep, see
:meth:`host.gatesim.loop_tb.LoopBench.run`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from sim.book import Books, TopUpdate
from sim.exchange import ExchangeSim, feed_trade
from sim.itch_event import ItchEvent
from sim.market_maker import FEED_GAP
from sim.wire.ouch import frame

__all__ = ["LoopWorld", "Step"]

# Same-cycle order of the world's events, as the model's.
_TO_CLIENT, _TO_EXCHANGE, _FEED = range(3)


@dataclass(frozen=True, slots=True)
class Step:
    """One input of the loop: an answer packet (``answer``), or the top updates one feed item
    made, each with the item's index (``tops``), or a feed gap (``gap``). For a bench of the
    whole core, a feed item's step also carries the Ethernet input's beats up to the one
    holding the item's last byte (``beats``: ``(tdata, tkeep, tlast, tuser)``) and the item's
    index (``item``)."""

    time: int
    answer: bytes | None = None
    tops: tuple[tuple[TopUpdate, int], ...] = ()
    gap: bool = False
    beats: tuple[tuple[int, int, int, int], ...] = ()
    item: int | None = None


class LoopWorld:
    """The feed, the book and the exchange around the loop.

    ``exchange_times``: the ``k``-th packet reaches the exchange in that cycle (a model run's
    ``k``-th order's) rather than ``latency`` cycles after it left the loop. With ``serial``
    the world keeps its own time, the model's, whatever cycle the loop is in (it takes its
    events when the bench asks for the next step): a packet then reaches the exchange in its
    ``exchange_times`` cycle unless the world is already past it. Otherwise the world's time is
    the loop's cycle and a packet cannot reach the exchange before the cycle after it left.
    """

    def __init__(self, feed: Sequence[tuple[int, ItchEvent | str]], books: Books,
                 exchange: ExchangeSim, slots: int, latency: int,
                 exchange_times: Sequence[int] = (), serial: bool = False):
        self.feed = feed
        self.books = books
        self.exchange = exchange
        self.slots = slots
        self.latency = latency
        self.exchange_times = list(exchange_times)
        self.serial = serial
        #: Feed items taken.
        self.fed = 0
        #: The time of the last event taken.
        self.now = 0
        self._to_client: list = []        # (due, order, packet): answers on their way to us
        self._to_exchange: list = []      # (due, order, packet): ours on their way out
        self._order = itertools.count()   # ties keep arrival order
        self._sent = 0

    def pending(self) -> bool:
        """Events are left (feed items, packets or answers in flight)."""
        return bool(self._to_client or self._to_exchange or self.fed < len(self.feed))

    def next_time(self) -> int | None:
        """The time of the next event, if any."""
        heads = [q[0][0] for q in (self._to_client, self._to_exchange) if q]
        if self.fed < len(self.feed):
            heads.append(self.feed[self.fed][0])
        return min(heads, default=None)

    def send(self, packet: bytes, cycle: int) -> None:
        """Our packet's last beat left the loop in ``cycle``."""
        k, self._sent = self._sent, self._sent + 1
        if self.serial:
            due = max(self.exchange_times[k] if k < len(self.exchange_times)
                      else self.now + self.latency, self.now)
        elif k < len(self.exchange_times):
            due = max(self.exchange_times[k], cycle + 1)
        else:
            due = cycle + self.latency
        heapq.heappush(self._to_exchange, (due, next(self._order), packet))

    def next_step(self, cycle: int | None = None) -> Step | None:
        """Take events in the model's order, those due by ``cycle`` if given, until one is a
        step for the loop (returned) or none is left (None)."""
        while True:
            heads = []
            if self._to_client:
                heads.append((self._to_client[0][0], _TO_CLIENT))
            if self._to_exchange:
                heads.append((self._to_exchange[0][0], _TO_EXCHANGE))
            if self.fed < len(self.feed):
                heads.append((self.feed[self.fed][0], _FEED))
            if not heads:
                return None
            time, kind = min(heads)
            if cycle is not None and time > cycle:
                return None
            self.now = max(self.now, time)
            if kind == _TO_CLIENT:
                return Step(time, answer=heapq.heappop(self._to_client)[2])
            if kind == _TO_EXCHANGE:
                packet = heapq.heappop(self._to_exchange)[2]
                self._answer(self.exchange.receive(packet, time), time)
                continue
            step = self._feed_item(time)
            if step is not None:
                return step

    def _answer(self, messages, time: int) -> None:
        for message in messages:
            heapq.heappush(self._to_client,
                           (time + self.latency, next(self._order), frame(message)))

    def _feed_item(self, time: int) -> Step | None:
        index, (_, event) = self.fed, self.feed[self.fed]
        self.fed += 1
        if event == FEED_GAP:
            return Step(time, gap=True)
        trade = feed_trade(self.books, event)
        updates = [u for u in self.books.push(event) if u.slot < self.slots]
        self._answer(self.exchange.on_trade(trade, time), time)
        for update in updates:
            self.exchange.on_top(update)
        return Step(time, tops=tuple((u, index) for u in updates)) if updates else None
