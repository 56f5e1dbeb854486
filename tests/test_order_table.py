"""Order table on the Amaranth simulator, compared with ``sim/orders.py`` and ``sim/position.py``.

Randomized sessions: our enters, replaces and cancels go to the exchange model
(``sim/exchange.py``), whose answers (accepts, dead post-only accepts, immediate and feed
executions, IOC and invalid-replace cancels, rejects) come back a few steps later, so replaces
and cancels race fills and cancels. Added directly: rejected replaces, answers naming no order,
reports the table must refuse (busy order, occupied slot, UserRefNum in use, slot out of range,
order already ended). Reports and answers are offered with idle cycles, fills taken under
backpressure. After every step the whole table, the positions, the counts, the exposures and
the lookups are compared with the model; at the end the fills and the counters, and nothing is
left over. Then the sweeper against ``RiskGate.sweep``, edge cases and the latencies.
"""

import os
import random
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.quote.order_table import (
    APPLY_CYCLES,
    LOOKUP_LATENCY,
    FillLayout,
    LookupLayout,
    OrderTable,
    RestingLayout,
    SweepLayout,
    order_index,
)
from hdl.quote.ouch_rx import AnswerLayout
from hdl.quote.ouch_tx import SentLayout
from host.gatesim.streams import pack, unpack
from sim.book import TopUpdate
from sim.exchange import ExchangeSim, FeedTrade
from sim.itch_event import Side
from sim.order_entry import OrderEntry
from sim.orders import (
    HEDGE_LEVEL,
    ActionKind,
    OrderAction,
    OrderTableStat,
    Status,
)
from sim.orders import OrderTable as OrderTableModel
from sim.ouch_rx import answer_values
from sim.position import PositionBook
from sim.risk import RiskGate, RiskReason, RiskState
from sim.wire.ouch import (
    Accepted,
    Canceled,
    Executed,
    LiquidityFlag,
    OrderState,
    Rejected,
    RejectReason,
    Replaced,
    TimeInForce,
)
from tests.test_ouch_tx import PermissiveOrders, action_fields

SEED = int(os.environ.get("TB_SEED", "1"))
PRICE_MAX = (1 << 32) - 1
POS_MAX, POS_MIN = (1 << 31) - 1, -(1 << 31)
BASE_PRICE = 1_000_000
TICK = 100


# ------------------------------------------------------------------------------------------------
# Items offered to the table


@dataclass(frozen=True)
class Sent:
    """A report of a message sent; ``raw_kind`` puts another action kind on the port."""

    ref: int
    action: OrderAction
    raw_kind: int | None = None


@dataclass(frozen=True)
class Answer:
    message: object


def sent_payload(item: Sent) -> int:
    fields = action_fields(item.action)
    if item.raw_kind is not None:
        fields["kind"] = item.raw_kind
    return pack(SentLayout, {"user_ref": item.ref, "action": fields})


def answer_payload(item: Answer) -> int:
    message = item.message
    return pack(AnswerLayout, {"type": ord(message.SPEC.type), **answer_values(message)})


def fill_dict(fill) -> dict:
    return {"time": fill.time, "slot": fill.slot, "side": int(fill.side),
            "quantity": fill.quantity, "price": fill.price, "liquidity": ord(fill.liquidity),
            "ref": fill.ref, "match_number": fill.match_number}


def accepted(ref, quantity, price=BASE_PRICE, state=OrderState.LIVE):
    return Accepted(0, ref, "B", quantity, "S0", price, "0", "Y", 1, "P", "N", "N", state,
                    "X", ())


def replaced(orig, ref, quantity, price=BASE_PRICE, state=OrderState.LIVE):
    return Replaced(0, orig, ref, "B", quantity, "S0", price, "0", "Y", 1, "P", "N", "N", state,
                    "X", ())


def executed(ref, quantity, price=BASE_PRICE, match=1, liquidity=LiquidityFlag.ADDED):
    return Executed(0, ref, quantity, price, liquidity, match, ())


def canceled(ref, quantity):
    return Canceled(0, ref, quantity, "U", None)


def rejected(ref):
    return Rejected(0, ref, RejectReason.OTHER, "X", None)


# ------------------------------------------------------------------------------------------------
# Testbench


@dataclass
class _Port:
    queue: deque = field(default_factory=deque)
    presenting: bool = False


class TB:
    """The table, its model, two sources and the fill sink, driven one cycle at a time."""

    def __init__(self, slots: int = 2, *, seed: int = 0, idle: float = 0.0,
                 backpressure: float = 0.0):
        self.slots = slots
        self.dut = OrderTable(slots)
        self.rng = random.Random(seed)
        self.idle, self.backpressure = idle, backpressure
        self.model = OrderTableModel()
        self.book = PositionBook(slots)
        self.position = [0] * slots      # the model's position under the saturation rule
        self.saturated = 0
        self.sent, self.answers = _Port(), _Port()
        self.fills: list[dict] = []
        self.expected_fills: list[dict] = []
        self.cycle = 0
        self.takes: list[tuple[int, object]] = []       # (cycle, item) of each transfer
        self.fill_offers: list[int] = []
        self.sweeps: list[tuple[int, dict]] = []
        self.sweep_ready = True
        self._fill_offered = False
        self.ctx = None

    def run(self, body) -> None:
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)

        async def bench(ctx):
            self.ctx = ctx
            await body(self)

        sim.add_testbench(bench)
        sim.run()

    # -- one cycle -------------------------------------------------------------------------------

    def offer(self, item) -> None:
        (self.sent if isinstance(item, Sent) else self.answers).queue.append(item)

    def _drive(self, port: _Port, stream, payload) -> None:
        ctx = self.ctx
        if port.queue and not port.presenting and self.rng.random() >= self.idle:
            port.presenting = True
            ctx.set(Value.cast(stream.payload), payload(port.queue[0]))
        ctx.set(stream.valid, port.presenting)

    async def step(self) -> None:
        ctx, dut = self.ctx, self.dut
        self._drive(self.sent, dut.i_sent, sent_payload)
        self._drive(self.answers, dut.i_answer, answer_payload)
        ready = self.rng.random() >= self.backpressure
        ctx.set(dut.o_fill.ready, ready)
        ctx.set(dut.o_sweep.ready, self.sweep_ready)
        now = ctx.get(dut.now)
        took = 0
        for port, stream in ((self.sent, dut.i_sent), (self.answers, dut.i_answer)):
            if port.presenting and ctx.get(stream.ready):
                took += 1
                port.presenting = False
                self._apply(port.queue.popleft(), now)
        assert took <= 1, "both inputs taken in one cycle"
        valid = ctx.get(dut.o_fill.valid)
        if valid and not self._fill_offered:
            self.fill_offers.append(self.cycle)
        self._fill_offered = valid and not ready
        if valid and ready:
            self.fills.append(unpack(FillLayout, ctx.get(Value.cast(dut.o_fill.payload))))
        if ctx.get(dut.o_sweep.valid) and self.sweep_ready:
            self.sweeps.append((self.cycle,
                                unpack(SweepLayout, ctx.get(Value.cast(dut.o_sweep.payload)))))
        await ctx.tick()
        self.cycle += 1

    def _apply(self, item, now: int) -> None:
        self.takes.append((self.cycle, item))
        if isinstance(item, Sent):
            if item.raw_kind is not None:   # no such action in the model: refused
                self.model.stats[OrderTableStat.CONFLICT] += 1
            else:
                self.model.record(item.ref, item.action, now, self.slots)
            return
        _, fill = self.model.answer(item.message, now)
        if fill is not None:
            self.expected_fills.append(fill_dict(fill))
            self.book.apply(fill)
            moved = self.position[fill.slot] + (fill.quantity if fill.side == Side.BUY
                                                else -fill.quantity)
            self.position[fill.slot] = min(max(moved, POS_MIN), POS_MAX)
            self.saturated += moved != self.position[fill.slot]

    def idle_now(self) -> bool:
        return not (self.sent.queue or self.answers.queue or self.sent.presenting
                    or self.answers.presenting)

    async def settle(self, limit: int = 2000) -> None:
        """Run until everything offered is applied, the view has settled and no fill waits."""
        for _ in range(limit):
            if (self.idle_now() and self.ctx.get(self.dut.view.stable)
                    and not self.ctx.get(self.dut.o_fill.valid)):
                return
            await self.step()
        raise AssertionError("the table did not settle")

    # -- comparison ------------------------------------------------------------------------------

    def resting(self, e: int) -> dict:
        return unpack(RestingLayout, self.ctx.get(Value.cast(self.dut.orders[e])))

    async def lookup(self, refs: list[int]) -> list[dict]:
        """The view's lookup of each UserRefNum, pipelined one per cycle."""
        out = []
        view = self.dut.view
        for k in range(len(refs) + LOOKUP_LATENCY - 1):
            if k < len(refs):
                self.ctx.set(view.ref, refs[k])
            await self.step()
            if k >= LOOKUP_LATENCY - 1:
                out.append(unpack(LookupLayout, self.ctx.get(Value.cast(view.lookup))))
        return out

    async def compare(self) -> None:
        ctx, dut, model = self.ctx, self.dut, self.model
        for slot in range(self.slots):
            for side in Side:
                for level in range(HEDGE_LEVEL + 1):
                    got = self.resting(order_index(slot, side, level))
                    order = model.at(slot, side, level)
                    where = f"slot {slot} side {side.name} level {level}"
                    assert got["valid"] == (order is not None), where
                    if order is None:
                        continue
                    want = {
                        "busy": order.busy, "pending_new": order.status is Status.PENDING_NEW,
                        "replacing": order.replace is not None,
                        "cancel_pending": order.cancel_pending, "ref": order.ref,
                        "price": min(order.price, PRICE_MAX), "quantity": order.quantity,
                        "open": order.open, "since": order.since}
                    if order.replace is not None:
                        want["replace_ref"] = order.replace.ref
                        want["replace_quantity"] = order.replace.quantity
                    assert {k: got[k] for k in want} == {k: int(v) for k, v in want.items()}, \
                        where
            assert ctx.get(dut.position[slot]) == self.position[slot]
            assert ctx.get(dut.live_of[slot]) == model.live_of(slot)
            assert ctx.get(dut.unacked_of[slot]) == model.unacked_of(slot)
            for side in Side:
                assert ctx.get(dut.view.exposure[slot][side]) == model.exposure(slot, side)
        assert ctx.get(dut.view.live_count) == model.live_count
        assert ctx.get(dut.view.unacked_count) == model.unacked_count
        orders = list(model)
        refs = [o.ref for o in orders] + [o.replace.ref for o in orders if o.replace]
        refs += [self.rng.randrange(1 << 32)]
        for ref, got in zip(refs, await self.lookup(refs), strict=True):
            order = model.get(ref)
            want = {"found": 0, "busy": 0, "live": 0, "slot": 0, "side": 0, "level": 0,
                    "open": 0, "exposure": 0}
            if order is not None:
                want = {"found": 1, "busy": int(order.busy),
                        "live": int(order.status is Status.LIVE), "slot": order.slot,
                        "side": int(order.side), "level": order.level, "open": order.open,
                        "exposure": order.exposure}
            assert got == want, f"lookup of {ref}"
        assert self.fills == self.expected_fills[:len(self.fills)]

    async def finish(self) -> None:
        """Nothing left over; the fills and every counter equal the model's."""
        await self.settle()
        await self.compare()
        for _ in range(4):
            await self.step()
        assert self.idle_now() and not self.ctx.get(self.dut.o_fill.valid)
        assert self.fills == self.expected_fills
        if not self.saturated:
            assert self.position == [self.book.shares(s) for s in range(self.slots)]
        stats = unpack(self.dut.stats.shape(), self.ctx.get(Value.cast(self.dut.stats)))
        want = {stat.name.lower(): self.model.stats[stat] for stat in OrderTableStat}
        want["position_saturated"] = self.saturated
        assert stats == want


# ------------------------------------------------------------------------------------------------
# A session with the exchange model


class Session:
    """Our side (decisions from the model's table) and the exchange model, stepped together."""

    def __init__(self, tb: TB, rng: random.Random):
        self.tb, self.rng = tb, rng
        symbols = [f"S{s}" for s in range(tb.slots)]
        self.entry = OrderEntry(symbols, PermissiveOrders())
        self.exchange = ExchangeSim(symbols)
        self.step = 0
        self.later: list[tuple[int, Answer]] = []
        self.ended: list[int] = []
        self.seen: set[int] = set()

    def _deliver(self, messages, delay_from: int, delay_to: int) -> None:
        due = self.step + self.rng.randint(delay_from, delay_to)
        self.later += [(due, Answer(m)) for m in messages]

    def _price(self) -> int:
        return BASE_PRICE + TICK * self.rng.randint(-5, 5)

    def _quantity(self) -> int:
        return self.rng.choice((self.rng.randint(1, 400), self.rng.randint(1, 400),
                                self.rng.randint(1, 400), 0, 1_000_000))

    def _send(self, action: OrderAction) -> None:
        sent = self.entry.send(action, self.step)
        self.tb.offer(Sent(sent.message.user_ref_num, action))
        self._deliver(self.exchange.receive(sent.packet, self.step), 1, 3)

    def _fresh_ref(self) -> int:
        ref = self.entry.next_user_ref
        self.entry.next_user_ref += 1
        return ref

    def plan(self) -> None:
        """One step: a few decisions, events and anomalies, then the answers now due."""
        rng, model = self.rng, self.tb.model
        touched: set[int] = set()
        slots = self.tb.slots
        for order in model:
            self.seen.add(order.ref)
        self.ended = [r for r in self.seen if model.get(r) is None][-20:]
        for _ in range(rng.randint(1, 4)):
            free = [(s, side, lvl) for s in range(slots) for side in Side
                    for lvl in range(HEDGE_LEVEL + 1)
                    if model.at(s, side, lvl) is None and order_index(s, side, lvl) not in touched]
            idle = [o for o in model if not o.busy
                    and order_index(o.slot, o.side, o.level) not in touched]
            busy = [o for o in model if o.busy]
            r = rng.random()
            if r < 0.25 and free:
                slot, side, level = rng.choice(free)
                touched.add(order_index(slot, side, level))
                tif = TimeInForce.IOC if rng.random() < 0.2 else TimeInForce.DAY
                self._send(OrderAction(ActionKind.NEW, slot, side, level, self._price(),
                                       self._quantity(), tif))
            elif r < 0.45 and idle:
                order = rng.choice(idle)
                touched.add(order_index(order.slot, order.side, order.level))
                kind = rng.choice((ActionKind.REPLACE, ActionKind.CANCEL))
                self._send(OrderAction(kind, order.slot, order.side, order.level,
                                       self._price(), self._quantity(), order.tif,
                                       ref=order.ref))
            elif r < 0.65:
                # Where our orders rest, mostly.
                slot = rng.choice([o.slot for o in model] + [rng.randrange(slots)])
                trade = FeedTrade(slot, rng.choice(list(Side)), self._price(),
                                  rng.randint(1, 600))
                self._deliver(self.exchange.on_trade(trade, self.step), 0, 2)
            elif r < 0.72:
                slot = rng.randrange(slots)
                bid = self._price() - 3 * TICK
                self.exchange.on_top(TopUpdate(slot, 0, bid, rng.randint(1, 300),
                                               bid + TICK * rng.randint(1, 6),
                                               rng.randint(1, 300), 0, 0, False, False))
            elif r < 0.78 and idle:
                # A replace the exchange never sees, rejected.
                order = rng.choice(idle)
                touched.add(order_index(order.slot, order.side, order.level))
                ref = self._fresh_ref()
                self.tb.offer(Sent(ref, OrderAction(ActionKind.REPLACE, order.slot, order.side,
                                                    order.level, self._price(),
                                                    self._quantity(), ref=order.ref)))
                self._deliver([rejected(ref)], 1, 2)
            else:
                self._anomaly(busy, free)
        now = [a for due, a in self.later if due <= self.step]
        self.later = [(due, a) for due, a in self.later if due > self.step]
        for answer in now:
            self.tb.offer(answer)
        self.step += 1

    def _anomaly(self, busy, free) -> None:
        rng, model, slots = self.rng, self.tb.model, self.tb.slots
        how = rng.choice(("unknown", "replaced_orig", "busy", "occupied", "in_use", "slot",
                          "stale"))
        orders = list(model)
        stranger = rng.choice((4_000_000_000 + rng.randrange(1000), 0, (1 << 32) - 1))
        if how == "unknown":
            self.tb.offer(Answer(rng.choice((
                accepted(stranger, 5), executed(stranger, 5), canceled(stranger, 5),
                rejected(stranger), replaced(stranger, 4_100_000_000, 5)))))
        elif how == "replaced_orig":
            pending = [o for o in orders if o.replace]
            if pending:
                order = rng.choice(pending)
                self.tb.offer(Answer(replaced(order.ref + 1, order.replace.ref, 7)))
        elif how == "busy" and busy:
            order = rng.choice(busy)
            kind = rng.choice((ActionKind.REPLACE, ActionKind.CANCEL))
            ref = self._fresh_ref() if kind is ActionKind.REPLACE else order.ref
            self.tb.offer(Sent(ref, OrderAction(kind, order.slot, order.side, order.level,
                                                self._price(), 10, ref=order.ref)))
        elif how == "occupied" and orders:
            order = rng.choice(orders)
            self.tb.offer(Sent(self._fresh_ref(), OrderAction(
                ActionKind.NEW, order.slot, order.side, order.level, self._price(), 10)))
        elif how == "in_use" and orders and free:
            slot, side, level = rng.choice(free)
            ref = rng.choice([o.ref for o in orders] + [o.replace.ref for o in orders
                                                        if o.replace])
            self.tb.offer(Sent(ref, OrderAction(ActionKind.NEW, slot, side, level,
                                                self._price(), 10)))
        elif how == "slot":
            self.tb.offer(Sent(self._fresh_ref(), OrderAction(
                ActionKind.NEW, rng.randrange(slots, 256), Side.BUY, 0, self._price(), 10)))
        elif how == "stale" and self.ended:
            ref = rng.choice(self.ended)
            kind = rng.choice((ActionKind.REPLACE, ActionKind.CANCEL))
            self.tb.offer(Sent(self._fresh_ref() if kind is ActionKind.REPLACE else ref,
                               OrderAction(kind, 0, Side.SELL, 1, self._price(), 10, ref=ref)))

    def drain(self) -> None:
        for _, answer in self.later:
            self.tb.offer(answer)
        self.later = []


def run_session(slots: int, steps: int, *, seed: int, idle: float, backpressure: float):
    tb = TB(slots, seed=seed, idle=idle, backpressure=backpressure)
    session = Session(tb, random.Random(seed + 1))

    async def body(tb):
        for _ in range(steps):
            session.plan()
            await tb.settle()
            await tb.compare()
        session.drain()
        await tb.finish()

    tb.run(body)
    return tb


@pytest.mark.parametrize(("slots", "steps", "idle", "backpressure"), [
    (2, 400, 0.0, 0.0),
    (2, 300, 0.4, 0.6),
    (8, 150, 0.2, 0.3),
])
def test_random_sessions(slots, steps, idle, backpressure):
    tb = run_session(slots, steps, seed=SEED + slots, idle=idle, backpressure=backpressure)
    stats = tb.model.stats
    # The session reaches every rule: fills, rejects, refusals, stale reports, strangers.
    assert stats[OrderTableStat.FILLS] > steps // 20
    assert stats[OrderTableStat.UNKNOWN] > 3
    assert stats[OrderTableStat.CONFLICT] > 3
    assert stats[OrderTableStat.STALE] > 0
    assert stats[OrderTableStat.SENT] > 50


# ------------------------------------------------------------------------------------------------
# Edge cases


def test_edges():
    """Each rule on its own: dead and empty accepts, the replace lifecycle (replaced, dead,
    rejected, racing a full fill, a partial fill while other orders are sent), over-fills and
    over-cancels, wide prices, the position's saturation, a report of an action kind outside
    the enum."""
    tb = TB(2, seed=3, backpressure=0.5)
    big = (1 << 32) - 1

    def new(ref, slot=0, side=Side.BUY, level=0, quantity=100, price=BASE_PRICE):
        return Sent(ref, OrderAction(ActionKind.NEW, slot, side, level, price, quantity))

    def rep(ref, orig, slot=0, side=Side.BUY, level=0, quantity=150):
        return Sent(ref, OrderAction(ActionKind.REPLACE, slot, side, level, BASE_PRICE + 1,
                                     quantity, ref=orig))

    def cxl(ref, slot=0, side=Side.BUY, level=0):
        return Sent(ref, OrderAction(ActionKind.CANCEL, slot, side, level, ref=ref))

    script = [
        [new(1), Answer(accepted(1, 100, state=OrderState.DEAD))],   # dead on arrival
        [new(2, level=1), Answer(accepted(2, 0))],                   # nothing accepted
        [new(3, side=Side.SELL), Answer(accepted(3, 90, price=1 << 40))],
        [rep(4, 3, side=Side.SELL), Answer(executed(3, 30)), Answer(replaced(3, 4, 120))],
        [rep(5, 4, side=Side.SELL), Answer(rejected(5))],            # the original stays
        [rep(6, 4, side=Side.SELL), Answer(replaced(4, 6, 0))],      # replaced with nothing
        [new(7, slot=1, level=2), Answer(accepted(7, 50)), rep(8, 7, slot=1, level=2)],
        [Answer(executed(7, 80, price=big << 8, liquidity=LiquidityFlag.REMOVED))],
        [Answer(replaced(7, 8, 10))],                                # the replace went with it
        [new(9, slot=1, side=Side.SELL, level=3, quantity=big), Answer(accepted(9, big))],
        [Answer(executed(9, big))],                                  # the position saturates
        [new(11), Answer(accepted(11, 40)), cxl(11), Answer(canceled(11, 500))],
        [new(12, level=2), Answer(accepted(12, 40)), Answer(rejected(12))],
        [new(13, level=1), Answer(rejected(13)), Answer(canceled(13, 1))],
        # A fill while a replace is in flight, after another order was sent: the replacement
        # keeps its own UserRefNum (not the last one sent), and the cancel naming it finds it.
        [new(14, slot=1)],
        [Answer(accepted(14, 100))],
        [rep(15, 14, slot=1)],
        [new(16, slot=1, side=Side.SELL, level=1)],
        [Answer(executed(14, 10))],
        [Answer(replaced(14, 15, 120))],
        [cxl(15, slot=1)],
    ]

    async def body(tb):
        for burst in script:
            for item in burst:
                tb.offer(item)
            await tb.settle()
            await tb.compare()
        # A report whose action kind is outside the enum is a conflict.
        tb.offer(Sent(20, OrderAction(ActionKind.NEW, 0, Side.BUY, 0, 1, 1), raw_kind=3))
        await tb.settle()
        await tb.finish()

    tb.run(body)
    assert tb.saturated == 1
    assert tb.model.stats[OrderTableStat.CONFLICT] >= 1


# ------------------------------------------------------------------------------------------------
# The sweeper


class _Halts(RiskGate):
    """``RiskGate.sweep`` over given halt causes (PASSED: not halted)."""

    def __init__(self, orders, causes):
        self.orders = orders
        self.causes = causes
        self._slots = causes
        self.stats = {reason: 0 for reason in RiskReason}

    def state(self, slot, now):
        cause = self.causes[slot]
        return ((RiskState.ACTIVE, cause) if cause is RiskReason.PASSED
                else (RiskState.HALTED, cause))


def sweep_dict(decision) -> dict:
    return {"action": action_fields(decision.action), "reason": int(decision.reason)}


def test_sweeper():
    """Orders live, pending, replacing and canceling over every slot; some slots halted: the
    cancels come in the model's order, each once; recorded cancels make their orders busy; a
    partial cancel makes its order due again; a slot no longer halted is left alone."""
    slots = 8
    tb = TB(slots, seed=11, backpressure=0.3)
    rng = random.Random(SEED)
    causes = [rng.choice((RiskReason.PASSED, RiskReason.DISARMED, RiskReason.STALE_FEED,
                          RiskReason.BOOK_CROSSED, RiskReason.MMP_TRIPPED))
              for _ in range(slots)]
    causes[0], causes[1] = RiskReason.DISARMED, RiskReason.PASSED

    async def body(tb):
        ctx, dut = tb.ctx, tb.dut
        tb.sweep_ready = False
        refs = rng.sample(range(1, 5000), slots * 8)
        phases: list[list] = [[], [], []]   # enters, accepts, then cancels and replaces
        for k, (slot, side, level) in enumerate(
                (s, side, lvl) for s in range(slots) for side in Side for lvl in range(4)):
            if rng.random() < 0.2:
                continue
            ref = refs[k]
            phases[0].append(Sent(ref, OrderAction(ActionKind.NEW, slot, side, level,
                                                   BASE_PRICE, 50)))
            state = rng.random()
            if state < 0.8:
                phases[1].append(Answer(accepted(ref, 50)))
            if 0.6 < state < 0.7:
                phases[2].append(Sent(ref, OrderAction(ActionKind.CANCEL, slot, side, level,
                                                       ref=ref)))
            elif 0.7 < state < 0.8:
                phases[2].append(Sent(ref + 5000, OrderAction(
                    ActionKind.REPLACE, slot, side, level, BASE_PRICE, 60, ref=ref)))
        for phase in phases:
            for item in phase:
                tb.offer(item)
            await tb.settle()
        await tb.compare()

        async def collect(expected_count):
            for _ in range(400 + 10 * expected_count):
                tb.sweep_ready = tb.rng.random() < 0.7
                await tb.step()
            tb.sweep_ready = False

        ctx.set(dut.halted, sum(1 << s for s in range(slots) if causes[s] != RiskReason.PASSED))
        for s in range(slots):
            ctx.set(dut.halt_cause[s], causes[s])
        gate = _Halts(tb.model, causes)
        want = [sweep_dict(d) for d in gate.sweep(0)]
        assert len(want) > 10
        await collect(len(want))
        assert [s for _, s in tb.sweeps] == want
        gaps = [b - a for (a, _), (b, _) in pairwise(tb.sweeps)]

        # The cancels reach the table: their orders are busy and not swept again. Half of them
        # are answered in part: due again.
        tb.sweeps.clear()
        partial = []
        for s in want:
            a = s["action"]
            tb.offer(Sent(a["ref"], OrderAction(ActionKind.CANCEL, a["slot"], Side(a["side"]),
                                                a["level"], ref=a["ref"])))
        await tb.settle()
        await collect(0)
        assert tb.sweeps == []
        for s in want:
            ref = s["action"]["ref"]
            if rng.random() < 0.5:
                partial.append(ref)
                tb.offer(Answer(canceled(ref, 20)))
            else:
                tb.offer(Answer(canceled(ref, 50)))
        causes[0] = RiskReason.PASSED             # slot 0 recovers: its orders stay
        ctx.set(dut.halted, sum(1 << s for s in range(slots) if causes[s] != RiskReason.PASSED))
        await tb.settle()
        await tb.compare()
        want = [sweep_dict(d) for d in gate.sweep(0)]
        assert {w["action"]["ref"] for w in want} <= set(partial)
        await collect(len(want))
        assert [s for _, s in tb.sweeps] == want
        for _, s in tb.sweeps:
            tb.offer(Sent(s["action"]["ref"], OrderAction(
                ActionKind.CANCEL, s["action"]["slot"], Side(s["action"]["side"]),
                s["action"]["level"], ref=s["action"]["ref"])))
        tb.sweeps.clear()
        await tb.settle()
        await collect(0)
        assert tb.sweeps == []
        assert not ctx.get(dut.o_sweep.valid)
        await tb.finish()
        tb.gaps = gaps

    tb.run(body)
    assert min(tb.gaps) >= 7


# ------------------------------------------------------------------------------------------------
# Latency and throughput


def test_latency():
    """A message taken in cycle t is applied in t + 4: its fill is offered in t + 5, the table
    and the position show it in t + 5, the exposure in t + 8 when the view is stable again; the
    lookup takes 3 cycles; back-to-back messages are taken every 4 cycles, in turns."""
    tb = TB(2, seed=5)
    result = {}

    async def body(tb):
        ctx, dut = tb.ctx, tb.dut
        tb.offer(Sent(7, OrderAction(ActionKind.NEW, 1, Side.SELL, 2, BASE_PRICE, 100)))
        tb.offer(Answer(accepted(7, 100)))
        await tb.settle()
        tb.offer(Answer(executed(7, 40)))
        e = order_index(1, Side.SELL, 2)
        taken, shown, moved, exposed, calm = None, None, None, None, None
        for _ in range(12):
            before = len(tb.takes)
            await tb.step()
            if len(tb.takes) > before:
                taken = tb.takes[-1][0]
            if shown is None and tb.resting(e)["open"] == 60:
                shown = tb.cycle
            if moved is None and ctx.get(dut.position[1]) == -40:
                moved = tb.cycle
            if exposed is None and ctx.get(dut.view.exposure[1][Side.SELL]) == 60:
                exposed = tb.cycle
            if taken is not None and calm is None and ctx.get(dut.view.stable):
                calm = tb.cycle
        result["apply"] = (taken, tb.fill_offers[-1], shown, moved, exposed, calm)
        await tb.settle()
        # Lookup: a UserRefNum presented in cycle c is answered in c + 3.
        ctx.set(dut.view.ref, 7)
        seen = None
        for k in range(1, 6):
            await tb.step()
            if seen is None and unpack(LookupLayout, ctx.get(Value.cast(dut.view.lookup)))["found"]:
                seen = k
        result["lookup"] = seen
        ctx.set(dut.view.ref, 0)
        # Throughput: a burst on both inputs, taken every 4 cycles, alternating.
        tb.takes.clear()
        for k in range(6):
            tb.offer(Answer(executed(7, 1, match=k)))
            tb.offer(Sent(7, OrderAction(ActionKind.CANCEL, 1, Side.SELL, 2, ref=7)))
        await tb.settle()
        result["takes"] = [(c, type(item).__name__) for c, item in tb.takes]
        await tb.finish()

    tb.run(body)
    taken, fill, shown, moved, exposed, calm = result["apply"]
    assert (fill - taken, shown - taken, moved - taken) == (5, 5, 5)
    assert (exposed - taken, calm - taken) == (8, 8)
    assert result["lookup"] == LOOKUP_LATENCY
    cycles = [c for c, _ in result["takes"]]
    assert [b - a for a, b in pairwise(cycles)] == [APPLY_CYCLES] * (len(cycles) - 1)
    kinds = [k for _, k in result["takes"]]
    assert kinds == ["Sent", "Answer"] * 6 or kinds == ["Answer", "Sent"] * 6
