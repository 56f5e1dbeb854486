"""The whole core under cocotb (``host/gatesim/core_cocotb.py``): Ethernet frames in, OUCH out,
the exchange's answers in, set up by the host driver through the register map, in lockstep
with the model's closed loop. Every order equals the model's byte for byte and in order, every
top update of the core's own book the model's field for field (the bench fails on the first
difference), the feed's counters and the final positions the model's, and the independent
checker finds every risk invariant held over the whole output.

Icarus by default (``pytest --sim verilator`` for Verilator). The real AAPL file's first 300
messages run here; the whole file is a soak (``pytest -m soak``)."""

import dataclasses

import pytest

from hdl.quote.loop import TICK_TO_ORDER
from host.cli import main
from host.gatesim.runner import selected_simulator
from host.replay.inputs import load_capture
from host.replay.loop import FEED_TO_LOOP, run_loop
from sim.capture import write_pcap
from sim.generator import SessionConfig, captured, default_instruments, generate_frames
from sim.ingress import Ingress
from sim.udp_rx import UdpRxConfig
from tests.test_market_maker_model import check_invariants

FEED_STAGES = ("udp_rx", "mold_rx", "itch_decode")
# One worker runs them all (`make test` distributes by group): the core's Verilog is converted
# and compiled once.
pytestmark = pytest.mark.xdist_group("whole-core")


def _feed_counters(inp) -> dict:
    ingress = Ingress(UdpRxConfig(inp.endpoint.mac, inp.endpoint.ip, inp.endpoint.port))
    for frame in inp.frames:
        ingress.push(frame)
    return ingress.stats


def check_core_run(inp, **options):
    """Run ``inp`` through the model's loop and the whole core; assert they agree."""
    replay = run_loop(inp, core=True, simulator=selected_simulator(), **options)
    model, core = replay.model, replay.gateware
    assert replay.differences == [] and replay.mismatches == 0
    assert [r.packet for r in core.sent] == [r.packet for r in model.sent]
    assert [p.shares for p in core.positions] == [p.shares for p in model.positions]
    counters = _feed_counters(inp)
    for stage in FEED_STAGES:
        assert core.stats[stage] == counters[stage], stage
    assert core.stats["order_table"]["fills"] == len(model.fills)
    assert core.stats["ouch_rx"]["answers"] == len(model.answers)
    # The same independent checker as the model's and the loop's, over the core's output, its
    # timed rules (rate, stale feed, armed) on the feed's clock: in lockstep the core's own
    # runs from input to input, and each order's feed time is the model's decision cycle.
    on_feed_clock = dataclasses.replace(
        core, sent=[dataclasses.replace(r, time=r.feed_time) for r in core.sent])
    kinds = check_invariants(replay.config, replay.feed, on_feed_clock)
    return replay, kinds


def test_generated_session_through_the_whole_core(tmp_path):
    """Two instruments (one quoted on the mid, one on the microprice, one hedging), packets
    filled up to the MTU, so messages end at every byte lane and the bench pauses frames
    mid-way; the core's orders are the model's."""
    config = SessionConfig(seed=3, messages=160, instruments=default_instruments(2))
    path = tmp_path / "session.pcap"
    write_pcap(path, captured(config, generate_frames(config)))
    replay, kinds = check_core_run(load_capture(path), max_gap=300, latency=200)
    core = replay.gateware
    assert len(core.sent) > 40 and len(core.fills) >= 2
    assert sorted(core.feed_ends) == list(range(len(replay.feed)))   # every item went in
    assert kinds["EnterOrder"] and kinds["ReplaceOrder"] and kinds["CancelOrder"]
    assert core.stats["book"]["updates"] == len(core.top_cycles)


def test_real_aapl_through_the_whole_core(itch_data):
    """The real AAPL file's first 300 messages: the core's orders are the model's."""
    inp = load_capture(itch_data / "aapl-20200130-premarket-10k.itch", limit=300)
    replay, _ = check_core_run(inp, symbols=["AAPL"], max_gap=300, latency=200)
    assert len(replay.gateware.sent) > 150
    # Tick to trade measured at the core's ports, from the Ethernet beat with a message's
    # last byte to the first beat of its order: the feed's cycles and the loop's, no more.
    (aapl,) = replay.summaries["gateware"].per_slot
    assert aapl["tick_to_trade_min"] == FEED_TO_LOOP + TICK_TO_ORDER == 42


@pytest.mark.soak
@pytest.mark.timeout(4 * 3600)
def test_whole_aapl_file_through_the_whole_core(itch_data):
    """The whole AAPL file (10,000 messages, some 6,000 orders) through the core."""
    inp = load_capture(itch_data / "aapl-20200130-premarket-10k.itch")
    replay, _ = check_core_run(inp, symbols=["AAPL"], max_gap=300, latency=200)
    assert len(replay.gateware.sent) > 5_000


def test_the_core_replay_runs_under_cocotb_only(tmp_path, capsys):
    """``tickgate replay --core`` needs the loop and a cocotb simulator."""
    config = SessionConfig(seed=3, messages=20, instruments=default_instruments(1))
    path = tmp_path / "session.pcap"
    write_pcap(path, captured(config, generate_frames(config)))
    assert main(["replay", str(path), "--core", "--sim", "amaranth"]) == 1
    assert "runs under cocotb" in capsys.readouterr().err
    assert main(["replay", str(path), "--core", "--until", "book"]) == 1
    assert "--core need --until loop" in capsys.readouterr().err
