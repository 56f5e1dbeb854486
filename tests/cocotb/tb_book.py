"""cocotb testbench of the order book stage: its top-of-book stream, in order, against the model.

The design is the default-geometry ``Book`` (16,384 orders, 8 slots) with ``i.ready`` falling
when its queue is full, so that idle cycles and backpressure never lose an event. Which stimulus
is run comes from the environment:

- ``TB_CASE``: ``aapl`` (the real capture; its first ``TB_MESSAGES`` messages if set),
  ``session`` (a generated session of ``TB_MESSAGES`` messages over ``TB_INSTRUMENTS``
  instruments), or one of the adversarial cases ``random``, ``deep``, ``extreme``, ``full``,
  ``unknown``, ``binding``;
- ``TB_SEED``: the seed of the stimulus and of the idle/backpressure generators (printed);
- ``TB_PACING``: the (idle, backpressure) pairs to run, ``"0,0;0.3,0.5"``; all four of
  ``MATRIX`` by default;
- ``TB_GEOMETRY``: ``default``, ``tiny``, ``small``, ``deep`` (``tests/test_book_cases.py``) or
  ``field=value,...`` over the defaults; it must match the design built by the launcher.

Every run ends by checking every counter, the sticky ``hazard`` flag and that nothing is left
over in the sink.
"""

import os
import time
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from streams import StreamSink, StreamSource, TBBase, pack, unpack

from hdl.book.layout import SlotConfigLayout, top_update_layout
from hdl.feed.itch_event import ItchEventLayout
from hdl.stats import stats_layout
from sim.book import BookStat
from tests.test_book_cases import (
    HostAction,
    aapl_case,
    binding_case,
    deep_book_case,
    extreme_price_case,
    full_table_case,
    geometry_of,
    random_case,
    session_case,
    unknown_refs_case,
)


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def build_case():
    name = os.environ.get("TB_CASE", "random")
    geometry = geometry_of(os.environ.get("TB_GEOMETRY", "default"))
    seed = env_int("TB_SEED", 1)
    if name == "aapl":
        limit = env_int("TB_MESSAGES", 0)
        return aapl_case(geometry, limit or None)
    if name == "session":
        return session_case(geometry, env_int("TB_MESSAGES", 20_000), seed=seed,
                            instruments=env_int("TB_INSTRUMENTS", geometry.slots))
    if name == "random":
        return random_case(seed, geometry, env_int("TB_MESSAGES", 2_000), refs=400, prices=40)
    if name == "deep":
        return deep_book_case(geometry, env_int("TB_LEVELS", 200), rounds=2)
    if name == "extreme":
        return extreme_price_case(geometry)
    if name == "full":
        return full_table_case(geometry)
    if name == "unknown":
        return unknown_refs_case(geometry)
    if name == "binding":
        return binding_case(geometry)
    raise ValueError(f"unknown TB_CASE {name!r}")


class TB(TBBase):
    def __init__(self, dut, slot_bits: int):
        super().__init__(dut)
        self.source = StreamSource(self, "i", ItchEventLayout)
        self.sink = StreamSink(self, "o", top_update_layout(slot_bits))
        dut.clear_degraded.value = 0
        dut.clear_book.value = 0

    def configure(self, slots) -> None:
        value = 0
        for n, cfg in enumerate(slots):
            value |= pack(SlotConfigLayout, cfg.as_dict()) << (n * SlotConfigLayout.size)
        self.dut.cfg.value = value

    def stats(self) -> dict[str, int]:
        return unpack(stats_layout(BookStat), int(self.dut.stats.value))

    async def wait_idle(self, quiet: int = 8) -> None:
        """Until the source is empty and the book has had nothing to do for ``quiet`` cycles."""
        # Coarse while the source still has events: reading signals every cycle costs more
        # simulation time than the design itself.
        while not self.source.idle():
            await ClockCycles(self.dut.clk, 64)
        calm = 0
        while calm < quiet:
            await RisingEdge(self.dut.clk)
            busy = not self.source.idle() or not int(self.dut.idle.value) or \
                int(self.dut.o__valid.value)
            calm = 0 if busy else calm + 1

    async def host(self, action: HostAction) -> None:
        await self.wait_idle()
        port = getattr(self.dut, action.name)
        port.value = action.mask
        await RisingEdge(self.dut.clk)
        port.value = 0


async def run(tb: TB, case, idle: float, backpressure: float):
    """Feed ``case`` and score every update as it comes out, against the model run alongside
    (events are handed to the source a few hundred at a time, so a million-message case needs no
    more memory than a short one)."""
    dut = tb.dut
    seed = env_int("TB_SEED", 1)
    dut._log.info("%s: %d events, idle %.2f, backpressure %.2f, TB_SEED=%d", case.name,
                  case.events, idle, backpressure, seed)
    tb.source.set_idle(0.0, seed)
    tb.sink.set_backpressure(0.0, seed)
    await tb.reset()
    while int(dut.busy.value):  # the reset sweep of the tables
        await RisingEdge(dut.clk)
    start = tb.cycle
    cpu = time.process_time()
    tb.source.set_idle(idle, seed + 11)
    tb.sink.set_backpressure(backpressure, seed + 12)
    model = case.model()
    expected: deque[dict] = deque()
    scored = 0

    def score() -> None:
        nonlocal scored
        while tb.sink.queue:
            got = tb.sink.queue.popleft()
            assert expected, f"{case.name}: unexpected update {got}"
            want = expected.popleft()
            assert got == want, f"{case.name}: update {scored}: got {got}, expected {want}"
            scored += 1

    for item in case.items:
        if isinstance(item, HostAction):
            await tb.wait_idle()
            score()
            await tb.host(item)
            slots = [n for n in range(case.geometry.slots) if item.mask >> n & 1]
            expected.extend(u.as_dict() for u in getattr(model, item.name)(slots))
            continue
        while len(tb.source.queue) >= 256:
            await ClockCycles(dut.clk, 64)
            score()
        tb.source.send(item.as_dict())
        expected.extend(u.as_dict() for u in model.push(item))
    await tb.wait_idle(quiet=16)
    score()
    cycles = tb.cycle - start
    assert not expected, f"{case.name}: {len(expected)} updates missing, next {expected[0]}"
    assert tb.stats() == {k.name.lower(): v for k, v in model.stats.items()}
    assert int(dut.hazard.value) == 0
    assert tb.sink.empty()
    dut._log.info("%s: %d events, %d updates, %d refills in %d cycles (%.3f events/cycle); "
                  "simulated at %.0f cycles per CPU second", case.name, case.events, scored,
                  model.stats[BookStat.REFILLS], cycles, case.events / max(cycles, 1),
                  cycles / max(time.process_time() - cpu, 1e-9))


# (idle, backpressure) pairs; TB_PACING ("idle,bp;idle,bp") picks some for the long cases.
MATRIX = [(0.0, 0.0), (0.0, 0.5), (0.3, 0.0), (0.3, 0.5)]


def pacing() -> list[tuple[float, float]]:
    spec = os.environ.get("TB_PACING")
    if not spec:
        return MATRIX
    return [tuple(float(x) for x in pair.split(",")) for pair in spec.split(";")]


@cocotb.test()
async def book_test(dut):
    """The case, once per (idle, backpressure) pair of the matrix, from reset each time."""
    case = build_case()
    tb = TB(dut, case.geometry.slot_bits)
    tb.configure(case.slots)
    await tb.start()
    for idle, backpressure in pacing():
        await run(tb, case, idle, backpressure)
