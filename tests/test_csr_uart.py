"""The 8N1 UART pair: loopback at several divisors, bad stop bits, glitches, overruns."""

import itertools
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from hdl.csr.uart import UartRx, UartTx


class Loopback(wiring.Component):
    """UartTx's line into UartRx."""

    def __init__(self, divisor):
        self.tx = UartTx(divisor)
        self.rx = UartRx(divisor)
        super().__init__({"i": In(self.tx.i.signature.flip()), "o": Out(self.rx.o.signature),
                          "line": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx, m.submodules.rx = self.tx, self.rx
        wiring.connect(m, wiring.flipped(self.i), self.tx.i)
        wiring.connect(m, self.rx.o, wiring.flipped(self.o))
        m.d.comb += [self.rx.rx.eq(self.tx.tx), self.line.eq(self.tx.tx)]
        return m


def simulate(dut, *testbenches):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for index, testbench in enumerate(testbenches):
        sim.add_testbench(testbench, background=index > 0)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 5, 16])
def test_loopback_back_to_back_at_full_rate(divisor):
    dut = Loopback(divisor)
    data = [0x00, 0xFF, 0x55, 0xAA, *random.Random(divisor).randbytes(20)]
    received = []

    async def send(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            while True:
                ready = ctx.get(dut.i.ready)  # a transfer happens at the edge if ready now
                await ctx.tick()
                if ready:
                    break
        ctx.set(dut.i.valid, 0)
        while len(received) < len(data):
            await ctx.tick()

    async def receive(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while True:
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o.valid):
                received.append((cycle, ctx.get(dut.o.payload)))

    simulate(dut, send, receive)
    assert [byte for _, byte in received] == data
    # One character every 10 bit times plus the cycle that loads the next byte.
    gaps = {b - a for (a, _), (b, _) in itertools.pairwise(received)}
    assert gaps == {10 * divisor + 1}


async def drive_line(ctx, line, bits, bit_cycles):
    """Drive ``bits`` onto ``line``, each ``bit_cycles`` long (may be fractional)."""
    elapsed = 0.0
    done = 0
    for bit in bits:
        ctx.set(line, bit)
        elapsed += bit_cycles
        while done < round(elapsed):
            await ctx.tick()
            done += 1


def char(byte, stop=1):
    return [0, *((byte >> k) & 1 for k in range(8)), stop]


@pytest.mark.parametrize("skew", [0.96, 1.0, 1.04])
def test_receiver_tolerates_a_few_percent_of_baud_mismatch(skew):
    divisor = 16
    dut = UartRx(divisor)
    data = random.Random(7).randbytes(16)
    got = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        bits = [1] * 3 + [b for byte in data for b in char(byte)] + [1] * 3
        await drive_line(ctx, dut.rx, bits, divisor * skew)
        await ctx.tick().repeat(5)

    async def monitor(ctx):
        while True:
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
    simulate(dut, tb, monitor)
    assert bytes(got) == data


def test_bad_stop_bit_and_glitches_are_dropped_and_reported():
    divisor = 8
    dut = UartRx(divisor)
    got, framing = [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        await drive_line(ctx, dut.rx, [1, 1], divisor)
        # A one-cycle low glitch is not a start bit.
        ctx.set(dut.rx, 0)
        await ctx.tick()
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        # A character with a low stop bit, the line held low (a break), then a good one.
        await drive_line(ctx, dut.rx, char(0x5A, stop=0) + [0] * 5 + [1] * 2, divisor)
        await drive_line(ctx, dut.rx, char(0xC3) + [1] * 3, divisor)

    async def monitor(ctx):
        cycle = 0
        while True:
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            if ctx.get(dut.framing_error):
                framing.append(cycle)
    simulate(dut, tb, monitor)
    assert got == [0xC3]
    assert len(framing) == 1


def test_overrun_keeps_the_waiting_byte_and_reports_the_lost_one():
    divisor = 4
    dut = UartRx(divisor)
    overruns = []

    async def tb(ctx):
        ctx.set(dut.o.ready, 0)
        await drive_line(ctx, dut.rx, [1, *char(0x11), *char(0x22), 1, 1], divisor)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11
        ctx.set(dut.o.ready, 1)
        await ctx.tick()
        assert not ctx.get(dut.o.valid)
        ctx.set(dut.o.ready, 0)
        await drive_line(ctx, dut.rx, [*char(0x33), 1, 1], divisor)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x33

    async def monitor(ctx):
        while True:
            await ctx.tick()
            overruns.append(ctx.get(dut.overrun))
    simulate(dut, tb, monitor)
    assert sum(overruns) == 1
