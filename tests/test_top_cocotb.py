"""Launch the core's test bench (tests/cocotb/tb_top.py) on the selected simulator.

The latency is measured on the core as registered for export (``FeedBook()``, dropping on a full
book queue); the scoreboard runs the core that holds its input instead (``drop_when_full=False``,
as ``tickgate replay --until book`` does), so that idle cycles, backpressure and the book's clears
never lose an event the model would count. Icarus runs the scoreboard over two (idle,
backpressure) pairs in about a minute; ``TB_PACING="0,0;0,0.5;0.3,0;0.3,0.5"`` runs all four.
"""

import os
from functools import partial

from hdl.top import FeedBook
from host.gatesim.runner import registered_core
from tests.cocotb.runner import run_cocotb


def test_latency_at_line_rate():
    build, key = registered_core("feed_book")
    run_cocotb(build, "tb_top", build_name="top", testcase="latency_at_line_rate",
               cache_key=key, env={"TB_SEED": os.environ.get("TB_SEED", "1")})


def test_scoreboard_generated_session():
    run_cocotb(partial(FeedBook, drop_when_full=False), "tb_top", build_name="top-hold",
               testcase="scoreboard_generated_session", cache_key="FeedBook(drop_when_full=False)",
               env={"TB_SEED": os.environ.get("TB_SEED", "1"), "TB_MESSAGES": "800",
                    "TB_PACING": os.environ.get("TB_PACING", "0,0;0.3,0.5")})
