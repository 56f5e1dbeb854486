"""The market maker's closed loop for one capture, as plain Python.

feed events -> order book -> quoter and hedger -> risk gate -> order entry (OUCH bytes) ->
exchange simulator -> answers and fills -> order table, position, PnL -> quoter ...

Everything happens at integer cycle times and the run is deterministic: the same inputs give the
same bytes. The loop is a discrete-event simulation over these inputs:

- feed events, with the cycle each reaches the core (see :func:`timed_events`), and
  :data:`FEED_GAP` markers where the MoldUDP64 stage reported a gap (see
  :func:`timed_frame_events`);
- host actions (:class:`HostAction`: arm, kill, heartbeat, feed gap set or recovered);
- our packets reaching the exchange ``latency`` cycles after they are sent, and the exchange's
  answers reaching us ``latency`` cycles after it sent them;
- the cycles where the risk gate's state changes on its own (an arm or kill taking effect, the
  heartbeat watchdog, a feed going stale): :meth:`~sim.risk.RiskGate.next_deadline`.

Items due in the same cycle are taken host actions first, then answers reaching us, then packets
reaching the exchange, then feed events, then gate deadlines; items of one kind in arrival
order.

After each item the loop *evaluates*: the risk gate's forced cancels (every instrument), then
for each instrument the item concerns (a feed event: the instruments whose top changed; an
answer: its order's instrument; a host action or a deadline: all) the hedger's order, then the
quoter's actions, each through the gate; every action the gate passes is sent at once.

A feed event is applied in this order: the execution it reports (if any) goes to the exchange,
which fills our resting orders from it; the book takes the event; each top-of-book update goes to
the exchange's view, the quoter, the risk gate and the position's mark.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from hdl.csr.params import PortLimits, QuoteParams, RiskLimits
from sim.book import Books
from sim.book_mirror import BookGeometry
from sim.capture import CapturedFrame
from sim.control import Control
from sim.exchange import DEFAULT_CLK_HZ, ExchangeSim, ExchangeStats, feed_trade
from sim.fair_value import mid_price
from sim.hedger import Hedger
from sim.ingress import Ingress
from sim.itch_decode import ItchDecode
from sim.itch_event import ItchEvent, symbol_int
from sim.order_entry import OrderEntry
from sim.orders import Fill, OrderTable
from sim.position import FeeSchedule, Position, PositionBook
from sim.quoter import Quoter
from sim.risk import Decision, RiskGate, RiskReason
from sim.udp_rx import UdpRxConfig
from sim.wire.ouch import Message, decode_outbound_stream, frame

__all__ = [
    "FEED_GAP",
    "HostAction",
    "HostKind",
    "MarketMaker",
    "MarketMakerConfig",
    "MarketMakerResult",
    "OrderRecord",
    "PositionRecord",
    "QuotedInstrument",
    "Trigger",
    "timed_events",
    "timed_frame_events",
]


class HostKind(Enum):
    ARM = "arm"
    KILL = "kill"
    HEARTBEAT = "heartbeat"
    #: The host learnt of a MoldUDP64 gap it has not recovered (quotes are pulled).
    FEED_GAP = "feed_gap"
    #: The host recovered every gap.
    FEED_RECOVERED = "feed_recovered"


@dataclass(frozen=True, slots=True)
class HostAction:
    time: int
    kind: HostKind


#: A feed item marking a gap reported by the MoldUDP64 stage (no recovery in a replay).
FEED_GAP = "feed_gap"


@dataclass
class QuotedInstrument:
    """One instrument slot: its symbol (bound by the feed's directory message), its quote
    parameters and risk limits (the host's register values)."""

    symbol: str
    quote: QuoteParams
    risk: RiskLimits


@dataclass
class MarketMakerConfig:
    """What the loop runs with.

    Attributes
    ----------
    instruments : sequence of QuotedInstrument
        Slot ``i`` is ``instruments[i]``.
    port : PortLimits
    heartbeat_timeout : int
        ``ctrl.heartbeat_timeout`` (0: no watchdog).
    latency : int
        One-way cycles between our order port and the exchange.
    clk_hz : int
        Core clock, for the exchange's timestamps and :func:`timed_events`.
    fees : FeeSchedule
    geometry : BookGeometry, optional
        Mirror the gateware book's table sizes (default: no limits).
    first_user_ref : int
    """

    instruments: Sequence[QuotedInstrument]
    port: PortLimits
    heartbeat_timeout: int = 0
    latency: int = 2_500
    clk_hz: int = DEFAULT_CLK_HZ
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    geometry: BookGeometry | None = None
    first_user_ref: int = 1


class Trigger(Enum):
    """What the loop was handling when it sent a message."""

    FEED = "feed"
    ANSWER = "answer"
    HOST = "host"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One message our order port sent.

    ``feed_items`` counts the feed items applied before it was sent: with ``trigger`` FEED,
    item ``feed_items - 1`` is the market data that caused it (tick-to-trade is measured from
    that item's last byte). ``answers_seen`` counts the exchange's messages taken before it
    (their order against ours, which the times alone do not give within a cycle).
    """

    time: int
    feed_items: int
    answers_seen: int
    trigger: Trigger
    decision: Decision
    message: Message
    packet: bytes


@dataclass(frozen=True, slots=True)
class PositionRecord:
    """An instrument's position and PnL (money units: 1e-4 $) right after a fill."""

    time: int
    slot: int
    shares: int
    realized: int
    unrealized: int
    rebates: int
    fees: int
    net: int


@dataclass
class MarketMakerResult:
    """What a run produced.

    ``sent`` are our messages in order (``order_stream`` their SoupBinTCP bytes), ``answers``
    the exchange's messages with the cycle they reached us, ``decisions`` every decision of the
    risk gate (passed, denied, forced cancels), ``denials`` its counters.
    """

    sent: list[OrderRecord]
    answers: list[tuple[int, Message]]
    decisions: list[Decision]
    fills: list[Fill]
    history: list[PositionRecord]
    denials: dict[RiskReason, int]
    positions: list[Position]
    exchange: ExchangeStats
    unknown_answers: int

    @property
    def order_stream(self) -> bytes:
        return b"".join(s.packet for s in self.sent)


# Same-cycle order of the loop's inputs.
_HOST, _TO_CLIENT, _TO_EXCHANGE, _FEED, _DEADLINE = range(5)
_TRIGGERS = {_HOST: Trigger.HOST, _TO_CLIENT: Trigger.ANSWER, _TO_EXCHANGE: Trigger.ANSWER,
             _DEADLINE: Trigger.DEADLINE}


class MarketMaker:
    """The closed loop; one instance runs one capture (:meth:`run`)."""

    def __init__(self, config: MarketMakerConfig):
        self.config = config
        n = len(config.instruments)
        if n == 0:
            raise ValueError("quote at least one instrument")
        if config.geometry is not None:
            if config.geometry.slots < n:
                raise ValueError(f"{n} instruments do not fit {config.geometry.slots} slots")
            self.books = Books(geometry=config.geometry)
        else:
            self.books = Books(slots=n)
        for slot, inst in enumerate(config.instruments):
            self.books.track_symbol(slot, symbol_int(inst.symbol))
        self.control = Control(config.heartbeat_timeout)
        self.orders = OrderTable()
        self.positions = PositionBook(n, config.fees)
        self.quoters = [Quoter(k, i.quote, i.risk) for k, i in enumerate(config.instruments)]
        self.hedgers = [Hedger(k, i.risk) for k, i in enumerate(config.instruments)]
        self.gate = RiskGate([i.quote for i in config.instruments],
                             [i.risk for i in config.instruments], config.port, self.control,
                             self.orders, self.positions)
        symbols = [i.symbol for i in config.instruments]
        self.entry = OrderEntry(symbols, self.orders, config.first_user_ref)
        self.exchange = ExchangeSim(symbols, config.clk_hz)
        self._heap: list[tuple] = []
        self._seq = 0
        self._deadlines: set[int] = set()
        self._fed = 0
        self._trigger = Trigger.HOST
        self._result = MarketMakerResult([], [], [], [], [], self.gate.stats,
                                         self.positions.positions, self.exchange.stats, 0)

    # -- the event loop --------------------------------------------------------------------------

    def _push(self, time: int, kind: int, payload) -> None:
        heapq.heappush(self._heap, (time, kind, self._seq, payload))
        self._seq += 1

    def run(self, feed: Iterable[tuple[int, ItchEvent | str]],
            host: Iterable[HostAction] | None = None, until: int | None = None
            ) -> MarketMakerResult:
        """Run the loop over ``feed`` (``(cycle, event)`` in nondecreasing cycles) and the host
        actions (default: arm in cycle 0), until nothing is left in flight or, with ``until``,
        until every item due by that cycle has been taken."""
        actions: dict[int, list[HostKind]] = {}
        for action in (host if host is not None else [HostAction(0, HostKind.ARM)]):
            actions.setdefault(action.time, []).append(action.kind)
        for time, kinds in actions.items():
            self._push(time, _HOST, kinds)
        items = iter(feed)
        upcoming = next(items, None)
        last_feed = None
        while self._heap or upcoming is not None:
            if until is not None:
                due = [self._heap[0][0]] if self._heap else []
                if upcoming is not None:
                    due.append(upcoming[0])
                if min(due) > until:
                    break
            if upcoming is not None and (not self._heap
                                         or (upcoming[0], _FEED) < self._heap[0][:2]):
                now, item = upcoming
                if last_feed is not None and now < last_feed:
                    raise ValueError(f"feed time {now} after {last_feed}: feed items must come "
                                     "in nondecreasing cycles")
                last_feed = now
                upcoming = next(items, None)
                self._fed += 1
                self._trigger = Trigger.FEED
                self._feed(item, now)
            else:
                now, kind, _, payload = heapq.heappop(self._heap)
                self._trigger = _TRIGGERS[kind]
                if kind == _HOST:
                    self._host(payload, now)
                elif kind == _TO_CLIENT:
                    self._to_client(payload, now)
                elif kind == _TO_EXCHANGE:
                    self._to_exchange(payload, now)
                else:
                    self._deadlines.discard(now)
                    self._evaluate(now, range(len(self.quoters)))
            self._schedule(now)
        self._result.unknown_answers = self.orders.unknown
        return self._result

    def _schedule(self, now: int) -> None:
        deadline = self.gate.next_deadline(now)
        if deadline is not None and deadline not in self._deadlines:
            self._deadlines.add(deadline)
            self._push(deadline, _DEADLINE, None)

    # -- inputs ----------------------------------------------------------------------------------

    def _host(self, kinds: list[HostKind], now: int) -> None:
        arm, kill = HostKind.ARM in kinds, HostKind.KILL in kinds
        beat = HostKind.HEARTBEAT in kinds
        if arm or kill or beat:
            self.control.strobe(now, arm=arm, kill=kill, heartbeat=beat)
        if arm and not kill:
            self.gate.rearm(now)
        if HostKind.FEED_GAP in kinds:
            self.gate.feed_gap = True
        if HostKind.FEED_RECOVERED in kinds:
            self.gate.feed_gap = False
        self._evaluate(now, range(len(self.quoters)))

    def _feed(self, item: ItchEvent | str, now: int) -> None:
        if item == FEED_GAP:
            self.gate.feed_gap = True
            self._evaluate(now, ())
            return
        trade = feed_trade(self.books, item)
        updates = self.books.push(item)
        self._deliver(self.exchange.on_trade(trade, now), now)
        touched = []
        for update in updates:
            slot = update.slot
            if slot >= len(self.quoters):
                continue
            self.exchange.on_top(update)
            self.quoters[slot].on_book(update, now)
            self.gate.on_book(update, now)
            self.positions.set_mark(slot, mid_price(update))
            if slot not in touched:
                touched.append(slot)
        self._evaluate(now, touched)

    def _to_exchange(self, packet: bytes, now: int) -> None:
        self._deliver(self.exchange.receive(packet, now), now)

    def _deliver(self, answers: list[Message], now: int) -> None:
        for message in answers:
            self._push(now + self.config.latency, _TO_CLIENT, frame(message))

    def _to_client(self, packet: bytes, now: int) -> None:
        result = self._result
        for message in decode_outbound_stream(packet):
            result.answers.append((now, message))
            slot, fill = self.orders.on_message(message, now)
            if fill is not None:
                position = self.positions.apply(fill)
                self.gate.on_fill(fill.slot, fill.quantity, now)
                result.fills.append(fill)
                result.history.append(PositionRecord(
                    now, fill.slot, position.shares, position.realized, position.unrealized(),
                    position.rebates, position.fees, position.net()))
            self._evaluate(now, () if slot is None else (slot,))

    # -- decisions -------------------------------------------------------------------------------

    def _evaluate(self, now: int, slots: Iterable[int]) -> None:
        gate, orders, result = self.gate, self.orders, self._result
        for decision in gate.sweep(now):
            result.decisions.append(decision)
            self._send(decision, now)
        for slot in slots:
            quoter = self.quoters[slot]
            position = self.positions.shares(slot)
            hedge = self.hedgers[slot].action(quoter.top, position, orders.hedge_busy(slot))
            actions = [] if hedge is None else [hedge]
            actions += quoter.actions(quoter.quotes(position),
                                      lambda side, level, s=slot: orders.at(s, side, level), now)
            for action in actions:
                decision = gate.check(action, now)
                result.decisions.append(decision)
                if decision.passed:
                    self._send(decision, now)

    def _send(self, decision: Decision, now: int) -> None:
        sent = self.entry.send(decision.action, now)
        self._result.sent.append(OrderRecord(now, self._fed, len(self._result.answers),
                                             self._trigger, decision, sent.message,
                                             sent.packet))
        self._push(now + self.config.latency, _TO_EXCHANGE, sent.packet)


# ------------------------------------------------------------------------------------------------
# Feeds


def _cycles(ns: int, origin_ns: int, clk_hz: int) -> int:
    return max(ns - origin_ns, 0) * clk_hz // 1_000_000_000


def timed_events(messages: Iterable[bytes], clk_hz: int = DEFAULT_CLK_HZ,
                 origin_ns: int | None = None) -> Iterator[tuple[int, ItchEvent]]:
    """Decode ITCH messages and time each event by its ITCH timestamp.

    The cycle is ``(timestamp - origin_ns) * clk_hz // 10**9`` (``origin_ns`` defaults to the
    first message's timestamp, so the run starts in cycle 0), never earlier than the previous
    event's. Messages the decoder skips give no event.
    """
    decoder = ItchDecode()
    last = 0
    for seq, message in enumerate(messages, start=1):
        event = decoder.push(message, seq)
        if event is None:
            continue
        if origin_ns is None:
            origin_ns = event.timestamp
        last = max(last, _cycles(event.timestamp, origin_ns, clk_hz))
        yield last, event


def timed_frame_events(frames: Iterable[CapturedFrame], config: UdpRxConfig,
                       clk_hz: int = DEFAULT_CLK_HZ, origin_ns: int | None = None
                       ) -> Iterator[tuple[int, ItchEvent | str]]:
    """Ethernet frames through the feed ingress model, timed by capture time (as
    :func:`timed_events`, from the first frame); a :data:`FEED_GAP` item follows each frame
    after which the MoldUDP64 stage reports a new gap."""
    ingress = Ingress(config)
    gaps = 0
    last = 0
    for captured in frames:
        if origin_ns is None:
            origin_ns = captured.timestamp_ns
        last = max(last, _cycles(captured.timestamp_ns, origin_ns, clk_hz))
        for event in ingress.push(captured.frame).events:
            yield last, event
        if len(ingress.gaps) > gaps:
            gaps = len(ingress.gaps)
            yield last, FEED_GAP
