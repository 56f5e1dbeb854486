"""Launches the cocotb testbench of the control plane's UART link (tests/cocotb/tb_csr_uart.py)."""

import os

from hdl.csr.plane import ControlPlane
from tests.cocotb.runner import run_cocotb

DIVISOR = 4


def test_driver_writes_and_reads_every_register_through_the_uart():
    plane = ControlPlane(uart_divisor=DIVISOR, link_timeout=5000)
    run_cocotb(plane, "tb_csr_uart", build_name="csr_uart",
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), "CSR_DIVISOR": str(DIVISOR)})
