"""The level cache: the best levels of every book side, kept sorted, and the top of book.

Each tracked slot has two sides; each side keeps its best ``size`` (``L``) price levels, best
first, in one row of distributed RAM, plus a count, an *uncached* flag (a level may exist outside
the row) and its head (the best level) in registers. The rules are those of
``sim.book_mirror.CacheMirror``; the level table holds every level, and when a removal leaves a
side with fewer than ``refill_below`` cached levels while the flag is set, the book refills the row
from the table (the refill's candidates go in through :data:`CacheOp.INSERT`).

An operation takes two cycles. In the first (*phase A*, combinational) the row is read and its
prices compared with the operation's price; the new head, and whether it changed, are outputs of
that same cycle, which is what keeps the book's latency short. In the second (*phase B*) the new
row, count, flag and head are computed and written. A new operation may start every other cycle.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.book.layout import LevelLayout, depth_query_layout
from sim.book import LEVEL_SHARES_BITS
from sim.book_mirror import PRICE_BITS

__all__ = ["CacheOp", "LevelCache"]


class CacheOp(enum.Enum, shape=2):
    NONE = 0
    ADD = 1      # an order added shares at a price (a new level or an existing one)
    REMOVE = 2   # an order's shares left a price (``qty`` of them)
    INSERT = 3   # refill: a level from the table, worse than every cached level


class LevelCache(wiring.Component):
    """Sorted best levels of ``2 * slots`` book sides.

    Parameters
    ----------
    slots : int
        Tracked slots (a power of two).
    size : int
        Levels cached per side (``L``).
    depth : int
        Levels per side readable by the host (``K <= L``).
    refill_below : int
        A removal leaving fewer cached levels than this, with the side's uncached flag set,
        raises ``refill``.

    Ports
    -----
    a_op, a_slot, a_side, a_price, a_qty : In
        An operation, in its phase A cycle (``a_op`` NONE: none). Never in two consecutive
        cycles. ``a_slot``/``a_side`` also select the side that ``worst`` reports.
    a_abort : In(1)
        Withdraw the phase A operation: phase B writes nothing. Only registered, so it may be
        decided late in the phase A cycle (the book starts an add before it knows whether the
        level table has room, and withdraws it when it has not); ``new_head`` and ``changed``
        are then to be ignored.
    new_head : Out(LevelLayout)
        The operation's side's best level once the operation is applied (price 0, shares 0 when
        empty); same cycle.
    changed : Out(1)
        That best level differs from the current one.
    refill : Out(1)
        The operation leaves its side short of cached levels while more may exist.
    worst : Out(PRICE_BITS)
        Price of the worst cached level of the selected side.
    full : Out(1)
        The selected side caches ``size`` levels.
    fill_start, fill_end : In(1)
        Bracket a refill of the selected side: ``fill_end`` sets the side's uncached flag when
        some ``INSERT`` in between found the row full, or ``fill_skipped`` was raised (the refill
        left out a level that could not have entered the full row).
    clear : In(slots)
        Empty both sides of these slots (at the end of this cycle).
    heads : Out(ArrayLayout(ArrayLayout(LevelLayout, 2), slots))
        Best bid (index 0) and ask (index 1) of every slot; updated in phase B.
    counts : Out(ArrayLayout(range(size + 1), 2 * slots))
        Cached levels per side (index ``2 * slot + side``).
    q_addr : In(depth_query_layout)
    q_data : Out(LevelLayout)
        Host read-out: level ``q_addr.level`` (0 best) of a side, one cycle after ``q_addr``;
        0 beyond the cached levels or beyond ``depth``.

    Latency: ``new_head``/``changed``/``refill`` combinational from the phase A inputs; the state
    is updated at the end of the next cycle. Prices compare as unsigned integers.
    """

    def __init__(self, slots: int, size: int, depth: int, refill_below: int):
        if not 2 <= refill_below < size or not 1 <= depth <= size:
            raise ValueError("need 2 <= refill_below < size and 1 <= depth <= size")
        self._slots = slots
        self._slot_bits = max(1, (slots - 1).bit_length())
        self._size = size
        self._depth = depth
        self._refill_below = refill_below
        level_bits = max(1, (depth - 1).bit_length())
        super().__init__({
            "a_op": In(CacheOp),
            "a_slot": In(self._slot_bits),
            "a_side": In(1),
            "a_price": In(PRICE_BITS),
            "a_qty": In(LEVEL_SHARES_BITS),
            "a_abort": In(1),
            "new_head": Out(LevelLayout),
            "changed": Out(1),
            "refill": Out(1),
            "worst": Out(PRICE_BITS),
            "full": Out(1),
            "fill_start": In(1),
            "fill_skipped": In(1),
            "fill_end": In(1),
            "clear": In(slots),
            "heads": Out(data.ArrayLayout(data.ArrayLayout(LevelLayout, 2), slots)),
            "counts": Out(data.ArrayLayout(range(size + 1), 2 * slots)),
            "q_addr": In(depth_query_layout(self._slot_bits, level_bits)),
            "q_data": Out(LevelLayout),
        })

    def elaborate(self, platform):
        m = Module()
        n_rows = 2 * self._slots
        size, depth = self._size, self._depth
        row_layout = data.ArrayLayout(LevelLayout, size)

        m.submodules.rows = rows = Memory(shape=row_layout, depth=n_rows, init=[])
        rd = rows.read_port(domain="comb")
        wr = rows.write_port()
        m.submodules.host_rows = host_rows = Memory(
            shape=data.ArrayLayout(LevelLayout, depth), depth=n_rows, init=[])
        host_rd = host_rows.read_port()
        host_wr = host_rows.write_port()

        # One small register per side rather than wide vectors indexed by address: state is
        # written one side at a time, and event-driven simulators re-evaluate a wide vector's
        # whole next-state logic on every change of any of its inputs.
        flags = [Signal(name=f"uncached_{r}") for r in range(n_rows)]
        heads = [Signal(LevelLayout, name=f"head_{r}") for r in range(n_rows)]
        counts = [Signal(range(size + 1), name=f"count_{r}") for r in range(n_rows)]
        for s in range(self._slots):
            for side in range(2):
                m.d.comb += self.heads[s][side].eq(heads[2 * s + side])
        for r in range(n_rows):
            m.d.comb += self.counts[r].eq(counts[r])
        flag_of = Array(flags)
        head_of = Array(heads)
        count_of = Array(counts)

        # Phase B registers.
        b_valid = Signal()        # phase B of an operation (its row is read at b_addr)
        b_write = Signal()        # ... that was not withdrawn
        b_op = Signal(CacheOp)
        b_addr = Signal(range(n_rows))
        b_price = Signal(PRICE_BITS)
        b_qty = Signal(LEVEL_SHARES_BITS)
        b_match = Signal(size)
        b_better = Signal(size)
        b_append = Signal()
        b_insert = Signal()
        b_removal = Signal()
        b_update = Signal()
        b_count = Signal(range(size + 1))
        b_not_cached = Signal()

        a_addr = Signal(range(n_rows))
        m.d.comb += [
            a_addr.eq(Cat(self.a_side, self.a_slot)),
            rd.addr.eq(Mux(b_valid, b_addr, a_addr)),
        ]
        row = rd.data

        # ---- Phase A ---------------------------------------------------------------------------
        count = Signal(range(size + 1))
        flag = Signal()
        m.d.comb += [count.eq(count_of[a_addr]), flag.eq(flag_of[a_addr])]
        price, qty = self.a_price, self.a_qty
        bid = self.a_side == 0
        is_add = self.a_op == CacheOp.ADD
        is_insert = self.a_op == CacheOp.INSERT
        is_remove = self.a_op == CacheOp.REMOVE

        valid = Signal(size)
        match = Signal(size)
        better = Signal(size)
        zero = Signal(size)
        for i in range(size):
            entry = row[i]
            m.d.comb += [
                valid[i].eq(count > i),
                match[i].eq(valid[i] & (entry.price == price)),
                better[i].eq(valid[i] & Mux(bid, price > entry.price, price < entry.price)),
                zero[i].eq(entry.shares == qty),
            ]
        full = count == size
        placing = is_add | is_insert
        append = Signal()
        insert = Signal()
        removal = Signal()
        update = Signal()
        not_cached = Signal()
        m.d.comb += [
            append.eq(placing & ~match.any() & ~better.any() & ~full & (is_insert | ~flag)),
            insert.eq(placing & ~match.any() & better.any()),
            removal.eq(is_remove & (match & zero).any()),
            update.eq((is_add | is_remove) & match.any() & ~removal),
            not_cached.eq(is_add & ~match.any() & ~better.any() & ~append),
        ]

        head = head_of[a_addr]
        head0_new = (insert & better[0]) | (append & (count == 0))
        with m.If(head0_new):
            m.d.comb += [self.new_head.price.eq(price), self.new_head.shares.eq(qty)]
        with m.Elif(match[0] & is_add):
            m.d.comb += [self.new_head.price.eq(price),
                         self.new_head.shares.eq(row[0].shares + qty)]
        with m.Elif(match[0] & removal):
            with m.If(count >= 2):
                m.d.comb += self.new_head.eq(row[1])
        with m.Elif(match[0] & is_remove):
            m.d.comb += [self.new_head.price.eq(price),
                         self.new_head.shares.eq(row[0].shares - qty)]
        with m.Else():
            m.d.comb += self.new_head.eq(head)
        m.d.comb += [
            self.changed.eq(head0_new | (match[0] & (is_add | is_remove) & (qty != 0))),
            self.refill.eq(removal & (count <= self._refill_below) & flag),
        ]
        worst = Const(0, PRICE_BITS)
        for i in range(size):
            worst = Mux(count == i + 1, row[i].price, worst)
        m.d.comb += [self.worst.eq(worst), self.full.eq(full)]

        m.d.sync += [b_valid.eq(self.a_op != CacheOp.NONE),
                     b_write.eq((self.a_op != CacheOp.NONE) & ~self.a_abort)]
        with m.If(self.a_op != CacheOp.NONE):
            m.d.sync += [
                b_op.eq(self.a_op), b_addr.eq(a_addr), b_price.eq(price), b_qty.eq(qty),
                b_match.eq(match), b_better.eq(better), b_append.eq(append),
                b_insert.eq(insert), b_removal.eq(removal), b_update.eq(update),
                b_count.eq(count), b_not_cached.eq(not_cached),
            ]

        # ---- Phase B ---------------------------------------------------------------------------
        subtract = b_op == CacheOp.REMOVE
        first_better = b_better & ~(b_better << 1)
        after_insert = (b_better << 1)[:size]
        from_removal = Signal(size)
        for i in range(size):
            m.d.comb += from_removal[i].eq(b_match[:i + 1].any())
        new_level = Signal(LevelLayout)
        m.d.comb += [new_level.price.eq(b_price), new_level.shares.eq(b_qty)]
        new_entries = []
        for i in range(size):
            here = row[i]
            entry = Signal(LevelLayout, name=f"new_entry_{i}")
            new_entries.append(entry)
            shares = Mux(subtract, here.shares - b_qty, here.shares + b_qty)
            with m.If((b_insert & first_better[i]) | (b_append & (b_count == i))):
                m.d.comb += entry.eq(new_level)
            if i > 0:
                with m.Elif(b_insert & after_insert[i]):
                    m.d.comb += entry.eq(row[i - 1])
            if i + 1 < size:
                with m.Elif(b_removal & from_removal[i]):
                    m.d.comb += entry.eq(row[i + 1])
            with m.Elif(b_update & b_match[i]):
                m.d.comb += [entry.price.eq(here.price), entry.shares.eq(shares)]
            with m.Else():
                m.d.comb += entry.eq(here)
        new_row = Cat(*new_entries)
        b_full = b_count == size
        new_count = Signal(range(size + 1))
        m.d.comb += new_count.eq(b_count + (b_insert & ~b_full) + b_append - b_removal)

        fill_overflow = Signal()
        m.d.comb += [
            wr.addr.eq(b_addr),
            wr.data.eq(new_row),
            wr.en.eq(b_write),
            host_wr.addr.eq(b_addr),
            host_wr.data.eq(new_row[:depth * LevelLayout.size]),
            host_wr.en.eq(b_write),
        ]
        for r in range(n_rows):
            here_b = b_write & (b_addr == r)
            with m.If(here_b):
                m.d.sync += [counts[r].eq(new_count),
                             heads[r].eq(Mux(new_count == 0, 0, new_entries[0].as_value()))]
                with m.If((b_op == CacheOp.ADD) & ((b_insert & b_full) | b_not_cached)):
                    m.d.sync += flags[r].eq(1)
            with m.If(self.fill_end & (a_addr == r)):
                m.d.sync += flags[r].eq(fill_overflow)
            with m.If(self.clear[r // 2]):
                m.d.sync += [counts[r].eq(0), flags[r].eq(0), heads[r].eq(0)]
        with m.If(b_write & (b_op == CacheOp.INSERT) & b_full):
            m.d.sync += fill_overflow.eq(1)
        with m.If(self.fill_skipped):
            m.d.sync += fill_overflow.eq(1)
        with m.If(self.fill_start):
            m.d.sync += fill_overflow.eq(0)

        # ---- Host read-out ---------------------------------------------------------------------
        q_level = Signal.like(self.q_addr.level)
        q_valid = Signal()
        q_addr = Cat(self.q_addr.side, self.q_addr.slot)
        m.d.comb += host_rd.addr.eq(q_addr)
        m.d.sync += [
            q_level.eq(self.q_addr.level),
            q_valid.eq((self.q_addr.level < count_of[q_addr]) & (self.q_addr.level < depth)),
        ]
        with m.If(q_valid):
            for k in range(depth):
                with m.If(q_level == k):
                    m.d.comb += self.q_data.eq(host_rd.data[k])
        return m
