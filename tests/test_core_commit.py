"""A commit reaches the market maker's loop whole: the host driver, on the whole core's register
bus (the UART bridge carries the same accesses, see ``test_csr_bridge``), rewrites every quote
parameter and risk limit of two slots and the port limits, word by word, and the quoter's and
the risk gate's inputs, sampled every cycle, only ever show the old set or the new one,
switching in a single cycle."""

import random

from hdl.top import TickgateCore
from host.driver import Driver
from host.regmap import REGMAP
from host.transports.sim import SimBoard, SimTransport

SLOTS = (0, 5)
ROUNDS = 2


def _watched_paths() -> list[str]:
    paths = []
    for loc in REGMAP:
        block = loc.block.name
        if (block in ("quote", "risk") and loc.index in SLOTS) or block == "port_limits":
            paths.append(loc.path)
    return paths


def _new_value(rng: random.Random, reg, old: int) -> int:
    """A legal value other than ``old``, so every field changes in every round."""
    while True:
        value = rng.choice([reg.min, reg.max, rng.randint(reg.min, reg.max)])
        if value != old:
            return value


def test_the_loop_never_sees_a_mix_of_old_and_new_parameters():
    rng = random.Random(20261122)
    core = TickgateCore()
    board = SimBoard(design=core)
    quote, risk, port = core.loop_parameters
    paths = _watched_paths()
    signals = []
    for path in paths:
        loc = REGMAP[path]
        element = {"quote": lambda i: quote[i], "risk": lambda i: risk[i],
                   "port_limits": lambda i: port}[loc.block.name](loc.index)
        signals.append(getattr(element, loc.reg.name))
    trace: list[tuple[int, ...]] = []

    async def monitor(ctx):
        while True:
            await ctx.tick()
            trace.append(tuple(int(ctx.get(signal)) for signal in signals))

    board.add_testbench(monitor)
    driver = Driver(SimTransport(board))
    assert all(REGMAP[path].reg.staged for path in paths)

    sets = [tuple(driver.read_many(paths)[path] for path in paths)]
    marks = []  # (first cycle of the round's writes, cycle after its read back)
    for _ in range(ROUNDS):
        new = {path: _new_value(rng, REGMAP[path].reg, old)
               for path, old in zip(paths, sets[-1], strict=True)}
        start = len(trace)
        driver.apply(new)  # one commit, then every value read back and verified
        marks.append((start, len(trace)))
        sets.append(tuple(new[path] for path in paths))
    assert len(set(sets)) == ROUNDS + 1

    expected = sets
    for round_index, (start, end) in enumerate(marks):
        window = trace[start:end]
        switch = next(k for k, sample in enumerate(window) if sample != expected[round_index])
        # The writes of a round take a cycle per word before the commit: a bank that applied
        # each write at once would show mixed samples for that long.
        assert switch >= len(paths)
        assert all(sample == expected[round_index] for sample in window[:switch])
        assert all(sample == expected[round_index + 1] for sample in window[switch:]), \
            f"round {round_index}: a mix of old and new parameters reached the loop"
