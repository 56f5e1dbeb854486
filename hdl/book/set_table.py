"""A set-associative table in block RAM whose lookups see every write made before they complete.

The book keeps its orders and its price levels in two of these. A lookup reads one set (all its
ways at once) and compares every way's key; the book then decides and writes back one way a cycle
or two later. Several lookups are in flight at once, so a lookup can read a set that an earlier
operation writes in the same cycle, or one cycle later; the table forwards those writes into the
lookup's result, so that its user may treat every lookup as if the operations before it had
completed.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["SetTable", "first_one"]


def first_one(m: Module, bits, name: str):
    """One-hot of the lowest set bit of ``bits`` (all zero when none)."""
    out = Signal(len(bits), name=name)
    m.d.comb += out.eq(bits & (~bits + 1))
    return out


class SetTable(wiring.Component):
    """``sets`` sets of ``ways`` entries, looked up by set index and key.

    Parameters
    ----------
    entry : data.StructLayout
        Entry layout; it must have a 1-bit ``valid`` field and the field named by ``key``.
    key : str
        The field a lookup compares.
    sets, ways : int
        Geometry (``sets`` a power of two).

    Ports
    -----
    lk_en, lk_index, lk_key : In
        A lookup in cycle ``t``. Its result appears on ``match``, ``free``, ``entries``, ``hit``,
        ``hit_entry``, ``free_way`` and ``any_free`` from cycle ``t + 2`` and stays until the
        result of the next lookup replaces it. It reflects every write enabled in cycle ``t + 1``
        or earlier; the user must not write the set between ``t + 2`` and its own use of the
        result (the book's pipeline never does).
    match : Out(ways)
        Ways holding a valid entry whose key equals ``lk_key``.
    free : Out(ways)
        Ways not holding a valid entry.
    entries : Out(ArrayLayout(entry, ways))
        The set's entries.
    hit, hit_entry : Out
        Some way matched, and that way's entry (keys are unique within a set, so at most one).
    free_way, any_free : Out
        One-hot of the lowest free way, and whether there is one.
    wr_en : In(ways)
        Write ``wr_data`` into these ways of set ``wr_index`` at the end of this cycle.
    wr_index, wr_data : In
    sc_en, sc_index : In
        A raw read (for scans and sweeps): ``sc_data`` holds set ``sc_index`` in the next cycle,
        without forwarding. Shares the read port with lookups; never raise both enables.
    sc_data : Out(ArrayLayout(entry, ways))

    Latency: 2 cycles from lookup to result; one lookup or raw read per cycle; the result path
    after the block RAM is one way-compare and one forwarding multiplexer deep.
    """

    def __init__(self, entry: data.StructLayout, key: str, sets: int, ways: int):
        self._entry = entry
        self._key = key
        self._sets = sets
        self._ways = ways
        index_bits = ceil_log2(sets)
        key_shape = entry[key].shape
        row = data.ArrayLayout(entry, ways)
        super().__init__({
            "lk_en": In(1),
            "lk_index": In(index_bits),
            "lk_key": In(key_shape),
            "match": Out(ways),
            "free": Out(ways),
            "entries": Out(row),
            "hit": Out(1),
            "hit_entry": Out(entry),
            "free_way": Out(ways),
            "any_free": Out(1),
            "wr_en": In(ways),
            "wr_index": In(index_bits),
            "wr_data": In(entry),
            "sc_en": In(1),
            "sc_index": In(index_bits),
            "sc_data": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        ways, entry, key = self._ways, self._entry, self._key
        row = data.ArrayLayout(entry, ways)

        m.submodules.mem = mem = Memory(shape=row, depth=self._sets, init=[])
        rd = mem.read_port()
        wp = mem.write_port(granularity=1)
        m.d.comb += rd.en.eq(self.lk_en | self.sc_en)
        with m.If(self.lk_en):
            m.d.comb += rd.addr.eq(self.lk_index)
        with m.Else():
            m.d.comb += rd.addr.eq(self.sc_index)
        m.d.comb += [
            wp.addr.eq(self.wr_index),
            wp.en.eq(self.wr_en),
            wp.data.eq(Cat(*([self.wr_data.as_value()] * ways))),
            self.sc_data.eq(rd.data),
        ]

        # The write of the previous cycle: a lookup latched at that same edge read the old data.
        last_en = Signal(ways)
        last_index = Signal.like(self.wr_index)
        last_data = Signal(entry)
        m.d.sync += [last_en.eq(self.wr_en), last_index.eq(self.wr_index),
                     last_data.eq(self.wr_data)]

        pending = Signal()
        index = Signal.like(self.lk_index)
        lk_key = Signal.like(self.lk_key)
        m.d.sync += pending.eq(self.lk_en)
        with m.If(self.lk_en):
            m.d.sync += [index.eq(self.lk_index), lk_key.eq(self.lk_key)]

        # Cycle t + 1: block RAM data, with the write of cycle t patched in, compared.
        base = Signal(row)
        base_match = Signal(ways)
        base_free = Signal(ways)
        # The write of cycle t + 1 (after the read): kept apart and applied at the output.
        late_en = Signal(ways)
        late_data = Signal(entry)
        late_match = Signal()
        now_entries = Signal(row)
        same_last = Signal()
        m.d.comb += same_last.eq(last_index == index)
        for w in range(ways):
            with m.If(last_en[w] & same_last):
                m.d.comb += now_entries[w].eq(last_data)
            with m.Else():
                m.d.comb += now_entries[w].eq(rd.data[w])
        with m.If(pending):
            m.d.sync += [
                base.eq(now_entries),
                late_en.eq(Cat(self.wr_en[w] & (self.wr_index == index) for w in range(ways))),
                late_data.eq(self.wr_data),
                late_match.eq(self.wr_data.valid & (self.wr_data[key] == lk_key)),
            ]
            for w in range(ways):
                e = now_entries[w]
                m.d.sync += [
                    base_match[w].eq(e.valid & (e[key] == lk_key)),
                    base_free[w].eq(~e.valid),
                ]

        # Cycle t + 2 onwards: the result.
        for w in range(ways):
            with m.If(late_en[w]):
                m.d.comb += [
                    self.entries[w].eq(late_data),
                    self.match[w].eq(late_match),
                    self.free[w].eq(~late_data.valid),
                ]
            with m.Else():
                m.d.comb += [
                    self.entries[w].eq(base[w]),
                    self.match[w].eq(base_match[w]),
                    self.free[w].eq(base_free[w]),
                ]
        # Keys are unique within a set, so at most one way matches.
        for w in range(ways):
            with m.If(self.match[w]):
                m.d.comb += self.hit_entry.eq(self.entries[w])
        free_way = first_one(m, self.free, "free_way_onehot")
        m.d.comb += [
            self.hit.eq(self.match.any()),
            self.free_way.eq(free_way),
            self.any_free.eq(self.free.any()),
        ]
        return m
