"""Launches the cocotb testbench of the ITCH decode stage (tests/cocotb/tb_itch_decode.py)."""

import os

from host.gatesim.runner import registered_core
from tests.cocotb.runner import run_cocotb

AAPL = "aapl-20200130-premarket-10k.itch"


def _run(testcase: str, **extra: str) -> None:
    build, key = registered_core("itch_decode")
    run_cocotb(build, "tb_itch_decode", build_name="itch_decode", cache_key=key,
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), **extra}, testcase=testcase)


def test_random_mixes_under_idle_and_backpressure():
    _run("random_mix_test")


def test_real_capture(itch_data):
    _run("real_capture_test", ITCH_FILE=str(itch_data / AAPL))
