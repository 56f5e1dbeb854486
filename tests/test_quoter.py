"""The quoter's pricing engine on the Amaranth simulator, quote set by quote set against
``sim/quoter.py``.

Every run feeds top-of-book updates of several slots (with idle cycles, or paced so that each is
priced, or back to back so that most are superseded) under fixed parameters and positions, and
compares every quote set on ``o`` field by field with the model's ``Quoter.quotes(position)``
right after the update it was priced from (named by its ``seq``). It then checks what the
coalescing promises: per slot, quote sets come in update order and the last update of every slot
is priced; the counters add up; nothing is left in flight.
"""

import itertools
import random
from dataclasses import dataclass, field, replace

import pytest
from amaranth.sim import Simulator

from hdl.book.layout import top_update_layout
from hdl.csr.params import MAX_ORDER_SHARES, FairValueMode, QuoteParams, RiskLimits
from hdl.quote.quoter import (
    QUOTER_LATENCY,
    QUOTER_MODE_LATENCY,
    QUOTER_MODE_PERIOD,
    QUOTER_PERIOD,
    ROUND_CLAMP,
    Quoter,
    quote_set_layout,
)
from hdl.stats import stats_layout
from host.gatesim.streams import pack, unpack
from sim.book import TopUpdate
from sim.quoter import Quoter as ModelQuoter
from sim.quoter import QuoterStat, QuoteSet

SLOTS = 4
SLOT_BITS = 2
MAX_PRICE = (1 << 32) - 1
MAX_SHARES = (1 << 48) - 1
POS_MIN, POS_MAX = -(1 << 31), (1 << 31) - 1
OUT_LAYOUT = quote_set_layout(SLOT_BITS)
IN_LAYOUT = top_update_layout(SLOT_BITS)
SIGNED_FIELDS = {"position": 32, "center": 67, "skew": 65}


@dataclass
class Setup:
    """One run's fixed inputs: per-slot parameters, limits and positions, and the updates."""

    params: list[QuoteParams]
    limits: list[RiskLimits]
    positions: list[int]
    updates: list[TopUpdate]


@dataclass
class Run:
    sets: list[dict] = field(default_factory=list)
    set_cycles: list[int] = field(default_factory=list)
    accept_cycle: dict[int, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    cycles: int = 0


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


def decode(raw: int) -> dict:
    out = unpack(OUT_LAYOUT, raw)
    for name, bits in SIGNED_FIELDS.items():
        out[name] = _signed(out[name], bits)
    for side in ("bids", "asks"):
        out[side] = [out[side][k] for k in sorted(out[side])]
    return out


def expected(model: QuoteSet, slot: int, seq: int, position: int) -> dict:
    """The model's quote set in the gateware's form (``None`` fields read 0)."""
    def levels(quotes):
        return [{"valid": 1, "price": q.price, "quantity": q.quantity} if q is not None
                else {"valid": 0, "price": 0, "quantity": 0} for q in quotes]
    return {
        "slot": slot,
        "seq": seq,
        "position": position,
        "no_fair_value": int(model.fair_value is None),
        "fair_value": model.fair_value or 0,
        "center": model.center or 0,
        "half_spread": model.half_spread,
        "skew": model.skew,
        "bids": levels(model.bids),
        "asks": levels(model.asks),
    }


def simulate(setup: Setup, *, idle: float = 0.0, gap: int = 0, backpressure: float = 0.0,
             seed: int = 0, slots: int = SLOTS, max_cycles: int = 400_000) -> Run:
    """Offer the updates in order (``idle``: chance of not offering in a cycle; ``gap``: cycles
    left empty after each transfer), ``o.ready`` low with chance ``backpressure``."""
    dut = Quoter(slots, slot_bits=SLOT_BITS)
    rng = random.Random(seed)
    run = Run()

    async def testbench(ctx):
        set_registers(ctx, dut, setup.params[:slots], setup.limits[:slots])
        ctx.set(dut.position.as_value(),
                sum((p & 0xFFFF_FFFF) << (32 * n) for n, p in enumerate(setup.positions)))
        items = list(setup.updates)
        offered = None
        hold_off = 0
        cycle = 0
        while cycle < max_cycles:
            if offered is None and items:
                if hold_off:
                    hold_off -= 1
                elif rng.random() >= idle:
                    offered = items.pop(0)
                    ctx.set(dut.i.payload.as_value(), pack(IN_LAYOUT, {
                        name: getattr(offered, name) for name, _ in IN_LAYOUT}))
                    ctx.set(dut.i.valid, 1)
            ctx.set(dut.o.ready, int(rng.random() >= backpressure))
            _, _, i_taken, o_valid, o_ready, payload = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.as_value())
            if i_taken:
                run.accept_cycle[offered.seq] = cycle
                offered = None
                hold_off = gap
                ctx.set(dut.i.valid, 0)
            if o_valid and o_ready:
                run.sets.append(decode(payload))
                run.set_cycles.append(cycle)
            cycle += 1
            if not items and offered is None and not ctx.get(dut.busy):
                break
        # Counters land COUNTER_LATENCY cycles after their event.
        await ctx.tick().repeat(3)
        run.cycles = cycle
        run.stats = unpack(stats_layout(QuoterStat), ctx.get(dut.stats.as_value()))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return run


def set_registers(ctx, dut: Quoter, params: list[QuoteParams],
                  limits: list[RiskLimits]) -> None:
    """Each slot's ``quote`` and ``risk`` registers."""
    for slot, (quote, limit) in enumerate(zip(params, limits, strict=True)):
        for port, values in ((dut.quote[slot], quote), (dut.risk[slot], limit)):
            for name in type(values).__registers__:
                ctx.set(getattr(port, name), int(getattr(values, name)))


def check(setup: Setup, run: Run) -> None:
    """Every quote set equals the model's for its update; coalescing kept the newest."""
    models = [ModelQuoter(slot, setup.params[slot], setup.limits[slot]) for slot in range(SLOTS)]
    want = {}
    last_seq = {}
    for update in setup.updates:
        model = models[update.slot]
        model.on_book(update, 0)
        position = setup.positions[update.slot]
        want[update.seq] = expected(model.quotes(position), update.slot, update.seq, position)
        last_seq[update.slot] = update.seq
    assert run.accept_cycle.keys() == want.keys(), "every update is taken"
    seen = {}
    for n, got in enumerate(run.sets):
        assert got["seq"] in want, f"quote set {n}: unknown seq {got['seq']}"
        assert got == want[got["seq"]], f"quote set {n}: got {got}, expected {want[got['seq']]}"
        assert got["seq"] > seen.get(got["slot"], -1), "quote sets of a slot in update order"
        seen[got["slot"]] = got["seq"]
    assert seen == last_seq, "the newest update of every slot is priced"
    assert run.stats["updates"] == len(setup.updates)
    assert run.stats["quote_sets"] == len(run.sets)
    assert run.stats["superseded"] == len(setup.updates) - len(run.sets)
    assert run.stats["bad_slot"] == 0


# ------------------------------------------------------------------------------------------------
# Inputs

EDGE_PRICES = (1, 2, 99, 100, 0x7FFF_FFFF, 0x8000_0000, MAX_PRICE - 1, MAX_PRICE)


def random_top(rng: random.Random, slot: int, seq: int, centre: int) -> TopUpdate:
    """A top near ``centre``, sometimes extreme, empty on a side, locked or crossed."""
    kind = rng.random()
    if kind < 0.1:
        bid, ask = rng.choice(EDGE_PRICES), rng.choice(EDGE_PRICES)
    else:
        bid = max(1, centre - rng.randrange(0, 600))
        ask = bid + rng.choice((0, -rng.randrange(1, 300), *[rng.randrange(1, 900)] * 6))
        ask = min(max(ask, 1), MAX_PRICE)
    if rng.random() < 0.1:
        bid = 0
    if rng.random() < 0.1:
        ask = 0
    def shares(price):
        if not price:
            return 0
        return rng.choice((1, MAX_SHARES, rng.randrange(1, 5_000), rng.randrange(1, 1 << 48)))
    return TopUpdate(slot, slot + 1, bid, shares(bid), ask, shares(ask), seq, seq * 7, False,
                     False)


def random_params(rng: random.Random) -> QuoteParams:
    tick = rng.choice((1, 100, 65535, rng.randrange(1, 1 << 16)))
    return QuoteParams(
        enable=rng.random() < 0.9,
        fair_value_mode=rng.choice(list(FairValueMode)),
        reference_price=rng.choice((0, 1, MAX_PRICE, rng.randrange(1, 3_000_000))),
        base_half_spread=rng.choice((0, 1, 10_000, rng.randrange(0, 20))),
        vol_multiplier=rng.choice((0, 256, 65535, rng.randrange(0, 4096))),
        vol_ewma_shift=rng.randrange(0, 16),
        skew_ticks_per_unit=rng.choice((0, 1, (1 << 32) - 1, *[rng.randrange(0, 1 << 16)] * 3)),
        tick_size=tick,
        levels=rng.randrange(1, 4),
        level_spacing=rng.choice((1, 10_000, rng.randrange(1, 5))),
        requote_threshold=1,
        min_quote_life=0,
        size=rng.choice((1, MAX_ORDER_SHARES, rng.randrange(1, 1000))),
        price_ceiling=rng.choice((MAX_PRICE, MAX_PRICE, 0x7FFF_FFFF, 1_000_300)),
        price_floor=rng.choice((0, 0, 1, 999_700)),
    )


def usual_params(rng: random.Random) -> QuoteParams:
    """Parameters a desk would set: most levels of most updates are quoted."""
    return QuoteParams(
        enable=True,
        fair_value_mode=rng.choice(list(FairValueMode)),
        reference_price=rng.randrange(999_000, 1_001_000),
        base_half_spread=rng.randrange(0, 4),
        vol_multiplier=rng.randrange(0, 1024),
        vol_ewma_shift=rng.randrange(0, 8),
        skew_ticks_per_unit=rng.randrange(0, 1 << 12),
        tick_size=rng.choice((1, 25, 100)),
        levels=rng.randrange(1, 4),
        level_spacing=rng.randrange(1, 4),
        size=rng.randrange(1, 500),
    )


def random_limits(rng: random.Random) -> RiskLimits:
    def limit():
        return rng.choice((0, POS_MAX, *[rng.randrange(0, 3000)] * 3))
    return RiskLimits(max_long=limit(), max_short=limit())


def random_position(rng: random.Random, limits: RiskLimits) -> int:
    return rng.choice((0, POS_MIN, POS_MAX, limits.max_long, -limits.max_short,
                       limits.max_long + 1, -limits.max_short - 1,
                       *[rng.randrange(-2000, 2000)] * 3))


def random_setup(seed: int, updates_per_slot: int) -> Setup:
    rng = random.Random(seed)
    usual = [rng.random() < 0.5 for _ in range(SLOTS)]
    params = [usual_params(rng) if u else random_params(rng) for u in usual]
    limits = [RiskLimits(max_long=2000, max_short=2000) if u else random_limits(rng)
              for u in usual]
    positions = [rng.randrange(-2500, 2500) if u else
                 max(POS_MIN, min(POS_MAX, random_position(rng, lim)))
                 for u, lim in zip(usual, limits, strict=True)]
    centres = [1_000_000 if u else
               rng.choice((1_000_000, 50, 0x7FFF_0000, rng.randrange(1, MAX_PRICE)))
               for u in usual]
    updates = []
    for seq in range(1, SLOTS * updates_per_slot + 1):
        slot = rng.randrange(SLOTS)
        centres[slot] = max(1, min(MAX_PRICE, centres[slot] + rng.randrange(-300, 301)))
        updates.append(random_top(rng, slot, seq, centres[slot]))
    return Setup(params, limits, positions, updates)


# ------------------------------------------------------------------------------------------------
# Randomized runs


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_random_paced(seed):
    """Updates about as fast as the evaluator prices them: most get their own quote set."""
    setup = random_setup(seed, 12)
    run = simulate(setup, gap=QUOTER_LATENCY // 2, idle=0.02, backpressure=0.3, seed=seed)
    check(setup, run)
    assert len(run.sets) >= len(setup.updates) // 2


@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.5, 0.6)])
def test_random_bursts_supersede(idle, backpressure):
    """Back-to-back updates: most are superseded, the EWMA still takes each of them."""
    setup = random_setup(10 + int(10 * idle), 40)
    run = simulate(setup, idle=idle, backpressure=backpressure, seed=4)
    check(setup, run)
    assert run.stats["superseded"] > len(setup.updates) // 2


# ------------------------------------------------------------------------------------------------
# Edge cases: four scenarios a run (one a slot), each top priced on its own


@dataclass
class Scenario:
    params: QuoteParams
    tops: list[tuple[int, int, int, int]]   # bid, bid shares, ask, ask shares
    position: int = 0
    limits: RiskLimits = field(default_factory=lambda: RiskLimits(max_long=POS_MAX,
                                                                  max_short=POS_MAX))


def params(**kw) -> QuoteParams:
    base = dict(enable=True, base_half_spread=1, tick_size=100, levels=3, size=100)
    base.update(kw)
    return QuoteParams(**base)


# Books that stress one rule each: both sides, empty sides, locked, crossed, extreme prices and
# shares, a weight only one side carries.
BOOKS = [
    (1_000_000, 300, 1_000_100, 500), (0, 0, 1_000_100, 500), (1_000_000, 300, 0, 0),
    (0, 0, 0, 0), (1_000_050, 7, 1_000_050, 9), (1_000_200, 1, 999_900, 1),
    (1, 1, 2, MAX_SHARES), (1, MAX_SHARES, 1, MAX_SHARES), (0x7FFF_FFFF, 5, 0x8000_0000, 5),
    (0x7FFF_FFFF, MAX_SHARES, MAX_PRICE, 1), (MAX_PRICE, MAX_SHARES, MAX_PRICE, MAX_SHARES),
    (1, 1, MAX_PRICE, 1), (99, 1, 101, 1), (1_999_999_800, 10, 1_999_999_900, 10),
]
MODES = list(FairValueMode)
SKEW_MAX = (1 << 32) - 1


def near_clamp() -> list["Scenario"]:
    """``c - half`` or ``c + half`` one below, at and one above each end of the rounding clamp
    (``+-2**34``): a position of ``+-2**19`` makes the skew ``+-8 * skew_ticks_per_unit``, the
    half spread (a tick of 1) fills in the rest."""
    fv = 1_000_000   # the mid of the first book below
    books = [(1_000_000, 10, 1_000_001, 10), (0, 0, 1_000_001, 10), (1_000_000, 10, 0, 0)]
    out = []
    for target in (ROUND_CLAMP + d for d in (-1, 0, 1)):
        for end in (target, -target):
            for sign in (1, -1):   # x = c - half (bid), c + half (ask)
                half = next(h for h in range(8) if (fv - end - sign * h) % 8 == 0)
                skew = fv - end - sign * half
                position = (1 << 19) if skew > 0 else -(1 << 19)
                out.append(Scenario(params(fair_value_mode=FairValueMode.MID, tick_size=1,
                                           base_half_spread=half, level_spacing=10_000,
                                           skew_ticks_per_unit=abs(skew) // 8), books,
                                    position))
    return out

SCENARIOS = [
    # Every fair-value mode, one to three levels, ticks of 1 and 65535.
    *[Scenario(params(fair_value_mode=mode, levels=levels, tick_size=tick,
                      reference_price=1_000_033), BOOKS)
      for mode in MODES for levels, tick in ((1, 1), (2, 65535), (3, 100))],
    # No spread, centre on the grid: the ask moves up a tick; the post-only limits at the touch.
    Scenario(params(base_half_spread=0), [(999_900, 1, 1_000_100, 1), (1_000_000, 1,
                                          1_000_100, 1), (999_950, 1, 1_000_050, 1)]),
    Scenario(params(base_half_spread=0, fair_value_mode=FairValueMode.REFERENCE,
                    reference_price=1_000_000), BOOKS[:6]),
    # Largest skew both ways and at zero, with every book.
    *[Scenario(params(skew_ticks_per_unit=SKEW_MAX, tick_size=65535), BOOKS, position)
      for position in (POS_MIN, POS_MAX, 1, -1)],
    # Centres a few 2**32 away with the widest level spacing: deeper levels come back towards
    # the band, so a rounding clamp too close to it would quote them.
    *[Scenario(params(skew_ticks_per_unit=SKEW_MAX, tick_size=65535, level_spacing=10_000,
                      fair_value_mode=FairValueMode.REFERENCE, reference_price=1_000_000),
               BOOKS, position) for position in (3, 2, 1, -1, -2, -3)],
    Scenario(params(fair_value_mode=FairValueMode.REFERENCE, reference_price=MAX_PRICE,
                    tick_size=65535, level_spacing=10_000, base_half_spread=0), BOOKS),
    Scenario(params(skew_ticks_per_unit=655, base_half_spread=2), BOOKS, 100),
    Scenario(params(skew_ticks_per_unit=655, base_half_spread=2), BOOKS, -100),
    # The bid's rounding dividend below zero (fv or lo under the skew's fraction of a tick, a
    # short position lifting the centre) with the bid in the band: no ask, or one far above.
    *[Scenario(params(fair_value_mode=mode, skew_ticks_per_unit=40_000, tick_size=tick,
                      reference_price=tick // 2),
               [(tick * 2 // 5, 10, 1_000_000_000, 10), (tick * 2 // 5, 10, 0, 0),
                (1, 3, 999, 9)], position)
      for mode in (FairValueMode.REFERENCE, FairValueMode.MICROPRICE) for tick in (100, 12345)
      for position in (-1, -3, -5, -13)],
    # Microprice: the remainders of the dividend and of the quotient add up to one tick.
    Scenario(params(fair_value_mode=FairValueMode.MICROPRICE, skew_ticks_per_unit=40_000),
             [(999_907, 7, 1_010_000, 1), (999_935, 7, 1_010_000, 9),
              (999_956, 1, 1_020_003, 2)], -1),
    Scenario(params(fair_value_mode=FairValueMode.MICROPRICE, skew_ticks_per_unit=40_000),
             [(999_907, 1, 1_010_000, 9)], -3),
    # Around the rounding clamp, bid and ask sides, with and without a book to post against.
    *near_clamp(),
    # Positions at and beyond the limits: the deeper levels shrink first; a side with no room.
    *[Scenario(params(size=100, fair_value_mode=FairValueMode.REFERENCE,
                      reference_price=1_000_000), BOOKS[:3], position,
               RiskLimits(max_long=250, max_short=120))
      for position in (0, 250, 251, -120, -121, 200, -50, POS_MIN, POS_MAX)],
    Scenario(params(size=MAX_ORDER_SHARES), BOOKS[:2], 5, RiskLimits(max_long=POS_MAX,
                                                                     max_short=0)),
    # A huge volatility term: the mid swings from one end of the price range to the other.
    *[Scenario(params(vol_multiplier=65535, vol_ewma_shift=shift, tick_size=65535),
               [BOOKS[10], BOOKS[6], BOOKS[10], BOOKS[3], BOOKS[6], BOOKS[10], BOOKS[0]])
      for shift in (0, 1, 15)],
    # The price band: levels outside it are dropped, never clamped.
    Scenario(params(price_floor=999_800, price_ceiling=1_000_300, level_spacing=2), BOOKS[:3]),
    Scenario(params(price_floor=1_000_500), BOOKS[:3]),
    Scenario(params(price_ceiling=0, price_floor=0), BOOKS[:3]),
    Scenario(params(fair_value_mode=FairValueMode.REFERENCE, reference_price=1_999_999_950,
                    tick_size=1), BOOKS[:3]),
    # Quoting disabled; a zero reference price.
    Scenario(params(enable=False), BOOKS[:3]),
    Scenario(params(fair_value_mode=FairValueMode.REFERENCE, reference_price=0), BOOKS[:3]),
]


def edge_setups() -> list[Setup]:
    setups = []
    for first in range(0, len(SCENARIOS), SLOTS):
        group = SCENARIOS[first:first + SLOTS]
        group += [group[0]] * (SLOTS - len(group))
        updates = []
        for step in range(max(len(s.tops) for s in group)):
            for slot, scenario in enumerate(group):
                if step < len(scenario.tops):
                    seq = len(updates) + 1
                    bid, bid_shares, ask, ask_shares = scenario.tops[step]
                    updates.append(TopUpdate(slot, 1, bid, bid_shares, ask, ask_shares, seq,
                                             0, False, False))
        setups.append(Setup([s.params for s in group], [s.limits for s in group],
                            [s.position for s in group], updates))
    return setups


def test_edge_cases():
    setups = edge_setups()
    for n, setup in enumerate(setups):
        # Each update priced on its own: a gap of the evaluator's period.
        run = simulate(setup, gap=QUOTER_PERIOD, backpressure=0.3 * (n % 2), seed=n)
        check(setup, run)
        assert run.stats["superseded"] == 0


def test_bad_input():
    """A tick of 0 and an unknown fair-value mode (the register bank refuses both) quote
    nothing; a slot number the quoter does not have is dropped and counted."""
    good = params(fair_value_mode=FairValueMode.MID)
    bad = [params(tick_size=0), params(fair_value_mode=3)]
    updates = [TopUpdate(seq % 4, 1, 1_000_000, 10, 1_000_100, 10, seq, 0, False, False)
               for seq in range(1, 9)]
    setup = Setup([*bad, good, good], [RiskLimits(max_long=POS_MAX, max_short=POS_MAX)] * 4,
                  [0] * 4, updates)
    run = simulate(setup, gap=QUOTER_LATENCY, slots=3)
    assert run.stats == {"updates": 8, "superseded": 0, "quote_sets": 6, "bad_slot": 2,
                         "reprices": 0}
    model = ModelQuoter(2, good, setup.limits[2])
    for got in run.sets:
        if got["slot"] == 2:
            model.on_book(updates[got["seq"] - 1], 0)
            assert got == expected(model.quotes(0), 2, got["seq"], 0)
        else:
            assert got == expected(QuoteSet((None,) * 3, (None,) * 3), got["slot"], got["seq"],
                                   0)
    assert sorted(s["seq"] for s in run.sets) == [1, 2, 4, 5, 6, 8]


# ------------------------------------------------------------------------------------------------
# Latency and throughput


def mode_of(setup: Setup, quote_set: dict) -> FairValueMode:
    return setup.params[quote_set["slot"]].fair_value_mode


def test_latency():
    """An update taken in cycle t has its quote set valid in cycle t + the latency of its slot's
    fair-value mode (QUOTER_MODE_LATENCY), every mode seen."""
    setup = random_setup(7, 3)
    for slot, mode in enumerate(FairValueMode):
        setup.params[slot] = replace(setup.params[slot], fair_value_mode=mode)
    run = simulate(setup, gap=QUOTER_LATENCY + 8)
    check(setup, run)
    seen = {(mode_of(setup, s), cycle - run.accept_cycle[s["seq"]])
            for s, cycle in zip(run.sets, run.set_cycles, strict=True)}
    print(f"\nquoter latency, update in to quote set out: {sorted(seen)} cycles")
    assert len(run.sets) == len(setup.updates)
    assert seen == set(QUOTER_MODE_LATENCY.items())
    assert max(QUOTER_MODE_LATENCY.values()) == QUOTER_LATENCY


def test_throughput():
    """Back to back, ``i`` takes an update every 2 cycles; while slots are waiting, the evaluator
    emits a quote set ``QUOTER_MODE_PERIOD`` cycles after the one before, by the mode of
    the slot it priced."""
    setup = random_setup(8, 60)
    for slot, mode in enumerate(FairValueMode):
        setup.params[slot] = replace(setup.params[slot], fair_value_mode=mode)
    run = simulate(setup)
    check(setup, run)
    accepts = sorted(run.accept_cycle.values())
    assert {b - a for a, b in itertools.pairwise(accepts)} == {2}
    intervals = {(mode_of(setup, s), b - a) for s, a, b in zip(
        run.sets[1:], run.set_cycles[:-1], run.set_cycles[1:], strict=True)}
    print(f"\nquoter: an update every 2 cycles in, a quote set every {sorted(intervals)} out")
    assert intervals == set(QUOTER_MODE_PERIOD.items())


# ------------------------------------------------------------------------------------------------
# Reprice requests


def run_with_reprice(reprice_slot: int, delay: int) -> tuple[list[tuple[int, int]], dict]:
    """Slot 0 is updated and priced; then slot 1 is updated and, ``delay`` cycles after its
    transfer, slot ``reprice_slot`` is asked to be priced again. Returns the quote sets as
    (slot, seq) in order and the counters."""
    limits = RiskLimits(max_long=POS_MAX, max_short=POS_MAX)
    good = params(fair_value_mode=FairValueMode.MID)
    dut = Quoter(2, slot_bits=SLOT_BITS)
    tops = [TopUpdate(0, 1, 1_000_000, 10, 1_000_100, 10, 1, 0, False, False),
            TopUpdate(1, 2, 2_000_000, 10, 2_000_300, 10, 2, 0, False, False)]
    sets = []

    async def testbench(ctx):
        set_registers(ctx, dut, [good] * 2, [limits] * 2)
        ctx.set(dut.o.ready, 1)
        for n, top in enumerate(tops):
            ctx.set(dut.i.payload.as_value(), pack(IN_LAYOUT, {
                name: getattr(top, name) for name, _ in IN_LAYOUT}))
            ctx.set(dut.i.valid, 1)
            while True:
                _, _, taken = await ctx.tick().sample(dut.i.valid & dut.i.ready)
                if taken:
                    break
            ctx.set(dut.i.valid, 0)
            for cycle in range(1, 4 * QUOTER_LATENCY):
                if n == 1:
                    ctx.set(dut.reprice, int(cycle == delay) << reprice_slot)
                _, _, valid, payload, busy = await ctx.tick().sample(
                    dut.o.valid, dut.o.payload.as_value(), dut.busy)
                if valid:
                    got = decode(payload)
                    sets.append((got["slot"], got["seq"]))
                if cycle > delay and not busy:
                    break
            assert not ctx.get(dut.busy)
        await ctx.tick().repeat(3)
        stats.update(unpack(stats_layout(QuoterStat), ctx.get(dut.stats.as_value())))

    stats = {}
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return sets, stats


def test_reprice_beside_an_update():
    """A reprice asked as an update leaves the front end (3 cycles after its transfer) starts to
    wait in the same cycle as the update, so the two queue in slot order; asked a cycle earlier
    it waits first; asked for the updated slot itself, the slot is priced once."""
    sets, stats = run_with_reprice(0, 3)
    assert sets == [(0, 1), (0, 1), (1, 2)]
    assert stats == {"updates": 2, "superseded": 0, "quote_sets": 3, "bad_slot": 0,
                     "reprices": 1}
    sets, stats = run_with_reprice(0, 2)
    assert sets == [(0, 1), (0, 1), (1, 2)]
    assert stats["reprices"] == 1
    sets, stats = run_with_reprice(1, 3)
    assert sets == [(0, 1), (1, 2)]
    assert stats == {"updates": 2, "superseded": 0, "quote_sets": 2, "bad_slot": 0,
                     "reprices": 0}
    # Long after the update: the slot is priced again on its last top.
    sets, stats = run_with_reprice(1, QUOTER_LATENCY + 5)
    assert sets == [(0, 1), (1, 2), (1, 2)]
    assert stats["reprices"] == 1
