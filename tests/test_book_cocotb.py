"""Launches the cocotb testbench of the order book stage (tests/cocotb/tb_book.py).

The book is built with ``drop_when_full=False`` so that the testbench's idle cycles and
backpressure never lose an event (the dropping policy is tested on the Amaranth simulator, in
``tests/test_book.py``). The long generated session runs only with ``pytest -m soak``.
"""

import os

import pytest

from hdl.book.book import Book
from sim.book_mirror import BookGeometry
from tests.cocotb.runner import run_cocotb
from tests.test_book_cases import DEEP, SMALL, TINY

GEOMETRIES = {"default": BookGeometry(), "tiny": TINY, "small": SMALL, "deep": DEEP}


def _run(case: str, geometry: str = "default", **env: str) -> None:
    book = Book(GEOMETRIES[geometry], drop_when_full=False)
    run_cocotb(book, "tb_book", build_name=f"book-{geometry}",
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), "TB_CASE": case,
                    "TB_GEOMETRY": geometry, **env},
               testcase="book_test")


def test_aapl_capture(itch_data):
    """All 10,000 messages of the real AAPL capture; final book 320.14 x 25 / 320.30 x 100."""
    _run("aapl")


def test_generated_session_eight_instruments():
    _run("session", TB_MESSAGES="20000", TB_INSTRUMENTS="12")


@pytest.mark.parametrize("case", ["random", "extreme", "unknown", "binding", "deep"])
def test_adversarial_default_geometry(case):
    _run(case)


@pytest.mark.parametrize(("case", "geometry"), [("full", "small"), ("random", "tiny")])
def test_adversarial_small_tables(case, geometry):
    _run(case, geometry)


@pytest.mark.soak
def test_soak_million_messages():
    _run("session", TB_MESSAGES=os.environ.get("TB_SOAK_MESSAGES", "1000000"),
         TB_INSTRUMENTS="16")
