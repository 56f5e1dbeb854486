"""Launches the cocotb testbench of the UDP receive stage (tests/cocotb/tb_udp_rx.py)."""

import os

import pytest

from hdl.net.udp_rx import UdpRx
from tests.cocotb.runner import run_cocotb


def _env(**extra: str) -> dict[str, str]:
    return {"TB_SEED": os.environ.get("TB_SEED", "1"), **extra}


def test_payload_sizes_vlan_idle_and_backpressure():
    run_cocotb(UdpRx(), "tb_udp_rx", build_name="udp_rx", env=_env(), testcase="sizes_test")


def test_bad_frame_mix():
    run_cocotb(UdpRx(), "tb_udp_rx", build_name="udp_rx", env=_env(),
               testcase="bad_frame_mix_test")


@pytest.mark.parametrize(("folder", "feed"), [("nasdaq-pcap", "totalview"), ("bx-pcap", "bx")])
def test_real_captures(itch_data, folder, feed):
    run_cocotb(UdpRx(), "tb_udp_rx", build_name="udp_rx",
               env=_env(PCAP_DIR=str(itch_data / folder), FEED=feed),
               testcase="real_capture_test")
