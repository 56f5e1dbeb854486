"""The UART bridge's frame engine against a register bank: frames, errors, counters, latency.

The engine is driven through its byte streams (with idle cycles and backpressure), and every
reply is compared with what a small Python model of the bank says it must be.
"""

import random
from collections import deque

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from hdl.csr.bank import RegisterBank
from hdl.csr.bridge import FrameEngine, UartBridge
from hdl.csr.protocol import (
    MAX_WORDS,
    BridgeStat,
    BusError,
    Command,
    Status,
    crc8,
    decode_reply,
    encode_request,
    reply_length,
    status_of_bus_error,
)
from hdl.csr.reg import Access, Block, Reg, build_map
from hdl.stats import COUNTER_LATENCY

RW, RO, W1P = Access.RW, Access.RO, Access.W1P
TIMEOUT = 200

MAP = build_map([
    Block("ctrl", "control", (
        Reg("commit", 1, W1P, "c"),
        Reg("scratch", 32, RW, "s", reset=0x1234),
        Reg("level", 2, RW, "l", min=1, max=3, reset=1),
        Reg("small", 6, RW, "s", signed=True, min=-20, max=20),
        Reg("seq", 64, RW, "n"),
        Reg("counter", 48, RO, "c"),
        Reg("flag", 1, RO, "f"),
    )),
    Block("p", "staged", (
        Reg("a", 16, RW, "a", staged=True, reset=5, max=1000),
        Reg("b", 32, RW, "b", staged=True),
        Reg("mac", 48, RW, "m", staged=True),
    ), count=4),  # 16 mapped words in a row: a whole burst
], commit="ctrl.commit")

RO_VALUES = {"ctrl.counter": 0x1234_89AB_CDEF, "ctrl.flag": 1}


class BankModel:
    """What the register bank answers, word by word (see ``hdl/csr/bank.py``)."""

    def __init__(self):
        self.live = {loc.path: loc.reg.reset for loc in MAP if loc.reg.access is RW}
        self.shadow = {p: v for p, v in self.live.items() if MAP[p].reg.staged}
        self.hold = {}
        self.latch = {}

    def read(self, address):
        found = MAP.at(address)
        if found is None:
            return 0, BusError.UNMAPPED
        loc, word = found
        if loc.reg.access is W1P:
            return 0, BusError.OK
        if loc.reg.access is RO:
            words = loc.reg.to_words(RO_VALUES[loc.path])
            if word == 0:
                self.latch[loc.path] = words
            # The latch holds the upper words of the last read of word 0 (0 after reset).
            return self.latch.get(loc.path, [0] * loc.words)[word], BusError.OK
        return loc.reg.to_words(self.live[loc.path])[word], BusError.OK

    def write(self, address, data):
        found = MAP.at(address)
        if found is None:
            return BusError.UNMAPPED
        loc, word = found
        reg = loc.reg
        if reg.access is RO:
            return BusError.READ_ONLY
        if reg.access is W1P:
            if data > 1:
                return BusError.RANGE
            if data and loc.path == MAP.commit:
                self.live.update(self.shadow)
            return BusError.OK
        if reg.words == 1:
            value = data - (1 << 32) if reg.signed and data >> 31 else data
            if not reg.min <= value <= reg.max:
                return BusError.RANGE
            target = self.shadow if reg.staged else self.live
            target[loc.path] = reg.from_words([data])
            return BusError.OK
        if reg.staged:
            words = reg.to_words(self.shadow[loc.path])
            words[word] = data
            self.shadow[loc.path] = reg.from_words(words)
        elif word < reg.words - 1:
            self.hold[(loc.path, word)] = data
        else:
            words = [self.hold.get((loc.path, k), 0) for k in range(reg.words - 1)] + [data]
            self.live[loc.path] = reg.from_words(words)
        return BusError.OK

    def execute(self, cmd, tag, address, count, data=()):
        """The reply bytes' fields for a well-formed request."""
        words, done, error = [], 0, BusError.OK
        for k in range(count):
            if cmd == Command.READ:
                word, error = self.read((address + k) & 0xFFFF)
                if error:
                    break
                words.append(word)
            else:
                error = self.write((address + k) & 0xFFFF, data[k])
                if error:
                    break
            done += 1
        return cmd, tag, status_of_bus_error(error), done, tuple(words)


class EngineBench(wiring.Component):
    def __init__(self):
        self.engine = FrameEngine(addr_width=MAP.addr_width, timeout=TIMEOUT)
        self.bank = RegisterBank(MAP)
        super().__init__({"i": wiring.In(self.engine.i.signature.flip()),
                          "o": wiring.Out(self.engine.o.signature),
                          "stats": wiring.Out(self.engine.stats.shape())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine, m.submodules.bank = self.engine, self.bank
        wiring.connect(m, self.engine.bus, self.bank.bus)
        wiring.connect(m, wiring.flipped(self.i), self.engine.i)
        wiring.connect(m, self.engine.o, wiring.flipped(self.o))
        m.d.comb += self.stats.eq(self.engine.stats)
        return m


class Bench:
    """Byte source with idle cycles, byte sink with backpressure, cycle-stamped."""

    def __init__(self, seed=0, idle=0.0, backpressure=0.0):
        self.dut = EngineBench()
        self.rng = random.Random(seed)
        self.idle, self.backpressure = idle, backpressure
        self.out = deque()
        self.cycle = 0
        self.taken = []  # (clock edge, byte) of request bytes accepted
        self.reply_edge = None  # clock edge that took the last reply's first byte
        self.reply_edges = []   # ... and each of its bytes

    def run(self, body):
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)

        async def main(ctx):
            for path, value in RO_VALUES.items():
                block, name = path.split(".")
                ctx.set(getattr(getattr(self.dut.bank, block), name), value)
            await body(ctx, self)

        async def sink(ctx):
            while True:
                ready = self.rng.random() >= self.backpressure
                ctx.set(self.dut.o.ready, ready)
                valid, payload = ctx.get(self.dut.o.valid), ctx.get(self.dut.o.payload)
                await ctx.tick()
                self.cycle += 1
                if ready and valid:
                    self.out.append((self.cycle, payload))

        sim.add_testbench(main)
        sim.add_testbench(sink, background=True)
        sim.run()

    async def send(self, ctx, data: bytes):
        for byte in data:
            while self.rng.random() < self.idle:
                await ctx.tick()
            ctx.set(self.dut.i.payload, byte)
            ctx.set(self.dut.i.valid, 1)
            while True:
                ready = ctx.get(self.dut.i.ready)
                await ctx.tick()
                if ready:
                    # The sink, which counts edges, runs after this testbench in each step.
                    self.taken.append((self.cycle + 1, byte))
                    break
            ctx.set(self.dut.i.valid, 0)

    async def reply(self, ctx, max_cycles=5000):
        """The next complete reply frame's bytes."""
        frame = b""
        for _ in range(max_cycles):
            while self.out and (len(frame) < 5 or len(frame) < reply_length(frame)):
                edge, byte = self.out.popleft()
                if not frame:
                    self.reply_edge = edge
                    self.reply_edges = []
                self.reply_edges.append(edge)
                frame += bytes([byte])
            if len(frame) >= 5 and len(frame) == reply_length(frame):
                return frame
            await ctx.tick()
        raise AssertionError(f"no complete reply after {max_cycles} cycles (got {frame.hex()})")

    async def request(self, ctx, cmd, tag, address, count, data=()):
        await self.send(ctx, encode_request(cmd, tag, address, count, data))
        return decode_reply(await self.reply(ctx))

    async def stats(self, ctx):
        await ctx.tick().repeat(COUNTER_LATENCY)  # the last increments land
        return {stat: ctx.get(self.dut.stats[stat.name.lower()]) for stat in BridgeStat}


def expect(reply, fields):
    cmd, tag, status, count, data = fields
    assert (reply.cmd, reply.tag, reply.status, reply.count, reply.data) == \
        (cmd, tag, status, count, data)


def test_reads_writes_and_bursts():
    model = BankModel()

    async def body(ctx, bench):
        a = MAP["ctrl.scratch"].address
        expect(await bench.request(ctx, Command.READ, 1, a, 1),
               model.execute(Command.READ, 1, a, 1))
        reply = await bench.request(ctx, Command.WRITE, 2, a, 1, [0xDEADBEEF])
        expect(reply, model.execute(Command.WRITE, 2, a, 1, [0xDEADBEEF]))
        start = MAP["ctrl.commit"].address
        count = MAP["ctrl.flag"].address - start + 1
        expect(await bench.request(ctx, Command.READ, 3, start, count),
               model.execute(Command.READ, 3, start, count))
        # Instances of the staged block in one burst write, then commit, then read back.
        base, stride = MAP["p[0].a"].address, MAP.block("p").stride
        words = [random.Random(4).getrandbits(32) & 0x3FF for _ in range(MAX_WORDS)]
        expect(await bench.request(ctx, Command.WRITE, 4, base, 4, words[:4]),
               model.execute(Command.WRITE, 4, base, 4, words[:4]))
        expect(await bench.request(ctx, Command.WRITE, 5, start, 1, [1]),
               model.execute(Command.WRITE, 5, start, 1, [1]))
        expect(await bench.request(ctx, Command.READ, 6, base, stride * 2),
               model.execute(Command.READ, 6, base, stride * 2))
        assert (await bench.stats(ctx))[BridgeStat.REQUESTS] == 6
    Bench().run(body)


def test_bus_errors_stop_a_burst_and_are_reported_with_the_words_done():
    model = BankModel()

    async def body(ctx, bench):
        flag = MAP["ctrl.flag"].address
        # Reads run into the hole after the last register.
        expect(await bench.request(ctx, Command.READ, 7, flag - 2, 5),
               model.execute(Command.READ, 7, flag - 2, 5))
        # Writes: scratch ok, level out of range: stops there; small never written.
        scratch = MAP["ctrl.scratch"].address
        reply = await bench.request(ctx, Command.WRITE, 8, scratch, 3, [5, 9, 1])
        expect(reply, model.execute(Command.WRITE, 8, scratch, 3, [5, 9, 1]))
        assert reply.status is Status.RANGE and reply.count == 1
        counter = MAP["ctrl.counter"].address
        reply = await bench.request(ctx, Command.WRITE, 9, counter, 1, [0])
        assert reply.status is Status.READ_ONLY and reply.count == 0
        reply = await bench.request(ctx, Command.READ, 10, 0xFFF0, 16)
        assert reply.status is Status.UNMAPPED and reply.count == 0
        expect(await bench.request(ctx, Command.READ, 11, scratch, 3),
               model.execute(Command.READ, 11, scratch, 3))
        stats = await bench.stats(ctx)
        assert stats[BridgeStat.BUS_ERROR] == 4 and stats[BridgeStat.REQUESTS] == 5
    Bench().run(body)


def test_bad_frames_are_answered_execute_nothing_and_are_counted():
    model = BankModel()
    scratch = MAP["ctrl.scratch"].address

    async def body(ctx, bench):
        good = encode_request(Command.WRITE, 0x21, scratch, 1, [0x5555])
        bad_crc = good[:-1] + bytes([good[-1] ^ 0x01])
        reply = decode_reply(await (_send_then_reply(ctx, bench, bad_crc)))
        assert (reply.tag, reply.status, reply.count) == (0x21, Status.BAD_CRC, 0)

        # Unknown command: answered when the count byte arrives, the rest is ignored.
        body = bytes([0xA5, 0x07, 0x22, 0x00, 0x01, 0x01])
        bad_cmd = body + bytes([crc8(body)])
        reply = decode_reply(await _send_then_reply(ctx, bench, bad_cmd))
        assert (reply.cmd, reply.tag, reply.status, reply.count) == (0x07, 0x22,
                                                                     Status.BAD_COMMAND, 0)
        for count in (0, MAX_WORDS + 1):
            body = bytes([0xA5, Command.READ, 0x23, 0x00, 0x01, count])
            reply = decode_reply(await _send_then_reply(ctx, bench, body + bytes([crc8(body)])))
            assert (reply.tag, reply.status) == (0x23, Status.BAD_LENGTH)

        # A request that stops arriving is answered after the timeout.
        await bench.send(ctx, good[:8])
        reply = decode_reply(await bench.reply(ctx))
        assert (reply.tag, reply.status, reply.count) == (0x21, Status.TIMEOUT, 0)
        assert bench.reply_edge - bench.taken[-1][0] == TIMEOUT + 1

        # Junk between frames is skipped.
        await bench.send(ctx, bytes([0x00, 0x5A, 0xFF]))
        expect(await bench.request(ctx, Command.READ, 0x24, scratch, 1),
               model.execute(Command.READ, 0x24, scratch, 1))
        stats = await bench.stats(ctx)
        assert stats == {
            BridgeStat.REQUESTS: 1, BridgeStat.BAD_CRC: 1, BridgeStat.BAD_COMMAND: 1,
            BridgeStat.BAD_LENGTH: 2, BridgeStat.TIMEOUT: 1, BridgeStat.BUS_ERROR: 0,
            BridgeStat.UART_FRAMING: 0, BridgeStat.UART_OVERRUN: 0,
            # The CRC byte after the bad command, the CRC bytes after the bad lengths, the
            # three junk bytes.
            BridgeStat.JUNK: 1 + 2 + 3,
        }
        # Nothing was written by any of them.
        assert decode_reply(await _send_then_reply(
            ctx, bench, encode_request(Command.READ, 0x25, scratch, 1))).data == (0x1234,)
    Bench(seed=3).run(body)


async def _send_then_reply(ctx, bench, frame):
    await bench.send(ctx, frame)
    return await bench.reply(ctx)


@pytest.mark.parametrize("seed, idle, backpressure", [(1, 0.0, 0.0), (2, 0.3, 0.0),
                                                      (3, 0.0, 0.5), (4, 0.4, 0.4)])
def test_random_requests_match_the_bank_model(seed, idle, backpressure):
    rng = random.Random(seed)
    model = BankModel()
    interesting = sorted({loc.address for loc in MAP} | {MAP.words, MAP.words + 5})

    async def body(ctx, bench):
        for tag in range(40):
            cmd = rng.choice([Command.READ, Command.WRITE])
            address = rng.choice(interesting) + rng.choice([0, 0, 1, -1])
            count = rng.choice([1, 1, 2, 3, rng.randint(1, MAX_WORDS)])
            data = [rng.choice([0, 1, 2, 3, 0x3FF, rng.getrandbits(32)]) for _ in range(count)]
            frame = encode_request(cmd, tag, address & 0xFFFF, count, data)
            corrupt = rng.random() < 0.15
            if corrupt:
                position = rng.randrange(1, len(frame))
                frame = frame[:position] + bytes([frame[position] ^ (1 << rng.randrange(8))]) \
                    + frame[position + 1:]
                if frame[1] not in (Command.READ, Command.WRITE) or not 1 <= frame[5] <= 16:
                    continue  # those are answered early; covered by the directed test
                if frame[1] == Command.WRITE and len(frame) != 7 + 4 * frame[5]:
                    continue  # the length changed: covered by the timeout test
                if frame[1] == Command.READ and len(frame) != 7:
                    continue
            reply = decode_reply(await _send_then_reply(ctx, bench, frame))
            if corrupt:
                assert (reply.tag, reply.status, reply.count) == (frame[2], Status.BAD_CRC, 0)
            else:
                expect(reply, model.execute(cmd, tag, address & 0xFFFF, count, data))
        # Final state: every register reads what the model holds.
        for loc in MAP:
            if loc.reg.access is W1P:
                continue
            got = decode_reply(await _send_then_reply(
                ctx, bench, encode_request(Command.READ, 0, loc.address, loc.words)))
            assert got.data == model.execute(Command.READ, 0, loc.address, loc.words)[4], \
                loc.path
    Bench(seed, idle, backpressure).run(body)


@pytest.mark.parametrize("count", [1, 4, MAX_WORDS])
def test_reply_starts_two_cycles_per_word_after_the_request(count):
    latency = []

    async def body(ctx, bench):
        await bench.send(ctx, encode_request(Command.READ, 9, MAP["p[0].a"].address, count))
        await bench.reply(ctx)
        latency.append(bench.reply_edge - bench.taken[-1][0])
        # Throughput: the reply leaves one byte per cycle when the sink keeps up.
        edges = bench.reply_edges
        assert edges == list(range(edges[0], edges[0] + 5 + 4 * count + 1))
    Bench().run(body)
    # Edges from the one taking the CRC byte to the one taking the first reply byte: two per
    # word accessed, and the reply's first byte is offered the cycle after the last access.
    assert latency == [2 * count + 1]


def _run_line(dut, divisor, characters, reply_bytes):
    """Send ``characters`` (byte, stop bit) on ``rx``; collect ``reply_bytes`` from ``tx``."""
    received = bytearray()

    async def tb(ctx):
        ctx.set(dut.bridge.rx, 1)
        await ctx.tick().repeat(5)
        for byte, stop in characters:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), stop]:
                ctx.set(dut.bridge.rx, bit)
                await ctx.tick().repeat(divisor)
            ctx.set(dut.bridge.rx, 1)
            await ctx.tick().repeat(divisor)
        while len(received) < reply_bytes:
            await ctx.tick()
        await ctx.tick().repeat(20)

    async def line_monitor(ctx):
        while True:
            await ctx.negedge(dut.bridge.tx)
            await ctx.tick().repeat(divisor // 2)
            byte = 0
            for k in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(dut.bridge.tx) << k
            await ctx.tick().repeat(divisor)
            assert ctx.get(dut.bridge.tx) == 1
            received.append(byte)

    stats = {}

    async def main(ctx):
        await tb(ctx)
        stats.update({stat: ctx.get(dut.bridge.stats[stat.name.lower()]) for stat in BridgeStat})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(main)
    sim.add_testbench(line_monitor, background=True)
    sim.run()
    return bytes(received), stats


def test_uart_bridge_end_to_end_on_the_line():
    """A request as UART characters on ``rx`` gets its reply as characters on ``tx``."""
    divisor = 4
    request = encode_request(Command.READ, 0x42, MAP["ctrl.scratch"].address, 2)
    received, stats = _run_line(UartBridgeBench(divisor), divisor,
                                [(byte, 1) for byte in request], 5 + 8 + 1)
    reply = decode_reply(received)
    assert (reply.tag, reply.status, reply.count, reply.data) == (0x42, Status.OK, 2,
                                                                  (0x1234, 1))
    assert stats[BridgeStat.REQUESTS] == 1


def test_a_character_with_a_bad_stop_bit_is_dropped_and_the_request_times_out():
    divisor = 4
    request = encode_request(Command.WRITE, 0x43, MAP["ctrl.scratch"].address, 1, [0x77])
    characters = [(byte, 0 if index == 7 else 1) for index, byte in enumerate(request)]
    received, stats = _run_line(UartBridgeBench(divisor), divisor, characters, 6)
    reply = decode_reply(received)
    assert (reply.tag, reply.status, reply.count) == (0x43, Status.TIMEOUT, 0)
    assert stats[BridgeStat.UART_FRAMING] == 1 and stats[BridgeStat.TIMEOUT] == 1
    assert stats[BridgeStat.REQUESTS] == 0


class UartBridgeBench(wiring.Component):
    def __init__(self, divisor):
        self.bridge = UartBridge(divisor=divisor, addr_width=MAP.addr_width, timeout=TIMEOUT)
        self.bank = RegisterBank(MAP)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge, m.submodules.bank = self.bridge, self.bank
        wiring.connect(m, self.bridge.bus, self.bank.bus)
        return m
