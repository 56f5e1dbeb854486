"""Launches the cocotb testbench of the ITCH decode stage (tests/cocotb/tb_itch_decode.py)."""

import os

from hdl.feed.itch_decode import ItchDecode
from tests.cocotb.runner import run_cocotb

AAPL = "aapl-20200130-premarket-10k.itch"


def _run(testcase: str, **extra: str) -> None:
    run_cocotb(ItchDecode, "tb_itch_decode", build_name="itch_decode", cache_key="ItchDecode()",
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), **extra}, testcase=testcase)


def test_random_mixes_under_idle_and_backpressure():
    _run("random_mix_test")


def test_real_capture(itch_data):
    _run("real_capture_test", ITCH_FILE=str(itch_data / AAPL))
