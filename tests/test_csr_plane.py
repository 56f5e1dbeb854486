"""The control plane: its ports fit the stages, and the host reaches them through the bus."""

import random

from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.csr.map import MAGIC, MAP_VERSION, N_INSTRUMENTS, REGISTER_MAP
from hdl.csr.plane import INTERNAL_BLOCKS, ControlPlane
from hdl.csr.protocol import BusError
from hdl.feed.mold_rx import GapLayout, MoldRx, MoldRxStatusLayout
from hdl.net.udp_rx import UdpRxConfigLayout
from hdl.stats import stats_layout
from host.transports.sim import bus_access
from sim.book import BookStat
from sim.itch_decode import ItchDecodeStat
from sim.mold_rx import MoldRx as MoldRxModel
from sim.mold_rx import MoldRxStat
from sim.udp_rx import Payload, UdpRxStat
from sim.wire.mold import encode_packet

SESSION = b"CSRTEST001"


def test_ports_are_the_stage_ports_layouts():
    plane = ControlPlane()
    members = plane.signature.members
    expected = {
        "net": (wiring.Out, UdpRxConfigLayout),
        "mold": (wiring.In, MoldRxStatusLayout),
        "udp_rx_stats": (wiring.In, stats_layout(UdpRxStat)),
        "mold_rx_stats": (wiring.In, stats_layout(MoldRxStat)),
        "itch_decode_stats": (wiring.In, stats_layout(ItchDecodeStat)),
        "book_stats": (wiring.In, stats_layout(BookStat)),
    }
    for name, (flow, layout) in expected.items():
        assert members[name].flow == flow and members[name].shape == layout, name
    assert members["i_gap"].signature.members["payload"].shape == GapLayout
    for block in ("book", "position", "quote", "risk"):
        assert members[block].dimensions == (N_INSTRUMENTS,)
    for block in INTERNAL_BLOCKS:
        assert block not in members
    for block in REGISTER_MAP.blocks:
        assert block.name in members or block.name in INTERNAL_BLOCKS
    Fragment.get(plane, None)  # it elaborates


class MoldTop(wiring.Component):
    """The control plane in front of a MoldRx, wired as the core wires them."""

    def __init__(self):
        self.plane = ControlPlane()
        self.mold = MoldRx(gap_fifo_depth=4)
        super().__init__({"i": wiring.In(self.mold.i.signature.flip())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.plane, m.submodules.mold = plane, mold = self.plane, self.mold
        wiring.connect(m, wiring.flipped(self.i), mold.i)
        wiring.connect(m, mold.o_gap, plane.i_gap)
        wiring.connect(m, plane.o_expected, mold.i_expected)
        m.d.comb += [plane.mold.eq(mold.status), plane.mold_rx_stats.eq(mold.stats),
                     mold.o.ready.eq(1)]
        return m


async def read(ctx, plane, path):
    loc = REGISTER_MAP[path]
    words = []
    for k in range(loc.words):
        data, err = await bus_access(ctx, plane.bus, loc.address + k)
        assert err == BusError.OK, path
        words.append(data)
    return loc.reg.from_words(words)


async def write(ctx, plane, path, value):
    loc = REGISTER_MAP[path]
    for k, word in enumerate(loc.reg.to_words(value)):
        _, err = await bus_access(ctx, plane.bus, loc.address + k, word)
        assert err == BusError.OK, path


def test_mold_status_counters_gaps_and_set_expected_through_the_bus():
    rng = random.Random(5)
    dut = MoldTop()
    model = MoldRxModel()
    messages = [bytes([0x41]) + rng.randbytes(rng.randint(19, 40)) for _ in range(12)]
    # Sequence 1..3, then 7..8 (gap 4..6), then 12 (gap 9..11), then 100 (gap 13..99).
    packets = [encode_packet(SESSION, seq, messages[:count])
               for seq, count in ((1, 3), (7, 2), (12, 1), (100, 2))]

    async def send(ctx, payload):
        for beat in Payload(payload).beats():
            ctx.set(dut.i.payload, beat)
            ctx.set(dut.i.valid, 1)
            while True:
                ready = ctx.get(dut.i.ready)
                await ctx.tick()
                if ready:
                    break
        ctx.set(dut.i.valid, 0)
        await ctx.tick().repeat(6)

    async def tb(ctx):
        plane = dut.plane
        for packet in packets:
            model.push(packet)
            await send(ctx, packet)
        assert await read(ctx, plane, "mold.expected") == model.expected == 102
        assert await read(ctx, plane, "mold.session") == int.from_bytes(SESSION, "big")
        assert await read(ctx, plane, "mold.session_valid") == 1
        for member in MoldRxStat:
            assert await read(ctx, plane, f"mold_rx_stats.{member.name.lower()}") == \
                model.stats[member], member.name
        # The host pops the gaps oldest first.
        popped = []
        while await read(ctx, plane, "mold_recovery.gap_pending"):
            popped.append((await read(ctx, plane, "mold_recovery.gap_first"),
                           await read(ctx, plane, "mold_recovery.gap_count")))
            await write(ctx, plane, "mold_recovery.gap_pop", 1)
        assert popped == [(gap.first, gap.count) for gap in model.gaps]
        # After recovering 102..199 elsewhere, the host moves the expected number on.
        await write(ctx, plane, "mold_recovery.next_expected", 200)
        assert await read(ctx, plane, "mold.expected") == 102
        await write(ctx, plane, "mold_recovery.set_expected", 1)
        await ctx.tick().repeat(2)
        assert await read(ctx, plane, "mold_recovery.set_pending") == 0
        assert await read(ctx, plane, "mold.expected") == 200
        model.set_expected(200)
        late = encode_packet(SESSION, 150, messages[:1])  # all old now: a duplicate
        model.push(late)
        await send(ctx, late)
        assert await read(ctx, plane, "mold_rx_stats.dup_packets") == \
            model.stats[MoldRxStat.DUP_PACKETS] == 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_expected_stays_offered_until_taken_and_keeps_its_value():
    plane = ControlPlane()

    async def tb(ctx):
        await write(ctx, plane, "mold_recovery.next_expected", 0x1_0000_0005)
        await write(ctx, plane, "mold_recovery.set_expected", 1)
        await ctx.tick()
        assert ctx.get(plane.o_expected.valid) == 1
        # The host changing next_expected does not disturb the value on offer.
        await write(ctx, plane, "mold_recovery.next_expected", 7)
        await ctx.tick().repeat(5)
        assert ctx.get(plane.o_expected.payload) == 0x1_0000_0005
        assert await read(ctx, plane, "mold_recovery.set_pending") == 1
        ctx.set(plane.o_expected.ready, 1)
        await ctx.tick()
        ctx.set(plane.o_expected.ready, 0)
        assert ctx.get(plane.o_expected.valid) == 0
        assert await read(ctx, plane, "mold_recovery.set_pending") == 0

    sim = Simulator(plane)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def test_identity_and_the_control_outputs_through_the_bus():
    plane = ControlPlane(clk_hz=100_000_000, build_id=0xC0FFEE)

    async def tb(ctx):
        assert await read(ctx, plane, "ctrl.magic") == MAGIC
        assert await read(ctx, plane, "ctrl.map_version") == MAP_VERSION
        assert await read(ctx, plane, "ctrl.map_hash") == REGISTER_MAP.hash
        assert await read(ctx, plane, "ctrl.clk_hz") == 100_000_000
        assert await read(ctx, plane, "ctrl.build_id") == 0xC0FFEE
        timeout = 50
        await write(ctx, plane, "ctrl.heartbeat_timeout", timeout)
        await write(ctx, plane, "ctrl.arm", 1)
        assert ctx.get(plane.control.armed) == 1  # at the edge of the write, like any register
        # Heartbeat loss, measured from the cycle the host's write is on the bus.
        await write(ctx, plane, "ctrl.heartbeat", 1)
        cycles = 1
        while not ctx.get(plane.control.heartbeat_lost):
            await ctx.tick()
            cycles += 1
        assert cycles == timeout + 2
        assert ctx.get(plane.control.armed) == 0
        assert await read(ctx, plane, "ctrl.heartbeat_lost") == 1
        await write(ctx, plane, "ctrl.arm", 1)
        await write(ctx, plane, "ctrl.kill", 1)
        assert (ctx.get(plane.control.armed), ctx.get(plane.control.killed)) == (0, 1)
        assert await read(ctx, plane, "ctrl.killed") == 1
        before = await read(ctx, plane, "ctrl.commit_count")
        await write(ctx, plane, "ctrl.commit", 1)
        assert await read(ctx, plane, "ctrl.commit_count") == before + 1
        cycles_a = await read(ctx, plane, "ctrl.cycles")
        await ctx.tick().repeat(10)
        assert await read(ctx, plane, "ctrl.cycles") - cycles_a == 10 + 2

    sim = Simulator(plane)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
