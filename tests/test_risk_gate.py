"""The risk gate on the Amaranth simulator, decision by decision against ``sim/risk.py``.

The testbench plays everything around the gate: the quoter and hedger (random actions, good and
bad), the order table (the model's :class:`~sim.orders.OrderTable`, answering the gate's queries
and recording what the gate passes), the exchange (accepts, rejects, replaces, cancels and
executions, whose fills feed market-maker protection and the positions), the book (tops, some
crossed, locked, halted, degraded or missing a side), the control plane (arm, kill, heartbeat) and
the feed's gap flag. Every decision is compared with ``sim.risk.RiskGate.check`` at the cycle the
gate reports, which must be the cycle the view was accepted; the model is given each input at
the cycle the gate's docstring says it counts. The per-slot state output and the counters are
compared too, and every run ends with nothing in flight.
"""

import itertools
import random
from collections import deque
from dataclasses import dataclass, field, replace

import pytest
from amaranth.sim import Simulator

from hdl.book.layout import top_update_layout
from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from hdl.quote.order_action import OrderActionLayout
from hdl.quote.risk_gate import (
    DECISION_LATENCY,
    FILL_DELAY,
    MICROPRICE_CYCLES,
    DecisionLayout,
    FillLayout,
    OrderViewLayout,
    RiskGate,
    SlotStateLayout,
    ViewQueryLayout,
)
from hdl.stats import COUNTER_LATENCY, stats_layout
from host.gatesim.streams import pack, unpack
from sim.book import TopUpdate
from sim.control import Control
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, OrderAction, OrderTable, Origin, Status
from sim.risk import RiskGate as ModelGate
from sim.risk import RiskReason, RiskState
from sim.wire.ouch import (
    MAX_LIMIT_PRICE,
    MAX_QUANTITY,
    Accepted,
    Canceled,
    Executed,
    Rejected,
    Replaced,
    TimeInForce,
)

SLOTS = 4
SLOT_BITS = 2
R = RiskReason
TOP_LAYOUT = top_update_layout(SLOT_BITS)
SIDE_CODE = "BS"
TIFS = list(TimeInForce)
SCRIPT_START = 40


@dataclass
class Config:
    """One run: registers, the chances of each event per cycle, and the stream conditions."""

    quote: list[QuoteParams]
    limits: list[RiskLimits]
    port: PortLimits
    heartbeat_timeout: int = 0
    cycles: int = 3000
    p_action: float = 0.5
    p_forced: float = 0.02
    p_top: float = 0.05
    p_exchange: float = 0.1
    p_arm: float = 0.002
    p_kill: float = 0.001
    p_heartbeat: float = 0.0
    p_gap: float = 0.002
    p_position: float = 0.005
    p_bad: float = 0.1
    p_odd_top: float = 0.15
    idle: float = 0.0
    backpressure: float = 0.0
    view_delay: int = 1
    seed: int = 1


def default_config(seed: int = 1, **kw) -> Config:
    rng = random.Random(seed)
    quote = [QuoteParams(enable=True, fair_value_mode=mode, reference_price=1_000_000 + 50 * k)
             for k, mode in enumerate((FairValueMode.MID, FairValueMode.MICROPRICE,
                                       FairValueMode.REFERENCE, FairValueMode.MID))]
    limits = [RiskLimits(max_long=rng.choice((300, 600)), max_short=rng.choice((300, 600)),
                         max_order_qty=250, collar=rng.choice((300, 1000)),
                         mmp_threshold=rng.choice((0, 400, 800)), mmp_window=300)
              for _ in range(SLOTS)]
    port = PortLimits(rate_tokens=4, rate_refill=60, max_live_orders=7, max_unacked_orders=4,
                      stale_feed_timeout=900)
    return Config(quote, limits, port, seed=seed, **kw)


_STATE_AT = SlotStateLayout["state"].offset
_CAUSE_AT = SlotStateLayout["cause"].offset
_STATE_SIZE = SlotStateLayout.size


def pack_states(states) -> int:
    """The ``state`` port's value for the model's (state, cause) per slot (``pack`` is too slow
    to run every cycle)."""
    raw = 0
    for k, (state, cause) in enumerate(states):
        raw |= ((int(state) << _STATE_AT) | (int(cause) << _CAUSE_AT)) << (_STATE_SIZE * k)
    return raw


class Positions:
    def __init__(self):
        self.values = [0] * SLOTS

    def shares(self, slot):
        return self.values[slot]


def action_fields(action: OrderAction) -> dict:
    return {"kind": int(action.kind), "slot": action.slot, "side": int(action.side),
            "level": action.level, "price": action.price, "quantity": action.quantity,
            "tif": ord(action.tif), "ref": action.ref, "origin": int(action.origin)}


@dataclass
class Expected:
    fields: dict
    reason: RiskReason
    passed: bool
    time: int
    action: OrderAction
    forced: bool


@dataclass
class Result:
    decisions: list = field(default_factory=list)   # (action, reason) as decided
    view_cycles: list = field(default_factory=list)
    accept_cycles: list = field(default_factory=list)
    out_cycles: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    expected_stats: dict = field(default_factory=dict)
    causes: set = field(default_factory=set)        # (state, cause) of the model's slots
    control: set = field(default_factory=set)       # control states driven


class TB:
    """The gate and everything around it; :meth:`run` drives a whole randomized session."""

    def __init__(self, config: Config, *, script=None, initial_tops=()):
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.dut = RiskGate(SLOTS, slot_bits=SLOT_BITS)
        self.control = Control(config.heartbeat_timeout)
        self.orders = OrderTable()
        self.positions = Positions()
        self.model = ModelGate(config.quote, config.limits, config.port, self.control,
                               self.orders, self.positions)
        # Scripted runs offer these actions back to back from SCRIPT_START, tops first, armed
        # in cycle 0, and nothing else happens.
        self.script = None if script is None else deque(script)
        self.initial_tops = list(initial_tops)
        self.result = Result()
        self.centre = [1_000_000 + 500 * k for k in range(SLOTS)]
        self.tops = [None] * SLOTS
        self.next_ref = 1
        self.pending_model = {}   # model time -> [callables]
        self.expected = deque()   # decisions to come on o_decision
        self.expected_out = deque()
        self.in_flight = None     # action accepted and not yet decided
        self.offered = None
        self.forced_offered = None
        self.query = None         # (fields, cycle) of a query waiting for its view
        self.fills = deque()
        self.feed_gap = 0
        self.state_expect = None
        self.match = 0
        self.driven = {}

    # -- stimulus ----------------------------------------------------------------------------

    def random_top(self, slot):
        rng, c = self.rng, self.centre[slot]
        c += rng.randrange(-300, 301)
        self.centre[slot] = c
        bid = c - rng.randrange(0, 200)
        ask = bid + rng.randrange(1, 400)
        halted = degraded = False
        if rng.random() < self.cfg.p_odd_top:
            odd = rng.choice(("crossed", "locked", "no_bid", "no_ask", "halted", "degraded"))
            if odd == "crossed":
                ask = bid - rng.randrange(1, 100)
            elif odd == "locked":
                ask = bid
            elif odd == "no_bid":
                bid = 0
            elif odd == "no_ask":
                ask = 0
            elif odd == "halted":
                halted = True
            else:
                degraded = True
        def shares(price):
            return 0 if price == 0 else rng.choice((1, rng.randrange(1, 5000), (1 << 48) - 1))
        return TopUpdate(slot, slot + 1, bid, shares(bid), ask, shares(ask), 0, 0, halted,
                         degraded)

    def busy_slots(self):
        """Order slots taken or about to be (the in-flight and offered actions)."""
        taken = {(o.slot, int(o.side), o.level) for o in self.orders}
        flight = self.in_flight[0] if self.in_flight else None
        for a in (flight, self.offered):
            if a is not None and a.kind is ActionKind.NEW:
                taken.add((a.slot, int(a.side), a.level))
        return taken

    def random_action(self):
        rng = self.rng
        slot = rng.randrange(SLOTS)
        kind = rng.choice((ActionKind.NEW, ActionKind.NEW, ActionKind.REPLACE, ActionKind.CANCEL))
        orders = list(self.orders)
        side = rng.choice(list(Side))
        level = rng.randrange(HEDGE_LEVEL + 1)
        ref = 0
        if kind is not ActionKind.NEW:
            mine = [o for o in orders if o.slot == slot]
            choice = rng.random()
            if mine and choice < 0.75:
                order = rng.choice(mine)
                ref, side, level = order.ref, order.side, order.level
                if rng.random() < 0.1:
                    side = Side(1 - side)
            elif orders and choice < 0.85:
                ref = rng.choice(orders).ref
            else:
                ref = rng.choice((self.next_ref + 5, rng.randrange(1, 1 << 32)))
        else:
            free = [(s, lv) for s in Side for lv in range(HEDGE_LEVEL + 1)
                    if (slot, int(s), lv) not in self.busy_slots()]
            if not free:
                return None
            side, level = rng.choice(free)
        top = self.tops[slot]
        base = self.centre[slot] if top is None else (
            (top.bid_price or self.centre[slot]) if side is Side.BUY else
            (top.ask_price or self.centre[slot]))
        away = rng.choice((0, 100, 200, 400, 1200, -100, -300))
        price = base - away if side is Side.BUY else base + away
        quantity = rng.choice((rng.randrange(1, 120), rng.randrange(1, 300), 250, 251))
        tif = TimeInForce.IOC if level == HEDGE_LEVEL else TimeInForce.DAY
        if rng.random() < 0.1:
            tif = rng.choice(TIFS)
        if rng.random() < self.cfg.p_bad:
            how = rng.randrange(4)
            if how == 0:
                quantity = rng.choice((0, MAX_QUANTITY + 1, (1 << 32) - 1))
            elif how == 1:
                price = rng.choice((0, MAX_LIMIT_PRICE + 1, (1 << 32) - 1, MAX_LIMIT_PRICE))
            elif how == 2:
                price = max(1, price + rng.choice((-1, 1)) * rng.randrange(0, 3000))
            else:
                quantity = rng.randrange(1, 2000)
        origin = Origin.HEDGER if level == HEDGE_LEVEL else Origin.QUOTER
        return OrderAction(kind, slot, side, level, max(price, 0), quantity, tif, ref, origin)

    def forced_cancel(self):
        orders = list(self.orders)
        if not orders:
            return None
        o = self.rng.choice(orders)
        return OrderAction(ActionKind.CANCEL, o.slot, o.side, o.level, ref=o.ref,
                           origin=Origin.GATE)

    def view(self, q):
        """The order table's answer to query ``q`` (the gateware's form)."""
        target = self.orders.get(q["ref"]) if q["ref"] else None
        others = self.orders.exposure(q["slot"], Side(q["side"]),
                                      exclude=q["ref"] if q["ref"] else None)
        return {
            "found": int(target is not None),
            "busy": int(target is not None and target.busy),
            "slot": target.slot if target else 0,
            "side": int(target.side) if target else 0,
            "exposure": target.exposure if target else 0,
            "others": others,
            "live": min(self.orders.live_count, 0xFFFF),
            "unacked": min(self.orders.unacked_count, 0xFFFF),
        }

    def exchange(self, now):
        """One answer of the exchange to a random order, applied to the table."""
        rng = self.rng
        orders = list(self.orders)
        if not orders:
            return
        o = rng.choice(orders)
        side = SIDE_CODE[o.side]
        if o.status is Status.PENDING_NEW:
            if rng.random() < 0.85:
                msg = Accepted(0, o.ref, side, o.quantity, "X", o.price, o.tif, "Y", o.ref, "P",
                               "N", "N", "L", "")
            else:
                msg = Rejected(0, o.ref, 1, "")
        elif o.replace is not None:
            p = o.replace
            if rng.random() < 0.8:
                msg = Replaced(0, o.ref, p.ref, side, p.quantity, "X", p.price, o.tif, "Y",
                               p.ref, "P", "N", "N", "L", "")
            else:
                msg = Rejected(0, p.ref, 1, "")
        elif o.cancel_pending:
            msg = Canceled(0, o.ref, o.open, "U")
        else:
            qty = rng.randrange(1, o.open + 1) if o.open else 1
            self.match += 1
            msg = Executed(0, o.ref, qty, o.price, "A", self.match)
        _, fill = self.orders.on_message(msg, now)
        if fill is not None:
            self.fills.append((fill.slot, fill.quantity))
            sign = 1 if fill.side is Side.BUY else -1
            self.positions.values[fill.slot] += sign * fill.quantity

    def record_sent(self, action, now):
        """What the order entry does with a passed action: the table records it."""
        if action.kind is ActionKind.NEW:
            self.orders.entered(self.next_ref, action, now)
            self.next_ref += 1
            return
        order = self.orders.get(action.ref)
        if order is None or order.busy:
            return   # ended since the decision: the exchange would ignore it
        if action.kind is ActionKind.REPLACE:
            self.orders.replacing(order, self.next_ref, action.price, action.quantity, now)
            self.next_ref += 1
        else:
            self.orders.canceling(order)

    # -- the model -----------------------------------------------------------------------------

    def at(self, time, fn):
        self.pending_model.setdefault(time, []).append(fn)

    def decide(self, action, forced, now):
        if forced:
            target = self.orders.get(action.ref)
            ok = target is not None and not target.busy and target.slot == action.slot
            if ok:
                self.model.stats[R.FORCED_CANCEL] += 1
                reason = self.model.state(action.slot, now)[1]
            else:
                self.model.stats[R.UNKNOWN_ORDER] += 1
                reason = R.UNKNOWN_ORDER
            return reason, ok
        decision = self.model.check(action, now)
        return decision.reason, decision.reason is R.PASSED

    # -- the clocked loop ----------------------------------------------------------------------

    def drive(self, ctx, signal, value):
        """``ctx.set``, skipped when the value is unchanged (the simulator's calls are slow)."""
        key = repr(signal)
        if self.driven.get(key) != value:
            self.driven[key] = value
            ctx.set(signal, value)

    async def run(self, ctx):
        dut, cfg, rng = self.dut, self.cfg, self.rng
        for k in range(SLOTS):
            for port, values in ((dut.quote[k], cfg.quote[k]), (dut.risk[k], cfg.limits[k])):
                for name in type(values).__registers__:
                    ctx.set(getattr(port, name), int(getattr(values, name)))
        for name in type(cfg.port).__registers__:
            ctx.set(getattr(dut.port, name), int(getattr(cfg.port, name)))
        ctx.set(dut.i_view.valid, 0)
        view_at = None
        cycle = 0
        drained = 0
        while True:
            ending = cycle >= cfg.cycles
            # -- drive cycle ``cycle`` --
            script = self.script
            if self.offered is None and not ending:
                if script is not None:
                    if cycle >= SCRIPT_START and script:
                        self.offered = script.popleft()
                elif rng.random() < cfg.p_action * (1 - cfg.idle):
                    self.offered = self.random_action()
                if self.offered is not None:
                    self.drive(ctx, dut.i.payload.as_value(),
                                   pack(OrderActionLayout, action_fields(self.offered)))
            self.drive(ctx, dut.i.valid, int(self.offered is not None))
            if self.forced_offered is None and not ending and script is None \
                    and rng.random() < cfg.p_forced:
                self.forced_offered = self.forced_cancel()
                if self.forced_offered is not None:
                    self.drive(ctx, dut.i_forced.payload.as_value(),
                                   pack(OrderActionLayout, action_fields(self.forced_offered)))
            self.drive(ctx, dut.i_forced.valid, int(self.forced_offered is not None))
            offering_view = self.query is not None and cycle >= view_at
            if offering_view:
                self.drive(ctx, dut.i_view.payload.as_value(),
                        pack(OrderViewLayout, self.view(self.query)))
            self.drive(ctx, dut.i_view.valid, int(offering_view))
            top = None
            if cycle < len(self.initial_tops):
                top = self.initial_tops[cycle]
            elif not ending and script is None and rng.random() < cfg.p_top:
                top = self.random_top(rng.randrange(SLOTS))
            if top is not None:
                self.drive(ctx, dut.i_top.payload.as_value(),
                        pack(TOP_LAYOUT, {name: getattr(top, name) for name, _ in TOP_LAYOUT}))
            self.drive(ctx, dut.i_top.valid, int(top is not None))
            if self.fills:
                slot, shares = self.fills[0]
                self.drive(ctx, dut.i_fill.payload.as_value(),
                        pack(FillLayout, {"slot": slot, "shares": shares}))
            self.drive(ctx, dut.i_fill.valid, int(bool(self.fills)))
            strobes = {}
            if not ending and script is None:
                strobes = {"arm": rng.random() < cfg.p_arm, "kill": rng.random() < cfg.p_kill,
                           "heartbeat": rng.random() < cfg.p_heartbeat}
                if rng.random() < cfg.p_gap:
                    self.feed_gap ^= 1
                if rng.random() < cfg.p_position:
                    k = rng.randrange(SLOTS)
                    lim = cfg.limits[k]
                    self.positions.values[k] = rng.choice(
                        (0, lim.max_long, lim.max_long + 1, -lim.max_short, -lim.max_short - 1,
                         rng.randrange(-800, 800)))
            if cycle == 0:
                strobes = {"arm": True}   # armed from cycle 1
            self.drive(ctx, dut.arm, int(strobes.get("arm", False)))
            state = self.control.state(cycle)
            self.result.control.add(state)
            self.drive(ctx, dut.control.armed, int(state.armed))
            self.drive(ctx, dut.control.killed, int(state.killed))
            self.drive(ctx, dut.control.heartbeat_lost, int(state.heartbeat_lost))
            self.drive(ctx, dut.feed_gap, self.feed_gap)
            self.drive(ctx, dut.position.as_value(),
                    sum((p & 0xFFFF_FFFF) << (32 * k) for k, p in enumerate(self.positions.values)))
            bp = cfg.backpressure
            self.drive(ctx, dut.o.ready, int(rng.random() >= bp))
            self.drive(ctx, dut.o_decision.ready, int(rng.random() >= bp))
            self.drive(ctx, dut.o_query.ready, int(rng.random() >= bp))

            (_, _, i_take, f_take, q_take, q_pay, v_take, o_take, o_pay, d_take, d_pay, fill_take,
             top_take, states, now) = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.i_forced.valid & dut.i_forced.ready,
                dut.o_query.valid & dut.o_query.ready, dut.o_query.payload.as_value(),
                dut.i_view.valid & dut.i_view.ready,
                dut.o.valid & dut.o.ready, dut.o.payload.as_value(),
                dut.o_decision.valid & dut.o_decision.ready,
                dut.o_decision.payload.as_value(),
                dut.i_fill.valid & dut.i_fill.ready, dut.i_top.valid & dut.i_top.ready,
                dut.state.as_value(), dut.now)
            assert now == cycle, "the cycle counter counts cycles from reset"

            # -- the model, for cycle ``cycle`` --
            if self.state_expect is not None:   # state output: the state of the cycle before
                assert states == self.state_expect, \
                    f"cycle {cycle}: states {unpack(dut.state.shape(), states)}, model " \
                    f"{unpack(dut.state.shape(), self.state_expect)}"
            for fn in self.pending_model.pop(cycle, []):
                fn()
            self.model.feed_gap = bool(self.feed_gap)
            if v_take:
                action, forced = self.in_flight
                reason, passed = self.decide(action, forced, cycle)
                out = replace(action, origin=Origin.GATE) if forced else action
                self.expected.append(Expected(action_fields(out), reason, passed, cycle, out,
                                              forced))
                if passed:
                    self.expected_out.append(out)
                self.query = None
                self.result.view_cycles.append(cycle)
            states = [self.model.state(k, cycle) for k in range(SLOTS)]
            self.result.causes.update(states)
            self.state_expect = pack_states(states)
            if strobes.get("arm"):
                self.model.rearm(cycle)
            if any(strobes.values()):
                self.control.strobe(cycle, **strobes)

            # -- transfers --
            if i_take or f_take:
                assert self.in_flight is None, "one action at a time"
                if f_take:
                    self.in_flight = (self.forced_offered, True)
                    self.forced_offered = None
                else:
                    self.in_flight = (self.offered, False)
                    self.offered = None
                self.result.accept_cycles.append(cycle)
            if q_take:
                q = unpack(ViewQueryLayout, q_pay)
                action, forced = self.in_flight
                want_ref = 0 if action.kind is ActionKind.NEW and not forced else action.ref
                assert q == {"ref": want_ref, "slot": action.slot, "side": int(action.side)}
                self.query = q
                view_at = cycle + self.cfg.view_delay
            if d_take:
                got = unpack(DecisionLayout, d_pay)
                want = self.expected.popleft()
                assert got["time"] == want.time, "decided at the view's cycle"
                assert (got["action"], R(got["reason"]), bool(got["passed"])) == (
                    want.fields, want.reason, want.passed), \
                    f"decision at {want.time} of {want.action}: got {R(got['reason'])}, " \
                    f"model {want.reason}"
                self.result.decisions.append((want.action, want.reason))
                if not want.passed:
                    self.in_flight = None
            if o_take:
                out = self.expected_out.popleft()
                assert unpack(OrderActionLayout, o_pay) == action_fields(out)
                self.record_sent(out, cycle)
                self.result.out_cycles.append(cycle)
                self.in_flight = None
            if fill_take:
                slot, shares = self.fills.popleft()
                self.at(cycle + FILL_DELAY, lambda s=slot, q=shares, t=cycle + FILL_DELAY:
                        self.model.on_fill(s, q, t))
            if top_take:
                self.tops[top.slot] = top
                self.at(cycle + 1, lambda u=top, t=cycle + 1: self.model.on_book(u, t))
            if not ending and script is None and rng.random() < cfg.p_exchange \
                    and self.query is None:
                self.exchange(cycle)
            cycle += 1
            if ending:
                idle = (self.offered is None and self.forced_offered is None
                        and self.in_flight is None and not self.expected and not self.fills
                        and not ctx.get(dut.busy))
                drained = drained + 1 if idle else 0
                if drained > 4:
                    break
                assert cycle < cfg.cycles + 2000, "the gate did not drain"
        await ctx.tick().repeat(COUNTER_LATENCY + 1)
        self.result.stats = unpack(stats_layout(RiskReason), ctx.get(dut.stats.as_value()))
        self.result.expected_stats = {r.name.lower(): n for r, n in self.model.stats.items()}
        assert not self.expected and not self.expected_out and not self.pending_model

    def simulate(self) -> Result:
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self.run)
        sim.run()
        return self.result


def run_checked(config: Config) -> Result:
    result = TB(config).simulate()
    assert result.stats == result.expected_stats
    assert len(result.decisions) == len(result.view_cycles)
    return result


# ------------------------------------------------------------------------------------------------
# Randomized sessions


@pytest.mark.parametrize(("idle", "backpressure", "view_delay"),
                         [(0.0, 0.0, 1), (0.5, 0.3, 3), (0.2, 0.6, 2)])
def test_random_sessions_match_the_model(idle, backpressure, view_delay):
    config = default_config(seed=int(idle * 10 + backpressure * 100) + view_delay,
                            idle=idle, backpressure=backpressure, view_delay=view_delay,
                            cycles=4000, heartbeat_timeout=1500, p_heartbeat=0.004)
    result = run_checked(config)
    reasons = {reason for _, reason in result.decisions}
    # A session this long meets most controls; each has its own test below too.
    assert len(reasons) >= 12, sorted(reasons)
    assert R.PASSED in reasons
    assert {state for state, _ in result.causes} == set(RiskState)


# ------------------------------------------------------------------------------------------------
# One scenario per control


def scenario(reason: RiskReason, seed: int) -> Config:
    """A session in which ``reason`` is likely to decide some actions."""
    c = default_config(seed=seed, cycles=800, p_arm=0.0, p_kill=0.0, p_gap=0.0,
                       p_position=0.0, p_bad=0.0, p_odd_top=0.0, p_top=0.1)
    c.port = replace(c.port, rate_tokens=1000, rate_refill=1, max_live_orders=100,
                     max_unacked_orders=100, stale_feed_timeout=0)
    c.limits = [replace(lim, mmp_threshold=0, max_long=100_000, max_short=100_000,
                        collar=5000, max_order_qty=100_000) for lim in c.limits]
    if reason is R.DISARMED:
        # Kills, and a watchdog that trips between sparse heartbeats; arms bring it back.
        c.p_kill, c.p_arm, c.p_heartbeat, c.heartbeat_timeout = 0.002, 0.004, 0.003, 150
        c.cycles = 2000
    elif reason is R.MMP_TRIPPED:
        c.limits = [replace(lim, mmp_threshold=150, mmp_window=400) for lim in c.limits]
        c.p_exchange, c.p_arm = 0.3, 0.003
    elif reason is R.STALE_FEED:
        c.port = replace(c.port, stale_feed_timeout=120)
        c.p_top = 0.01
    elif reason is R.FEED_GAP:
        c.p_gap = 0.01
    elif reason in (R.BOOK_HALTED, R.BOOK_DEGRADED, R.BOOK_CROSSED):
        c.p_odd_top = 0.6
    elif reason in (R.UNKNOWN_ORDER, R.BAD_ORDER, R.COLLAR, R.MAX_ORDER_QTY):
        c.p_bad = 0.5
        c.limits = [replace(lim, collar=300, max_order_qty=200) for lim in c.limits]
    elif reason is R.NO_FAIR_VALUE:
        c.p_odd_top = 0.6
        c.quote = [replace(q, reference_price=0) for q in c.quote]
    elif reason is R.LOCKS_BOOK:
        c.p_bad = 0.0
    elif reason in (R.REDUCE_ONLY, R.MAX_LONG, R.MAX_SHORT):
        c.limits = [replace(lim, max_long=200, max_short=200) for lim in c.limits]
        c.p_position, c.p_exchange = 0.02, 0.3
    elif reason is R.MAX_LIVE:
        c.port = replace(c.port, max_live_orders=3)
    elif reason is R.MAX_UNACKED:
        c.port = replace(c.port, max_unacked_orders=2)
        c.p_exchange = 0.02
    elif reason is R.RATE:
        c.port = replace(c.port, rate_tokens=3, rate_refill=150)
    elif reason is R.FORCED_CANCEL:
        c.p_forced = 0.1
    return c


@pytest.mark.parametrize("reason", [r for r in RiskReason if r is not R.PASSED],
                         ids=lambda r: r.name.lower())
def test_each_control_trips(reason):
    result = run_checked(scenario(reason, seed=int(reason) + 100))
    assert result.stats[reason.name.lower()] > 0, f"{reason.name} never decided"
    if reason is R.DISARMED:
        assert any(c.killed for c in result.control) and \
            any(c.heartbeat_lost for c in result.control)


def generous_config(**kw) -> Config:
    quote = [QuoteParams(enable=True, fair_value_mode=FairValueMode.MID)] * SLOTS
    quote[1] = QuoteParams(enable=True, fair_value_mode=FairValueMode.MICROPRICE)
    limits = [RiskLimits(max_long=10_000, max_short=10_000, max_order_qty=1000,
                         collar=10_000)] * SLOTS
    port = PortLimits(rate_tokens=100, rate_refill=1, max_live_orders=100,
                      max_unacked_orders=100)
    return Config(quote, limits, port, **kw)


BOOK = [TopUpdate(k, k + 1, 1_000_000, 300, 1_000_100, 100, 0, 0, False, False)
        for k in range(SLOTS)]


def test_ioc_hedges_are_exempt_from_locks_book():
    """Day orders at or through the opposite best are denied; the same prices immediate or
    cancel (the hedger's) pass."""
    bid, ask = BOOK[0].bid_price, BOOK[0].ask_price
    actions = [
        OrderAction(ActionKind.NEW, 0, Side.BUY, 0, ask, 10),
        OrderAction(ActionKind.NEW, 0, Side.BUY, 0, ask + 500, 10),
        OrderAction(ActionKind.NEW, 0, Side.SELL, 0, bid, 10),
        OrderAction(ActionKind.NEW, 0, Side.BUY, 0, ask - 1, 10),
        OrderAction(ActionKind.NEW, 0, Side.BUY, HEDGE_LEVEL, ask, 10, TimeInForce.IOC,
                    origin=Origin.HEDGER),
        OrderAction(ActionKind.NEW, 0, Side.SELL, HEDGE_LEVEL, bid - 500, 10, TimeInForce.IOC,
                    origin=Origin.HEDGER),
        OrderAction(ActionKind.NEW, 1, Side.SELL, 1, bid, 10, TimeInForce.GTX),
    ]
    result = TB(generous_config(cycles=500), script=actions, initial_tops=BOOK).simulate()
    assert result.stats == result.expected_stats
    assert [r for _, r in result.decisions] == [R.LOCKS_BOOK] * 3 + [R.PASSED] * 4


@dataclass(frozen=True)
class RawAction:
    """An action with fields the model's types cannot hold (the port's bits can)."""

    kind: int
    slot: int
    side: int = 0
    level: int = 0
    price: int = 1_000_000
    quantity: int = 10
    tif: str = "0"
    ref: int = 0
    origin: int = 0


class BadInputTB(TB):
    """The model has no instrument beyond its slots and no kind or time in force outside its
    enums: the gate's docstring says such actions are denied as ``BAD_ORDER``."""

    def decide(self, action, forced, now):
        if isinstance(action, RawAction):
            self.model.stats[R.BAD_ORDER] += 1
            return R.BAD_ORDER, False
        return super().decide(action, forced, now)


def test_bad_input_is_denied_and_counted():
    actions = [
        RawAction(kind=ActionKind.NEW, slot=SLOTS),
        RawAction(kind=ActionKind.REPLACE, slot=255, ref=1),
        RawAction(kind=3, slot=0),
        RawAction(kind=ActionKind.NEW, slot=0, tif="Z"),
        OrderAction(ActionKind.CANCEL, SLOTS + 1, Side.BUY, 0, ref=77),   # the model's rule
        OrderAction(ActionKind.NEW, 0, Side.BUY, 0, BOOK[0].bid_price, 10),
    ]
    tb = BadInputTB(generous_config(cycles=300), script=actions, initial_tops=BOOK)
    result = tb.simulate()
    assert result.stats == result.expected_stats
    assert [r for _, r in result.decisions] == [R.BAD_ORDER] * 4 + [R.UNKNOWN_ORDER, R.PASSED]


def test_token_bucket_refills():
    """Bursts empty the bucket; quiet stretches refill it to its depth and not beyond."""
    c = scenario(R.RATE, seed=3)
    c.cycles, c.p_action = 3000, 0.1
    result = run_checked(c)
    assert result.stats["rate"] > 0 and result.stats["passed"] > 3 * 2


# ------------------------------------------------------------------------------------------------
# Latency and throughput


def test_latency_and_throughput():
    """Back to back actions, the table answering a cycle after each query, ``o`` ready."""
    actions = [OrderAction(ActionKind.NEW, slot, Side.BUY, level, 1_000_000 - 100 * level, 10)
               for slot in (0, 1) for level in range(3)]
    tb = TB(generous_config(cycles=400, view_delay=1), script=actions, initial_tops=BOOK)
    result = tb.simulate()
    assert result.stats == result.expected_stats
    assert [r for _, r in result.decisions] == [R.PASSED] * len(actions)
    for view, out, action in zip(result.view_cycles, result.out_cycles, actions, strict=True):
        extra = MICROPRICE_CYCLES if action.slot == 1 else 0
        assert out - view == DECISION_LATENCY + extra
    # One action every DECISION_LATENCY + 1 cycles plus the table's answer time (1 here).
    starts = result.accept_cycles
    assert [b - a for a, b in itertools.pairwise(starts[:3])] == [DECISION_LATENCY + 2] * 2
    assert starts[0] == SCRIPT_START
