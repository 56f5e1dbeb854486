"""Launches the cocotb testbench of the order book stage (tests/cocotb/tb_book.py).

The book is built with ``drop_when_full=False`` so that the testbench's idle cycles and
backpressure never lose an event (the dropping policy is tested on the Amaranth simulator, in
``tests/test_book.py``).

Icarus simulates the default book at a few hundred cycles per second, so the long cases run one
or two of the four (idle, backpressure) pairs; ``TB_BOOK_MATRIX=full`` runs all four everywhere
(and ``--sim verilator`` is about ten times faster once built). The million-message session runs
only with ``pytest -m soak``.
"""

import os
from functools import partial

import pytest

from hdl.book.book import Book
from tests.cocotb.runner import run_cocotb
from tests.test_book_cases import geometry_of

ALL = "0,0;0,0.5;0.3,0;0.3,0.5"
BOTH = "0,0;0.3,0.5"
HARDEST = "0.3,0.5"


def _run(case: str, geometry: str = "default", pacing: str = ALL, **env: str) -> None:
    if os.environ.get("TB_BOOK_MATRIX") == "full":
        pacing = ALL
    book = partial(Book, geometry_of(geometry), drop_when_full=False)
    run_cocotb(book, "tb_book", build_name=f"book-{geometry}",
               cache_key=f"Book({geometry}, drop_when_full=False)", flatten=True,
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), "TB_CASE": case,
                    "TB_GEOMETRY": geometry, "TB_PACING": pacing, **env},
               testcase="book_test")


def test_aapl_capture(itch_data):
    """All 10,000 messages of the real AAPL capture; final book 320.14 x 25 / 320.30 x 100."""
    _run("aapl", pacing=HARDEST)


def test_generated_session_eight_instruments():
    """20,000 messages of 12 instruments, 8 of them tracked (bound by symbol through R)."""
    _run("session", pacing="0.2,0.3", TB_MESSAGES="20000", TB_INSTRUMENTS="12")


@pytest.mark.parametrize(("case", "pacing"), [
    ("random", BOTH), ("deep", HARDEST), ("extreme", ALL), ("unknown", ALL), ("binding", ALL)])
def test_adversarial_default_geometry(case, pacing):
    _run(case, pacing=pacing, TB_MESSAGES="1000")


@pytest.mark.parametrize(("case", "geometry"), [("full", "small"), ("random", "tiny")])
def test_adversarial_small_tables(case, geometry):
    _run(case, geometry, pacing=BOTH)


@pytest.mark.soak
@pytest.mark.timeout(6 * 3600)
def test_soak_million_messages():
    """A million generated messages (``TB_SOAK_MESSAGES``); use ``--sim verilator``."""
    _run("session", pacing="0.1,0.1",
         TB_MESSAGES=os.environ.get("TB_SOAK_MESSAGES", "1000000"), TB_INSTRUMENTS="16")
