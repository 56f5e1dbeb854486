"""Unit tests of the order book's parts on the Amaranth simulator.

Each part against a plain-Python reference: the hashes against ``sim.book_mirror``, the
set-associative table against a dictionary that applies writes at once, the level cache against a
sorted book side (and ``CacheMirror`` for its refill rule), the queue and the filter against what
their docstrings promise.
"""

import random
from bisect import insort

from amaranth.hdl import Module, Signal
from amaranth.lib import data
from amaranth.sim import Simulator

from hdl.book.book import _fold, mersenne_mod
from hdl.book.filter import InstrumentFilter
from hdl.book.layout import BookOpKind, LevelLayout, SlotConfigLayout, level_entry_layout
from hdl.book.level_cache import CacheOp, LevelCache
from hdl.book.op_queue import OpQueue
from hdl.book.set_table import SetTable
from hdl.feed.itch_event import ItchEventLayout
from host.gatesim.streams import pack, unpack
from sim.book_mirror import BookGeometry, CacheMirror, fold_hash, level_hash
from sim.itch_event import EventKind, ItchEvent, Side, symbol_int


def _run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


# ------------------------------------------------------------------------------------------------
# Hashes

def test_hashes_match_the_model():
    rng = random.Random(1)
    m = Module()
    value = Signal(64)
    price = Signal(32)
    folds = {bits: Signal(bits, name=f"fold{bits}") for bits in (3, 12)}
    mods = {bits: Signal(bits, name=f"mod{bits}") for bits in (2, 3, 6, 7)}
    for bits, sig in folds.items():
        m.d.comb += sig.eq(_fold(value, 64, bits))
    for bits, sig in mods.items():
        m.d.comb += sig.eq(mersenne_mod(price, 32, bits))
    values = [0, 1, (1 << 64) - 1] + [rng.getrandbits(64) for _ in range(200)]
    prices = [0, 1, 62, 63, 64, 126, 127, 0x7FFF_FFFF, 0xFFFF_FFFF] + \
        [rng.getrandbits(32) for _ in range(200)] + [3_201_400 + 100 * k for k in range(70)]

    async def testbench(ctx):
        for v, p in zip(values, prices, strict=False):
            ctx.set(value, v)
            ctx.set(price, p)
            await ctx.delay(1e-9)
            for bits, sig in folds.items():
                assert ctx.get(sig) == fold_hash(v, bits)
            for bits, sig in mods.items():
                assert ctx.get(sig) == level_hash(p, bits), (p, bits)

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_level_hash_spreads_a_tick_grid():
    """Consecutive ticks of 1 or 100 land in consecutive sets (what the modulus is for)."""
    g = BookGeometry()
    for tick in (1, 100):
        sets = [g.level_set(3_000_000 + tick * k) for k in range(g.level_sets - 1)]
        assert len(set(sets)) == g.level_sets - 1


# ------------------------------------------------------------------------------------------------
# SetTable

def test_set_table_lookups_see_every_earlier_write():
    """Random lookups and single-way writes in any cycle; a lookup in cycle t must reflect
    every write up to cycle t + 1 (the table's contract)."""
    entry = level_entry_layout()
    sets, ways = 4, 3
    dut = SetTable(entry, "price", sets, ways)
    rng = random.Random(7)
    keys = [5, 9, 12, 300]

    async def testbench(ctx):
        state = [[{"valid": 0, "price": 0, "shares": 0} for _ in range(ways)]
                 for _ in range(sets)]
        lookups = {}  # cycle of the lookup -> [index, key, snapshot after cycle + 1's write]
        checked = 0
        for cycle in range(800):
            lookup = rng.random() < 0.6
            index, key = rng.randrange(sets), rng.choice(keys)
            ctx.set(dut.lk_en, int(lookup))
            ctx.set(dut.lk_index, index)
            ctx.set(dut.lk_key, key)
            write = rng.random() < 0.5
            w_index, w_way = rng.randrange(sets), rng.randrange(ways)
            w_data = {"valid": int(rng.random() < 0.7), "price": rng.choice(keys),
                      "shares": rng.randrange(1000)}
            ctx.set(dut.wr_en, (1 << w_way) if write else 0)
            ctx.set(dut.wr_index, w_index)
            ctx.set(dut.wr_data.as_value(), pack(entry, w_data))
            done = lookups.pop(cycle - 2, None)
            if done is not None:
                _, l_key, snap = done
                got = [unpack(entry, ctx.get(dut.entries[w].as_value())) for w in range(ways)]
                assert got == snap
                assert ctx.get(dut.match) == sum(1 << w for w, e in enumerate(snap)
                                                 if e["valid"] and e["price"] == l_key)
                assert ctx.get(dut.free) == sum(1 << w for w, e in enumerate(snap)
                                                if not e["valid"])
                checked += 1
            await ctx.tick()
            if write:
                state[w_index][w_way] = w_data
            if cycle - 1 in lookups:
                lookups[cycle - 1][2] = [dict(e) for e in state[lookups[cycle - 1][0]]]
            if lookup:
                lookups[cycle] = [index, key, None]
        assert checked > 400

    _run(dut, testbench)


# ------------------------------------------------------------------------------------------------
# LevelCache

class _Side:
    """A true book side (price -> shares), best first for ``side``."""

    def __init__(self, side: int):
        self.side = side
        self.levels: dict[int, int] = {}
        self.keys: list[int] = []

    def key(self, price):
        return -price if self.side == 0 else price

    def add(self, price, qty):
        if price not in self.levels:
            insort(self.keys, self.key(price))
            self.levels[price] = 0
        self.levels[price] += qty

    def remove(self, price, qty):
        self.levels[price] -= qty
        if not self.levels[price]:
            del self.levels[price]
            self.keys.remove(self.key(price))

    def best(self, k=1):
        return [(abs(key), self.levels[abs(key)]) for key in self.keys[:k]]


def test_level_cache_against_a_true_book():
    """Random adds and removals on two sides of two slots; refills done as the book does (every
    level worse than the cached worst offered through INSERT). The head path, the counts, the
    uncached rule (via ``CacheMirror``) and the host read-out are checked after every step."""
    slots, size, depth, below = 2, 5, 3, 3
    g = BookGeometry(slots=slots, cache_levels=size, depth=depth)
    dut = LevelCache(slots, size, depth, below)
    rng = random.Random(11)

    async def op(ctx, kind, slot, side, price, qty):
        ctx.set(dut.a_op, kind)
        ctx.set(dut.a_slot, slot)
        ctx.set(dut.a_side, side)
        ctx.set(dut.a_price, price)
        ctx.set(dut.a_qty, qty)
        await ctx.delay(1e-9)
        head = unpack(LevelLayout, ctx.get(dut.new_head.as_value()))
        result = head, ctx.get(dut.changed), ctx.get(dut.refill)
        await ctx.tick()
        ctx.set(dut.a_op, CacheOp.NONE)
        await ctx.tick()  # phase B
        return result

    async def testbench(ctx):
        books = {(s, x): _Side(x) for s in range(slots) for x in range(2)}
        mirrors = {(s, x): CacheMirror(x, g) for s in range(slots) for x in range(2)}
        refills = 0
        for _ in range(900):
            slot, side = rng.randrange(slots), rng.randrange(2)
            book, mirror = books[(slot, side)], mirrors[(slot, side)]
            before = book.best()
            if book.levels and rng.random() < 0.45:
                price = rng.choice(list(book.levels))
                qty = book.levels[price] if rng.random() < 0.6 else \
                    rng.randrange(1, book.levels[price] + 1)
                book.remove(price, qty)
                emptied = price not in book.levels
                want_refill = emptied and mirror.level_emptied(price, book.levels)
                head, changed, refill = await op(ctx, CacheOp.REMOVE, slot, side, price, qty)
                assert refill == want_refill
                if refill:
                    refills += 1
                    ctx.set(dut.a_slot, slot)
                    ctx.set(dut.a_side, side)
                    await ctx.delay(1e-9)
                    worst = ctx.get(dut.worst)
                    ctx.set(dut.fill_start, 1)
                    await ctx.tick()
                    ctx.set(dut.fill_start, 0)
                    worse = [p for p in book.levels
                             if (p < worst if side == 0 else p > worst)]
                    rng.shuffle(worse)
                    for p in worse:
                        await op(ctx, CacheOp.INSERT, slot, side, p, book.levels[p])
                    ctx.set(dut.a_slot, slot)
                    ctx.set(dut.a_side, side)
                    ctx.set(dut.fill_end, 1)
                    await ctx.tick()
                    ctx.set(dut.fill_end, 0)
            else:
                price = 1000 + rng.randrange(40) * (1 if side else -1) * 3
                qty = rng.randrange(1, 300)
                book.add(price, qty)
                mirror.level_added(price)
                head, changed, _ = await op(ctx, CacheOp.ADD, slot, side, price, qty)
            best = book.best()
            want_head = {"price": best[0][0], "shares": best[0][1]} if best else \
                {"price": 0, "shares": 0}
            assert head == want_head
            assert changed == (best != before)
            assert ctx.get(dut.counts[2 * slot + side]) == len(mirror.prices)
            heads = unpack(LevelLayout, ctx.get(dut.heads[slot][side].as_value()))
            assert heads == want_head
            level = rng.randrange(depth)
            ctx.set(dut.q_addr.slot, slot)
            ctx.set(dut.q_addr.side, side)
            ctx.set(dut.q_addr.level, level)
            await ctx.tick()
            await ctx.delay(1e-9)
            top = book.best(depth)
            want = {"price": top[level][0], "shares": top[level][1]} if level < len(top) \
                else {"price": 0, "shares": 0}
            assert unpack(LevelLayout, ctx.get(dut.q_data.as_value())) == want
            if rng.random() < 0.01:
                ctx.set(dut.clear, 1 << slot)
                await ctx.tick()
                ctx.set(dut.clear, 0)
                for x in range(2):
                    books[(slot, x)] = _Side(x)
                    mirrors[(slot, x)].clear()
        assert refills > 5

    _run(dut, testbench)


# ------------------------------------------------------------------------------------------------
# OpQueue

def _queue_case(drop: bool):
    dut = OpQueue(data.StructLayout({"n": 16}), 8, drop_when_full=drop)
    rng = random.Random(3)
    sent, got, dropped = [], [], []

    async def testbench(ctx):
        n = 0
        offering = False
        for cycle in range(700):
            ready = rng.random() < (0.3 if cycle < 300 else 0.9)
            ctx.set(dut.o.ready, int(ready))
            if not offering and rng.random() < 0.7:
                n += 1
                offering = True
                ctx.set(dut.i.payload.n, n)
                ctx.set(dut.i.valid, 1)
            *_, i_valid, i_ready, o_valid, o_ready, o_n, overflow = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, dut.o.payload.n,
                dut.overflow)
            if o_valid and o_ready:
                got.append(o_n)
            if i_valid and i_ready:
                (dropped if overflow else sent).append(n)
                offering = False
                ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(30):
            *_, o_valid, o_n = await ctx.tick().sample(dut.o.valid, dut.o.payload.n)
            if o_valid:
                got.append(o_n)

    return dut, testbench, sent, got, dropped


def test_queue_keeps_order_and_drops_only_when_full():
    dut, testbench, sent, got, dropped = _queue_case(drop=True)
    _run(dut, testbench)
    assert dropped, "the test never filled the queue"
    assert got == sent


def test_queue_backpressures_when_asked():
    dut, testbench, sent, got, dropped = _queue_case(drop=False)
    _run(dut, testbench)
    assert not dropped
    assert got == sent


def test_queue_bypass_has_no_latency():
    dut = OpQueue(data.StructLayout({"n": 16}), 8, drop_when_full=True)

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload.n, 42)
        await ctx.delay(1e-9)
        assert ctx.get(dut.o.valid) == 1 and ctx.get(dut.o.payload.n) == 42
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        await ctx.delay(1e-9)
        assert ctx.get(dut.o.valid) == 0 and ctx.get(dut.level) == 0

    _run(dut, testbench)


# ------------------------------------------------------------------------------------------------
# InstrumentFilter

def test_filter_binds_symbols_and_maps_kinds():
    dut = InstrumentFilter(4)
    aapl = symbol_int("AAPL")

    def event(kind, locate, **fields):
        return pack(ItchEventLayout, ItchEvent(kind, locate, 1000, 7, **fields).as_dict())

    async def send(ctx, raw):
        ctx.set(dut.i.payload.as_value(), raw)
        ctx.set(dut.i.valid, 1)
        await ctx.delay(1e-9)
        result = (ctx.get(dut.o.valid), ctx.get(dut.o.payload.kind), ctx.get(dut.o.payload.slot),
                  ctx.get(dut.filtered), ctx.get(dut.bound_now), ctx.get(dut.clear_now))
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        return result

    async def testbench(ctx):
        ctx.set(dut.o.ready, 1)
        cfg = [{"enable": 1, "by_symbol": 1, "symbol": aapl, "locate": 0},
               {"enable": 1, "by_symbol": 0, "locate": 7, "symbol": 0},
               {"enable": 1, "by_symbol": 0, "locate": 7, "symbol": 0},
               {"enable": 0, "by_symbol": 0, "locate": 9, "symbol": 0}]
        for n, c in enumerate(cfg):
            ctx.set(dut.cfg[n].as_value(), pack(SlotConfigLayout, c))
        await ctx.tick()
        add = {"order_ref": 5, "side": Side.SELL, "shares": 10, "price": 99}
        # Not bound yet: filtered. Then the R binds it.
        assert await send(ctx, event(EventKind.ADD, 13, **add)) == (0, BookOpKind.ADD, 0, 1, 0, 0)
        assert (await send(ctx, event(EventKind.DIRECTORY, 13, symbol=aapl)))[3:5] == (0, 1)
        assert (await send(ctx, event(EventKind.DIRECTORY, 14, symbol=symbol_int("MSFT"))))[3] \
            == 1
        assert ctx.get(dut.bound) == 0b0111 and ctx.get(dut.locates[0]) == 13
        valid, kind, slot, *_ = await send(ctx, event(EventKind.ADD_MPID, 13, **add))
        assert (valid, BookOpKind(kind), slot) == (1, BookOpKind.ADD, 0)
        # Two slots on one locate: the lower wins. A disabled slot never matches.
        valid, kind, slot, *_ = await send(ctx, event(EventKind.EXECUTE_PRICE, 7, order_ref=5))
        assert (valid, BookOpKind(kind), slot) == (1, BookOpKind.EXECUTE, 1)
        assert (await send(ctx, event(EventKind.DELETE, 9, order_ref=5)))[:1] == (0,)
        for event_kind, op in ((EventKind.CANCEL, BookOpKind.CANCEL),
                               (EventKind.REPLACE, BookOpKind.REPLACE),
                               (EventKind.TRADING_ACTION, BookOpKind.HALT)):
            assert BookOpKind((await send(ctx, event(event_kind, 7)))[1]) is op
        # S: clearing codes pass whatever the locate, others are filtered.
        assert (await send(ctx, event(EventKind.SYSTEM, 0, code=ord("O"))))[:2] == \
            (1, BookOpKind.CLEAR)
        assert (await send(ctx, event(EventKind.SYSTEM, 0, code=ord("Q"))))[3] == 1
        # Changing a symbol slot's configuration unbinds it.
        ctx.set(dut.cfg[0].symbol, symbol_int("MSFT"))
        await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.bound) & 1 == 0

    _run(dut, testbench)
