"""Shared pytest options: the cocotb simulator and the location of the real ITCH captures."""

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_ITCH = PROJECT_ROOT.parent / "shared" / "data" / "itch"


# Modules whose tests each simulate a whole core or a large stage for a minute or so (or convert
# one, when its Verilog is not cached yet). They are collected first, so that pytest-xdist hands
# them out first and both workers end the run on short tests, finishing together.
_LONG_MODULES = frozenset({
    "test_bench", "test_book_cocotb", "test_cli", "test_core_cocotb", "test_core_commit",
    "test_core_host", "test_core_trade", "test_csr_cocotb", "test_host_cli",
    "test_ingress_cocotb", "test_itch_decode_cocotb", "test_quote_loop", "test_quoter",
    "test_replay_book", "test_replay_loop", "test_top_cocotb",
})


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


def pytest_collection_modifyitems(items):
    # A stable sort: the modules keep their order, and their tests theirs.
    items.sort(key=lambda item: item.path.stem not in _LONG_MODULES)
