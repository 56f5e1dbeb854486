"""Launches the cocotb testbench of the MoldUDP64 stage (tests/cocotb/tb_mold_rx.py)."""

import os

from hdl.feed.mold_rx import MoldRx
from tests.cocotb.runner import run_cocotb


def test_random_mixes_under_idle_and_backpressure():
    run_cocotb(MoldRx(), "tb_mold_rx", build_name="mold_rx",
               env={"TB_SEED": os.environ.get("TB_SEED", "1")})
