"""The quoter's pricing engine: top-of-book updates in, desired quotes per instrument slot out.

Its twin is :class:`sim.quoter.Quoter` (``on_book`` then ``quotes``): rules 1 to 10 of that
module's docstring, computed to the same integers. The requote rules (which orders to cancel,
send or replace) are in :mod:`hdl.quote.requote`.

Widths. The model's integers do not wrap; these widths hold every value the rules produce for
every register value of :class:`~hdl.csr.params.QuoteParams` and
:class:`~hdl.csr.params.RiskLimits` and every 32-bit signed position:

- ``vol < 2**40`` (an average of samples ``|mid change| << 8 < 2**40``, starting at 0);
- microprice: the product ``|ask - bid| * shares < 2**80`` (see ``_SpanLayout``), weight
  ``< 2**49`` (level shares are 48 bits), and the quotient is at most ``|ask - bid|``, so 32
  bits;
- skew product ``|position| * skew_ticks_per_unit * tick < 2**31 * 2**32 * 2**16``: 80 bits, so
  ``|skew| < 2**64`` and the centre ``fv - skew`` fits 67 bits signed, ``c -/+ half`` 68;
- ``half < 2**30 + 2**40 < 2**42``; ``level_spacing * tick < 2**30``.

The one narrowing is of ``c - half`` and ``c + half`` before the tick rounding, see
:data:`ROUND_CLAMP`.

Timing. Products come from ECP5's 18x18 DSP blocks
(:class:`~hdl.quote.arith.PipelinedMultiplier`, 21 MULT18X18D in all: registered partial
products, then registered adder levels spanning at most 62 bits) and quotients from
:class:`~hdl.quote.arith.RadixDivider`: the tick roundings 4 bits a step (15 comparisons of 20
bits side by side, then a one-hot select), the microprice 3 bits a step (7 comparisons of 52
bits). Every other step of the evaluation is one registered operation: an adder, a comparison
or a few LUT levels, except the tick rounding's dividends: a sum of three operands, 42 bits.
The widest carry chains are the 68-bit ``c -/+ half`` with a 2-way select before it, its clamp
comparison, the 65-bit skew and the microprice divider's 52-bit comparisons; the front end's
deepest path is an 8-way read, a 41-bit subtraction and, a cycle later, a 4-level shift into a
42-bit addition.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hdl.book.layout import SEQ_BITS, top_update_stream
from hdl.csr.bank import block_signature
from hdl.csr.map import REGISTER_MAP
from hdl.csr.params import PRICE_BITS, FairValueMode
from hdl.quote.arith import (
    PipelinedMultiplier,
    RadixDivider,
    divider_steps,
    multiplier_latency,
    times_constant,
)
from hdl.stats import count, stats_layout
from sim.book import LEVEL_SHARES_BITS
from sim.orders import MAX_LEVELS
from sim.quoter import SKEW_FRAC_BITS, VOL_FRAC_BITS, VOL_MULTIPLIER_FRAC_BITS, QuoterStat
from sim.wire.ouch import MAX_LIMIT_PRICE

__all__ = [
    "CENTER_BITS",
    "HALF_BITS",
    "POSITION_BITS",
    "QUOTER_LATENCY",
    "QUOTER_MODE_LATENCY",
    "QUOTER_MODE_PERIOD",
    "QUOTER_PERIOD",
    "QUOTE_PARAMS_BLOCK",
    "RISK_LIMITS_BLOCK",
    "ROUND_CLAMP",
    "SKEW_BITS",
    "VOL_BITS",
    "QuoteLevelLayout",
    "Quoter",
    "quote_set_layout",
]

POSITION_BITS = 32
QUANTITY_BITS = 32
VOL_BITS = 40
HALF_BITS = 42
SKEW_BITS = 65
CENTER_BITS = 67
_SPREAD_BITS = 68
_SKEW_PRODUCT_BITS = 80
_WEIGHT_BITS = LEVEL_SHARES_BITS + 1

#: ``c - half`` and ``c + half`` are clamped to ``[-ROUND_CLAMP, ROUND_CLAMP]`` before the tick
#: rounding, so that the level prices fit 40 bits signed instead of 70; the rounding's
#: remainders are those of the exact values (see the evaluator). No quote changes. Call a price
#: *far above* when it exceeds ``2**33`` and *far below* when it is under ``-2**33``. Every
#: price that can reach an order is in ``[1, MAX_LIMIT_PRICE]``, below ``2**31``; a level is at
#: most ``2 * level_spacing * tick < 2**31`` from level 0; the post-only limits lie in
#: ``[0, 2**33)``. Bid side: a level-0 bid far above becomes the post-only limit when the book
#: has an ask (the limit is lower) and otherwise leaves every level above ``2**33 - 2**31``, out
#: of the band; a bid far below stays far below through the post-only ``min`` and every level is
#: below 1. Ask side, mirrored: far below, the post-only limit (at least 1) wins or every level
#: stays under 1; far above, every level is above the band. So only whether a level-0 price is
#: far above, far below or its exact value matters. An unclamped ``x`` beyond the clamp rounds
#: (plus the locked-quote tick) to a price far on the same side; the clamped value ``+-2**34``
#: moves by less than a tick (the exact value's remainder), far on the same side too. The lock
#: test compares the rounded prices: for unclamped values it is the model's; when a clamp moved
#: one of them, the ask that the test may bump is far above or below either way (``c - half <=
#: c + half``, so a clamp of the bid alone is from below, where the bid cannot equal an ask at
#: or above ``-2**34``, or both were clamped), and a tick more keeps it there.
ROUND_CLAMP = 1 << 34
_ROUND_BITS = 35  # magnitude of a clamped value

# The register map's own blocks, so the ports are exactly what the bank drives.
QUOTE_PARAMS_BLOCK = REGISTER_MAP.block("quote")
RISK_LIMITS_BLOCK = REGISTER_MAP.block("risk")

QuoteLevelLayout = data.StructLayout({
    "valid": 1,
    "price": PRICE_BITS,
    "quantity": QUANTITY_BITS,
})

# What the evaluator keeps of a slot's last top: the model's ``Quoter.top`` and the update's
# sequence number, which identifies the top a quote set was priced from.
_TopLayout = data.StructLayout({
    "bid_price": PRICE_BITS,
    "bid_shares": LEVEL_SHARES_BITS,
    "ask_price": PRICE_BITS,
    "ask_shares": LEVEL_SHARES_BITS,
    "seq": SEQ_BITS,
})

# The two best prices as the microprice divides them: ``lo = min(bid, ask)``, ``diff = |ask -
# bid|``, ``up = ask >= bid``. Then ``(bid * ask_shares + ask * bid_shares) // weight`` is
# ``lo + (diff * shares) // weight`` with ``shares`` the shares at the lower price's *opposite*
# side (``bid_shares`` when ``up``): ``lo * weight`` is a multiple of ``weight``. One 32 x 48
# product instead of two, and its quotient is at most ``diff < 2**32``.
_SpanLayout = data.StructLayout({
    "lo": PRICE_BITS,
    "diff": PRICE_BITS,
    "up": 1,
})


def quote_set_layout(slot_bits: int) -> data.StructLayout:
    """The quotes of one slot: ``sim.quoter.QuoteSet`` field for field.

    ``no_fair_value`` is the model's ``fair_value is None`` (quoting disabled, a side missing for
    MID or MICROPRICE, a zero reference price); ``fair_value``, ``center``, ``half_spread`` and
    ``skew`` then read 0 and no level is valid. ``seq`` is the sequence number of the top-of-book
    update priced and ``position`` the position used.
    """
    return data.StructLayout({
        "slot": slot_bits,
        "seq": SEQ_BITS,
        "position": signed(POSITION_BITS),
        "no_fair_value": 1,
        "fair_value": PRICE_BITS,
        "center": signed(CENTER_BITS),
        "half_spread": HALF_BITS,
        "skew": signed(SKEW_BITS),
        "bids": data.ArrayLayout(QuoteLevelLayout, MAX_LEVELS),
        "asks": data.ArrayLayout(QuoteLevelLayout, MAX_LEVELS),
    })


# Front end: input transfer, then S1 (mid change), S2 (EWMA difference), S3 (EWMA update, the
# slot's top stored and marked pending, or taken by an idle evaluator at once).
_FRONT_CYCLES = 3

# The evaluator's schedule. It snapshots a slot in cycle 0; from then on its datapath is a
# free-running pipeline of registers on the snapshot, so each value below is valid from the
# cycle named (and holds until the next snapshot); only the dividers are started, by cycle.
_TICK_RADIX_BITS = 4   # 4 quotient bits a step: 15 comparisons of 20 bits each
_FV_RADIX_BITS = 3     # 11 steps for the microprice's 32 bits, 7 comparisons of 52 bits each
_REM_BITS = 41         # |z| < 2**41, see "The tick rounding's remainders" in the evaluator
_REM_STEPS = divider_steps(_REM_BITS + 1, _TICK_RADIX_BITS)
_Q_REM_STEPS = divider_steps(PRICE_BITS, _TICK_RADIX_BITS)
_LIMIT_STEPS = divider_steps(PRICE_BITS + 1, _TICK_RADIX_BITS)
_FV_STEPS = divider_steps(PRICE_BITS, _FV_RADIX_BITS)
_AT_POS = 2                                         # |position| and its sign
_AT_KT = 1 + multiplier_latency(32, 16)             # skew_ticks_per_unit * tick
_AT_SKEW = max(_AT_KT, _AT_POS) + multiplier_latency(48, POSITION_BITS) + 1   # skew, -skew
_AT_HALF = 1 + max(multiplier_latency(16, 16), multiplier_latency(VOL_BITS, 16)) + 1
# fv -/+ half; lo -/+ half - skew (MICROPRICE)
_AT_AROUND = {False: _AT_HALF + 1, True: max(_AT_HALF + 1, _AT_SKEW) + 1}
_LIMIT_START = 2                                    # the post-only limits' remainders
_AT_LIMITS = _LIMIT_START + _LIMIT_STEPS + 1        # the limits
_AT_LIMIT_LEVELS = _AT_LIMITS + 1                   # their level prices, band flags a cycle on
_FV_START = 1 + multiplier_latency(PRICE_BITS, LEVEL_SHARES_BITS)
_AT_QUOTIENT = _FV_START + _FV_STEPS
# By mode (MICROPRICE or not): the late operand of c -/+ half is the quotient or -skew.
_AT_X = {False: max(_AT_SKEW, _AT_AROUND[False]) + 1,
         True: max(_AT_QUOTIENT, _AT_AROUND[True]) + 1}
_AT_CLAMPED = {micro: at + 1 for micro, at in _AT_X.items()}       # c -/+ half clamped
# The rounding's dividends z (fv or lo, the volatility term of the half spread and the skew's
# fraction of a tick): products of the snapshot, then one adder.
_AT_H2 = 1 + multiplier_latency(VOL_BITS, 16)
_AT_FRAC = 1 + 2 * multiplier_latency(16, 16)
_Z_START = max(2, _AT_H2, _AT_FRAC) + 1
_AT_Z_REM = _Z_START + _REM_STEPS
# MICROPRICE: the quotient's remainder, then one addition modulo the tick with z's (beside
# its ``-/+ tick``, a cycle after the division).
_AT_Q_REM = _AT_QUOTIENT + _Q_REM_STEPS
_AT_REM = {False: _AT_Z_REM, True: max(_AT_Q_REM, _AT_Z_REM + 1) + 1}
# Then the level prices of every choice and the lock and post-only flags (P), the choice among
# them and the band (S), the sizes and ``o.valid``.
_AT_OUT = {micro: at + 3 for micro, at in _AT_REM.items()}
assert _FV_START > 2   # the divider's multiples of the weight (valid at 2) settle at 3
assert _AT_OUT[False] - 2 > _AT_LIMIT_LEVELS, "post-only limits late for the S stage"
assert all(max(_AT_CLAMPED[micro] + 1, _AT_LIMITS) + 1 <= _AT_REM[micro]
           for micro in (False, True)), "the P stage's operands late"

#: Cycles from a top-of-book update's transfer to its quote set on ``o`` by fair-value mode
#: (``o`` ready, the evaluator idle, the update not superseded); an unknown mode takes MID's.
QUOTER_MODE_LATENCY = {mode: _FRONT_CYCLES + _AT_OUT[mode == FairValueMode.MICROPRICE]
                       for mode in FairValueMode}
#: The longest of :data:`QUOTER_MODE_LATENCY` (MICROPRICE's).
QUOTER_LATENCY = max(QUOTER_MODE_LATENCY.values())
#: Cycles from one quote set on ``o`` to the next while slots wait to be priced, ``o`` ready, by
#: the fair-value mode of the slot priced next: the evaluator's snapshot, its pricing and its
#: hand-over.
QUOTER_MODE_PERIOD = {mode: _AT_OUT[mode == FairValueMode.MICROPRICE] + 1
                      for mode in FairValueMode}
#: The longest of :data:`QUOTER_MODE_PERIOD` (MICROPRICE's).
QUOTER_PERIOD = max(QUOTER_MODE_PERIOD.values())


def _lowest(vector, width: int):
    """Index of the lowest set bit of ``vector`` (0 when none is)."""
    index = 0
    for bit in reversed(range(width)):
        index = Mux(vector[bit], bit, index)
    return index


class Quoter(wiring.Component):
    """Desired quotes of every instrument slot, priced on each top-of-book update.

    Parameters
    ----------
    slots : int
        Instrument slots (default 8, as the book's tracked instruments).
    slot_bits : int, optional
        Width of the slot number on ``i`` and ``o`` (default: enough for ``slots``); the book's
        ``geometry.slot_bits``.

    Ports
    -----
    i : In(top_update_stream(slot_bits))
        The book's top-of-book updates. Ready every other cycle (see Throughput).
    o : Out(stream.Signature(quote_set_layout(slot_bits)))
        One quote set per priced update: slot, the update's ``seq``, the position used, fair
        value, centre, half spread, skew, ``no_fair_value`` and per side and level (bids down
        from the best, asks up) ``valid``, ``price``, ``quantity``.
    quote : In(block_signature(QUOTE_PARAMS_BLOCK)), an array of ``slots``
        Each slot's :class:`~hdl.csr.params.QuoteParams`, the register bank's ``quote[n]``.
    risk : In(block_signature(RISK_LIMITS_BLOCK)), an array of ``slots``
        Each slot's :class:`~hdl.csr.params.RiskLimits` (``max_long``, ``max_short`` are used),
        the register bank's ``risk[n]``.
    position : In(ArrayLayout(signed(32), slots))
        Each slot's net position in shares (long positive).
    reprice : In(slots)
        Price these slots again on their last top, without a new update (the model evaluates
        an instrument again when an answer changes its orders or position, or when the risk
        state changes). The volatility EWMA does not move. A slot already waiting to be priced
        is priced once.
    stats : Out(stats_layout(QuoterStat))
        Counters, see :class:`sim.quoter.QuoterStat`.
    busy : Out(1)
        An update or a quote set is in flight or waiting (for tests and the host).

    Latency
    -------
    :data:`QUOTER_MODE_LATENCY` cycles from an update's transfer to its quote set on ``o``, when
    the evaluator is idle, no other slot waits, no reprice is asked as the update leaves the
    front end and ``o`` is ready: 21 for MID and REFERENCE (3 in the front end, 18 to price), 30
    for MICROPRICE (its division comes first); :data:`QUOTER_LATENCY` is the longer. Otherwise
    the update waits for the evaluator, a cycle more at least. The time depends on the mode
    register only, never on prices or sizes. MID and REFERENCE: snapshot; the volatility term
    and the skew's fraction of a tick (2 products each, 3 after the snapshot); the two rounding
    dividends; their 11-step remainders; every level price the lock and post-only rules may
    choose and those rules' flags, each one addition or comparison of a remainder; the choice
    and the band; the sizes. The skew itself, ``c -/+ half`` and its clamp are ready long
    before the remainders, as are the post-only limits and the half spread. MICROPRICE: its
    product (3 after the snapshot) and 11-step division, the quotient's 8-step remainder, its
    sum with the dividends' remainders modulo the tick, then the level prices and on as above.

    Throughput
    ----------
    ``i`` takes one update every 2 cycles (the book's own top rate) and never waits for the
    evaluator. The evaluator prices one slot every :data:`QUOTER_MODE_PERIOD` cycles (19 for
    MID and REFERENCE, 28 for MICROPRICE, by the mode of the slot priced) with ``o`` ready, in
    the order the slots started to wait (the order of their updates, as the model's). A slot
    updated again before its turn is priced once, on its newest top (counted ``SUPERSEDED``): a
    newer top supersedes an older one. The volatility EWMA is not affected: it is updated in the
    front end on every update, in arrival order, so the quote set of the newest top uses the
    EWMA of every update up to it, as the model's does.

    Bad input
    ---------
    A slot number of ``slots`` or more is dropped and counted (``BAD_SLOT``). A tick size of 0
    or an unknown fair-value mode (the register bank refuses both) quote nothing, like
    ``enable = 0`` (``no_fair_value``). Any other register value and any position is priced
    exactly as the model prices it.
    """

    def __init__(self, slots: int = 8, *, slot_bits: int | None = None):
        if slots < 1:
            raise ValueError("a quoter needs at least one slot")
        self.slots = slots
        self.slot_bits = slot_bits if slot_bits is not None else max(ceil_log2(slots), 1)
        if (1 << self.slot_bits) < slots:
            raise ValueError(f"{self.slot_bits} slot bits cannot number {slots} slots")
        super().__init__({
            "i": In(top_update_stream(self.slot_bits)),
            "o": Out(stream.Signature(quote_set_layout(self.slot_bits))),
            "quote": In(block_signature(QUOTE_PARAMS_BLOCK)).array(slots),
            "risk": In(block_signature(RISK_LIMITS_BLOCK)).array(slots),
            "position": In(data.ArrayLayout(signed(POSITION_BITS), slots)),
            "reprice": In(slots),
            "stats": Out(stats_layout(QuoterStat)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.slots
        stats = self.stats

        # Per-slot state: the EWMA and the last mid (rule 1), the last top and whether it waits
        # to be priced.
        vol = Signal(data.ArrayLayout(VOL_BITS, n))
        last_mid = Signal(data.ArrayLayout(PRICE_BITS, n))
        last_mid_ok = Signal(n)
        tops = Signal(data.ArrayLayout(_TopLayout, n))
        spans = Signal(data.ArrayLayout(_SpanLayout, n))
        pending = Signal(n)

        # -- Front end ---------------------------------------------------------------------------
        # Taking an update every other cycle lets S2 read the EWMA that S3 of the previous update
        # wrote, without a forwarding path through the adder.
        took = Signal()
        m.d.comb += self.i.ready.eq(~took)
        m.d.sync += took.eq(self.i.valid & self.i.ready)

        upd = self.i.payload
        s1 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "span": _SpanLayout,
            "mid": PRICE_BITS, "mid_ok": 1}))
        s2 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "span": _SpanLayout,
            "sample": 1, "change": PRICE_BITS}))
        s3 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "span": _SpanLayout,
            "sample": 1, "vol": VOL_BITS, "delta": signed(VOL_BITS + 1), "shift": 4}))

        taken = self.i.valid & self.i.ready
        good_slot = upd.slot < n
        up_price = upd.ask_price >= upd.bid_price
        count(m, stats.updates, taken)
        count(m, stats.bad_slot, taken & ~good_slot)
        m.d.sync += [
            s1.valid.eq(taken & good_slot),
            s1.slot.eq(upd.slot),
            s1.top.eq(Cat(upd.bid_price, upd.bid_shares, upd.ask_price, upd.ask_shares,
                          upd.seq)),
            s1.mid.eq((upd.bid_price + upd.ask_price) >> 1),
            s1.span.lo.eq(Mux(up_price, upd.bid_price, upd.ask_price)),
            s1.span.diff.eq(Mux(up_price, upd.ask_price - upd.bid_price,
                                upd.bid_price - upd.ask_price)),
            s1.span.up.eq(up_price),
            s1.mid_ok.eq((upd.bid_price != 0) & (upd.ask_price != 0)),
        ]

        # S1: the mid change against the slot's last mid, both differences at once.
        prev = last_mid[s1.slot]
        up, down = s1.mid - prev, prev - s1.mid
        m.d.sync += [
            s2.valid.eq(s1.valid),
            s2.slot.eq(s1.slot),
            s2.top.eq(s1.top),
            s2.span.eq(s1.span),
            s2.sample.eq(s1.mid_ok & last_mid_ok.bit_select(s1.slot, 1)),
            s2.change.eq(Mux(up[-1], down, up)),
        ]
        with m.If(s1.valid):
            m.d.sync += [last_mid[s1.slot].eq(s1.mid),
                         last_mid_ok.bit_select(s1.slot, 1).eq(s1.mid_ok)]

        # S2: the EWMA's step before its shift.
        shifts = Array(q.vol_ewma_shift for q in self.quote)
        m.d.sync += [
            s3.valid.eq(s2.valid),
            s3.slot.eq(s2.slot),
            s3.top.eq(s2.top),
            s3.span.eq(s2.span),
            s3.sample.eq(s2.sample),
            s3.vol.eq(vol[s2.slot]),
            s3.delta.eq((s2.change << VOL_FRAC_BITS) - vol[s2.slot]),
            s3.shift.eq(shifts[s2.slot]),
        ]

        # S3: the EWMA moves; the top waits for the evaluator (a waiting older one is replaced),
        # or, with nothing waiting, no reprice asked and the evaluator idle, the evaluator takes
        # it at once (``direct``), with the EWMA it moves to.
        take = Signal()           # the evaluator takes slot ``pick`` this cycle
        pick = Signal(range(n))
        direct = Signal()
        eval_idle = Signal()
        new_vol = Signal(VOL_BITS)
        m.d.comb += [
            new_vol.eq(Mux(s3.sample, s3.vol + (s3.delta >> s3.shift), s3.vol)),
            direct.eq(s3.valid & eval_idle & ~pending.any() & ~self.reprice.any()),
        ]
        with m.If(s3.valid):
            m.d.sync += [vol[s3.slot].eq(new_vol), tops[s3.slot].eq(s3.top),
                         spans[s3.slot].eq(s3.span)]
        count(m, stats.superseded, s3.valid & pending.bit_select(s3.slot, 1) &
              ~(take & (pick == s3.slot)))
        # The next waiting set: a slot taken stops waiting, a top stored or a reprice makes it
        # wait. A reprice is counted when it alone makes its slot wait, so that every quote set
        # is accounted for by an update or a reprice.
        taken_bit = Signal(n)
        stored = Signal(n)
        m.d.comb += [taken_bit.eq(Mux(take, Const(1, n) << pick, 0)),
                     stored.eq(Mux(s3.valid & ~direct, Const(1, n) << s3.slot, 0))]
        still = pending & ~taken_bit
        m.d.sync += pending.eq(still | stored | self.reprice)
        alone = Signal(n)
        m.d.comb += alone.eq(self.reprice & ~still & ~stored)
        count(m, stats.reprices, sum(alone[k] for k in range(n)))

        # -- Evaluator ---------------------------------------------------------------------------
        # The waiting slots in the order they started to wait: the model evaluates updates in
        # the order they arrive, so the quote sets (and the orders) of two instruments updated
        # close together leave in that order too. Slots that start to wait in the same cycle
        # (a reprice of several) queue in slot order.
        self._arrival_order(m, stored | self.reprice, still, take, pick)

        eval_busy = self._evaluator(m, vol, tops, spans, pending, take, pick, s3, new_vol,
                                    direct)
        m.d.comb += eval_idle.eq(~eval_busy)

        m.d.comb += self.busy.eq(s1.valid | s2.valid | s3.valid | took | pending.any() |
                                 eval_busy)
        count(m, stats.quote_sets, self.o.valid & self.o.ready)
        return m

    def _arrival_order(self, m, wait, still, take, pick):
        """A queue of the waiting slots, oldest at the head (``pick``); each waiting slot is in
        it once. ``wait``: slots that wait from the next cycle on; ``still``: those that already
        wait and are not taken now."""
        n = self.slots
        entries = [Signal(range(n), name=f"queue{k}") for k in range(n)]
        length = Signal(range(n + 1))
        joining = Signal(n)
        m.d.comb += [joining.eq(wait & ~still), pick.eq(entries[0])]
        base = Signal(range(n + 1))
        m.d.comb += base.eq(length - take)
        after = [Mux(take, entries[k + 1], entries[k]) if k + 1 < n
                 else Mux(take, 0, entries[k]) for k in range(n)]
        position = base
        for slot in range(n):
            after = [Mux(joining[slot] & (position == k), slot, value)
                     for k, value in enumerate(after)]
            position = position + joining[slot]
        m.d.sync += [entry.eq(value) for entry, value in zip(entries, after, strict=True)]
        m.d.sync += length.eq(position)

    def _evaluator(self, m, vol, tops, spans, pending, take, pick, s3, new_vol, direct):
        q_fields = ("enable", "fair_value_mode", "reference_price", "base_half_spread",
                    "vol_multiplier", "skew_ticks_per_unit", "tick_size", "levels",
                    "level_spacing", "size", "price_ceiling", "price_floor")
        # The snapshot: everything the pricing reads, taken in one cycle so that a register
        # commit or a position change in the middle of an evaluation cannot mix two states.
        w = {name: Signal.like(getattr(self.quote[0], name), name=f"w_{name}", init=0)
             for name in q_fields}
        for name in ("max_long", "max_short"):
            w[name] = Signal.like(getattr(self.risk[0], name), name=f"w_{name}", init=0)
        w_slot = Signal(self.slot_bits)
        w_top = Signal(_TopLayout)
        w_span = Signal(_SpanLayout)
        w_vol = Signal(VOL_BITS)
        w_pos = Signal(signed(POSITION_BITS))

        def reg(name, shape, value):
            """A register of the free-running pipeline: valid a cycle after ``value`` is."""
            out = Signal(shape, name=name)
            m.d.sync += out.eq(value)
            return out

        tick = w["tick_size"]
        bid_p, ask_p = w_top.bid_price, w_top.ask_price
        bid_ok, ask_ok = bid_p != 0, ask_p != 0
        mode = w["fair_value_mode"]
        micro = mode == FairValueMode.MICROPRICE
        known_mode = ((mode == FairValueMode.MID) | micro | (mode == FairValueMode.REFERENCE))

        # -- From the snapshot (valid at 2) ----------------------------------------------------
        pos_neg = reg("pos_neg", 1, w_pos < 0)
        pos_mag = reg("pos_mag", POSITION_BITS, Mux(w_pos < 0, -w_pos, w_pos)[:POSITION_BITS])
        # MID's and REFERENCE's fair value, and the microprice's with a zero weight (never sent
        # by the book): the mid.
        fv_base = reg("fv_base", PRICE_BITS, Mux(mode == FairValueMode.REFERENCE,
                                                  w["reference_price"], (bid_p + ask_p) >> 1))
        weight = reg("weight", _WEIGHT_BITS, w_top.bid_shares + w_top.ask_shares)
        use_q = reg("use_quotient", 1, micro & (w_top.bid_shares | w_top.ask_shares).any())
        no_fv = reg("no_fv", 1, ~w["enable"] | (tick == 0) | ~known_mode | Mux(
            mode == FairValueMode.REFERENCE, w["reference_price"] == 0, ~bid_ok | ~ask_ok))
        low = reg("low", PRICE_BITS, Mux(w["price_floor"] > 1, w["price_floor"], 1))
        high = reg("high", PRICE_BITS, Mux(w["price_ceiling"] < MAX_LIMIT_PRICE,
                                           w["price_ceiling"], MAX_LIMIT_PRICE))
        # With an empty side these wrap; their results are then not used.
        n_pb = reg("n_pb", PRICE_BITS, ask_p - 1)
        n_pa = reg("n_pa", PRICE_BITS + 1, bid_p + 1)
        room = {
            "bid": reg("room_bid", POSITION_BITS + 1, Mux(w["max_long"] - w_pos < 0, 0,
                                                          w["max_long"] - w_pos)),
            "ask": reg("room_ask", POSITION_BITS + 1, Mux(w["max_short"] + w_pos < 0, 0,
                                                          w["max_short"] + w_pos)),
        }

        # -- Products (DSP blocks) -------------------------------------------------------------
        mul_kt = m.submodules.mul_kt = PipelinedMultiplier(32, 16)
        mul_skew = m.submodules.mul_skew = PipelinedMultiplier(48, POSITION_BITS)
        mul_vol = m.submodules.mul_vol = PipelinedMultiplier(VOL_BITS, 16)
        mul_half = m.submodules.mul_half = PipelinedMultiplier(16, 16)
        mul_step = m.submodules.mul_step = PipelinedMultiplier(16, 16)
        mul_micro = m.submodules.mul_micro = PipelinedMultiplier(PRICE_BITS, LEVEL_SHARES_BITS)
        # The skew's fraction of a tick (see the remainders below): the low 16 bits of
        # ``position * skew_ticks_per_unit`` depend on the low 16 bits of each only.
        mul_frac_lo = m.submodules.mul_frac_lo = PipelinedMultiplier(16, 16)
        mul_frac = m.submodules.mul_frac = PipelinedMultiplier(16, 16)
        m.d.comb += [
            mul_kt.a.eq(w["skew_ticks_per_unit"]), mul_kt.b.eq(tick),
            mul_skew.a.eq(mul_kt.product), mul_skew.b.eq(pos_mag),
            mul_vol.a.eq(w_vol), mul_vol.b.eq(w["vol_multiplier"]),
            mul_half.a.eq(w["base_half_spread"]), mul_half.b.eq(tick),
            mul_step.a.eq(w["level_spacing"]), mul_step.b.eq(tick),
            mul_micro.a.eq(w_span.diff),
            mul_micro.b.eq(Mux(w_span.up, w_top.bid_shares, w_top.ask_shares)),
            mul_frac_lo.a.eq(w_pos[:SKEW_FRAC_BITS]),
            mul_frac_lo.b.eq(w["skew_ticks_per_unit"][:SKEW_FRAC_BITS]),
            mul_frac.a.eq(mul_frac_lo.product[:SKEW_FRAC_BITS]), mul_frac.b.eq(tick),
        ]

        # -- Dividers --------------------------------------------------------------------------
        # The tick's: every quotient fits (see the remainders below) when the tick is used,
        # being at least 1 then. They give exact remainders, from which floor_tick and ceil_tick
        # are one addition (P below): no estimate to correct.
        rem_pb = m.submodules.rem_pb = RadixDivider(PRICE_BITS, 16, PRICE_BITS + 1,
                                                    _TICK_RADIX_BITS)
        rem_pa = m.submodules.rem_pa = RadixDivider(PRICE_BITS + 1, 16, PRICE_BITS + 1,
                                                    _TICK_RADIX_BITS)
        rem_zb = m.submodules.rem_zb = RadixDivider(_REM_BITS + 16, 16, _REM_BITS + 1,
                                                    _TICK_RADIX_BITS)
        rem_za = m.submodules.rem_za = RadixDivider(_REM_BITS + 16, 16, _REM_BITS + 1,
                                                    _TICK_RADIX_BITS)
        rem_q = m.submodules.rem_q = RadixDivider(PRICE_BITS, 16, PRICE_BITS, _TICK_RADIX_BITS)
        # The microprice's: diff * shares <= diff * weight < weight << 32, so the quotient fits
        # 32 bits; a zero weight gives a meaningless one, not used (``use_q``).
        div_fv = m.submodules.div_fv = RadixDivider(PRICE_BITS + LEVEL_SHARES_BITS,
                                                   _WEIGHT_BITS, PRICE_BITS, _FV_RADIX_BITS)
        m.d.comb += [
            rem_pb.n.eq(n_pb), rem_pb.d.eq(tick),
            rem_pa.n.eq(n_pa), rem_pa.d.eq(tick),
            rem_zb.d.eq(tick), rem_za.d.eq(tick), rem_q.d.eq(tick),
            div_fv.n.eq(mul_micro.product), div_fv.d.eq(weight),
        ]

        # -- Half spread (valid at _AT_HALF), skew (_AT_SKEW) ----------------------------------
        half = reg("half", HALF_BITS, mul_half.product + (
            mul_vol.product >> (VOL_FRAC_BITS + VOL_MULTIPLIER_FRAC_BITS)))
        # ``(-p) >> 16`` is ``-ceil(p / 2**16)``: a short position's skew rounds its magnitude
        # up, so that the skew rounds toward minus infinity either way. ``~p = -p - 1``: each
        # sign is one adder.
        product = mul_skew.product
        whole = Cat(product[SKEW_FRAC_BITS:], 0).as_signed()
        frac = product[:SKEW_FRAC_BITS].any()
        skew = reg("skew", signed(SKEW_BITS),
                   Mux(pos_neg, ~whole, whole) + Mux(pos_neg, ~frac, 0))
        neg_skew = reg("neg_skew", signed(SKEW_BITS),
                       Mux(pos_neg, whole, ~whole) + Mux(pos_neg, frac, 1))

        # -- c -/+ half = late + early: the operand that comes last is added in one step -------
        # Not MICROPRICE: late = -skew, early = fv -/+ half (valid at _AT_AROUND[False]).
        # MICROPRICE: late = the quotient, early = lo -/+ half - skew (_AT_AROUND[True]).
        q = div_fv.quotient
        lo = w_span.lo
        fv_sides = [reg(f"fv_{name}", signed(HALF_BITS + 2), fv_base + sign * half)
                    for name, sign in (("bid", -1), ("ask", 1))]
        lo_sides = [reg(f"lo_{name}", signed(HALF_BITS + 2), lo + sign * half)
                    for name, sign in (("bid", -1), ("ask", 1))]
        micro_sides = [reg(f"micro_{name}", signed(_SPREAD_BITS), side + neg_skew)
                       for name, side in zip(("bid", "ask"), lo_sides, strict=True)]
        micro_center = reg("micro_center", signed(CENTER_BITS), lo + neg_skew)
        late = Mux(use_q, q, neg_skew)
        x = [reg(f"x_{name}", signed(_SPREAD_BITS), late + Mux(use_q, mp, fp))
             for name, mp, fp in zip(("bid", "ask"), micro_sides, fv_sides, strict=True)]
        center = reg("center", signed(CENTER_BITS), late + Mux(use_q, micro_center, fv_base))
        fv = reg("fv", PRICE_BITS, Mux(use_q, lo + q, fv_base))

        # -- Clamp (_AT_CLAMPED), see ROUND_CLAMP --------------------------------------------
        c = [reg(f"c_{name}", signed(_ROUND_BITS + 1),
                 Mux(value > ROUND_CLAMP, ROUND_CLAMP, Mux(value < -ROUND_CLAMP, -ROUND_CLAMP,
                                                           value)))
             for name, value in zip(("bid", "ask"), x, strict=True)]
        c_b, c_a = c

        # -- The tick rounding's remainders (_AT_REM) ------------------------------------------
        # floor_tick(v) = v - v % tick and ceil_tick(v) = v + (-v) % tick need only the
        # remainders of v = c - half and -v = -(c + half) (``%`` as Python's: from 0 to tick -
        # 1), and these need not wait for the skew and the centre. Write ``half = base * tick
        # + h2`` (h2 the volatility term) and ``position * skew_ticks_per_unit = P * 2**16 + F``
        # with ``0 <= F < 2**16``: then ``skew = P * tick + f`` with ``f = (F * tick) >> 16``,
        # ``0 <= f < tick``, and, c being ``b + q - skew`` (``b`` fv, or for a microprice lo and
        # ``q`` the quotient, else 0), each side is a multiple of the tick away from
        # ``z_bid + q`` or ``z_ask - q`` with
        #     z_bid = b - h2 - f,        z_ask = f - b - h2,
        # known three cycles after the snapshot: ``|z| < 2**40 + 2**16 < 2**41``. The dividers
        # take ``z + (tick << 41)``, never negative and congruent to ``z``, so their remainder is
        # ``z % tick``; its quotient fits 42 bits. The rounding is of the exact value, the
        # clamped one then moves by it: a clamped level 0 stays far beyond the band (see
        # ROUND_CLAMP).
        h2 = mul_vol.product >> (VOL_FRAC_BITS + VOL_MULTIPLIER_FRAC_BITS)
        f = mul_frac.product[SKEW_FRAC_BITS:]
        b = Mux(use_q, lo, fv_base)
        z_b = reg("z_bid", _REM_BITS + 16, b - h2 - f + (tick << _REM_BITS))
        z_a = reg("z_ask", _REM_BITS + 16, f - b - h2 + (tick << _REM_BITS))
        m.d.comb += [rem_zb.n.eq(z_b), rem_za.n.eq(z_a), rem_q.n.eq(q)]
        rzb, rza = rem_zb.remainder, rem_za.remainder
        # MICROPRICE: (z_bid % tick + q % tick) % tick and (z_ask % tick - q % tick) % tick,
        # each one addition beside its other choice.
        rzb_less = reg("z_rem_bid_less", signed(17), rzb - tick)
        rza_more = reg("z_rem_ask_more", 17, rza + tick)
        rq = rem_q.remainder
        sum_b, sum_b_less = rzb + rq, rzb_less + rq
        diff_a, diff_a_more = rza - rq, rza_more - rq
        micro_rb = reg("micro_rem_bid", 16, Mux(sum_b_less < 0, sum_b, sum_b_less))
        micro_ra = reg("micro_rem_ask", 16, Mux(diff_a < 0, diff_a_more, diff_a))
        r_b = Mux(use_q, micro_rb, rzb)   # (c - half) % tick
        r_a = Mux(use_q, micro_ra, rza)   # -(c + half) % tick

        # -- The post-only limits, the level steps and the sizes (valid early) -----------------
        rem = rem_pb.remainder
        pb = reg("pb", PRICE_BITS, n_pb - rem)                      # floor_tick(best_ask - 1)
        n_pa_more = reg("n_pa_more", PRICE_BITS + 2, n_pa + tick)
        rem = rem_pa.remainder
        pa = reg("pa", PRICE_BITS + 2, Mux(rem != 0, n_pa_more - rem, n_pa))  # ceil_tick(bid+1)
        step = [reg(f"step_{k}", PRICE_BITS, times_constant(mul_step.product, k))
                for k in range(MAX_LEVELS)]

        def band(price):
            return (price >= low) & (price <= high)

        price_shape = signed(_ROUND_BITS + 5)
        pb_levels = [reg(f"pb_{k}", price_shape, pb - step[k]) for k in range(MAX_LEVELS)]
        pa_levels = [reg(f"pa_{k}", price_shape, pa + step[k]) for k in range(MAX_LEVELS)]
        pb_band = [reg(f"pb_band_{k}", 1, band(p)) for k, p in enumerate(pb_levels)]
        pa_band = [reg(f"pa_band_{k}", 1, band(p)) for k, p in enumerate(pa_levels)]
        # Rule 9: a level quoted takes min(size, left) and leaves max(left - size, 0), so the
        # level after j quoted ones has max(room - j * size, 0) left whatever their prices.
        size = w["size"]
        shares = {}
        for side in ("bid", "ask"):
            left = [reg(f"left_{side}_{j}", POSITION_BITS + 1, Mux(
                room[side] < times_constant(size, j), 0, room[side] - times_constant(size, j)))
                for j in range(MAX_LEVELS)]
            shares[side] = [reg(f"share_{side}_{j}", POSITION_BITS + 1,
                                Mux(size < r, size, r)) for j, r in enumerate(left)]

        # -- P: every level price the lock and post-only rules may lead to, and those rules ----
        # Level 0 is bid0 = c_b - r_b, ask0 = c_a + r_a (rule 5); each level price and each
        # comparison with level 0 is one addition or comparison of a remainder with a value
        # ready before it.
        c_a_more = reg("c_ask_more", signed(_ROUND_BITS + 2), c_a + tick)   # c_a + tick
        bid_bases = [reg(f"bid_base_{k}", price_shape, c_b - step[k]) for k in range(MAX_LEVELS)]
        ask_bases = [reg(f"ask_base_{k}", price_shape, c_a + step[k]) for k in range(MAX_LEVELS)]
        lock_bases = [reg(f"lock_base_{k}", price_shape, c_a_more + step[k])
                      for k in range(MAX_LEVELS)]
        pb_room = reg("pb_room", price_shape, c_b - pb)          # pb < bid0: r_b < c_b - pb
        lock_gap = reg("lock_gap", price_shape, c_b - c_a)       # ask0 == bid0
        pa_room = reg("pa_room", price_shape, pa - c_a)          # pa > ask0: r_a < pa - c_a
        pa_room_lock = reg("pa_room_lock", price_shape, pa - c_a_more)   # pa > ask0 + tick
        bid_cands = [reg(f"bid_cand_{k}", price_shape, base - r_b)
                     for k, base in enumerate(bid_bases)]
        ask_cands = [reg(f"ask_cand_{k}", price_shape, base + r_a)
                     for k, base in enumerate(ask_bases)]
        lock_cands = [reg(f"lock_cand_{k}", price_shape, base + r_a)
                      for k, base in enumerate(lock_bases)]
        use_pb = reg("use_pb", 1, ask_ok & (r_b < pb_room))
        locked = reg("locked", 1, r_b + r_a == lock_gap)
        pa_above = reg("pa_above", 1, r_a < pa_room)
        pa_above_lock = reg("pa_above_lock", 1, r_a < pa_room_lock)

        # -- S: the prices chosen and their band flags -----------------------------------------
        use_pa = bid_ok & Mux(locked, pa_above_lock, pa_above)
        prices, in_band = {}, {}
        prices["bid"] = [reg(f"bid_price_{k}", price_shape, Mux(use_pb, pb_levels[k], p))
                         for k, p in enumerate(bid_cands)]
        in_band["bid"] = [reg(f"bid_in_band_{k}", 1, Mux(use_pb, pb_band[k], band(p)))
                          for k, p in enumerate(bid_cands)]
        prices["ask"] = [reg(f"ask_price_{k}", price_shape, Mux(
            use_pa, pa_levels[k], Mux(locked, lock_cands[k], ask_cands[k])))
            for k in range(MAX_LEVELS)]
        in_band["ask"] = [reg(f"ask_in_band_{k}", 1, Mux(
            use_pa, pa_band[k], Mux(locked, band(lock_cands[k]), band(ask_cands[k]))))
            for k in range(MAX_LEVELS)]

        # -- Sizes (rule 9) and the quote set ---------------------------------------------------
        levels = {side: Signal(data.ArrayLayout(QuoteLevelLayout, MAX_LEVELS), name=f"{side}s")
                  for side in ("bid", "ask")}
        for side in ("bid", "ask"):
            quoted_before = 0
            for k in range(MAX_LEVELS):
                share = Array(shares[side])[quoted_before]
                quoted = (~no_fv & (w["levels"] > k) & in_band[side][k] & (share != 0))
                m.d.sync += [
                    levels[side][k].valid.eq(quoted),
                    levels[side][k].price.eq(prices[side][k]),
                    levels[side][k].quantity.eq(Mux(quoted, share, 0)),
                ]
                quoted_before = quoted_before + quoted

        cycle = Signal(range(max(_AT_OUT.values()) + 1))
        o = self.o
        eval_busy = Signal()
        with m.FSM(name="evaluator") as fsm:
            with m.State("IDLE"):
                def snapshot(slot, top, span, slot_vol):
                    m.d.sync += [w_slot.eq(slot), w_top.eq(top), w_span.eq(span),
                                 w_vol.eq(slot_vol), w_pos.eq(self.position[slot]),
                                 cycle.eq(1)]
                    for name in q_fields:
                        m.d.sync += w[name].eq(Array(getattr(q, name) for q in self.quote)[slot])
                    for name in ("max_long", "max_short"):
                        m.d.sync += w[name].eq(Array(getattr(r, name) for r in self.risk)[slot])
                    m.next = "RUN"

                with m.If(direct):
                    snapshot(s3.slot, s3.top, s3.span, new_vol)
                with m.Elif(pending.any()):
                    m.d.comb += take.eq(1)
                    snapshot(pick, tops[pick], spans[pick], vol[pick])
            with m.State("RUN"):
                m.d.sync += cycle.eq(cycle + 1)
                m.d.comb += [
                    rem_pb.start.eq(cycle == _LIMIT_START),
                    rem_pa.start.eq(cycle == _LIMIT_START),
                    div_fv.start.eq(cycle == _FV_START),
                    rem_zb.start.eq(cycle == _Z_START),
                    rem_za.start.eq(cycle == _Z_START),
                    rem_q.start.eq(cycle == _AT_QUOTIENT),
                ]
                with m.If(cycle == Mux(micro, _AT_OUT[True], _AT_OUT[False]) - 1):
                    m.d.sync += o.valid.eq(1)
                    m.next = "OUTPUT"
            with m.State("OUTPUT"):
                with m.If(o.ready):
                    m.d.sync += o.valid.eq(0)
                    m.next = "IDLE"
        m.d.comb += eval_busy.eq(~fsm.ongoing("IDLE"))

        # The payload is the evaluator's registers: a pipeline on the snapshot and on dividers
        # that are done, so it holds until the transfer.
        out = o.payload
        quoting = ~no_fv
        m.d.comb += [
            out.slot.eq(w_slot),
            out.seq.eq(w_top.seq),
            out.position.eq(w_pos),
            out.no_fair_value.eq(no_fv),
            out.fair_value.eq(Mux(quoting, fv, 0)),
            out.center.eq(Mux(quoting, center, 0)),
            out.half_spread.eq(Mux(quoting, half, 0)),
            out.skew.eq(Mux(quoting, skew, 0)),
        ]
        for side in ("bid", "ask"):
            for k in range(MAX_LEVELS):
                level = levels[side][k]
                target = getattr(out, f"{side}s")[k]
                m.d.comb += [target.valid.eq(level.valid),
                             target.price.eq(Mux(level.valid, level.price, 0)),
                             target.quantity.eq(level.quantity)]
        return eval_busy
