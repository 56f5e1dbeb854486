"""Statistics counters: one ``stats`` output port per stage, its fields named after a reason enum.

Each stage declares a plain-Python ``IntEnum`` of the things it counts (in its ``sim/`` twin, so
the model counts the same names) and exposes ``stats: Out(stats_layout(ThatEnum))``. The register
bank derives one read-only counter register per field, so a counter is declared exactly once.
"""

from enum import IntEnum

from amaranth.hdl import Elaboratable, Module, Mux, Signal, Value
from amaranth.lib import data

__all__ = ["COUNTER_LATENCY", "COUNTER_WIDTH", "count", "stats_layout"]

# 48 bits: at 20 M messages/s a counter wraps after about 160 days, so never within a session.
COUNTER_WIDTH = 48


def stats_layout(reasons: type[IntEnum], width: int = COUNTER_WIDTH) -> data.StructLayout:
    """A struct of ``width``-bit counters, one per member of ``reasons``, named in lower case."""
    return data.StructLayout({member.name.lower(): width for member in reasons})


#: Clock edges from a cycle in which :func:`count` sees its condition to the counter holding
#: the sum.
COUNTER_LATENCY = 2


class _PipelinedCounter(Elaboratable):
    # A module of its own so that its registers update every cycle, wherever ``count`` is
    # called from: inside an ``If`` or an FSM state of the caller, only ``inc`` (combinational,
    # so 0 whenever that branch is not taken) is assigned.
    def __init__(self, counter: Value, width: int):
        self.counter = counter
        self.inc = Signal(width)

    def elaborate(self, platform):
        m = Module()
        step = Signal.like(self.inc)
        m.d.sync += [step.eq(self.inc), self.counter.eq(self.counter + step)]
        return m


def count(m: Module, counter: Value, when, by=1) -> None:
    """Add ``by`` to ``counter`` when ``when`` holds, :data:`COUNTER_LATENCY` edges later.

    The increment is registered before the wide adder, so the logic deciding it (often the
    deepest of a stage, as it sums up what happened to a beat) and the 48-bit carry chain are
    in different cycles. Counters are read by the host long after the event, so the extra cycle
    costs nothing; every increment is still added exactly once. It may be called inside ``If``
    blocks and FSM states, and for one counter from several mutually exclusive branches.
    """
    by, counter = Value.cast(by), Value.cast(counter)
    # Calls for the same counter from several branches share one adder: their increments are
    # comb assignments of the same signal in branches of which at most one is active.
    shared = m.__dict__.setdefault("_pipelined_counters", {})
    key = repr(counter)
    if key not in shared:
        shared[key] = _PipelinedCounter(counter, len(by))
        m.submodules += shared[key]
    counter_logic = shared[key]
    if len(by) > len(counter_logic.inc):
        raise ValueError(f"count(): increments of {key} have different widths")
    m.d.comb += counter_logic.inc.eq(Mux(when, by, 0))
