"""UdpRx gateware against the sim/udp_rx.py model, on the Amaranth simulator.

Every scenario sends frames through both, compares the output beats bit for bit (data inside
``keep``, keep, first, last, error) and then all counters. Random idle cycles, backpressure and
fuzzed frames come from ``TB_SEED`` (printed), so a failure can be replayed.
"""

import os
import random
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.arch.beat import BEAT_BYTES, Beat
from hdl.net.udp_rx import UdpRx
from sim.udp_rx import PRIORITY, UdpRxConfig, UdpRxStat
from sim.udp_rx import UdpRx as UdpRxModel
from sim.wire.net import (
    ETHERNET,
    ETHERTYPE_VLAN,
    IPV4,
    IPV4_FLAG_DF,
    IPV4_FLAG_MF,
    IPV4_VERSION,
    IPV4_VERSION_SHIFT,
    MAX_UDP_PAYLOAD,
    NASDAQ_BX,
    NASDAQ_TOTALVIEW,
    TEST_FEED,
    UDP,
    VLAN_TAG,
    FeedEndpoint,
    feed_frame,
    field_value,
    frame_offset,
    payload_offset,
    with_field,
)

SEED = int(os.environ.get("TB_SEED", "20240611"))
CONFIG = UdpRxConfig(TEST_FEED.mac, TEST_FEED.ip, TEST_FEED.port)
VLANS = pytest.mark.parametrize("vlan", [None, 141], ids=["untagged", "vlan"])
PAYLOAD_BEAT = payload_offset(False) // BEAT_BYTES
_BEAT_LAYOUT = Beat.as_shape()


def config_of(endpoint: FeedEndpoint) -> UdpRxConfig:
    return UdpRxConfig(endpoint.mac, endpoint.ip, endpoint.port)


def frame_beats(frame: bytes, error: bool = False) -> list[dict]:
    """A frame as input beats: lane 0 first, keep a run of ones, error on the last beat."""
    beats = []
    for offset in range(0, len(frame), BEAT_BYTES):
        chunk = frame[offset:offset + BEAT_BYTES]
        last = offset + BEAT_BYTES >= len(frame)
        beats.append({"data": int.from_bytes(chunk, "little"), "keep": (1 << len(chunk)) - 1,
                      "first": int(offset == 0), "last": int(last), "error": int(last and error)})
    return beats


def unpack_beat(raw: int) -> dict:
    return {name: (raw >> field.offset) & ((1 << field.width) - 1)
            for name, field in _BEAT_LAYOUT}


def masked(beat: dict) -> dict:
    """Lanes outside ``keep`` are don't-care (the gateware leaves header or padding bytes)."""
    lanes = sum(0xFF << 8 * k for k in range(BEAT_BYTES) if beat["keep"] >> k & 1)
    return {**beat, "data": beat["data"] & lanes}


class Bench:
    """Drives frames into the DUT and collects its output, one clock cycle per ``step``.

    Every accepted input beat is logged as ``(cycle, frame number, beat number)`` and every
    output transfer as ``(cycle, beat)``; the model sees the same frames, in ``check``.
    """

    def __init__(self, dut: UdpRx, ctx, config: UdpRxConfig, *, idle: float = 0.0,
                 backpressure: float = 0.0, seed: int = SEED):
        self.dut, self.ctx = dut, ctx
        self.model = UdpRxModel(config)
        self.idle, self.backpressure = idle, backpressure
        self.rng = random.Random(seed)
        self.hold_ready_low = False
        self.cycle = 0
        self.queue: deque = deque()
        self.current = None
        self.accepted: list[tuple[int, int, int]] = []
        self.outputs: list[tuple[int, dict]] = []
        self.frames_sent = 0
        self._stalled: dict | None = None
        ctx.set(dut.endpoint, {"mac": config.mac, "ip": config.ip, "port": config.port})

    async def step(self):
        ctx, dut = self.ctx, self.dut
        if self.current is None and self.queue and not (self.rng.random() < self.idle):
            self.current = self.queue.popleft()
        ctx.set(dut.i.valid, self.current is not None)
        if self.current is not None:
            ctx.set(dut.i.payload, self.current[2])
        ready = not self.hold_ready_low and not (self.rng.random() < self.backpressure)
        ctx.set(dut.o.ready, ready)
        in_ready = ctx.get(dut.i.ready)
        o_valid = ctx.get(dut.o.valid)
        o_beat = unpack_beat(ctx.get(Value.cast(dut.o.payload)))
        if self._stalled is not None:
            # Stream rules: once valid, the output holds until it is taken.
            assert o_valid and o_beat == self._stalled, f"output changed under stall @{self.cycle}"
        self._stalled = o_beat if o_valid and not ready else None
        await ctx.tick()
        if self.current is not None and in_ready:
            self.accepted.append((self.cycle, self.current[0], self.current[1]))
            self.current = None
        if o_valid and ready:
            self.outputs.append((self.cycle, o_beat))
        self.cycle += 1
        return o_valid

    def send(self, frame: bytes, error: bool = False):
        for k, beat in enumerate(frame_beats(frame, error)):
            self.queue.append((self.frames_sent, k, beat))
        self.frames_sent += 1

    async def drain(self):
        """Run until every beat is in and the output and the counters have settled."""
        quiet = 0
        while quiet < 4:
            busy = await self.step() or self.queue or self.current is not None
            quiet = 0 if busy else quiet + 1

    async def stats(self) -> dict[str, int]:
        value = self.ctx.get(self.dut.stats)
        return {member.name.lower(): getattr(value, member.name.lower()) for member in UdpRxStat}

    async def check(self, frames: list[tuple[bytes, bool]], what: str = "") -> list:
        """Send ``frames`` through DUT and model; compare beats and counters; return payloads."""
        start = len(self.outputs)
        payloads = []
        for frame, error in frames:
            self.send(frame, error)
            payloads.append(self.model.push(frame, error))
        await self.drain()
        expected = [beat for p in payloads if p is not None for beat in p.beats()]
        got = [masked(beat) for _, beat in self.outputs[start:]]
        assert got == expected, f"{what}: output beats differ from the model"
        model_stats = {member.name.lower(): n for member, n in self.model.stats.items()}
        assert await self.stats() == model_stats, f"{what}: counters differ from the model"
        return payloads


def simulate(body: Callable[[Bench], Awaitable[None]], config: UdpRxConfig = CONFIG, **options):
    dut = UdpRx()

    async def testbench(ctx):
        await body(Bench(dut, ctx, config, **options))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def good(size: int = 20, vlan: int | None = None, fill: int = 0, **options) -> bytes:
    payload = bytes((fill + k * 7) & 0xFF for k in range(size))
    return feed_frame(payload, vlan=vlan, **options)


# Sizes 1..16 put the last payload byte in every lane, from both start lanes (2 and 6).
SIZES = [*range(1, 25), 64, 255, 1000, MAX_UDP_PAYLOAD - 1, MAX_UDP_PAYLOAD]


@VLANS
def test_accepts_every_size_and_keep_pattern(vlan):
    async def body(bench: Bench):
        frames = [(good(size, vlan, fill=size), False) for size in SIZES]
        payloads = await bench.check(frames, "sizes")
        assert [len(p.data) for p in payloads] == SIZES
        assert all(not p.error for p in payloads)
        stats = await bench.stats()
        assert stats["frames"] == stats["accepted"] == len(SIZES)

    simulate(body)


def _drop_cases(vlan):
    """(name, frame, error, expected reason): each with one fault, to be followed by a good one."""
    base = good(20, vlan)
    other = FeedEndpoint.multicast("239.192.43.8", TEST_FEED.port + 1)
    ip_options = with_field(base, IPV4, "version_ihl", 0x46)
    double_tag = base[:12] + bytes.fromhex("8100008d") + base[12:]
    if vlan is None:
        double_tag = base[:12] + bytes.fromhex("8100008d88a8008d") + base[12:]
    total = field_value(base, IPV4, "total_length")
    return [
        ("runt before the type field", base[:10], False, UdpRxStat.RUNT),
        ("runt inside the UDP header", base[:payload_offset(vlan is not None) - 1], False,
         UdpRxStat.RUNT),
        ("runt at a beat boundary", base[:4 * BEAT_BYTES], False, UdpRxStat.RUNT),
        ("other MAC", with_field(base, ETHERNET, "dst", other.mac), False, UdpRxStat.MAC),
        ("IPv6 ethertype", with_field(base, ETHERNET, "ethertype", 0x86DD), False,
         UdpRxStat.NOT_IPV4),
        ("IP version 6", with_field(base, IPV4, "version_ihl", 0x65), False, UdpRxStat.NOT_IPV4),
        ("two tags", double_tag, False, UdpRxStat.NOT_IPV4),
        ("IHL 6", ip_options, False, UdpRxStat.IP_OPTIONS),
        ("more fragments", with_field(base, IPV4, "flags_fragment", IPV4_FLAG_MF), False,
         UdpRxStat.FRAGMENT),
        ("fragment offset", with_field(base, IPV4, "flags_fragment", 1), False,
         UdpRxStat.FRAGMENT),
        ("TCP", with_field(base, IPV4, "protocol", 6), False, UdpRxStat.NOT_UDP),
        ("bad IP checksum",
         with_field(base, IPV4, "checksum", field_value(base, IPV4, "checksum") ^ 0x0100,
                    fix_checksum=False), False, UdpRxStat.IP_CHECKSUM),
        ("IP checksum off by one",
         with_field(base, IPV4, "checksum", field_value(base, IPV4, "checksum") ^ 0x0001,
                    fix_checksum=False), False, UdpRxStat.IP_CHECKSUM),
        ("IP total length 27", with_field(base, IPV4, "total_length", 27), False,
         UdpRxStat.LENGTH),
        ("UDP length too long", with_field(base, UDP, "length", total - IPV4.size + 1), False,
         UdpRxStat.LENGTH),
        ("UDP length too short", with_field(base, UDP, "length", total - IPV4.size - 2), False,
         UdpRxStat.LENGTH),
        ("other group", with_field(base, IPV4, "dst", other.ip), False, UdpRxStat.DST_IP),
        ("other port", with_field(base, UDP, "dst_port", other.port), False, UdpRxStat.DST_PORT),
        ("truncated", good(100, vlan)[:payload_offset(vlan is not None) + 37], False,
         UdpRxStat.TRUNCATED),
        ("bad FCS", base, True, UdpRxStat.FRAME_ERROR),
        ("bad FCS, padded", good(3, vlan), True, UdpRxStat.FRAME_ERROR),
        ("bad FCS, long", good(700, vlan), True, UdpRxStat.FRAME_ERROR),
    ]


@VLANS
def test_every_drop_reason_then_a_good_frame(vlan):
    cases = _drop_cases(vlan)
    assert {reason for *_, reason in cases} == set(PRIORITY)

    async def body(bench: Bench):
        for name, frame, error, reason in cases:
            before = await bench.stats()
            await bench.check([(frame, error), (good(30, vlan, fill=len(name)), False)], name)
            after = await bench.stats()
            delta = {key: after[key] - before[key] for key in after if after[key] != before[key]}
            assert delta == {"frames": 2, reason.name.lower(): 1, "accepted": 1}, \
                f"{name}: counted {delta}"

    simulate(body)


@VLANS
def test_priority_when_several_faults_apply(vlan):
    base = good(40, vlan)
    wrong_mac = with_field(base, ETHERNET, "dst", TEST_FEED.mac ^ 1)
    bad_sum = field_value(base, IPV4, "checksum") ^ 0x8000

    def broken_sum(frame):
        return with_field(frame, IPV4, "checksum", bad_sum, fix_checksum=False)

    cases = [
        (wrong_mac[:30], False, UdpRxStat.RUNT),
        (with_field(base, UDP, "dst_port", 1), True, UdpRxStat.FRAME_ERROR),
        (broken_sum(wrong_mac), False, UdpRxStat.MAC),
        (broken_sum(with_field(base, IPV4, "version_ihl", 0x47)), False, UdpRxStat.IP_OPTIONS),
        (with_field(with_field(base, IPV4, "protocol", 6), IPV4, "dst", 1), False,
         UdpRxStat.NOT_UDP),
        (broken_sum(with_field(base, UDP, "dst_port", 1)), False, UdpRxStat.IP_CHECKSUM),
        (with_field(with_field(base, UDP, "length", 9), IPV4, "dst", 1), False,
         UdpRxStat.LENGTH),
        (with_field(base, IPV4, "dst", 1)[:70], False, UdpRxStat.DST_IP),
        (with_field(base, UDP, "dst_port", 1)[:70], True, UdpRxStat.FRAME_ERROR),
    ]

    async def body(bench: Bench):
        for k, (frame, error, reason) in enumerate(cases):
            before = dict(bench.model.stats)
            await bench.check([(frame, error)], f"case {k}")
            assert bench.model.stats[reason] == before[reason] + 1, f"case {k}: not {reason.name}"

    simulate(body)


@VLANS
def test_truncation_padding_and_trailers(vlan):
    start = payload_offset(vlan is not None)
    long = good(40, vlan)
    frames = [(long[:start + cut], False) for cut in range(0, 40)]  # every truncation point
    frames += [(long[:start + cut], True) for cut in (0, 5, 17)]
    frames += [(good(size, vlan), error) for size in range(0, 20) for error in (False, True)]
    frames += [(good(size, vlan) + bytes(range(trailer)), error)
               for size, trailer in ((8, 1), (13, 8), (30, 30), (31, 9)) for error in (0, 1)]

    async def body(bench: Bench):
        payloads = await bench.check(frames, "truncation and padding")
        assert payloads[0] is None  # cut right after the UDP header: nothing to pass on
        assert all(p.error for p in payloads[1:40])
        stats = await bench.stats()
        assert stats["truncated"] == 40 and stats["runt"] == 0

    simulate(body)


def _mixed_frames(rng: random.Random, count: int) -> list[tuple[bytes, bool]]:
    frames = []
    for _ in range(count):
        vlan = rng.choice([None, rng.randrange(4096)])
        frame = good(rng.choice([rng.randrange(1, 40), rng.randrange(1, 300)]), vlan,
                     fill=rng.randrange(256))
        roll = rng.random()
        if roll < 0.15:
            frame = with_field(frame, UDP, "dst_port", rng.randrange(1 << 16))
        elif roll < 0.25:
            frame = frame[:rng.randrange(1, len(frame) + 1)]
        frames.append((frame, rng.random() < 0.05))
    return frames


def test_back_to_back_frames_take_one_beat_per_cycle():
    rng = random.Random(SEED)
    frames = _mixed_frames(rng, 60)

    async def body(bench: Bench):
        await bench.check(frames, "back to back")
        cycles = [cycle for cycle, *_ in bench.accepted]
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles))), "an idle input cycle"
        assert len(cycles) == sum(len(frame_beats(f)) for f, _ in frames)

    simulate(body)


@VLANS
def test_latency_is_one_cycle(vlan):
    frames = [(good(size, vlan), error) for size in (1, 5, 9, 14, 60, 301) for error in (0, 1)]
    frames += [(good(200, vlan)[:100], False)]

    async def body(bench: Bench):
        payloads = await bench.check(frames, "latency")
        in_cycle = {(frame, beat): cycle for cycle, frame, beat in bench.accepted}
        last_beat = {frame: beat for _, frame, beat in bench.accepted}
        sources = []
        for number, payload in enumerate(payloads):
            beats = payload.beats()
            for k in range(len(beats)):
                # A padded frame's last payload beat waits for the frame's last beat.
                beat = last_beat[number] if k == len(beats) - 1 else PAYLOAD_BEAT + k
                sources.append(in_cycle[(number, beat)])
        latencies = {out - src for (out, _), src in zip(bench.outputs, sources, strict=True)}
        assert latencies == {1}
        print(f"udp_rx latency: {latencies} cycle(s), input beat to output beat")

    simulate(body)


def test_dropped_frames_flow_while_the_output_is_stalled():
    dropped = [with_field(good(size), UDP, "dst_port", 7) for size in (10, 100, 500)]
    beats = sum(len(frame_beats(frame)) for frame in dropped)

    async def body(bench: Bench):
        bench.send(good(6))  # one payload beat: fills the output register, which stays full
        for frame in dropped:
            bench.send(frame)
        bench.send(good(6))
        bench.hold_ready_low = True
        for _ in range(beats + 20):
            await bench.step()
        # The first frame's one beat is stuck in o; every dropped beat and the next frame's
        # header beats went in; its payload beat waits.
        assert len(bench.accepted) == len(frame_beats(good(6))) + beats + PAYLOAD_BEAT
        bench.hold_ready_low = False
        for frame in (good(6), *dropped, good(6)):
            bench.model.push(frame)
        await bench.drain()
        expected = [beat for frame in (good(6), good(6))
                    for beat in UdpRxModel(CONFIG).push(frame).beats()]
        assert [masked(beat) for _, beat in bench.outputs] == expected
        model_stats = {member.name.lower(): n for member, n in bench.model.stats.items()}
        assert await bench.stats() == model_stats

    simulate(body)


def fuzzed_frames(rng: random.Random, count: int) -> list[tuple[bytes, bool]]:
    """Good frames with up to two random faults each: a field set to a random value (IPv4
    checksum usually kept right), a header byte replaced, a cut, trailing bytes, a frame error,
    or a plausible IHL or fragment field."""
    fields = [(header, field.name) for header in (ETHERNET, IPV4, UDP) for field in header.fields]
    frames = []
    for _ in range(count):
        vlan = rng.choice([None, 141])
        frame = good(rng.randrange(0, 64), vlan, fill=rng.randrange(256))
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            kind = rng.random()
            if kind < 0.1:
                # Random values rarely make a plausible header: IHL and flags need help.
                header, name, value = rng.choice([
                    (IPV4, "version_ihl", IPV4_VERSION << IPV4_VERSION_SHIFT | rng.randrange(16)),
                    (IPV4, "flags_fragment", rng.choice([IPV4_FLAG_MF, IPV4_FLAG_DF, 1, 0x1FFF])),
                ])
                with suppress(ValueError):
                    frame = with_field(frame, header, name, value)
            elif kind < 0.4:
                header, name = rng.choice(fields)
                value = rng.randrange(1 << 8 * header[name].size)
                with suppress(ValueError):  # the frame may already be too short for it
                    frame = with_field(frame, header, name, value,
                                       fix_checksum=rng.random() < 0.7)
            elif kind < 0.6:
                position = rng.randrange(payload_offset(vlan is not None))
                frame = frame[:position] + bytes([rng.randrange(256)]) + frame[position + 1:]
            elif kind < 0.8:
                frame = frame[:rng.randrange(1, len(frame) + 1)]
            else:
                frame = frame + bytes(rng.randrange(1, 20))
        frames.append((frame, rng.random() < 0.1))
    return frames


@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.0, 0.3),
                                                    (0.3, 0.3)])
def test_fuzzed_frames_match_the_model(idle, backpressure):
    seed = SEED + int(10 * idle) + int(100 * backpressure)
    print(f"TB_SEED={SEED} (scenario seed {seed})")
    frames = fuzzed_frames(random.Random(seed), 150)

    async def body(bench: Bench):
        await bench.check(frames, f"fuzz seed {seed}")
        stats = await bench.stats()
        assert stats["frames"] == len(frames)
        # The mix must exercise most outcomes, or this test proves little.
        assert sum(1 for member in PRIORITY if stats[member.name.lower()]) >= 8, stats

    simulate(body, idle=idle, backpressure=backpressure, seed=seed)


def test_vlan_tag_fields_are_not_checked():
    frames = [(with_field(good(20, 141), VLAN_TAG, "tci", tci), False)
              for tci in (0, 0x0FFF, 0xE08D)]
    frames.append((with_field(good(20), IPV4, "flags_fragment", IPV4_FLAG_DF), False))

    async def body(bench: Bench):
        payloads = await bench.check(frames, "tag fields")
        assert all(p is not None and not p.error for p in payloads)

    assert field_value(frames[0][0], ETHERNET, "ethertype", vlan=False) == ETHERTYPE_VLAN
    simulate(body)


def capture_frames(folder: Path) -> list[bytes]:
    try:
        from sim.capture import read_frames
    except ImportError:
        import dpkt

        def read_frames(path):
            with open(path, "rb") as f:
                for _, buf in dpkt.pcap.Reader(f):
                    yield type("Captured", (), {"frame": buf})

    return [captured.frame for path in sorted(folder.glob("*.pcap"))
            for captured in read_frames(path)]


@pytest.mark.parametrize(("folder", "endpoint"), [("nasdaq-pcap", NASDAQ_TOTALVIEW),
                                                  ("bx-pcap", NASDAQ_BX)])
def test_real_captures_are_accepted(itch_data, folder, endpoint):
    frames = capture_frames(itch_data / folder)
    assert frames, f"no pcap files in {itch_data / folder}"

    async def body(bench: Bench):
        payloads = await bench.check([(frame, False) for frame in frames], folder)
        for frame, payload in zip(frames, payloads, strict=True):
            offset = frame_offset(UDP, "length", True)
            assert len(payload.data) == int.from_bytes(frame[offset:offset + 2], "big") - UDP.size
        stats = await bench.stats()
        assert stats["accepted"] == stats["frames"] == len(frames)
        # The other feed's frames go to another group: counted, not passed on.
        other = NASDAQ_BX if endpoint is NASDAQ_TOTALVIEW else NASDAQ_TOTALVIEW
        bench.model.config = config_of(other)
        bench.ctx.set(bench.dut.endpoint, {"mac": other.mac, "ip": other.ip, "port": other.port})
        await bench.check([(frame, False) for frame in frames], f"{folder} for the other feed")
        assert (await bench.stats())["accepted"] == len(frames)

    simulate(body, config=config_of(endpoint))
