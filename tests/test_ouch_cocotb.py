"""Launches the cocotb testbench of the OUCH encoder and decoder (tests/cocotb/tb_ouch.py)."""

import os

from hdl.quote.ouch_rx import OuchRx
from hdl.quote.ouch_tx import OuchTx
from tests.cocotb.runner import run_cocotb

ENV = {"TB_SEED": os.environ.get("TB_SEED", "1")}


def test_encoder_random_actions_under_idle_and_backpressure():
    run_cocotb(OuchTx(), "tb_ouch", build_name="ouch_tx", env=ENV, testcase="tx_")


def test_decoder_random_answers_under_idle_and_backpressure():
    run_cocotb(OuchRx(), "tb_ouch", build_name="ouch_rx", env=ENV, testcase="rx_")
