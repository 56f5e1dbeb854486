"""Launch the feed ingress test bench (tests/cocotb/tb_ingress.py) on the selected simulator."""

import pytest

from host.gatesim.runner import registered_core
from tests.cocotb.runner import run_cocotb


def _run(testcase: str, **env):
    build, key = registered_core("ingress")
    run_cocotb(build, "tb_ingress", build_name="ingress", testcase=testcase, cache_key=key,
               flatten=True,
               env={key: str(value) for key, value in env.items()})


def test_scoreboard_over_mixes_vlan_idle_and_backpressure():
    _run("scoreboard_matrix")


def test_latency_is_three_cycles_at_line_rate():
    _run("latency_and_line_rate")


def test_bad_input_is_counted_and_recovered():
    _run("bad_input_is_counted_and_recovered")


def test_ten_thousand_random_frames():
    _run("random_frames_never_hang_or_diverge", TB_RANDOM_FRAMES=10_000)


def test_real_nasdaq_pcaps(itch_data):
    _run("real_nasdaq_captures", TB_ITCH_DATA=itch_data)


def test_real_aapl_file(itch_data):
    _run("real_aapl_file", TB_ITCH_DATA=itch_data)


@pytest.mark.soak
def test_soak_random_frames():
    _run("random_frames_never_hang_or_diverge", TB_RANDOM_FRAMES=200_000)
