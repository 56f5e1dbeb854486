"""The quoter's arithmetic units on the Amaranth simulator against Python's integers: the
pipelined multiplier at every width the quoter uses, one product a cycle, and the radix divider
at the quoter's shapes, over random operands, the extremes and the tick rounding's hard cases
(small and odd ticks, dividends next to multiples and next to the rounding clamp)."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.quote.arith import (
    PipelinedMultiplier,
    RadixDivider,
    divider_steps,
    multiplier_latency,
)


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def edges(width: int) -> list[int]:
    top = (1 << width) - 1
    return sorted({v for v in [0, 1, 2, top, top - 1, 1 << (width - 1), (1 << (width - 1)) - 1,
            *[(1 << b) - 1 for b in (17, 18, 19, 35, 36, 37) if b < width],
            *[1 << b for b in (17, 18, 36) if b < width]] if v <= top})


@pytest.mark.parametrize(("a_width", "b_width"), [(16, 16), (32, 16), (40, 16), (48, 32),
                                                  (32, 48), (18, 18), (19, 1)])
def test_multiplier(a_width, b_width):
    """A new operand pair every cycle, each product exactly ``latency`` cycles later."""
    rng = random.Random(a_width * 100 + b_width)
    pairs = [(a, b) for a in edges(a_width) for b in edges(b_width)]
    pairs += [(rng.getrandbits(a_width), rng.getrandbits(b_width)) for _ in range(300)]
    dut = PipelinedMultiplier(a_width, b_width)
    assert dut.latency == multiplier_latency(a_width, b_width) <= 4
    got = []

    async def testbench(ctx):
        for cycle in range(len(pairs) + dut.latency - 1):
            if cycle < len(pairs):
                ctx.set(dut.a, pairs[cycle][0])
                ctx.set(dut.b, pairs[cycle][1])
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                got.append(ctx.get(dut.product))

    run(dut, testbench)
    assert got == [a * b for a, b in pairs]


def tick_cases(rng: random.Random) -> list[tuple[int, int]]:
    """``(n, tick)`` for the rounding of a clamped ``|c -/+ half| <= 2**34``."""
    clamp = 1 << 34
    cases = []
    for tick in (1, 2, 3, 7, 100, 65535, 65534, 32768, rng.randrange(1, 1 << 16)):
        for n in (0, 1, tick - 1, tick, tick + 1, clamp, clamp - 1, clamp - tick,
                  (clamp // tick) * tick, (clamp // tick) * tick - 1,
                  (clamp // tick) * tick + 1, rng.randrange(clamp)):
            if 0 <= n <= clamp:
                cases.append((n, tick))
        k = rng.randrange(1, clamp // tick + 1)
        cases += [(k * tick + d, tick) for d in (-1, 0, 1) if 0 <= k * tick + d <= clamp]
    cases += [(rng.randrange(clamp + 1), rng.randrange(1, 1 << 16)) for _ in range(100)]
    return cases


def microprice_cases(rng: random.Random) -> list[tuple[int, int]]:
    """``(diff * shares, weight)`` with ``shares <= weight``: the microprice's division."""
    cases = []
    for _ in range(120):
        weight = rng.choice((1, 2, (1 << 49) - 2, rng.randrange(1, 1 << 49),
                             rng.randrange(1, 1 << 20)))
        shares = rng.choice((0, weight, weight - 1, rng.randrange(weight + 1)))
        diff = rng.choice((0, 1, (1 << 32) - 1, rng.randrange(1 << 32)))
        cases.append((diff * shares, weight))
    return cases


async def start_division(ctx, dut, n):
    """Pulse ``start`` with dividend ``n`` for one cycle."""
    ctx.set(dut.n, n)
    ctx.set(dut.start, 1)
    await ctx.tick()
    ctx.set(dut.start, 0)


@pytest.mark.parametrize(("n_width", "d_width", "q_width", "radix_bits", "kind"), [
    (35, 16, 35, 4, "tick"), (33, 16, 33, 4, "tick"), (35, 16, 35, 2, "tick"),
    (35, 16, 35, 1, "tick"), (80, 49, 32, 3, "microprice"), (80, 49, 32, 2, "microprice"),
])
def test_divider(n_width, d_width, q_width, radix_bits, kind):
    """One division after another, ``done`` and ``busy`` checked every cycle, the divisor
    changed only the cycle before each ``start``."""
    rng = random.Random(n_width + radix_bits)
    cases = tick_cases(rng) if kind == "tick" else microprice_cases(rng)
    cases = [(n, d) for n, d in cases if n < d << q_width and n < 1 << n_width]
    dut = RadixDivider(n_width, d_width, q_width, radix_bits)
    steps = divider_steps(q_width, radix_bits)
    got = []

    async def testbench(ctx):
        ctx.set(dut.d, cases[0][1])
        await ctx.tick()
        for index, (n, _) in enumerate(cases):
            await start_division(ctx, dut, n)
            for cycle in range(1, steps + 1):
                assert ctx.get(dut.done) == (cycle == steps)
                assert ctx.get(dut.busy) == (cycle < steps)
                if cycle == steps:
                    got.append((ctx.get(dut.quotient), ctx.get(dut.remainder)))
                    if index + 1 < len(cases):
                        ctx.set(dut.d, cases[index + 1][1])
                    break
                await ctx.tick()
            await ctx.tick()
            assert not ctx.get(dut.busy) and not ctx.get(dut.done)

    run(dut, testbench)
    assert got == [divmod(n, d) for n, d in cases]


@pytest.mark.parametrize(("n_width", "d_width", "q_width", "radix_bits"), [
    (35, 16, 35, 4), (80, 49, 32, 3),
])
def test_divider_restarts_while_busy(n_width, d_width, q_width, radix_bits):
    """A ``start`` while busy abandons the division under way: the new dividend is taken that
    cycle and its results come ``steps`` cycles later, at every point of the old one."""
    rng = random.Random(q_width)
    d = rng.randrange(3, 1 << min(d_width, 16))
    dut = RadixDivider(n_width, d_width, q_width, radix_bits)
    steps = divider_steps(q_width, radix_bits)
    limit = min(d << q_width, 1 << n_width)

    async def testbench(ctx):
        ctx.set(dut.d, d)
        await ctx.tick()
        for cut in range(1, steps):
            first, second = rng.randrange(limit), rng.randrange(limit)
            await start_division(ctx, dut, first)
            for _ in range(cut - 1):
                await ctx.tick()
            assert ctx.get(dut.busy)
            await start_division(ctx, dut, second)
            for cycle in range(1, steps + 1):
                assert ctx.get(dut.done) == (cycle == steps)
                if cycle < steps:
                    await ctx.tick()
            assert (ctx.get(dut.quotient), ctx.get(dut.remainder)) == divmod(second, d)
            await ctx.tick()

    run(dut, testbench)
