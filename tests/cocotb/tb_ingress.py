"""Feed ingress test bench: Ethernet frames in on AXI-Stream, ITCH events out, scored against
``sim.ingress.Ingress`` event by event, gap by gap and counter by counter.

Environment: ``TB_SEED`` (printed, default 1), ``TB_MESSAGES`` (messages per matrix case),
``TB_ITCH_DATA`` (folder of the real captures, for the real-data tests), ``TB_RANDOM_FRAMES``.
"""

import os
import random
from pathlib import Path

import cocotb

from host.gatesim.ingress_tb import IngressTB
from host.replay.inputs import load_capture
from sim.capture import read_binaryfile
from sim.feed_framer import DEFAULT_SESSION, frame_messages
from sim.ingress import Ingress
from sim.udp_rx import UdpRxConfig
from sim.wire.net import (
    ETHERNET,
    IPV4,
    TEST_FEED,
    UDP,
    FeedEndpoint,
    feed_frame,
    field_value,
    with_field,
)
from tests.feed_cases import good_packet, ip_with_options, mix_frames, random_frames, random_message

SEED = int(os.environ.get("TB_SEED", "1"))
MESSAGES = int(os.environ.get("TB_MESSAGES", "250"))


class TB(IngressTB):
    """The ingress bench plus its model, fed in lockstep."""

    def __init__(self, dut, endpoint: FeedEndpoint = TEST_FEED):
        super().__init__(dut)
        self.use(endpoint)

    def use(self, endpoint: FeedEndpoint):
        self.configure(endpoint.mac, endpoint.ip, endpoint.port)
        self.model = Ingress(UdpRxConfig(endpoint.mac, endpoint.ip, endpoint.port))
        self.expected_events = []

    def send(self, frame: bytes, error: bool = False):
        self.source.send(frame, error)
        self.expected_events += [e.as_dict() for e in self.model.push(frame, error).events]

    async def check(self, what: str):
        """Everything sent so far came out exactly as the model says; queues end empty."""
        await self.drain()
        for index, expected in enumerate(self.expected_events):
            assert not self.events.empty(), f"{what}: event {index} missing: {expected}"
            got = self.events.queue.popleft()
            assert got == expected, f"{what}: event {index}\n gateware {got}\n model    {expected}"
        assert self.events.empty(), f"{what}: extra events {list(self.events.queue)[:3]}"
        self.expected_events = []
        gaps = [{"first": g.first, "count": g.count} for g in self.model.gaps]
        got_gaps = [g for _, g in self.gaps.transfers]
        assert got_gaps == gaps, f"{what}: gaps {got_gaps} != model {gaps}"
        assert self.stats() == self.model.stats, (
            f"{what}: counters differ: " + "; ".join(
                f"{stage}.{name} gateware {self.stats()[stage][name]} model {value}"
                for stage, counters in self.model.stats.items()
                for name, value in counters.items() if self.stats()[stage][name] != value))


@cocotb.test()
@cocotb.parametrize(mix=["session", "all_types", "extremes"], vlan=[None, 141],
                    idle=[0.0, 0.3], backpressure=[0.0, 0.3])
async def scoreboard_matrix(dut, mix, vlan, idle, backpressure):
    """Message mixes x VLAN x idle input x output backpressure, scored against the model."""
    seed = SEED + hash((mix, vlan, idle, backpressure)) % 1000
    dut._log.info("seed %d", seed)
    tb = TB(dut)
    await tb.start()
    tb.source.set_idle(idle, seed)
    tb.events.set_backpressure(backpressure, seed + 1)
    for frame in mix_frames(mix, seed=seed, count=MESSAGES, vlan=vlan):
        tb.send(frame)
    await tb.check(f"{mix} vlan={vlan} idle={idle} bp={backpressure}")
    if backpressure == 0.0:
        # Legal traffic is taken every cycle: tready never drops.
        assert tb.stall_cycles == 0, f"input stalled {tb.stall_cycles} cycles"
    if idle == 0.0 and backpressure == 0.0 and vlan is None:
        assert max(tb.model.stats["itch_decode"].values()) > 0


@cocotb.test()
async def latency_and_line_rate(dut):
    """Back-to-back full packets: no stall, and 3 cycles from a message's last byte to its event."""
    tb = TB(dut)
    await tb.start()
    rng = random.Random(SEED)
    messages = [random_message(rng, rng.choice("AFEXDUC")) for _ in range(400)]
    frames = frame_messages(messages)
    beat_base, ends = 0, []
    for frame in frames:
        out = tb.model.push(frame)
        ends += [beat_base + end // 8 for end in out.event_ends]
        beat_base += -(-len(frame) // 8)
        tb.source.send(frame)
        tb.expected_events += [e.as_dict() for e in out.events]
    await tb.drain()
    beats = [cycle for cycle, _ in tb.source.transfers]
    events = [cycle for cycle, _ in tb.events.transfers]
    assert beats[-1] - beats[0] + 1 == len(beats), "input beats were not taken back to back"
    latencies = {events[i] - beats[beat] for i, beat in enumerate(ends)}
    dut._log.info("latency (cycles): %s over %d events", sorted(latencies), len(events))
    assert latencies == {3}, f"latencies {sorted(latencies)}"
    await tb.check("latency")


def _mold_frame(seq: int, blocks: list[bytes], count: int, session: bytes = DEFAULT_SESSION):
    """A feed frame whose Mold payload is given block by block (length prefixes included)."""
    payload = session + seq.to_bytes(8, "big") + count.to_bytes(2, "big") + b"".join(blocks)
    return feed_frame(payload, dst=TEST_FEED)


def _block(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


def bad_frames(name: str, seq: int, msg: bytes) -> list[tuple[bytes, bool]]:
    """The damaged frame(s) of case ``name``; ``seq`` is the next sequence number expected."""
    base = good_packet(seq, [msg])
    cases = {
        "truncated": lambda: [(base[:60], False)],
        "frame_error": lambda: [(base, True)],
        "runt": lambda: [(base[:30], False)],
        "mac": lambda: [(b"\x02" + base[1:], False)],
        "not_ipv4": lambda: [(with_field(base, ETHERNET, "ethertype", 0x86DD), False)],
        "ip_checksum": lambda: [(with_field(base, IPV4, "checksum", 0x1234, fix_checksum=False),
                                 False)],
        "dst_ip": lambda: [(with_field(base, IPV4, "dst", TEST_FEED.ip + 1), False)],
        "dst_port": lambda: [(with_field(base, UDP, "dst_port", TEST_FEED.port + 1), False)],
        "not_udp": lambda: [(with_field(base, IPV4, "protocol", 6), False)],
        "fragment": lambda: [(with_field(base, IPV4, "flags_fragment", 0x2000), False)],
        "ip_options": lambda: [(ip_with_options(base), False)],
        "length": lambda: [(with_field(base, UDP, "length", field_value(base, UDP, "length") - 1),
                            False)],
        "short_header": lambda: [(feed_frame(DEFAULT_SESSION, dst=TEST_FEED), False)],
        "session_mismatch": lambda: [(good_packet(seq, [msg], session=b"OTHERSESS1"), False)],
        "count_short": lambda: [(_mold_frame(seq, [_block(msg)], 3), False)],
        "length_short": lambda: [(_mold_frame(seq, [b"\0\0", _block(msg)], 2), False)],
        "length_past_end": lambda: [(_mold_frame(seq, [(200).to_bytes(2, "big") + msg], 1),
                                     False)],
        "trailing_bytes": lambda: [(_mold_frame(seq, [_block(msg), b"\xff" * 5], 1), False)],
        "unknown_type": lambda: [(good_packet(seq, [b"z" + msg[1:]]), False)],
        "bad_length": lambda: [(good_packet(seq, [msg + b"\0"]), False)],
        "dup_packets": lambda: [(good_packet(seq, [msg]), False), (good_packet(seq, [msg]), False)],
        "gaps": lambda: [(good_packet(seq + 5, [msg]), False)],
    }
    return cases[name]()


# Each bad case and the stage whose counter it must move.
BAD_CASES = {
    "truncated": "udp_rx", "frame_error": "udp_rx", "runt": "udp_rx", "mac": "udp_rx",
    "not_ipv4": "udp_rx", "ip_checksum": "udp_rx", "dst_ip": "udp_rx", "dst_port": "udp_rx",
    "not_udp": "udp_rx", "fragment": "udp_rx", "ip_options": "udp_rx", "length": "udp_rx",
    "short_header": "mold_rx", "session_mismatch": "mold_rx", "count_short": "mold_rx",
    "length_short": "mold_rx", "length_past_end": "mold_rx", "trailing_bytes": "mold_rx",
    "dup_packets": "mold_rx", "gaps": "mold_rx", "unknown_type": "itch_decode",
    "bad_length": "itch_decode",
}


@cocotb.test()
@cocotb.parametrize(vlan=[None])
async def bad_input_is_counted_and_recovered(dut, vlan):
    """Each kind of damage moves its own counter, and the next good packet still decodes."""
    tb = TB(dut)
    await tb.start()
    rng = random.Random(SEED)
    tb.send(good_packet(1, [random_message(rng, "S")]))  # latch our session
    await tb.check("session start")
    for name, stage in BAD_CASES.items():
        before = tb.stats()[stage][name]
        for frame, error in bad_frames(name, tb.model.mold_rx.expected, random_message(rng, "A")):
            tb.send(frame, error)
        await tb.check(name)
        assert tb.stats()[stage][name] == before + 1, f"{name}: {stage}.{name} did not move"
        good = random_message(rng, "D")
        tb.send(good_packet(tb.model.mold_rx.expected, [good]))
        assert tb.expected_events, f"{name}: the model dropped the good packet after it"
        await tb.check(f"good packet after {name}")


@cocotb.test()
async def random_frames_never_hang_or_diverge(dut):
    """Random bytes at every layer: counters and any events agree with the model; no hang."""
    count = int(os.environ.get("TB_RANDOM_FRAMES", "10000"))
    tb = TB(dut)
    await tb.start()
    rng = random.Random(SEED)
    tb.send(good_packet(1, [random_message(rng, "S")]))
    batch = 500
    for start in range(0, count, batch):
        for frame in random_frames(rng, min(batch, count - start),
                                   seq=tb.model.mold_rx.expected):
            tb.send(frame, error=rng.random() < 0.02)
        await tb.check(f"random frames {start}..{start + batch}")
    total = tb.stats()["udp_rx"]["frames"]
    assert total == count + 1, f"{total} frames counted, {count + 1} sent"
    good = random_message(rng, "A")
    tb.send(good_packet(tb.model.mold_rx.expected, [good]))
    await tb.check("good packet after the random frames")


def _data_dir() -> Path | None:
    path = os.environ.get("TB_ITCH_DATA")
    return Path(path) if path else None


@cocotb.test()
async def real_nasdaq_captures(dut):
    """Every real pcap decodes to exactly the model's events (one session per folder)."""
    root = _data_dir()
    assert root is not None and root.is_dir(), "TB_ITCH_DATA must name the real captures"
    tb = TB(dut)
    await tb.start()
    for folder in ("nasdaq-pcap", "bx-pcap"):
        pcaps = sorted((root / folder).glob("*.pcap"))
        assert pcaps, f"no pcaps in {root / folder}"
        await tb.reset()
        tb.gaps.transfers.clear()
        tb.use(load_capture(pcaps[0]).endpoint)
        for path in pcaps:
            for frame in load_capture(path).frames:
                tb.send(frame)
        events = len(tb.expected_events)
        await tb.check(folder)
        dut._log.info("%s: %d pcaps, %d events", folder, len(pcaps), events)
        assert events >= len(pcaps), f"{folder}: only {events} events"
        assert tb.stats()["udp_rx"]["accepted"] == tb.stats()["udp_rx"]["frames"]


@cocotb.test()
async def real_aapl_file(dut):
    """The AAPL BinaryFILE, framed by our own code, decodes exactly; type counts as published."""
    root = _data_dir()
    assert root is not None, "TB_ITCH_DATA must name the real captures"
    messages = list(read_binaryfile(root / "aapl-20200130-premarket-10k.itch"))
    tb = TB(dut)
    await tb.start()
    for frame in frame_messages(messages, vlan=141):
        tb.send(frame)
    await tb.check("AAPL")
    counts = tb.stats()["itch_decode"]
    published = {"add_order": 4758, "order_delete": 4083, "order_executed": 849, "trade": 240,
                 "market_participant_position": 52, "order_replace": 7, "order_cancel": 6,
                 "add_order_mpid": 2, "stock_directory": 1, "stock_trading_action": 1,
                 "reg_sho_restriction": 1}
    for name, value in published.items():
        assert counts[name] == value, f"{name}: {counts[name]} != {value}"
    assert sum(counts.values()) == 10_000
