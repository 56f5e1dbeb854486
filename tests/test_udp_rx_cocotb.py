"""Launches the cocotb testbench of the UDP receive stage (tests/cocotb/tb_udp_rx.py)."""

import os

import pytest

from host.gatesim.runner import registered_core
from tests.cocotb.runner import run_cocotb


def _run(testcase: str, **extra: str) -> None:
    build, key = registered_core("udp_rx")
    run_cocotb(build, "tb_udp_rx", build_name="udp_rx", cache_key=key,
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), **extra}, testcase=testcase)


def test_payload_sizes_vlan_idle_and_backpressure():
    _run("sizes_test")


def test_bad_frame_mix():
    _run("bad_frame_mix_test")


@pytest.mark.parametrize(("folder", "feed"), [("nasdaq-pcap", "totalview"), ("bx-pcap", "bx")])
def test_real_captures(itch_data, folder, feed):
    _run("real_capture_test", PCAP_DIR=str(itch_data / folder), FEED=feed)
