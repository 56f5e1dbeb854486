"""The register bank on Amaranth's simulator: every access mode, errors, staging and commit."""

import random

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from hdl.csr.bank import RegisterBank
from hdl.csr.map import REGISTER_MAP
from hdl.csr.protocol import BusError
from hdl.csr.reg import Access, Block, Reg, build_map
from host.transports.sim import bus_access

RW, RO, W1P = Access.RW, Access.RO, Access.W1P

MAP = build_map([
    Block("ctrl", "control", (
        Reg("commit", 1, W1P, "apply staged"),
        Reg("go", 1, W1P, "a strobe"),
        Reg("scratch", 32, RW, "plain", reset=0x1234),
        Reg("small", 6, RW, "signed", signed=True, min=-20, max=20, reset=-1),
        Reg("level", 2, RW, "ranged", min=1, max=3, reset=1),
        Reg("seq", 64, RW, "wide, direct"),
        Reg("counter", 48, RO, "wide counter"),
        Reg("flag", 1, RO, "flag"),
        Reg("session", 80, RO, "wider"),
    )),
    Block("p", "staged parameters", (
        Reg("a", 16, RW, "a", staged=True, reset=5, max=1000),
        Reg("b", 32, RW, "b", staged=True),
        Reg("mac", 48, RW, "c", staged=True, reset=0x02_0000_0000_01),
        Reg("s", 8, RW, "d", staged=True, signed=True, min=-100, max=100, reset=-7),
    ), count=2),
], commit="ctrl.commit")

STAGED = [loc for loc in MAP if loc.reg.staged]


def run(bank, *testbenches):
    sim = Simulator(bank)
    sim.add_clock(1e-8)
    for index, testbench in enumerate(testbenches):
        sim.add_testbench(testbench, background=index > 0)
    sim.run()


def addr(path, word=0):
    return MAP[path].address + word


def word_of(loc, value):
    return loc.reg.to_words(value)


async def read(ctx, bank, path):
    loc = MAP[path]
    words = []
    for k in range(loc.words):
        data, err = await bus_access(ctx, bank.bus, loc.address + k)
        assert err == BusError.OK
        words.append(data)
    return loc.reg.from_words(words)


async def write(ctx, bank, path, value, expect=BusError.OK):
    loc = MAP[path]
    for word_index, word in enumerate(loc.reg.to_words(value)):
        _, err = await bus_access(ctx, bank.bus, loc.address + word_index, word)
        assert err == expect, f"{path} word {word_index}: {err!r}"


def ports(ctx, bank):
    return {loc.path: ctx.get(bank.port(loc)) for loc in MAP if loc.reg.access is not RO}


def test_reset_values_on_ports_and_reads():
    bank = RegisterBank(MAP)

    async def tb(ctx):
        for loc in MAP:
            if loc.reg.access is RW:
                assert ctx.get(bank.port(loc)) == loc.reg.reset, loc.path
                assert await read(ctx, bank, loc.path) == loc.reg.reset, loc.path
            elif loc.reg.access is W1P:
                assert ctx.get(bank.port(loc)) == 0
                assert await read(ctx, bank, loc.path) == 0
        # A signed register reads sign-extended to the whole word.
        assert (await bus_access(ctx, bank.bus, addr("ctrl.small")))[0] == 0xFFFF_FFFF
    run(bank, tb)


def test_write_shows_one_cycle_later_and_accesses_run_back_to_back():
    bank = RegisterBank(MAP)

    async def tb(ctx):
        ctx.set(bank.bus.addr, addr("ctrl.scratch"))
        ctx.set(bank.bus.w_data, 0xCAFE_F00D)
        ctx.set(bank.bus.w_stb, 1)
        assert ctx.get(bank.ctrl.scratch) == 0x1234  # not in the cycle of the write
        await ctx.tick()
        ctx.set(bank.bus.w_stb, 0)
        assert ctx.get(bank.ctrl.scratch) == 0xCAFE_F00D
        assert ctx.get(bank.bus.err) == BusError.OK
        # One read per cycle, each answered in the next cycle.
        ctx.set(bank.bus.r_stb, 1)
        for path in ("ctrl.scratch", "ctrl.level", "ctrl.small", "p[1].a", "p[0].b"):
            ctx.set(bank.bus.addr, addr(path))
            await ctx.tick()
            expected = MAP[path].reg.to_words(MAP[path].reg.reset)[0]
            if path == "ctrl.scratch":
                expected = 0xCAFE_F00D
            assert ctx.get(bank.bus.r_data) == expected, path
        ctx.set(bank.bus.r_stb, 0)
    run(bank, tb)


def test_bad_writes_are_refused_and_change_nothing():
    bank = RegisterBank(MAP)

    async def tb(ctx):
        before = ports(ctx, bank)
        bad = [
            ("ctrl.level", 0, BusError.RANGE), ("ctrl.level", 4, BusError.RANGE),
            ("ctrl.level", 0x1_0002, BusError.RANGE),   # stray upper bits are not dropped
            ("ctrl.small", 21, BusError.RANGE), ("ctrl.small", 0xFFFF_FFEB, BusError.RANGE),
            ("ctrl.small", 0x3F, BusError.RANGE),       # 6-bit -1 without sign extension
            ("ctrl.go", 2, BusError.RANGE),
            ("p[0].a", 1001, BusError.RANGE), ("p[1].s", 0x80, BusError.RANGE),
            ("ctrl.counter", 1, BusError.READ_ONLY), ("ctrl.flag", 1, BusError.READ_ONLY),
        ]
        for path, word, error in bad:
            _, err = await bus_access(ctx, bank.bus, addr(path), word)
            assert err == error, path
            assert ctx.get(bank.ctrl.go) == 0
        for unmapped in (MAP.words, MAP["ctrl.session"].address + 3, 0xFFFF):
            assert await bus_access(ctx, bank.bus, unmapped, 1) == (0, BusError.UNMAPPED)
            assert await bus_access(ctx, bank.bus, unmapped) == (0, BusError.UNMAPPED)
        await bus_access(ctx, bank.bus, addr("ctrl.commit"), 1)
        await ctx.tick()
        assert ports(ctx, bank) == before
        # The edges of each range are accepted.
        for path, value in (("ctrl.level", 3), ("ctrl.small", -20), ("ctrl.small", 20)):
            await write(ctx, bank, path, value)
            assert await read(ctx, bank, path) == value
    run(bank, tb)


def test_w1p_pulses_for_exactly_the_cycle_of_the_write():
    bank = RegisterBank(MAP)
    trace = []

    async def tb(ctx):
        await bus_access(ctx, bank.bus, addr("ctrl.go"), 0)
        await ctx.tick().repeat(3)
        await bus_access(ctx, bank.bus, addr("ctrl.go"), 1)
        await bus_access(ctx, bank.bus, addr("ctrl.go"))
        await ctx.tick().repeat(3)
        assert await read(ctx, bank, "ctrl.go") == 0

    async def monitor(ctx):
        while True:
            # The value the design's flip-flops see at each clock edge.
            _, _, go = await ctx.tick().sample(bank.ctrl.go)
            trace.append(go)
    run(bank, tb, monitor)
    # Write of 0 at edge 0, write of 1 at edge 4: the strobe is seen at that edge only.
    assert trace[:10] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_wide_direct_register_applies_on_its_top_word():
    bank = RegisterBank(MAP)

    async def tb(ctx):
        _, err = await bus_access(ctx, bank.bus, addr("ctrl.seq", 0), 0x89AB_CDEF)
        assert err == BusError.OK
        assert ctx.get(bank.ctrl.seq) == 0
        await bus_access(ctx, bank.bus, addr("ctrl.seq", 1), 0x0123_4567)
        assert ctx.get(bank.ctrl.seq) == 0x0123_4567_89AB_CDEF
        assert await read(ctx, bank, "ctrl.seq") == 0x0123_4567_89AB_CDEF
    run(bank, tb)


class _Counting(Elaboratable):
    """The bank with a free-running counter on one wide RO input."""

    def __init__(self, name, start):
        self.bank = RegisterBank(MAP)
        self.count = Signal(MAP[f"ctrl.{name}"].reg.width, init=start)
        self.name = name

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = self.bank
        m.d.sync += self.count.eq(self.count + 1)
        m.d.comb += getattr(self.bank.ctrl, self.name).eq(self.count)
        return m


@pytest.mark.parametrize("name, start", [("counter", (1 << 32) - 3),
                                         ("session", (1 << 64) - 5)])
def test_wide_read_only_value_is_read_atomically(name, start):
    dut = _Counting(name, start)
    loc = MAP[f"ctrl.{name}"]

    async def tb(ctx):
        for gap in range(6):
            # The value in the cycle word 0 is read, whatever the input does afterwards.
            expected = ctx.get(dut.count)
            got = []
            for k in range(loc.words):
                data, err = await bus_access(ctx, dut.bank.bus, loc.address + k)
                assert err == BusError.OK
                got.append(data)
                await ctx.tick().repeat(gap + 1)
            assert loc.reg.from_words(got) == expected
        # The reads straddled the carry out of the low word.
        assert ctx.get(dut.count) >> 32 != start >> 32
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_commit_applies_every_staged_register_in_one_cycle(seed):
    """The consumer side never sees a mix of old and new values, whatever the write order."""
    rng = random.Random(seed)
    bank = RegisterBank(MAP)
    trace = []
    commits = []

    def staged_ports(ctx):
        return tuple(ctx.get(bank.port(loc)) for loc in STAGED)

    async def monitor(ctx):
        while True:
            await ctx.tick()
            trace.append(staged_ports(ctx))

    async def tb(ctx):
        sets = [tuple(loc.reg.reset for loc in STAGED)]
        for _ in range(4):
            new = tuple(rng.randint(loc.reg.min, loc.reg.max) for loc in STAGED)
            order = list(range(len(STAGED)))
            rng.shuffle(order)
            for index in order:
                await write(ctx, bank, STAGED[index].path, new[index])
                if rng.random() < 0.3:
                    await ctx.tick().repeat(rng.randint(1, 3))
                # Reads return the applied values, not the pending ones.
                probe = rng.randrange(len(STAGED))
                assert await read(ctx, bank, STAGED[probe].path) == sets[-1][probe]
            await bus_access(ctx, bank.bus, addr("ctrl.commit"), 1)
            # This testbench runs before the monitor in each cycle, so the monitor's next
            # sample is the first one after the commit's clock edge.
            commits.append(len(trace))
            sets.append(new)
            for loc, value in zip(STAGED, new, strict=True):
                assert await read(ctx, bank, loc.path) == value
        return sets

    sim = Simulator(bank)
    sim.add_clock(1e-8)
    result = {}

    async def main(ctx):
        result["sets"] = await tb(ctx)
    sim.add_testbench(main)
    sim.add_testbench(monitor, background=True)
    sim.run()

    sets = result["sets"]
    assert len(commits) == 4 and len(set(sets)) == 5
    # Before each commit's edge the ports show the previous set, from it on the new one:
    # every sample is exactly one of the sets, and it changes only right after a commit.
    for index, sample in enumerate(trace):
        applied = sum(1 for c in commits if c <= index)
        assert sample == sets[applied], f"cycle {index}: mix of old and new values"


def test_bank_of_the_design_map_reads_every_reset_value():
    bank = RegisterBank(REGISTER_MAP)

    async def tb(ctx):
        for loc in REGISTER_MAP:
            if loc.reg.access is RO:
                continue
            words = []
            for k in range(loc.words):
                data, err = await bus_access(ctx, bank.bus, loc.address + k)
                assert err == BusError.OK, loc.path
                words.append(data)
            expected = loc.reg.reset if loc.reg.access is RW else 0
            assert loc.reg.from_words(words) == expected, loc.path
    run(bank, tb)
