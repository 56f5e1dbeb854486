"""cocotb testbench of the Ethernet/IPv4/UDP receive stage, scored against ``sim/udp_rx.py``.

Environment: ``TB_SEED`` (printed; rerun with it to reproduce a failure), ``PCAP_DIR`` and
``FEED`` (``totalview`` or ``bx``) for ``real_capture_test``.
"""

import os
import random
from pathlib import Path

import cocotb
from streams import StreamSink, StreamSource, TBBase, pack, unpack

from hdl.arch.beat import Beat
from hdl.net.udp_rx import UdpRxConfigLayout
from hdl.stats import stats_layout
from sim.udp_rx import PRIORITY, UdpRxConfig, UdpRxStat
from sim.udp_rx import UdpRx as UdpRxModel
from sim.wire.net import MAX_UDP_PAYLOAD, NASDAQ_BX, NASDAQ_TOTALVIEW, TEST_FEED, payload_offset
from tests.test_udp_rx import capture_frames, frame_beats, fuzzed_frames, good, masked

PAYLOAD_BEAT = payload_offset(False) // 8
FEEDS = {"totalview": NASDAQ_TOTALVIEW, "bx": NASDAQ_BX}

# Payload size mixes: "small" puts the last byte in every lane (Ethernet padding included),
# "mtu" fills 1500-byte frames, "any" draws from the whole range.
SIZE_MIXES = {
    "small": lambda rng: rng.randrange(1, 18),
    "mtu": lambda rng: rng.randrange(MAX_UDP_PAYLOAD - 64, MAX_UDP_PAYLOAD + 1),
    "any": lambda rng: rng.randrange(1, MAX_UDP_PAYLOAD + 1),
}
FRAMES_PER_MIX = {"small": 40, "mtu": 5, "any": 10}


class TB(TBBase):
    def __init__(self, dut, config: UdpRxConfig):
        super().__init__(dut)
        self.source = StreamSource(self, "i", Beat)
        self.sink = StreamSink(self, "o", Beat)
        self.model = UdpRxModel(config)
        dut.endpoint.value = pack(UdpRxConfigLayout,
                                {"mac": config.mac, "ip": config.ip, "port": config.port})

    def stats(self) -> dict[str, int]:
        return unpack(stats_layout(UdpRxStat), int(self.dut.stats.value))

    def model_stats(self) -> dict[str, int]:
        return {member.name.lower(): n for member, n in self.model.stats.items()}


def seed() -> int:
    return int(os.environ.get("TB_SEED", "1"))


def config_of(endpoint) -> UdpRxConfig:
    return UdpRxConfig(endpoint.mac, endpoint.ip, endpoint.port)


async def run(dut, frames: list[tuple[bytes, bool]], idle: float, backpressure: float,
              name: str, config: UdpRxConfig) -> TB:
    """The one test body: frames in, every output beat and counter checked against the model."""
    tb = TB(dut, config)
    await tb.start()
    run_seed = seed()
    dut._log.info("%s: %d frames, idle %.2f, backpressure %.2f, TB_SEED=%d",
                  name, len(frames), idle, backpressure, run_seed)
    tb.source.set_idle(idle, run_seed + 1)
    tb.sink.set_backpressure(backpressure, run_seed + 2)

    expected = []
    for number, (frame, error) in enumerate(frames):
        for beat in frame_beats(frame, error):
            tb.source.send(beat)
        payload = tb.model.push(frame, error)
        if payload is not None:
            expected += [(number, beat) for beat in payload.beats()]

    for number, beat in expected:
        got = masked(await tb.sink.recv())
        assert got == beat, f"frame {number}: got {got}, expected {beat}"
    await tb.source.wait_idle()
    await tb.cycles(8)
    assert tb.stats() == tb.model_stats(), f"counters: {tb.stats()} != {tb.model_stats()}"
    assert tb.sink.empty()
    return tb


@cocotb.test()
@cocotb.parametrize(mix=list(SIZE_MIXES), vlan=[False, True], idle=[0.0, 0.3],
                    backpressure=[0.0, 0.3])
async def sizes_test(dut, mix, vlan, idle, backpressure):
    rng = random.Random(f"{seed()}-{mix}-{vlan}")
    frames = [(good(SIZE_MIXES[mix](rng), 141 if vlan else None, fill=rng.randrange(256)), False)
              for _ in range(FRAMES_PER_MIX[mix])]
    tb = await run(dut, frames, idle, backpressure, f"{mix} sizes, vlan {vlan}",
                   config_of(TEST_FEED))
    assert tb.stats()["accepted"] == len(frames)
    if idle == 0.0 and backpressure == 0.0:
        # Every beat is taken the cycle it is offered, frames back to back, and every output
        # beat follows its input beat by one cycle (the last payload beat of a padded frame
        # follows the frame's last beat).
        cycles = [cycle for cycle, _ in tb.source.transfers]
        assert cycles == list(range(cycles[0], cycles[0] + len(cycles)))
        frame_cycles, current = [], []
        for cycle, beat in tb.source.transfers:
            current.append(cycle)
            if beat["last"]:
                frame_cycles.append(current)
                current = []
        latencies, number, k = set(), 0, 0
        for cycle, beat in tb.sink.transfers:
            source = frame_cycles[number][-1 if beat["last"] else PAYLOAD_BEAT + k]
            latencies.add(cycle - source)
            number, k = (number + 1, 0) if beat["last"] else (number, k + 1)
        dut._log.info("latency, input beat to output beat: %s cycle(s)", latencies)
        assert latencies == {1}


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.3])
async def bad_frame_mix_test(dut, idle, backpressure):
    frames = fuzzed_frames(random.Random(f"{seed()}-bad-{idle}-{backpressure}"), 120)
    tb = await run(dut, frames, idle, backpressure, "bad frame mix", config_of(TEST_FEED))
    outcomes = [member for member in PRIORITY if tb.stats()[member.name.lower()]]
    assert len(outcomes) >= 8, f"the mix only produced {outcomes}"


@cocotb.test()
async def real_capture_test(dut):
    folder = os.environ.get("PCAP_DIR")
    assert folder, "PCAP_DIR is not set"
    frames = [(frame, False) for frame in capture_frames(Path(folder))]
    feed = FEEDS[os.environ.get("FEED", "totalview")]
    tb = await run(dut, frames, 0.3, 0.3, f"capture {folder}", config_of(feed))
    assert tb.stats()["accepted"] == len(frames) > 0
