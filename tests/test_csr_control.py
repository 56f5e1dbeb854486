"""Arm/kill state, the heartbeat watchdog and the counters of the control block."""

import pytest
from amaranth.sim import Simulator

from hdl.csr.control import Control


def simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


async def pulse(ctx, signal):
    ctx.set(signal, 1)
    await ctx.tick()
    ctx.set(signal, 0)


def state(ctx, dut):
    return ctx.get(dut.armed), ctx.get(dut.killed), ctx.get(dut.heartbeat_lost)


@pytest.mark.parametrize("timeout", [1, 2, 7, 100])
def test_watchdog_trips_timeout_plus_two_cycles_after_the_last_heartbeat(timeout):
    dut = Control()

    async def tb(ctx):
        ctx.set(dut.heartbeat_timeout, timeout)
        await pulse(ctx, dut.arm)
        await ctx.tick().repeat(timeout // 2 + 1)
        await pulse(ctx, dut.heartbeat)  # the strobe is high in the cycle before this returns
        cycles = 1
        while not ctx.get(dut.heartbeat_lost):
            assert state(ctx, dut) == (1, 0, 0)
            await ctx.tick()
            cycles += 1
            assert cycles < timeout + 10
        assert cycles == timeout + 2
        assert state(ctx, dut) == (0, 0, 1)
        # Sticky until the next arm; a late heartbeat does not re-arm.
        await pulse(ctx, dut.heartbeat)
        await ctx.tick().repeat(3)
        assert state(ctx, dut) == (0, 0, 1)
        await pulse(ctx, dut.arm)
        assert state(ctx, dut) == (1, 0, 0)
    simulate(dut, tb)


def test_regular_heartbeats_keep_it_armed_and_zero_timeout_disables_the_watchdog():
    dut = Control()

    async def tb(ctx):
        ctx.set(dut.heartbeat_timeout, 10)
        await pulse(ctx, dut.arm)
        for _ in range(20):
            await ctx.tick().repeat(8)  # a heartbeat every 9 cycles
            await pulse(ctx, dut.heartbeat)
            assert state(ctx, dut) == (1, 0, 0)
        # A heartbeat in the very cycle the deadline is reached still counts.
        await ctx.tick().repeat(10)
        assert ctx.get(dut.heartbeat_age) == 10
        await pulse(ctx, dut.heartbeat)
        assert state(ctx, dut) == (1, 0, 0)
        ctx.set(dut.heartbeat_timeout, 0)
        await ctx.tick().repeat(500)
        assert state(ctx, dut) == (1, 0, 0)
        assert ctx.get(dut.heartbeat_age) == 500
    simulate(dut, tb)


def test_watchdog_does_nothing_while_disarmed():
    dut = Control()

    async def tb(ctx):
        ctx.set(dut.heartbeat_timeout, 3)
        await ctx.tick().repeat(20)
        assert state(ctx, dut) == (0, 0, 0)
    simulate(dut, tb)


def test_kill_disarms_at_once_and_stays_until_arm():
    dut = Control()

    async def tb(ctx):
        await pulse(ctx, dut.arm)
        assert state(ctx, dut) == (1, 0, 0)
        ctx.set(dut.kill, 1)
        assert ctx.get(dut.armed) == 1  # registered: the cycle after the strobe
        await ctx.tick()
        ctx.set(dut.kill, 0)
        assert state(ctx, dut) == (0, 1, 0)
        await ctx.tick().repeat(10)
        assert state(ctx, dut) == (0, 1, 0)
        # Kill wins over arm in the same cycle.
        ctx.set(dut.arm, 1)
        ctx.set(dut.kill, 1)
        await ctx.tick()
        ctx.set(dut.arm, 0)
        ctx.set(dut.kill, 0)
        assert state(ctx, dut) == (0, 1, 0)
        await pulse(ctx, dut.arm)
        assert state(ctx, dut) == (1, 0, 0)
    simulate(dut, tb)


def test_cycle_and_commit_counters_and_age_saturation():
    dut = Control(age_bits=4)

    async def tb(ctx):
        await ctx.tick().repeat(40)
        assert ctx.get(dut.cycles) == 40
        assert ctx.get(dut.heartbeat_age) == 15  # saturated, not wrapped
        for _ in range(3):
            await pulse(ctx, dut.commit)
            await ctx.tick()
        assert ctx.get(dut.commit_count) == 3
        await pulse(ctx, dut.heartbeat)
        assert ctx.get(dut.heartbeat_age) == 0
    simulate(dut, tb)
