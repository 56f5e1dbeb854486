"""Stimulus for the order book tests, and the model's answers to it.

Shared by the Amaranth-simulator tests (``tests/test_book.py``) and the cocotb testbench
(``tests/cocotb/tb_book.py``). A *case* is a list of items, each an :class:`ItchEvent` or a
:class:`HostAction` (done once the book is idle), plus the slot configuration. The expected
updates and counters come from ``sim.book.Books`` with the same geometry.

The tests at the bottom check the generators themselves (that the adversarial cases really
reach the situations they are named after).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.book import Books
from sim.book_mirror import BookGeometry
from sim.itch_event import EventKind, ItchEvent, Side, symbol_int

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "itch"
AAPL = DATA / "aapl-20200130-premarket-10k.itch"

# Small tables: collisions, full sets and refills within a few hundred events.
TINY = BookGeometry(slots=2, order_sets=8, order_ways=2, level_sets=4, level_ways=2,
                    cache_levels=4, depth=2)
SMALL = BookGeometry(slots=4, order_sets=64, order_ways=4, level_sets=8, level_ways=4,
                     cache_levels=6, depth=3)
# Room for a 40-level side: deep books without level-table refusals.
DEEP = BookGeometry(slots=2, order_sets=64, order_ways=4, level_sets=8, level_ways=8,
                    cache_levels=6, depth=3)


GEOMETRIES = {"default": BookGeometry(), "tiny": TINY, "small": SMALL, "deep": DEEP}


def geometry_of(spec: str) -> BookGeometry:
    """A named geometry, or ``field=value,...`` overriding the defaults."""
    if "=" not in spec:
        return GEOMETRIES[spec]
    return BookGeometry(**{k: int(v) for k, v in (kv.split("=") for kv in spec.split(","))})


@dataclass(frozen=True)
class HostAction:
    """``clear_degraded`` or ``clear_book`` of the slots in ``mask``, with the book idle."""

    name: str
    mask: int


@dataclass(frozen=True)
class SlotCfg:
    enable: bool = True
    by_symbol: bool = False
    locate: int = 0
    symbol: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"enable": int(self.enable), "by_symbol": int(self.by_symbol),
                "locate": self.locate, "symbol": self.symbol}


@dataclass
class Case:
    name: str
    geometry: BookGeometry
    slots: list[SlotCfg]
    items: list

    def model(self) -> Books:
        books = Books(geometry=self.geometry)
        for n, cfg in enumerate(self.slots):
            if not cfg.enable:
                continue
            if cfg.by_symbol:
                books.track_symbol(n, cfg.symbol)
            else:
                books.track_locate(n, cfg.locate)
        return books

    def expected(self) -> tuple[list[dict], dict[str, int]]:
        """The model's updates (as dicts) and counters (lower-case names) for this case."""
        books = self.model()
        updates = []
        for item in self.items:
            if isinstance(item, HostAction):
                slots = [s for s in range(books.slots) if item.mask >> s & 1]
                got = getattr(books, item.name)(slots)
            else:
                got = books.push(item)
            updates.extend(u.as_dict() for u in got)
        return updates, {k.name.lower(): v for k, v in books.stats.items()}

    @property
    def events(self) -> int:
        return sum(isinstance(item, ItchEvent) for item in self.items)


def slots_by_locate(geometry: BookGeometry, locates) -> list[SlotCfg]:
    cfgs = [SlotCfg(locate=loc) for loc in locates]
    return cfgs + [SlotCfg(enable=False)] * (geometry.slots - len(cfgs))


# ------------------------------------------------------------------------------------------------
# Event builders

class Seq:
    """Hands out increasing sequence numbers and timestamps."""

    def __init__(self, start: int = 1):
        self.n = start

    def __call__(self) -> dict[str, int]:
        self.n += 1
        return {"seq": self.n, "timestamp": 1_000 * self.n}


def add(s: Seq, locate, ref, side, price, shares, mpid=False) -> ItchEvent:
    kind = EventKind.ADD_MPID if mpid else EventKind.ADD
    return ItchEvent(kind, locate, order_ref=ref, side=Side(side), price=price, shares=shares,
                     symbol=symbol_int("TEST"), **s())


def execute(s: Seq, locate, ref, shares, price=None) -> ItchEvent:
    if price is None:
        return ItchEvent(EventKind.EXECUTE, locate, order_ref=ref, shares=shares, **s())
    return ItchEvent(EventKind.EXECUTE_PRICE, locate, order_ref=ref, shares=shares, price=price,
                     code=ord("Y"), **s())


def cancel(s: Seq, locate, ref, shares) -> ItchEvent:
    return ItchEvent(EventKind.CANCEL, locate, order_ref=ref, shares=shares, **s())


def delete(s: Seq, locate, ref) -> ItchEvent:
    return ItchEvent(EventKind.DELETE, locate, order_ref=ref, **s())


def replace(s: Seq, locate, ref, new_ref, price, shares) -> ItchEvent:
    return ItchEvent(EventKind.REPLACE, locate, order_ref=ref, new_ref=new_ref, price=price,
                     shares=shares, **s())


def system(s: Seq, code: str) -> ItchEvent:
    return ItchEvent(EventKind.SYSTEM, 0, code=ord(code), **s())


def halt(s: Seq, locate, state: str) -> ItchEvent:
    return ItchEvent(EventKind.TRADING_ACTION, locate, symbol=symbol_int("TEST"),
                     code=ord(state), **s())


def directory(s: Seq, locate, symbol: str) -> ItchEvent:
    return ItchEvent(EventKind.DIRECTORY, locate, symbol=symbol_int(symbol), **s())


# ------------------------------------------------------------------------------------------------
# Cases

def random_case(seed: int, geometry: BookGeometry, count: int, *, refs: int = 40,
                prices: int = 12, name: str = "random") -> Case:
    """Every kind of event and every kind of bad input, on a few locates, with refs and prices
    drawn from small pools so that collisions, duplicates and unknown references are common."""
    rng = random.Random(seed)
    s = Seq()
    locates = [11, 22, 33, 44][:geometry.slots]
    tracked = locates[:max(1, geometry.slots - 1)]
    slots = slots_by_locate(geometry, tracked)
    base = [rng.choice((1, 100, 3_201_400, 0x7FFF_FF00)) for _ in locates]
    live: dict[int, int] = {}
    items = []
    for _ in range(count):
        loc = rng.choice(locates)
        r = rng.random()
        ref = rng.randrange(1, refs) if rng.random() < 0.9 else rng.getrandbits(64)
        if r < 0.40:
            price = base[locates.index(loc)] + rng.randrange(prices) * rng.choice((1, 100))
            if rng.random() < 0.02:
                price = rng.choice((0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF))
            shares = rng.choice((0, 1, 100, 250, 0xFFFF_FFFF)) if rng.random() < 0.1 else \
                rng.randrange(1, 500)
            items.append(add(s, loc, ref, rng.randrange(2), price, shares, rng.random() < 0.2))
            live[ref] = loc
        elif r < 0.55:
            ref = rng.choice(list(live)) if live and rng.random() < 0.8 else ref
            items.append(execute(s, live.get(ref, loc), ref, rng.randrange(0, 300),
                                 None if rng.random() < 0.7 else rng.getrandbits(32)))
        elif r < 0.65:
            ref = rng.choice(list(live)) if live and rng.random() < 0.8 else ref
            items.append(cancel(s, live.get(ref, loc), ref, rng.randrange(0, 300)))
        elif r < 0.82:
            ref = rng.choice(list(live)) if live and rng.random() < 0.8 else ref
            items.append(delete(s, live.get(ref, loc), ref))
            live.pop(ref, None)
        elif r < 0.92:
            ref = rng.choice(list(live)) if live and rng.random() < 0.8 else ref
            new_ref = rng.randrange(1, refs)
            price = base[locates.index(loc)] + rng.randrange(prices) * 100
            items.append(replace(s, live.get(ref, loc), ref, new_ref, price,
                                 rng.randrange(0, 400)))
            live.pop(ref, None)
            live[new_ref] = loc
        elif r < 0.95:
            items.append(halt(s, loc, rng.choice("HTTPQ")))
        elif r < 0.97:
            items.append(system(s, rng.choice("OSQMEC")))
        elif r < 0.985:
            items.append(directory(s, loc, "ZZZ"))
        else:
            items.append(HostAction(rng.choice(("clear_degraded", "clear_book")),
                                    rng.randrange(1, 1 << geometry.slots)))
    return Case(name, geometry, slots, items)


def deep_book_case(geometry: BookGeometry, levels: int, rounds: int = 2) -> Case:
    """Both sides of one book ``levels`` deep, then the best level deleted again and again until
    the book is empty, so that the cache is refilled from the level table over and over."""
    s = Seq()
    loc = 7
    items = []
    ref = 1
    for _ in range(rounds):
        refs = {0: [], 1: []}
        order = list(range(levels))
        random.Random(levels).shuffle(order)
        for k in order:
            for side, price in ((0, 1_000_000 - 100 * k), (1, 1_000_100 + 100 * k)):
                items.append(add(s, loc, ref, side, price, 100 + k))
                refs[side].append((k, ref))
                ref += 1
        for side in (0, 1):
            for _, r in sorted(refs[side]):
                items.append(delete(s, loc, r))
    return Case(f"deep-{levels}", geometry, slots_by_locate(geometry, [loc]), items)


def extreme_price_case(geometry: BookGeometry) -> Case:
    """Prices 1 and 0x7FFFFFFF (and the unsigned top of the range) on both sides."""
    s = Seq()
    loc = 5
    items = []
    for ref, (side, price) in enumerate(
            [(0, 1), (1, 0x7FFF_FFFF), (0, 0x7FFF_FFFF), (1, 1), (0, 0xFFFF_FFFF), (1, 2),
             (0, 0x7FFF_FFFE), (1, 0x8000_0000)], start=100):
        items.append(add(s, loc, ref, side, price, 10 + ref))
    items += [execute(s, loc, 102, 5), cancel(s, loc, 103, 200), delete(s, loc, 104),
              replace(s, loc, 100, 200, 0x7FFF_FFFF, 7), delete(s, loc, 102),
              execute(s, loc, 103, 1), delete(s, loc, 101)]
    return Case("extreme-prices", geometry, slots_by_locate(geometry, [loc]), items)


def full_table_case(geometry: BookGeometry) -> Case:
    """Fill the order table to capacity and beyond, then free it and fill it again."""
    s = Seq()
    loc = 3
    items = []
    capacity = geometry.order_capacity
    refs = list(range(1, 2 * capacity))
    for n, ref in enumerate(refs):
        items.append(add(s, loc, ref, n % 2, 10_000 + 100 * (n % 2), 1 + n % 50))
    items.append(HostAction("clear_degraded", 1))
    for ref in refs:
        items.append(delete(s, loc, ref))
    for n, ref in enumerate(refs[:capacity // 2]):
        items.append(add(s, loc, ref + 10_000, n % 2, 10_000 + 100 * n, 5))
    return Case("full-table", geometry, slots_by_locate(geometry, [loc]), items)


def unknown_refs_case(geometry: BookGeometry) -> Case:
    """Unknown references of every kind, over-executes and over-cancels, replace of an unknown
    order and a replace onto a live reference, between valid orders that must not change."""
    s = Seq()
    loc = 9
    items = [add(s, loc, 1, 0, 500_000, 100), add(s, loc, 2, 1, 510_000, 200),
             execute(s, loc, 99, 10), cancel(s, loc, 98, 10), delete(s, loc, 97),
             replace(s, loc, 96, 300, 500_100, 10), execute(s, loc, 99, 10, price=123),
             execute(s, loc, 1, 150), add(s, loc, 1, 0, 499_900, 40), cancel(s, loc, 2, 500),
             add(s, loc, 2, 1, 510_100, 60), replace(s, loc, 1, 2, 505_000, 5),
             replace(s, loc, 2, 2, 505_000, 9), add(s, loc, 5, 0, 0, 10),
             add(s, loc, 6, 1, 600_000, 0), replace(s, loc, 2, 7, 0, 10),
             execute(s, loc, 3, 1), add(s, loc, 3, 0, 499_000, 1), execute(s, loc, 3, 0)]
    return Case("unknown-refs", geometry, slots_by_locate(geometry, [loc]), items)


def binding_case(geometry: BookGeometry) -> Case:
    """Slots bound by symbol (through R), halts, clears, and host actions."""
    s = Seq()
    slots = [SlotCfg(by_symbol=True, symbol=symbol_int("AAPL")), SlotCfg(locate=4)]
    slots += [SlotCfg(enable=False)] * (geometry.slots - len(slots))
    items = [add(s, 13, 1, 0, 100, 5), directory(s, 12, "MSFT"), directory(s, 13, "AAPL"),
             add(s, 13, 2, 0, 100, 5), add(s, 4, 3, 1, 200, 7), halt(s, 13, "H"),
             halt(s, 13, "H"), add(s, 13, 4, 1, 300, 9), halt(s, 13, "T"),
             system(s, "S"), system(s, "O"), add(s, 4, 5, 0, 150, 1),
             HostAction("clear_book", 0b10), add(s, 4, 6, 1, 250, 2),
             HostAction("clear_degraded", 0b11), system(s, "C"), delete(s, 13, 2)]
    return Case("binding", geometry, slots, items)


def itch_events(messages) -> list[ItchEvent]:
    """Decode BinaryFILE/generated messages with the decoder's model (sequence numbers 1, 2...)."""
    from sim.itch_decode import ItchDecode
    decode = ItchDecode()
    out = []
    for n, raw in enumerate(messages):
        event = decode.push(raw, n + 1)
        if event is not None:
            out.append(event)
    return out


def aapl_case(geometry: BookGeometry, limit: int | None = None) -> Case:
    if not AAPL.is_file():
        pytest.skip(f"real ITCH captures not found at {AAPL.parent} (see its README)")
    from sim.capture import read_binaryfile
    messages = list(read_binaryfile(AAPL))[:limit]
    return Case("aapl", geometry, slots_by_locate(geometry, [13]), itch_events(messages))


def session_case(geometry: BookGeometry, messages: int, seed: int = 1,
                 instruments: int | None = None, **config) -> Case:
    """A generated session; the slots track its instruments by symbol (bound by its R)."""
    from sim.generator import SessionConfig, default_instruments, generate_messages
    count = instruments or geometry.slots
    insts = default_instruments(count)
    cfg = SessionConfig(seed=seed, messages=messages, instruments=insts, **config)
    slots = [SlotCfg(by_symbol=True, symbol=symbol_int(inst.symbol))
             for inst in insts[:geometry.slots]]
    slots += [SlotCfg(enable=False)] * (geometry.slots - len(slots))
    return Case(f"session-{seed}", geometry, slots, itch_events(generate_messages(cfg)))


# ------------------------------------------------------------------------------------------------
# The cases reach what they are named after.

def test_random_case_reaches_every_refusal():
    case = random_case(3, TINY, 1500)
    _, stats = case.expected()
    for name in ("unknown_ref", "over_execute", "over_cancel", "duplicate_ref", "bad_order",
                 "table_full", "level_full", "refills", "clears", "filtered", "updates"):
        assert stats[name] > 0, name


def test_deep_book_refills_repeatedly():
    case = deep_book_case(DEEP, 30)
    updates, stats = case.expected()
    assert stats["refills"] >= 2 * 2 * (30 - DEEP.cache_levels) // DEEP.cache_levels
    assert stats["level_full"] == 0 and stats["table_full"] == 0
    assert updates[-1]["bid_price"] == updates[-1]["ask_price"] == 0


def test_full_table_case_fills_the_table():
    case = full_table_case(TINY)
    _, stats = case.expected()
    assert stats["table_full"] == TINY.order_capacity - 1
    assert stats["level_full"] == 0
