"""Shared pytest options: the cocotb simulator and the location of the real ITCH captures."""

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_ITCH = PROJECT_ROOT.parent / "shared" / "data" / "itch"


def pytest_addoption(parser):
    parser.addoption("--sim", choices=("icarus", "verilator"), default=None,
                     help="simulator for the cocotb testbenches (default: TICKGATE_SIM or icarus)")


def pytest_configure(config):
    sim = config.getoption("--sim")
    if sim:
        os.environ["TICKGATE_SIM"] = sim


@pytest.fixture
def itch_data() -> Path:
    """The folder of real NASDAQ ITCH captures beside the project; skips when it is absent."""
    if not SHARED_ITCH.is_dir():
        pytest.skip(f"real ITCH captures not found at {SHARED_ITCH} (see the README, 'Test data')")
    return SHARED_ITCH
