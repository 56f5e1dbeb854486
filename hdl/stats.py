"""Statistics counters: one ``stats`` output port per stage, its fields named after a reason enum.

Each stage declares a plain-Python ``IntEnum`` of the things it counts (in its ``sim/`` twin, so
the model counts the same names) and exposes ``stats: Out(stats_layout(ThatEnum))``. The register
bank derives one read-only counter register per field, so a counter is declared exactly once.
"""

from enum import IntEnum

from amaranth.hdl import Module, Value
from amaranth.lib import data

__all__ = ["COUNTER_WIDTH", "count", "stats_layout"]

# 48 bits: at 20 M messages/s a counter wraps after about 160 days, so never within a session.
COUNTER_WIDTH = 48


def stats_layout(reasons: type[IntEnum], width: int = COUNTER_WIDTH) -> data.StructLayout:
    """A struct of ``width``-bit counters, one per member of ``reasons``, named in lower case."""
    return data.StructLayout({member.name.lower(): width for member in reasons})


def count(m: Module, counter: Value, when, by=1) -> None:
    """Add ``by`` to ``counter`` on the clock edge after a cycle in which ``when`` holds."""
    with m.If(when):
        m.d.sync += counter.eq(counter + by)
