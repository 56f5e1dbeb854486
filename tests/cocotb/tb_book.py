"""cocotb testbench of the order book stage: its top-of-book stream, in order, against the model.

The design is the default-geometry ``Book`` (16,384 orders, 8 slots) with ``i.ready`` falling
when its queue is full, so that idle cycles and backpressure never lose an event. Which stimulus
is run comes from the environment:

- ``TB_CASE``: ``aapl`` (the real capture in ``ITCH_FILE``), ``session`` (a generated session of
  ``TB_MESSAGES`` messages over ``TB_INSTRUMENTS`` instruments), or one of the adversarial cases
  ``random``, ``deep``, ``extreme``, ``full``, ``unknown``, ``binding``;
- ``TB_SEED``: the seed of the stimulus and of the idle/backpressure generators (printed);
- ``TB_GEOMETRY``: ``default`` (must match the design built by the launcher) or ``tiny``/
  ``small``/``deep`` for the adversarial cases that need small tables.

Every run ends by checking every counter, the sticky ``hazard`` flag and that nothing is left
over in the sink.
"""

import os

import cocotb
from cocotb.triggers import RisingEdge
from streams import StreamSink, StreamSource, TBBase, pack, unpack

from hdl.book.layout import SlotConfigLayout, top_update_layout
from hdl.feed.itch_event import ItchEventLayout
from hdl.stats import stats_layout
from sim.book import BookStat
from sim.book_mirror import BookGeometry
from tests.test_book_cases import (
    DEEP,
    SMALL,
    TINY,
    HostAction,
    aapl_case,
    binding_case,
    deep_book_case,
    extreme_price_case,
    full_table_case,
    random_case,
    session_case,
    unknown_refs_case,
)

GEOMETRIES = {"default": BookGeometry(), "tiny": TINY, "small": SMALL, "deep": DEEP}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def build_case():
    name = os.environ.get("TB_CASE", "random")
    geometry = GEOMETRIES[os.environ.get("TB_GEOMETRY", "default")]
    seed = env_int("TB_SEED", 1)
    if name == "aapl":
        return aapl_case(geometry)
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


async def run(dut, idle: float, backpressure: float):
    case = build_case()
    tb = TB(dut, case.geometry.slot_bits)
    seed = env_int("TB_SEED", 1)
    dut._log.info("%s: %d events, idle %.2f, backpressure %.2f, TB_SEED=%d", case.name,
                  case.events, idle, backpressure, seed)
    tb.configure(case.slots)
    await tb.start()
    while int(dut.busy.value):  # the reset sweep of the tables
        await RisingEdge(dut.clk)
    start = tb.cycle
    tb.source.set_idle(idle, seed + 11)
    tb.sink.set_backpressure(backpressure, seed + 12)
    want, want_stats = case.expected()

    for item in case.items:
        if isinstance(item, HostAction):
            await tb.host(item)
        else:
            tb.source.send(item.as_dict())
    await tb.wait_idle(quiet=16)
    cycles = tb.cycle - start

    got = []
    for _ in want:
        if tb.sink.empty():
            break
        got.append(await tb.sink.recv())
    for n, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"{case.name}: update {n}: got {g}, expected {w}"
    assert len(got) == len(want), f"{case.name}: {len(got)} updates, expected {len(want)}"
    assert tb.stats() == want_stats
    assert int(dut.hazard.value) == 0
    assert tb.sink.empty()
    dut._log.info("%s: %d events, %d updates, %d refills in %d cycles (%.3f events/cycle)",
                  case.name, case.events, len(got), want_stats["refills"], cycles,
                  case.events / max(cycles, 1))


@cocotb.test()
@cocotb.parametrize(idle=[0.0, 0.3], backpressure=[0.0, 0.5])
async def book_test(dut, idle, backpressure):
    await run(dut, idle, backpressure)
