"""The requote rules and the hedger on the Amaranth simulator, action by action against
``sim/quoter.py`` (``Quoter.actions``) and ``sim/hedger.py`` (``Hedger.action``).

Each case is one quote set with the world it is evaluated in: the slot's resting orders (none,
live, or busy three ways; some locking or crossing the book, aged just under, at or over
``min_quote_life``, priced just under, at or over the requote threshold, with equal or other
quantities), its hedge orders, its top of book (sides empty at times), its parameters, its
position around the hedge threshold and ``now``. The testbench presents the world while it
offers the quote set and scrambles it (and every other slot's orders) after the transfer, so
only the copy taken at the transfer can give the right actions. The actions on ``o`` must be,
in order, the model's: the hedger's, then the quoter's, for every case; and nothing may be left.
"""

import random
from dataclasses import dataclass

import pytest
from amaranth.sim import Simulator

from hdl.csr.params import QuoteParams, RiskLimits
from hdl.quote.hedger import HEDGER_LATENCY, HedgeQueryLayout, Hedger, HedgeResultLayout
from hdl.quote.order_action import OrderActionLayout
from hdl.quote.order_table import RestingLayout, order_index
from hdl.quote.quoter import quote_set_layout
from hdl.quote.requote import REQUOTE_LATENCY, Requoter, TopPricesLayout
from hdl.stats import COUNTER_LATENCY, stats_layout
from host.gatesim.streams import pack, unpack
from sim.book import Top
from sim.hedger import Hedger as ModelHedger
from sim.itch_event import Side
from sim.orders import (
    HEDGE_LEVEL,
    MAX_LEVELS,
    ActionKind,
    LiveOrder,
    OrderAction,
    Origin,
    PendingReplace,
    Status,
)
from sim.quoter import Quote, QuoteSet, RequoteStat
from sim.quoter import Quoter as ModelQuoter
from sim.wire.ouch import TimeInForce

SLOTS = 3
SLOT_BITS = 2          # slot 3 exists on the wire and not in the stage
MAX32 = (1 << 32) - 1
MAX48 = (1 << 48) - 1
IN_LAYOUT = quote_set_layout(SLOT_BITS)
STATES = ("none", "live", "pending_new", "replacing", "cancel_pending")


@dataclass
class Resting:
    state: str
    ref: int = 0
    price: int = 0
    quantity: int = 0
    since: int = 0

    def view(self) -> dict:
        """The order table's element; an empty slot's fields are stale, its flags too (taken
        from the stale UserRefNum's low bits)."""
        if self.state == "none":
            return {"valid": 0, "busy": self.ref & 1, "pending_new": self.ref >> 1 & 1,
                    "replacing": self.ref >> 2 & 1, "cancel_pending": self.ref >> 3 & 1,
                    "ref": self.ref, "price": self.price, "quantity": self.quantity,
                    "open": self.quantity, "since": self.since,
                    "replace_ref": self.ref, "replace_quantity": self.quantity}
        busy = self.state in ("pending_new", "replacing", "cancel_pending")
        return {"valid": int(self.state != "none"), "busy": int(busy),
                "pending_new": int(self.state == "pending_new"),
                "replacing": int(self.state == "replacing"),
                "cancel_pending": int(self.state == "cancel_pending"),
                "ref": self.ref, "price": self.price, "quantity": self.quantity,
                "open": self.quantity, "since": self.since,
                "replace_ref": self.ref + 1 if self.state == "replacing" else 0,
                "replace_quantity": self.quantity if self.state == "replacing" else 0}

    def model(self, slot: int, side: Side, level: int) -> LiveOrder | None:
        if self.state == "none":
            return None
        return LiveOrder(
            self.ref, slot, side, level, TimeInForce.DAY, self.price, self.quantity,
            self.quantity, 0, Status.PENDING_NEW if self.state == "pending_new" else Status.LIVE,
            0, self.since,
            PendingReplace(self.ref + 1, self.price, self.quantity, 0)
            if self.state == "replacing" else None,
            self.state == "cancel_pending")


@dataclass
class Case:
    slot: int
    position: int
    bids: list          # (price, quantity) or None, per level
    asks: list
    orders: dict        # (side, level) -> Resting, levels 0 to HEDGE_LEVEL
    top: tuple[int, int]
    params: QuoteParams
    limits: RiskLimits
    now: int

    def expected(self) -> list[OrderAction]:
        if self.slot >= SLOTS:
            return []
        bid, ask = self.top
        top = Top(bid, 1 if bid else 0, ask, 1 if ask else 0)
        hedge_open = any(self.orders[(side, HEDGE_LEVEL)].state != "none" for side in Side)
        out = []
        hedge = ModelHedger(self.slot, self.limits).action(top, self.position, hedge_open)
        if hedge is not None:
            out.append(hedge)
        quoter = ModelQuoter(self.slot, self.params, self.limits)
        quoter.top = top
        quotes = QuoteSet(*(tuple(None if q is None else Quote(side, k, *q)
                                  for k, q in enumerate(levels))
                            for side, levels in ((Side.BUY, self.bids), (Side.SELL, self.asks))))
        out += quoter.actions(
            quotes, lambda side, level: self.orders[(side, level)].model(self.slot, side, level),
            self.now)
        return out

    def payload(self) -> int:
        def levels(quotes):
            return {k: {"valid": 1, "price": q[0], "quantity": q[1]} if q else
                    {"valid": 0, "price": 0, "quantity": 0} for k, q in enumerate(quotes)}
        return pack(IN_LAYOUT, {"slot": self.slot, "seq": 7, "position": self.position,
                                "bids": levels(self.bids), "asks": levels(self.asks)})


def action_dict(action: OrderAction) -> dict:
    return {"kind": int(action.kind), "slot": action.slot, "side": int(action.side),
            "level": action.level, "price": action.price, "quantity": action.quantity,
            "tif": ord(action.tif.value), "ref": action.ref, "origin": int(action.origin)}


# ------------------------------------------------------------------------------------------------
# Random cases


def around(rng: random.Random, value: int, low: int = 0, high: int = MAX32) -> int:
    """``value`` or a neighbour, kept in range."""
    return min(max(value + rng.choice((-1, 0, 0, 1)), low), high)


def random_case(rng: random.Random) -> Case:
    tick = rng.choice((1, 100, 65535, rng.randrange(1, 1 << 16)))
    threshold = rng.choice((0, 1, 2, 10_000, 65535, rng.randrange(0, 20)))
    life = rng.choice((0, 1, 500, MAX32, rng.randrange(0, 5000)))
    params = QuoteParams(enable=True, tick_size=tick, requote_threshold=threshold,
                         min_quote_life=life)
    hedge_threshold = rng.choice((0, 1, 500, (1 << 31) - 1, rng.randrange(0, 3000)))
    limits = RiskLimits(hedge_enable=rng.random() < 0.8, hedge_threshold=hedge_threshold,
                        hedge_size=rng.choice((0, 1, 100, MAX32, rng.randrange(1, 2000))))
    magnitude = rng.choice((0, 1, hedge_threshold, rng.randrange(0, 4000), 1 << 31,
                            around(rng, hedge_threshold), around(rng, hedge_threshold)))
    position = rng.choice((1, -1)) * magnitude
    position = min(max(position, -(1 << 31)), (1 << 31) - 1)
    now = rng.choice((rng.randrange(0, 1 << 20), rng.randrange(1 << 32, MAX48), MAX48))

    centre = rng.choice((1_000_000, 300, MAX32 - 300_000, rng.randrange(1, MAX32)))
    step = threshold * tick

    def level():
        if rng.random() < 0.25:
            return None
        price = min(max(centre + rng.randrange(-2000, 2000) * rng.choice((1, tick)), 1), MAX32)
        return price, rng.choice((1, 100, MAX32, rng.randrange(1, 1000)))

    bids = [level() for _ in range(MAX_LEVELS)]
    asks = [level() for _ in range(MAX_LEVELS)]

    def resting(want):
        state = rng.choice(STATES[:2] * 3 + STATES[2:])
        if state == "none":
            return Resting("none", rng.randrange(1 << 32), rng.randrange(1 << 32),
                           rng.randrange(1 << 32), rng.randrange(1 << 48))  # stale fields
        base_price, base_qty = want if want else (centre, 100)
        kind = rng.random()
        if kind < 0.45:   # just under, at or over the threshold, either way
            price = base_price + rng.choice((1, -1)) * max(step + rng.choice((-1, 0, 1)), 0)
        elif kind < 0.6:
            price = base_price
        else:
            price = base_price + rng.randrange(-3 * step - 5, 3 * step + 6)
        price = min(max(price, 0), MAX32)
        quantity = rng.choice((base_qty, base_qty, base_qty + 1, max(base_qty - 1, 0),
                               rng.randrange(1, 1 << 32)))
        quantity = min(quantity, MAX32)
        age = rng.choice((life + rng.choice((-1, 0, 1)), life, 0, rng.randrange(0, 3 * life + 3),
                          -rng.randrange(1, 100)))
        since = min(max(now - age, 0), MAX48)
        return Resting(state, rng.randrange(1, 1 << 32), price, quantity, since)

    orders = {}
    for side, wants in ((Side.BUY, bids), (Side.SELL, asks)):
        for k in range(MAX_LEVELS):
            orders[(side, k)] = resting(wants[k])
        orders[(side, HEDGE_LEVEL)] = (resting(None) if rng.random() < 0.25
                                       else Resting("none"))

    # The book: around the resting prices so that some lock or cross them, or empty sides.
    prices = [o.price for o in orders.values() if o.state != "none"] or [centre]
    bid = around(rng, rng.choice(prices)) if rng.random() < 0.8 else 0
    ask = around(rng, rng.choice(prices)) if rng.random() < 0.8 else 0
    if rng.random() < 0.3:
        bid, ask = (rng.randrange(1, MAX32), 0) if rng.random() < 0.5 else (0, 0)
    slot = rng.randrange(SLOTS) if rng.random() > 0.04 else SLOTS
    return Case(slot, position, bids, asks, orders, (bid, ask), params, limits, now)


def full_case() -> Case:
    """A hedge and six actions: every order slot moves."""
    params = QuoteParams(enable=True, tick_size=100, requote_threshold=1, min_quote_life=10)
    limits = RiskLimits(hedge_enable=True, hedge_threshold=10, hedge_size=50)
    orders = {(side, HEDGE_LEVEL): Resting("none") for side in Side}
    orders[(Side.BUY, 0)] = Resting("live", 11, 999_000, 100, 0)       # moved: replace
    orders[(Side.BUY, 1)] = Resting("live", 12, 998_900, 100, 0)       # no quote: cancel
    orders[(Side.BUY, 2)] = Resting("none")                            # new
    orders[(Side.SELL, 0)] = Resting("live", 13, 1_000_100, 100, 0)    # resized: replace
    orders[(Side.SELL, 1)] = Resting("none")                           # new
    orders[(Side.SELL, 2)] = Resting("live", 14, 1_000_300, 100, 0)    # no quote: cancel
    return Case(1, -500, [(999_900, 100), None, (999_700, 100)],
                [(1_000_100, 90), (1_000_200, 100), None], orders, (999_800, 1_000_200),
                params, limits, 1000)


# ------------------------------------------------------------------------------------------------
# Testbench


def _junk_view(rng: random.Random) -> int:
    return rng.randrange(1 << RestingLayout.size)


@dataclass
class Run:
    actions: list[dict]
    action_cycles: list[int]
    accept_cycles: list[int]
    stats: dict
    leftover: bool


def simulate(cases: list[Case], *, idle: float = 0.0, backpressure: float = 0.0,
             seed: int = 0, max_cycles: int = 100_000) -> Run:
    dut = Requoter(SLOTS, slot_bits=SLOT_BITS)
    rng = random.Random(seed)
    run = Run([], [], [], {}, False)

    def present(ctx, case: Case | None):
        """The case's world, or junk everywhere (after the transfer)."""
        for slot in range(SLOTS):
            for side in Side:
                for level in range(HEDGE_LEVEL + 1):
                    port = dut.orders[order_index(slot, side, level)]
                    if case is not None and slot == case.slot:
                        value = pack(RestingLayout, case.orders[(side, level)].view())
                    else:
                        value = _junk_view(rng)
                    ctx.set(port.as_value(), value)
            top = (case.top if case is not None and slot == case.slot
                   else (rng.randrange(1 << 32), rng.randrange(1 << 32)))
            ctx.set(dut.top[slot].as_value(),
                    pack(TopPricesLayout, {"bid_price": top[0], "ask_price": top[1]}))
            junk = case is None or slot != case.slot
            params = (QuoteParams(tick_size=rng.randrange(1, 1 << 16),
                                  requote_threshold=rng.randrange(1 << 16),
                                  min_quote_life=rng.randrange(1 << 32)) if junk
                      else case.params)
            limits = (RiskLimits(hedge_enable=rng.random() < 0.5,
                                 hedge_threshold=rng.randrange(1 << 32),
                                 hedge_size=rng.randrange(1 << 32)) if junk else case.limits)
            for port, values in ((dut.quote[slot], params), (dut.risk[slot], limits)):
                for name in type(values).__registers__:
                    ctx.set(getattr(port, name), int(getattr(values, name)))
        ctx.set(dut.now, case.now if case is not None else rng.randrange(1 << 48))

    async def testbench(ctx):
        items = list(cases)
        offered = None
        cycle = 0
        while cycle < max_cycles:
            if offered is None and items and rng.random() >= idle:
                offered = items.pop(0)
                present(ctx, offered)
                ctx.set(dut.i.payload.as_value(), offered.payload())
                ctx.set(dut.i.valid, 1)
            ctx.set(dut.o.ready, int(rng.random() >= backpressure))
            _, _, taken, o_valid, o_ready, payload = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.as_value())
            if taken:
                run.accept_cycles.append(cycle)
                offered = None
                ctx.set(dut.i.valid, 0)
                ctx.set(dut.i.payload.as_value(), rng.randrange(1 << IN_LAYOUT.size))
                present(ctx, None)
            if o_valid and o_ready:
                run.actions.append(unpack(OrderActionLayout, payload))
                run.action_cycles.append(cycle)
            cycle += 1
            if not items and offered is None and not ctx.get(dut.busy):
                break
        ctx.set(dut.o.ready, 1)
        await ctx.tick().repeat(COUNTER_LATENCY + 1)
        run.leftover = bool(ctx.get(dut.busy) or ctx.get(dut.o.valid))
        run.stats = unpack(stats_layout(RequoteStat), ctx.get(dut.stats.as_value()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return run


def check(cases: list[Case], run: Run) -> list[list[OrderAction]]:
    expected = [case.expected() for case in cases]
    flat = [action_dict(a) for actions in expected for a in actions]
    assert len(run.accept_cycles) == len(cases), "every quote set is taken"
    for n, (got, want) in enumerate(zip(run.actions, flat, strict=False)):
        assert got == want, f"action {n}: got {got}, expected {want}"
    assert len(run.actions) == len(flat), "as many actions as the model's"
    assert not run.leftover, "nothing left in flight"
    every = [a for actions in expected for a in actions]

    def tally(kind, origin):
        return sum(a.kind == kind and a.origin == origin for a in every)

    assert run.stats == {
        "quote_sets": sum(case.slot < SLOTS for case in cases),
        "new": tally(ActionKind.NEW, Origin.QUOTER),
        "replace": tally(ActionKind.REPLACE, Origin.QUOTER),
        "cancel": tally(ActionKind.CANCEL, Origin.QUOTER),
        "hedges": tally(ActionKind.NEW, Origin.HEDGER),
        "bad_slot": sum(case.slot >= SLOTS for case in cases),
    }
    return expected


# ------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize(("seed", "idle", "backpressure"),
                         [(1, 0.0, 0.0), (2, 0.5, 0.5), (3, 0.0, 0.8), (4, 0.3, 0.2)])
def test_random(seed, idle, backpressure):
    """Random worlds, every action in order against the model, under idle and backpressure."""
    rng = random.Random(seed)
    cases = [random_case(rng) for _ in range(250)]
    expected = check(cases, simulate(cases, idle=idle, backpressure=backpressure, seed=seed))
    # The cases reach every rule: each kind, busy orders left alone, hedges and none.
    kinds = {(a.kind, a.origin) for actions in expected for a in actions}
    assert kinds == {(k, Origin.QUOTER) for k in ActionKind} | {(ActionKind.NEW, Origin.HEDGER)}
    assert sum(not actions for actions in expected) >= 5


def _rule_cases() -> list[Case]:
    """One resting BUY order at level 0, priced, sized, aged and crossed to test one rule each;
    every other order slot holds what is wanted."""
    life, tick, threshold = 100, 25, 4
    params = QuoteParams(enable=True, tick_size=tick, requote_threshold=threshold,
                         min_quote_life=life)
    off = RiskLimits()
    want = (1_000_000, 100)
    now = 10_000
    cases = []
    for delta in (0, 1, threshold * tick - 1, threshold * tick, threshold * tick + 1):
        for sign in (1, -1):
            for quantity in (100, 101):
                for age in (life - 1, life, life + 1, -1):
                    for ask in (0, want[0] - sign * delta + 1, want[0] - sign * delta):
                        for state in ("live", "replacing"):
                            orders = {(s, k): Resting("none") for s in Side
                                      for k in range(HEDGE_LEVEL + 1)}
                            orders[(Side.BUY, 0)] = Resting(state, 77, want[0] - sign * delta,
                                                            quantity, now - age)
                            cases.append(Case(0, 0, [want, None, None], [None] * 3, orders,
                                              (0, ask), params, off, now))
    return cases


def test_rules_one_order():
    """Around each edge of the replace rule: price distance against the threshold both ways,
    quantity, age against ``min_quote_life`` (and a ``since`` ahead of ``now``), the book
    locked, crossed or clear, the order busy or not."""
    cases = _rule_cases()
    expected = check(cases, simulate(cases, seed=5))
    assert sum(bool(actions) for actions in expected) > len(cases) // 4
    assert sum(not actions for actions in expected) > len(cases) // 4


def test_hedge_edges():
    """Positions one below, at and one above the hedge threshold both ways, sizes below and
    above the position, an open hedge order on either side, the traded side empty."""
    cases = []
    for threshold in (0, 500):
        for position in (threshold - 1, threshold, threshold + 1):
            for sign in (1, -1):
                for size in (0, 1, 499, 501, MAX32):
                    for open_side in (None, Side.BUY, Side.SELL):
                        for top in ((1_000_000, 1_000_100), (0, 1_000_100), (1_000_000, 0)):
                            orders = {(s, k): Resting("none") for s in Side
                                      for k in range(HEDGE_LEVEL + 1)}
                            if open_side is not None:
                                orders[(open_side, HEDGE_LEVEL)] = Resting("live", 5, 1, 1, 0)
                            cases.append(Case(
                                2, sign * max(position, 0), [None] * 3, [None] * 3, orders,
                                top, QuoteParams(enable=True),
                                RiskLimits(hedge_enable=True, hedge_threshold=threshold,
                                           hedge_size=size), 0))
    expected = check(cases, simulate(cases, idle=0.2, backpressure=0.4, seed=6))
    # Hedged: position above the threshold, both thresholds and signs, a size, no open hedge
    # order, the traded side present.
    assert sum(bool(actions) for actions in expected) == 2 * 2 * 4 * 2


def test_latency_and_throughput():
    """A quote set with seven actions: the first on ``o`` REQUOTE_LATENCY cycles after its
    transfer, the last 6 cycles later; back to back, a quote set of ``n`` actions is followed
    by the next one's transfer ``3 + max(n, 1)`` cycles later."""
    full = full_case()
    assert len(full.expected()) == 7
    empty = full_case()
    empty.orders = {key: Resting("none") for key in empty.orders}
    empty.bids = empty.asks = [None] * 3
    empty.limits = RiskLimits()
    assert empty.expected() == []
    cases = [full, full, empty, full, empty, empty, full]
    run = simulate(cases, seed=7)
    check(cases, run)
    first = run.action_cycles[0] - run.accept_cycles[0]
    last = run.action_cycles[6] - run.accept_cycles[0]
    assert (first, last) == (REQUOTE_LATENCY, REQUOTE_LATENCY + 6)
    gaps = [b - a for a, b in zip(run.accept_cycles, run.accept_cycles[1:], strict=False)]
    assert gaps == [3 + max(len(case.expected()), 1) for case in cases[:-1]]
    assert REQUOTE_LATENCY == 4


def test_hedger_alone():
    """The hedger's own stream ports: random queries against the model, with backpressure."""
    dut = Hedger()
    rng = random.Random(8)
    queries = []
    for _ in range(300):
        threshold = rng.choice((0, 1, 500, MAX32, rng.randrange(0, 3000)))
        queries.append({
            "slot": rng.randrange(256),
            "position": rng.choice((0, -(1 << 31), (1 << 31) - 1, threshold, threshold + 1,
                                    -threshold, -threshold - 1, rng.randrange(-4000, 4000))),
            "bid_price": rng.choice((0, 1, MAX32, rng.randrange(1 << 32))),
            "ask_price": rng.choice((0, 1, MAX32, rng.randrange(1 << 32))),
            "hedge_open": int(rng.random() < 0.2),
            "hedge_enable": int(rng.random() < 0.8),
            "hedge_threshold": threshold,
            "hedge_size": rng.choice((0, 1, 100, MAX32, rng.randrange(1, 4000))),
        })
    for q in queries:
        q["position"] = min(max(q["position"], -(1 << 31)), (1 << 31) - 1)
    results, taken_at, out_at = [], [], []

    async def testbench(ctx):
        items = list(queries)
        cycle = 0
        while len(results) < len(queries) and cycle < 5000:
            if items and not ctx.get(dut.i.valid) and rng.random() < 0.7:
                ctx.set(dut.i.payload.as_value(), pack(HedgeQueryLayout, items.pop(0)))
                ctx.set(dut.i.valid, 1)
            ctx.set(dut.o.ready, int(rng.random() < 0.6 or cycle < 3))
            _, _, taken, o_valid, o_ready, payload = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.as_value())
            if taken:
                taken_at.append(cycle)
                ctx.set(dut.i.valid, 0)
            if o_valid and o_ready:
                results.append(unpack(HedgeResultLayout, payload))
                out_at.append(cycle)
            cycle += 1
        assert not ctx.get(dut.i.valid) and not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert len(results) == len(queries)
    assert out_at[0] - taken_at[0] == HEDGER_LATENCY   # o was ready for the first ones
    sent = 0
    for n, (q, got) in enumerate(zip(queries, results, strict=True)):
        model = ModelHedger(q["slot"], RiskLimits(
            hedge_enable=bool(q["hedge_enable"]), hedge_threshold=q["hedge_threshold"],
            hedge_size=q["hedge_size"]))
        bid, ask = q["bid_price"], q["ask_price"]
        want = model.action(Top(bid, 1 if bid else 0, ask, 1 if ask else 0), q["position"],
                            bool(q["hedge_open"]))
        assert got["send"] == (want is not None), f"query {n}: {q}"
        if want is not None:
            sent += 1
            assert got["action"] == action_dict(want), f"query {n}: {q}"
    assert sent > 30

