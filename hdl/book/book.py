"""The order book stage: ITCH events in, top-of-book updates out, for up to N instruments.

Twin of ``sim/book.py`` (:class:`sim.book.Books` with a :class:`sim.book_mirror.BookGeometry`):
the same updates, the same counters, the same refusals when a table runs out of room.

Structure::

    i -> InstrumentFilter -> OpQueue -> pipeline S0..S4 -> output FIFO -> o
                                         |  order table (SetTable, block RAM)
                                         |  level table (SetTable, block RAM, a region per side)
                                         |  level cache (LevelCache, distributed RAM + registers)
                                         +- refill and clear sequencers

Pipeline, one operation every other cycle (an operation enters at S0 only when S1 is empty):

- S0: the operation leaves the queue (or is injected: the add half of a replace, or a flags
  check); the order table is looked up by reference.
- S1: add: the level table is looked up by (slot, side, price).
- S2: order table result. Execute/cancel/delete/replace: the order is found, the shares taken
  (clamped to what remains), the order written back (or freed), and its level looked up.
  Replace: the add half is injected at S0 in this same cycle.
- S3: add: order and level results decide the add (refused when bad, duplicate, or a set is
  full), and both tables are written. Every operation: level cache phase A, whose combinational
  new head makes the top-of-book update, written into the output FIFO at the end of S3.
- S4: a reduced level is written back (freed at 0 shares); level cache phase B; the add half of
  a replace emits its update here, comparing the top with the one before the replace.

Every lookup sees the writes of the operations before it (``SetTable`` forwards them), so the
tables behave as if operations were done one at a time.

Refill. When a removal leaves a side with fewer than ``max(depth, 2)`` cached levels while levels
may exist outside the cache, the operation still completes with its update at the usual latency
(the new best level is known: the cache keeps at least one level then), and the next best level
is never searched for on the update's path. Instead the operation behind it waits before S3 while
the side's region of the level table is scanned for the levels worse than the cached worst: 3
cycles per set (read, compare, move on), and 2 per level inserted into the cache; a level that
could not enter the row any more is skipped. Worst case, every level of the region inserted:
``3 * level_sets + 2 * (level_sets - 1) * level_ways + 3`` cycles (1,203 with the defaults);
measured on a full region in ``tests/test_book.py``. The real AAPL capture needs 4 refills in
10,000 messages.

Clear. ``S`` with a clearing code (and the host's ``clear_book``, and reset) waits for the
pipeline to drain, empties the cleared slots' cached levels and emits an empty top for every
cleared slot that was not empty (one cycle per update, so the clear's updates leave within a few
cycles of the ``S``), then sweeps the order table (one set per cycle) and the cleared slots'
level regions: ``order_sets + 1`` cycles, during which events queue. A clear of every slot skips
the sweep when no order was added since the last such sweep (a flag outside the reset, set by
every add; the tables' initial contents are empty): the reset after configuration and a
start-of-day ``S`` on an empty book then take a few cycles. A reset after a run still sweeps
what the run left.
"""

from functools import reduce
from operator import xor

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hdl.book.filter import InstrumentFilter
from hdl.book.layout import (
    BookOpKind,
    LevelLayout,
    SlotConfigLayout,
    book_op_layout,
    depth_query_layout,
    level_entry_layout,
    order_entry_layout,
    slot_status_layout,
    top_update_layout,
    top_update_stream,
)
from hdl.book.level_cache import CacheOp, LevelCache
from hdl.book.op_queue import OpQueue
from hdl.book.set_table import SetTable, first_one
from hdl.feed.itch_event import ItchEventStream
from hdl.stats import COUNTER_WIDTH, count, stats_layout
from sim.book import BookStat
from sim.book_mirror import PRICE_BITS, REF_BITS, BookGeometry, fold_taps

__all__ = ["CLEAR_LATENCY", "EVENT_LATENCY", "Book"]

OUT_DEPTH = 4
#: Cycles from an event's transfer on ``i`` to its update on ``o`` (queue empty, ``o`` ready;
#: a replace takes 3 more).
EVENT_LATENCY = 4
#: Cycles from a clearing ``S``'s transfer on ``i`` to its first empty top on ``o``, the
#: pipeline and the queue empty.
CLEAR_LATENCY = 2


def _fold(value, width: int, bits: int):
    """The gateware of ``sim.book_mirror.fold_hash`` for a ``width``-bit value."""
    return Cat(*(reduce(xor, (value[j] for j in taps)) for taps in fold_taps(width, bits)))


def mersenne_mod(value, width: int, bits: int):
    """``value % (2**bits - 1)`` (``sim.book_mirror.level_hash``) for a ``width``-bit value.

    Since ``2**bits`` is 1 modulo ``2**bits - 1``, the ``bits``-wide chunks are summed (a
    balanced adder tree) and the sum folded onto itself until it fits; ``2**bits - 1`` itself is
    then 0.
    """
    top = (1 << bits) - 1
    terms = [(value[i:i + bits], min(top, (1 << (width - i)) - 1)) for i in range(0, width, bits)]
    while len(terms) > 1:
        paired = []
        for k in range(0, len(terms) - 1, 2):
            (a, amax), (b, bmax) = terms[k], terms[k + 1]
            paired.append((a + b, amax + bmax))
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    total, bound = terms[0]
    while bound > top:
        total = total[:bits] + total[bits:]
        bound = max((x & top) + (x >> bits) for x in range(bound + 1))
    return Mux(total == top, 0, total)[:bits]


def _is(kind, *kinds):
    """``kind`` (an enum view) is one of ``kinds``."""
    return reduce(lambda a, b: a | b, (kind == k for k in kinds))


class _RefillState(enum.Enum, shape=3):
    IDLE = 0
    WAIT = 1
    START = 2
    READ = 3
    SCAN = 4
    PICK = 5
    SETTLE = 6
    DONE = 7


class _ClearState(enum.Enum, shape=2):
    IDLE = 0
    SWEEP = 1
    EMIT = 2
    DONE = 3


class Book(wiring.Component):
    """Order books of up to ``geometry.slots`` instruments, and their top-of-book updates.

    Parameters
    ----------
    geometry : BookGeometry
        Table sizes (``sim.book_mirror``); the defaults hold 16,384 orders and 512 levels per
        side of 8 slots, cache 16 levels per side and publish 5.
    queue_depth : int
        Operations the input queue holds (block RAM; the default 512, about 9 ECP5 block RAMs,
        absorbs a worst-case refill while an event arrives every third cycle).
    drop_when_full : bool
        True (default): the input never stalls; an event arriving when the queue is full is
        dropped, counted (``OVERFLOW``) and marks its slot degraded (every slot for a clearing
        ``S``). False: ``i.ready`` falls while the queue is full.

    Ports
    -----
    i : In(ItchEventStream())
        Decoded ITCH events.
    o : Out(top_update_stream(slot_bits))
        A top-of-book update whenever a slot's best bid or ask (price or shares) or its halted or
        degraded flag changes; fields as ``sim.book.TopUpdate``, empty side price 0 shares 0.
        Updates not caused by an event (host actions, input overflow) carry seq 0, timestamp 0.
    cfg : In(ArrayLayout(SlotConfigLayout, slots))
        What each slot tracks (see ``InstrumentFilter``).
    clear_degraded, clear_book : In(slots)
        One-cycle strobes from the host: clear these slots' degraded flags; empty their books.
    status : Out(ArrayLayout(slot_status_layout(), slots))
        Each slot's binding, flags and top of book.
    q_addr : In(depth_query_layout), q_data : Out(LevelLayout)
        Depth read-out: level ``q_addr.level`` (0 best, up to ``depth - 1``) of a side, one
        cycle later; 0 for a level that does not exist. During a refill of that side, levels
        past the first ``depth - 1`` may show the refill in progress.
    busy : Out(1)
        A reset sweep, a clear or a refill is in progress.
    idle : Out(1)
        Nothing queued or in flight and no host request pending (the output FIFO may still
        hold updates).
    hazard : Out(1)
        Sticky; an operation reached S3 while the one there was held (cannot happen by design;
        a test checks that it stays low).
    stats : Out(stats_layout(BookStat))
        Counters, as ``sim.book.Books.stats``.

    Latency: 4 cycles (``EVENT_LATENCY``) from the event's transfer on ``i`` to its update on
    ``o`` (queue empty, ``o`` ready), 7 for a replace; a clear's first update 2 cycles
    (``CLEAR_LATENCY``) after its ``S``, measured in ``tests/test_book.py``. Throughput: one
    event every 2 cycles, a replace every 4; refills and clears stall the pipeline as stated
    above, and the queue absorbs the backlog.
    Bad input never stops the book: every refusal is counted (see ``BookStat``).
    """

    def __init__(self, geometry: BookGeometry | None = None, queue_depth: int = 512,
                 drop_when_full: bool = True):
        self.geometry = geometry = geometry or BookGeometry()
        self._queue_depth = queue_depth
        self._drop = drop_when_full
        self._slot_bits = geometry.slot_bits
        level_bits = max(1, (geometry.depth - 1).bit_length())
        n = geometry.slots
        super().__init__({
            "i": In(ItchEventStream()),
            "o": Out(top_update_stream(self._slot_bits)),
            "cfg": In(data.ArrayLayout(SlotConfigLayout, n)),
            "clear_degraded": In(n),
            "clear_book": In(n),
            "status": Out(data.ArrayLayout(slot_status_layout(), n)),
            "q_addr": In(depth_query_layout(self._slot_bits, level_bits)),
            "q_data": Out(LevelLayout),
            "busy": Out(1),
            "idle": Out(1),
            "stats": Out(stats_layout(BookStat)),
            "hazard": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        g = self.geometry
        n = g.slots
        slot_bits = self._slot_bits
        oset_bits = g.order_set_bits
        lset_bits = g.level_set_bits
        tag_bits = REF_BITS - oset_bits
        op_layout = book_op_layout(slot_bits)
        order_entry = order_entry_layout(tag_bits, slot_bits, lset_bits)
        level_entry = level_entry_layout()
        level_sets_total = 2 * n * g.level_sets
        stats = self.stats

        m.submodules.filter = filt = InstrumentFilter(n)
        m.submodules.queue = queue = OpQueue(op_layout, self._queue_depth, self._drop)
        m.submodules.orders = orders = SetTable(order_entry, "tag", g.order_sets, g.order_ways)
        m.submodules.levels = levels = SetTable(level_entry, "price", level_sets_total,
                                                g.level_ways)
        m.submodules.cache = cache = LevelCache(n, g.cache_levels, g.depth, g.refill_below)
        m.submodules.out = out = SyncFIFO(width=top_update_layout(slot_bits).size,
                                          depth=OUT_DEPTH)

        wiring.connect(m, wiring.flipped(self.i), filt.i)
        wiring.connect(m, filt.o, queue.i)
        m.d.comb += [
            filt.cfg.eq(self.cfg),
            self.o.valid.eq(out.r_rdy),
            self.o.payload.eq(out.r_data),
            out.r_en.eq(self.o.ready),
            cache.q_addr.eq(self.q_addr),
            self.q_data.eq(cache.q_data),
        ]

        def order_index(ref):
            return Cat(ref[:oset_bits]) ^ _fold(ref[oset_bits:], tag_bits, oset_bits)

        def level_index(slot, side, price):
            return Cat(mersenne_mod(price, PRICE_BITS, lset_bits), side, slot)

        # ---- Per-slot state --------------------------------------------------------------------
        halted = Signal(n)
        degraded = Signal(n)
        # (halted, degraded) as last emitted, per slot.
        last_flags = Array(Signal(2, name=f"last_flags_{s}") for s in range(n))
        flag_dirty = Signal(n)
        heads = cache.heads
        for s in range(n):
            st = self.status[s]
            m.d.comb += [
                st.bound.eq(filt.bound[s]),
                st.locate.eq(filt.locates[s]),
                st.halted.eq(halted[s]),
                st.degraded.eq(degraded[s]),
                st.bid_price.eq(heads[s][0].price),
                st.bid_shares.eq(heads[s][0].shares),
                st.ask_price.eq(heads[s][1].price),
                st.ask_shares.eq(heads[s][1].shares),
            ]

        # ---- Pipeline registers ----------------------------------------------------------------
        stage = data.StructLayout({
            "valid": 1, "op": op_layout, "second": 1, "oindex": oset_bits, "tag": tag_bits,
            "bad": 1, "lindex": levels.lk_index.shape(),
        })
        p1 = Signal(stage)
        p2 = Signal(stage)
        p3 = Signal(data.StructLayout({
            "valid": 1, "op": op_layout, "second": 1, "oindex": oset_bits, "tag": tag_bits,
            "bad": 1,
            "hit": 1, "dup": 1, "table_full": 1, "free_way": g.order_ways,
            "slot": slot_bits, "side": 1, "price": PRICE_BITS, "delta": 32, "over": 1,
            "lindex": levels.lk_index.shape(),
        }))
        top_layout = data.StructLayout({"bid": LevelLayout, "ask": LevelLayout})
        p4 = Signal(data.StructLayout({
            "valid": 1, "reduce": 1, "second": 1, "slot": slot_bits, "side": 1,
            "price": PRICE_BITS, "delta": 32, "lindex": levels.lk_index.shape(),
            "top": top_layout, "halted": 1, "degraded": 1, "seq": 64, "timestamp": 48,
        }))
        before_replace = Signal(top_layout)
        reserved = Signal(range(OUT_DEPTH + 1))

        refill_state = Signal(_RefillState)
        refill_req = Signal()
        refill_busy = Signal()
        m.d.comb += refill_busy.eq(refill_req | (refill_state != _RefillState.IDLE))
        clear_state = Signal(_ClearState)
        init_pending = Signal(init=1)
        # An order was added since the last sweep of every slot. Outside the reset, like the
        # tables themselves: a reset does not empty them, a sweep does.
        tables_dirty = Signal(reset_less=True)
        sweep_due = Signal()      # this clear sweeps the tables after its updates
        host_clear = Signal(n)
        m.d.comb += self.busy.eq(init_pending | (clear_state != _ClearState.IDLE) | refill_busy)

        # ---- S0: admission ---------------------------------------------------------------------
        second_pending = Signal()
        second = Signal(op_layout)  # the add half of a replace, waiting for admission
        is_reduce2 = _is(p2.op.kind, BookOpKind.EXECUTE, BookOpKind.CANCEL,
                                        BookOpKind.DELETE, BookOpKind.REPLACE)
        second_live = Signal()
        m.d.comb += second_live.eq(p2.valid & (p2.op.kind == BookOpKind.REPLACE) & orders.hit)
        live_second = Signal(op_layout)
        m.d.comb += [
            live_second.kind.eq(BookOpKind.ADD),
            live_second.slot.eq(orders.hit_entry.slot),
            live_second.side.eq(orders.hit_entry.side),
            live_second.order_ref.eq(p2.op.new_ref),
            live_second.shares.eq(p2.op.shares),
            live_second.price.eq(p2.op.price),
            live_second.seq.eq(p2.op.seq),
            live_second.timestamp.eq(p2.op.timestamp),
        ]
        head_is_clear = queue.o.valid & (queue.o.payload.kind == BookOpKind.CLEAR)
        can_admit = Signal()
        # A host clear request goes before any event still queued behind it.
        m.d.comb += can_admit.eq(~p1.valid & ~refill_busy & ~init_pending & ~host_clear.any() &
                                 (clear_state == _ClearState.IDLE) &
                                 (out.level + reserved < OUT_DEPTH))
        want_second = second_live | second_pending
        flag_pick = first_one(m, flag_dirty, "flag_pick")
        admit_second = can_admit & want_second
        admit_flags = can_admit & ~want_second & flag_dirty.any()
        admit_queue = can_admit & ~want_second & ~flag_dirty.any() & queue.o.valid & \
            ~head_is_clear
        admit = admit_second | admit_flags | admit_queue

        s0 = Signal(op_layout)
        with m.If(want_second):
            m.d.comb += s0.eq(Mux(second_pending, second, live_second))
        with m.Elif(flag_dirty.any()):
            m.d.comb += s0.kind.eq(BookOpKind.FLAGS)
            for s in range(n):
                with m.If(flag_pick[s]):
                    m.d.comb += s0.slot.eq(s)
        with m.Else():
            m.d.comb += s0.eq(queue.o.payload)
        with m.If(second_live & ~admit_second):
            m.d.sync += [second_pending.eq(1), second.eq(live_second)]
        with m.If(admit_second):
            m.d.sync += second_pending.eq(0)

        queue_pop = Signal()  # the clear sequencer pops a clearing S when it is done
        m.d.comb += queue.o.ready.eq(admit_queue | queue_pop)

        s0_has_ref = _is(s0.kind, BookOpKind.ADD, BookOpKind.EXECUTE, BookOpKind.CANCEL,
                                     BookOpKind.DELETE, BookOpKind.REPLACE)
        m.d.comb += [
            orders.lk_en.eq(admit & s0_has_ref),
            orders.lk_index.eq(order_index(s0.order_ref)),
            orders.lk_key.eq(s0.order_ref[oset_bits:]),
        ]
        m.d.sync += [
            p1.valid.eq(admit),
            p1.op.eq(s0),
            p1.second.eq(admit_second),
            p1.oindex.eq(order_index(s0.order_ref)),
            p1.tag.eq(s0.order_ref[oset_bits:]),
        ]

        # ---- S1 --------------------------------------------------------------------------------
        p1_add = p1.valid & (p1.op.kind == BookOpKind.ADD)
        lookup_add = Signal()
        m.d.comb += lookup_add.eq(p1_add)
        add_lindex = Signal.like(levels.lk_index)
        m.d.comb += add_lindex.eq(level_index(p1.op.slot, p1.op.side, p1.op.price))
        m.d.sync += [
            p2.eq(p1),
            p2.bad.eq((p1.op.shares == 0) | (p1.op.price == 0)),
            p2.lindex.eq(add_lindex),
        ]

        # ---- S2 --------------------------------------------------------------------------------
        entry = orders.hit_entry
        remaining = entry.shares
        whole = _is(p2.op.kind, BookOpKind.DELETE, BookOpKind.REPLACE)
        over = ~whole & (p2.op.shares > remaining)
        delta = Signal(32)
        m.d.comb += delta.eq(Mux(whole | over, remaining, p2.op.shares))
        left = Signal(32)
        m.d.comb += left.eq(remaining - delta)
        reduce_write = p2.valid & is_reduce2 & orders.hit
        kept = Signal(order_entry)
        m.d.comb += [kept.eq(entry), kept.shares.eq(left), kept.valid.eq(left != 0)]
        lookup_reduce = Signal()
        m.d.comb += lookup_reduce.eq(reduce_write)

        with m.If(lookup_add):
            m.d.comb += [
                levels.lk_en.eq(1),
                levels.lk_index.eq(add_lindex),
                levels.lk_key.eq(p1.op.price),
            ]
        with m.Elif(lookup_reduce):
            m.d.comb += [
                levels.lk_en.eq(1),
                levels.lk_index.eq(Cat(entry.lset, entry.side, entry.slot)),
                levels.lk_key.eq(entry.price),
            ]

        # p3 holds its operation while a refill runs (see the module docstring); nothing can be
        # behind it then, because nothing is admitted once the refill has been requested.
        go3 = Signal()
        m.d.comb += go3.eq(p3.valid & ~refill_busy)
        with m.If(~p3.valid | go3):
            m.d.sync += [
                p3.valid.eq(p2.valid),
                p3.op.eq(p2.op),
                p3.second.eq(p2.second),
                p3.oindex.eq(p2.oindex),
                p3.tag.eq(p2.tag),
                p3.bad.eq(p2.bad),
                p3.hit.eq(orders.hit),
                p3.dup.eq(orders.hit),
                p3.table_full.eq(~orders.any_free),
                p3.free_way.eq(orders.free_way),
                p3.slot.eq(Mux(is_reduce2 & orders.hit, entry.slot, p2.op.slot)),
                p3.side.eq(Mux(is_reduce2 & orders.hit, entry.side, p2.op.side)),
                p3.price.eq(Mux(is_reduce2, entry.price, p2.op.price)),
                p3.delta.eq(delta),
                p3.over.eq(over),
                p3.lindex.eq(Mux(is_reduce2, Cat(entry.lset, entry.side, entry.slot),
                                 p2.lindex)),
            ]
        with m.If(p3.valid & ~go3 & p2.valid):
            m.d.sync += self.hazard.eq(1)

        # ---- S3 --------------------------------------------------------------------------------
        kind3 = p3.op.kind
        is_add3 = kind3 == BookOpKind.ADD
        is_reduce3 = _is(kind3, BookOpKind.EXECUTE, BookOpKind.CANCEL, BookOpKind.DELETE,
                                   BookOpKind.REPLACE)
        level_full = ~levels.hit & ~levels.any_free
        # An add goes to the level cache on registered terms only and is withdrawn there
        # (``a_abort``) when the level table turns out full: the cache's compares then start at
        # registers rather than behind the level table's read and tag compare.
        add_try = Signal()
        add_ok = Signal()
        cache_abort = Signal()
        m.d.comb += [
            add_try.eq(is_add3 & ~p3.bad & ~p3.dup & ~p3.table_full),
            add_ok.eq(add_try & ~level_full),
            cache_abort.eq(add_try & level_full),
        ]
        degrade3 = is_add3 & ~p3.bad & ~p3.dup & (p3.table_full | level_full)
        reduce3 = is_reduce3 & p3.hit
        final3 = ~p3.second & ~((kind3 == BookOpKind.REPLACE) & p3.hit)
        slot3 = p3.slot
        side3 = p3.side

        cache_op = Signal(CacheOp)
        with m.If(go3 & add_try):
            m.d.comb += cache_op.eq(CacheOp.ADD)
        with m.Elif(go3 & reduce3):
            m.d.comb += cache_op.eq(CacheOp.REMOVE)

        halted_next = Mux(kind3 == BookOpKind.HALT, p3.op.halt, halted.bit_select(slot3, 1))
        degraded_next = degraded.bit_select(slot3, 1) | degrade3
        flags_next = Cat(halted_next, degraded_next)
        flags_changed = flags_next != last_flags[slot3]
        top3 = Signal(top_layout)
        m.d.comb += [top3.bid.eq(heads[slot3][0]), top3.ask.eq(heads[slot3][1])]
        cache_applied = (cache_op != CacheOp.NONE) & ~cache_abort
        with m.If(cache_applied):
            with m.If(side3 == 0):
                m.d.comb += top3.bid.eq(cache.new_head)
            with m.Else():
                m.d.comb += top3.ask.eq(cache.new_head)
        top_changed = cache_applied & cache.changed
        emit3 = Signal()
        m.d.comb += emit3.eq(go3 & final3 & (top_changed | flags_changed))

        with m.If(go3 & (kind3 == BookOpKind.REPLACE) & p3.hit):
            m.d.sync += [before_replace.bid.eq(heads[slot3][0]),
                         before_replace.ask.eq(heads[slot3][1])]
        with m.If(go3 & (kind3 == BookOpKind.HALT)):
            m.d.sync += halted.bit_select(slot3, 1).eq(p3.op.halt)

        # Order and level writes of an accepted add.
        order_wr_add = go3 & add_ok
        new_order = Signal(order_entry)
        m.d.comb += [
            new_order.valid.eq(1), new_order.tag.eq(p3.tag), new_order.slot.eq(p3.op.slot),
            new_order.side.eq(p3.op.side), new_order.price.eq(p3.op.price),
            new_order.shares.eq(p3.op.shares), new_order.lset.eq(p3.lindex[:lset_bits]),
        ]
        new_level = Signal(level_entry)
        m.d.comb += [
            new_level.valid.eq(1), new_level.price.eq(p3.op.price),
            new_level.shares.eq(Mux(levels.hit, levels.hit_entry.shares + p3.op.shares,
                                    p3.op.shares)),
        ]

        m.d.sync += [
            p4.valid.eq(go3),
            p4.reduce.eq(reduce3),
            p4.second.eq(p3.second),
            p4.slot.eq(slot3),
            p4.side.eq(side3),
            p4.price.eq(p3.price),
            p4.delta.eq(p3.delta),
            p4.lindex.eq(p3.lindex),
            p4.top.eq(top3),
            p4.halted.eq(halted_next),
            p4.degraded.eq(degraded_next),
            p4.seq.eq(p3.op.seq),
            p4.timestamp.eq(p3.op.timestamp),
        ]
        with m.If(go3 & cache.refill):
            m.d.sync += refill_req.eq(1)

        # ---- S4 --------------------------------------------------------------------------------
        lvl = levels.hit_entry
        lvl_left = Signal(lvl.shares.shape())
        m.d.comb += lvl_left.eq(lvl.shares - p4.delta)
        reduced_level = Signal(level_entry)
        m.d.comb += [reduced_level.eq(lvl), reduced_level.shares.eq(lvl_left),
                     reduced_level.valid.eq(lvl_left != 0)]
        level_wr_reduce = p4.valid & p4.reduce & levels.hit
        flags4_changed = Cat(p4.halted, p4.degraded) != last_flags[p4.slot]
        emit4 = Signal()
        m.d.comb += emit4.eq(p4.valid & p4.second &
                             ((p4.top.as_value() != before_replace.as_value()) | flags4_changed))

        # ---- Table write ports -----------------------------------------------------------------
        sweep_index = Signal(range(max(g.order_sets, level_sets_total) + 2))
        sweep_on = clear_state == _ClearState.SWEEP
        sweep_mask = Signal(n)
        sweep_prev = Signal(oset_bits)
        sweep_prev_valid = Signal()
        with m.If(reduce_write):
            m.d.comb += [orders.wr_en.eq(orders.match), orders.wr_index.eq(p2.oindex),
                         orders.wr_data.eq(kept)]
        with m.Elif(order_wr_add):
            m.d.comb += [orders.wr_en.eq(p3.free_way), orders.wr_index.eq(p3.oindex),
                         orders.wr_data.eq(new_order)]
        with m.Elif(sweep_on & sweep_prev_valid):
            # Clearing every slot (reset, S) frees every way, whatever it holds: after a reset
            # the table holds what the last run left there.
            everything = sweep_mask.all()
            doomed = Cat(everything | (e.valid & sweep_mask.bit_select(e.slot, 1))
                         for e in orders.sc_data)
            m.d.comb += [orders.wr_en.eq(doomed), orders.wr_index.eq(sweep_prev)]
        with m.If(order_wr_add):
            m.d.sync += tables_dirty.eq(1)
            m.d.comb += [levels.wr_en.eq(Mux(levels.hit, levels.match, levels.free_way)),
                         levels.wr_index.eq(p3.lindex), levels.wr_data.eq(new_level)]
        with m.Elif(level_wr_reduce):
            m.d.comb += [levels.wr_en.eq(levels.match), levels.wr_index.eq(p4.lindex),
                         levels.wr_data.eq(reduced_level)]
        with m.Elif(sweep_on & (sweep_index < level_sets_total)):
            region_slot = sweep_index[lset_bits + 1:lset_bits + 1 + slot_bits]
            with m.If(sweep_mask.bit_select(region_slot, 1)):
                m.d.comb += levels.wr_en.eq(Const(-1, g.level_ways))
            m.d.comb += levels.wr_index.eq(sweep_index)

        # ---- Output ----------------------------------------------------------------------------
        out_payload = Signal(top_update_layout(slot_bits))
        clear_emit = Signal()
        clear_slot = Signal(slot_bits)
        clear_seq = Signal(64)
        clear_timestamp = Signal(48)
        with m.If(emit3):
            m.d.comb += [
                out_payload.slot.eq(slot3),
                out_payload.locate.eq(filt.locates[slot3]),
                out_payload.bid_price.eq(top3.bid.price),
                out_payload.bid_shares.eq(top3.bid.shares),
                out_payload.ask_price.eq(top3.ask.price),
                out_payload.ask_shares.eq(top3.ask.shares),
                out_payload.seq.eq(p3.op.seq),
                out_payload.timestamp.eq(p3.op.timestamp),
                out_payload.halted.eq(halted_next),
                out_payload.degraded.eq(degraded_next),
            ]
            m.d.sync += last_flags[slot3].eq(flags_next)
        with m.Elif(emit4):
            m.d.comb += [
                out_payload.slot.eq(p4.slot),
                out_payload.locate.eq(filt.locates[p4.slot]),
                out_payload.bid_price.eq(p4.top.bid.price),
                out_payload.bid_shares.eq(p4.top.bid.shares),
                out_payload.ask_price.eq(p4.top.ask.price),
                out_payload.ask_shares.eq(p4.top.ask.shares),
                out_payload.seq.eq(p4.seq),
                out_payload.timestamp.eq(p4.timestamp),
                out_payload.halted.eq(p4.halted),
                out_payload.degraded.eq(p4.degraded),
            ]
            m.d.sync += last_flags[p4.slot].eq(Cat(p4.halted, p4.degraded))
        with m.Elif(clear_emit):
            m.d.comb += [
                out_payload.slot.eq(clear_slot),
                out_payload.locate.eq(filt.locates[clear_slot]),
                out_payload.seq.eq(clear_seq),
                out_payload.timestamp.eq(clear_timestamp),
                out_payload.halted.eq(halted.bit_select(clear_slot, 1)),
                out_payload.degraded.eq(degraded.bit_select(clear_slot, 1)),
            ]
            m.d.sync += last_flags[clear_slot].eq(
                Cat(halted.bit_select(clear_slot, 1), degraded.bit_select(clear_slot, 1)))
        m.d.comb += [
            out.w_data.eq(out_payload),
            out.w_en.eq(emit3 | emit4 | clear_emit),
        ]

        # ---- Refill sequencer ------------------------------------------------------------------
        refill_slot = Signal(slot_bits)
        refill_side = Signal()
        refill_worst = Signal(PRICE_BITS)
        refill_set = Signal(range(g.level_sets))
        candidates = Signal(g.level_ways)
        with m.If(go3 & cache.refill):
            m.d.sync += [refill_slot.eq(slot3), refill_side.eq(side3)]
        scan_data = levels.sc_data
        worse = Cat(Mux(refill_side == 0, e.price < refill_worst, e.price > refill_worst) & e.valid
                    for e in scan_data)
        pick = first_one(m, candidates, "refill_pick")
        picked = Signal(level_entry)
        for w in range(g.level_ways):
            with m.If(pick[w]):
                m.d.comb += picked.eq(scan_data[w])
        refilling = refill_state != _RefillState.IDLE
        with m.Switch(refill_state):
            with m.Case(_RefillState.IDLE):
                with m.If(refill_req):
                    m.d.sync += refill_state.eq(_RefillState.WAIT)
            with m.Case(_RefillState.WAIT):
                with m.If(~p1.valid & ~p2.valid & ~p4.valid):
                    m.d.sync += refill_state.eq(_RefillState.START)
            with m.Case(_RefillState.START):
                m.d.comb += cache.fill_start.eq(1)
                m.d.sync += [refill_worst.eq(cache.worst), refill_set.eq(0),
                             refill_state.eq(_RefillState.READ)]
            with m.Case(_RefillState.READ):
                m.d.comb += [levels.sc_en.eq(1),
                             levels.sc_index.eq(Cat(refill_set, refill_side, refill_slot))]
                m.d.sync += refill_state.eq(_RefillState.SCAN)
            with m.Case(_RefillState.SCAN):
                # A level that could not enter the row now (full, and not better than its worst)
                # never will: skip it here instead of spending two cycles on an insert.
                useful = Cat(Mux(refill_side == 0, e.price > cache.worst, e.price < cache.worst)
                             | ~cache.full for e in scan_data)
                m.d.comb += cache.fill_skipped.eq((worse & ~useful).any())
                m.d.sync += [candidates.eq(worse & useful), refill_state.eq(_RefillState.PICK)]
            with m.Case(_RefillState.PICK):
                with m.If(candidates.any()):
                    m.d.comb += cache_insert(cache, picked)
                    m.d.sync += [candidates.eq(candidates & ~pick),
                                 refill_state.eq(_RefillState.SETTLE)]
                with m.Elif(refill_set == g.level_sets - 1):
                    m.d.sync += refill_state.eq(_RefillState.DONE)
                with m.Else():
                    m.d.sync += [refill_set.eq(refill_set + 1),
                                 refill_state.eq(_RefillState.READ)]
            with m.Case(_RefillState.SETTLE):
                m.d.sync += refill_state.eq(_RefillState.PICK)
            with m.Case(_RefillState.DONE):
                m.d.comb += cache.fill_end.eq(1)
                m.d.sync += [refill_req.eq(0), refill_state.eq(_RefillState.IDLE)]

        with m.If(refilling):
            m.d.comb += [cache.a_slot.eq(refill_slot), cache.a_side.eq(refill_side)]
        with m.Else():
            m.d.comb += [
                cache.a_op.eq(cache_op),
                cache.a_slot.eq(slot3),
                cache.a_side.eq(side3),
                cache.a_price.eq(p3.price),
                cache.a_qty.eq(Mux(add_try, p3.op.shares, p3.delta)),
                cache.a_abort.eq(cache_abort),
            ]

        # ---- Clear sequencer -------------------------------------------------------------------
        drained = ~p1.valid & ~p2.valid & ~p3.valid & ~p4.valid & ~second_pending & \
            ~refill_busy & (reserved == 0)
        emit_mask = Signal(n)
        clear_pop = Signal()
        emit_pick = first_one(m, emit_mask, "emit_pick")
        nonempty = Cat((heads[s][0].shares != 0) | (heads[s][1].shares != 0) for s in range(n))
        sweep_end = max(g.order_sets + 1, level_sets_total)
        start_host = Signal()
        m.d.comb += start_host.eq((clear_state == _ClearState.IDLE) & ~init_pending & drained &
                                  host_clear.any())
        with m.Switch(clear_state):
            with m.Case(_ClearState.IDLE):
                start = Signal()
                mask = Signal(n)
                with m.If(init_pending):
                    m.d.comb += [start.eq(1), mask.eq(Const(-1, n))]
                with m.Elif(start_host):
                    m.d.comb += [start.eq(1), mask.eq(host_clear)]
                    m.d.sync += [emit_mask.eq(host_clear & nonempty), clear_seq.eq(0),
                                 clear_timestamp.eq(0), clear_pop.eq(0)]
                with m.Elif(drained & head_is_clear & ~flag_dirty.any()):
                    m.d.comb += [start.eq(1), mask.eq(Const(-1, n))]
                    m.d.sync += [emit_mask.eq(nonempty), clear_seq.eq(queue.o.payload.seq),
                                 clear_timestamp.eq(queue.o.payload.timestamp),
                                 clear_pop.eq(1)]
                with m.If(start):
                    # The cache, hence the top of book, is empty from here on: the empty tops
                    # go out first, and the tables are swept behind them.
                    m.d.comb += cache.clear.eq(mask)
                    m.d.sync += [sweep_mask.eq(mask), sweep_index.eq(0),
                                 sweep_prev_valid.eq(0), clear_state.eq(_ClearState.EMIT),
                                 # Nothing to sweep: the tables are as the last whole sweep
                                 # left them.
                                 sweep_due.eq(~mask.all() | tables_dirty)]
            with m.Case(_ClearState.EMIT):
                with m.If(emit_mask.any()):
                    with m.If(out.w_rdy):
                        m.d.comb += clear_emit.eq(1)
                        m.d.sync += emit_mask.eq(emit_mask & ~emit_pick)
                with m.Elif(sweep_due):
                    m.d.sync += clear_state.eq(_ClearState.SWEEP)
                with m.Else():
                    m.d.sync += clear_state.eq(_ClearState.DONE)
            with m.Case(_ClearState.SWEEP):
                with m.If(sweep_index < g.order_sets):
                    m.d.comb += [orders.sc_en.eq(1), orders.sc_index.eq(sweep_index)]
                m.d.sync += [sweep_index.eq(sweep_index + 1),
                             sweep_prev.eq(sweep_index),
                             sweep_prev_valid.eq(sweep_index < g.order_sets)]
                with m.If(sweep_index == sweep_end):
                    m.d.sync += clear_state.eq(_ClearState.DONE)
                    with m.If(sweep_mask.all()):
                        m.d.sync += tables_dirty.eq(0)
            with m.Case(_ClearState.DONE):
                m.d.comb += queue_pop.eq(clear_pop & ~init_pending)
                m.d.sync += [init_pending.eq(0), clear_state.eq(_ClearState.IDLE)]
        for s in range(n):
            with m.If(emit_pick[s]):
                m.d.comb += clear_slot.eq(s)

        m.d.comb += self.idle.eq(drained & (queue.level == 0) & ~flag_dirty.any() &
                                 ~host_clear.any() & ~init_pending &
                                 (clear_state == _ClearState.IDLE))

        # ---- Flags set outside the event stream ------------------------------------------------
        overflow_slots = Signal(n)
        dropped = queue.dropped
        with m.If(queue.overflow):
            with m.If(dropped.kind == BookOpKind.CLEAR):
                m.d.comb += overflow_slots.eq(Const(-1, n))
            with m.Else():
                m.d.comb += overflow_slots.eq(1 << dropped.slot)
        set_degraded = Signal(n)
        with m.If(go3 & degrade3):
            m.d.comb += set_degraded.eq(1 << slot3)
        m.d.sync += [
            degraded.eq((degraded & ~self.clear_degraded) | set_degraded | overflow_slots),
            flag_dirty.eq((flag_dirty & ~Mux(admit_flags, flag_pick, 0)) |
                          self.clear_degraded | overflow_slots),
            host_clear.eq(host_clear | self.clear_book),
        ]
        with m.If(start_host):
            m.d.sync += host_clear.eq(self.clear_book)

        # ---- Output credits ----------------------------------------------------------------------
        # An operation holds a place in the output FIFO from admission until it has passed the
        # point where it emits (S3, or S4 for the add half of a replace), so S3/S4 never find
        # the FIFO full and never stall.
        release = Signal(2)
        m.d.comb += release.eq((go3 & ~p3.second) + (p4.valid & p4.second))
        m.d.sync += reserved.eq(reserved + admit - release)

        # ---- Counters --------------------------------------------------------------------------
        # One register per counter, copied to the port: a single wide register updated field by
        # field simulates very slowly in event-driven simulators.
        counters = {member.name: Signal(COUNTER_WIDTH, name=f"count_{member.name.lower()}")
                    for member in BookStat}
        for name, counter in counters.items():
            m.d.comb += getattr(stats, name.lower()).eq(counter)

        def stat(name):
            return counters[name]

        count(m, stat("EVENTS"), self.i.valid & self.i.ready)
        count(m, stat("FILTERED"), filt.filtered)
        count(m, stat("BOUND"), filt.bound_now)
        count(m, stat("CLEARS"), filt.clear_now & filt.o.ready)
        count(m, stat("OVERFLOW"), queue.overflow)
        count(m, stat("UNKNOWN_REF"), go3 & is_reduce3 & ~p3.hit)
        count(m, stat("OVER_EXECUTE"), go3 & (kind3 == BookOpKind.EXECUTE) & p3.hit & p3.over)
        count(m, stat("OVER_CANCEL"), go3 & (kind3 == BookOpKind.CANCEL) & p3.hit & p3.over)
        count(m, stat("BAD_ORDER"), go3 & is_add3 & p3.bad)
        count(m, stat("DUPLICATE_REF"), go3 & is_add3 & ~p3.bad & p3.dup)
        count(m, stat("TABLE_FULL"), go3 & is_add3 & ~p3.bad & ~p3.dup & p3.table_full)
        count(m, stat("LEVEL_FULL"),
              go3 & is_add3 & ~p3.bad & ~p3.dup & ~p3.table_full & level_full)
        count(m, stat("REFILLS"), refill_state == _RefillState.START)
        count(m, stat("UPDATES"), out.w_en & out.w_rdy)
        return m


def cache_insert(cache, level):
    return [cache.a_op.eq(CacheOp.INSERT), cache.a_price.eq(level.price),
            cache.a_qty.eq(level.shares)]
