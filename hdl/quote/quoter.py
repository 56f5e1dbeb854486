"""The quoter's pricing engine: top-of-book updates in, desired quotes per instrument slot out.

Its twin is :class:`sim.quoter.Quoter` (``on_book`` then ``quotes``): rules 1 to 10 of that
module's docstring, computed to the same integers. The requote rules (which orders to cancel,
send or replace) are in :mod:`hdl.quote.requote`.

Widths. The model's integers do not wrap; these widths hold every value the rules produce for
every register value of :class:`~hdl.csr.params.QuoteParams` and
:class:`~hdl.csr.params.RiskLimits` and every 32-bit signed position:

- ``vol < 2**40`` (an average of samples ``|mid change| << 8 < 2**40``, starting at 0);
- microprice: products ``price * shares < 2**80``, their sum ``< 2**81``, weight ``< 2**49``
  (level shares are 48 bits), and the quotient lies between the two prices, so 32 bits;
- skew product ``|position| * skew_ticks_per_unit * tick < 2**31 * 2**32 * 2**16``: 80 bits, so
  ``|skew| < 2**64`` and the centre ``fv - skew`` fits 67 bits signed, ``c -/+ half`` 68;
- ``half < 2**30 + 2**40 < 2**42``; ``level_spacing * tick < 2**30``.

The one narrowing is of ``c - half`` and ``c + half`` before the tick rounding, see
:data:`ROUND_CLAMP`.

Timing. Products and quotients are sequential (:mod:`hdl.quote.arith`, no DSP block), one adder
a step, at most 50 bits wide; every other step of the evaluation is one registered operation.
The widest carry chains are the microprice dividend's 81-bit sum, the 68-bit ``c -/+ half`` and
its clamp comparison; the front end's deepest path is an 8-way read, a 41-bit subtraction and,
a cycle later, a 4-level shift into a 42-bit addition. Nothing here has been through place and
route yet.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hdl.book.layout import SEQ_BITS, top_update_stream
from hdl.csr.bank import block_signature
from hdl.csr.params import PRICE_BITS, FairValueMode, QuoteParams, RiskLimits
from hdl.csr.reg import Block
from hdl.quote.arith import RestoringDivider, ShiftAddMultiplier
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
#: rounding, so it divides 35 bits instead of 68. No quote changes. Call a price *far above* when
#: it exceeds ``2**33`` and *far below* when it is under ``-2**33``. Every price that can reach
#: an order is in ``[1, MAX_LIMIT_PRICE]``, below ``2**31``; a level is at most
#: ``2 * level_spacing * tick < 2**31`` from level 0; the post-only limits lie in ``[0, 2**33)``.
#: Bid side: a level-0 bid far above becomes the post-only limit when the book has an ask (the
#: limit is lower) and otherwise leaves every level above ``2**33 - 2**31``, out of the band; a
#: bid far below stays far below through the post-only ``min`` and every level is below 1. Ask
#: side, mirrored: far below, the post-only limit (at least 1) wins or every level stays under 1;
#: far above, every level is above the band. So only whether a level-0 price is far above, far
#: below or its exact value matters. An unclamped ``x`` beyond the clamp rounds (plus the
#: locked-quote tick) to a price far on the same side; the clamped value ``+-2**34`` rounds to one
#: within ``2 * 65535`` of it, far on the same side too. The lock test compares the rounded
#: prices: for unclamped values it is the model's; when a clamp moved one of them, the ask that
#: the test may bump is far above or below either way (``c - half <= c + half``, so a clamp of
#: the bid alone is from below, where the bid cannot equal an ask at or above ``-2**34``, or both
#: were clamped), and a tick more keeps it there.
ROUND_CLAMP = 1 << 34
_ROUND_BITS = 35  # magnitude of a clamped value

QUOTE_PARAMS_BLOCK = Block.from_dataclass("quote", QuoteParams, "Quote parameters.")
RISK_LIMITS_BLOCK = Block.from_dataclass("risk", RiskLimits, "Risk limits.")

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
# slot's top stored and marked pending); the evaluator sees the mark a cycle later.
_FRONT_CYCLES = 4
# Evaluator, from taking a pending slot to the quote set on ``o``: snapshot, start, the longest
# first-phase unit (the 33-step remainder of ``best_bid + 1``, seen done a cycle later), the
# division's start, the 32-step microprice division (likewise), fair value, centre, spread and
# clamp, the start of the 35-step remainders of ``c -/+ half`` (likewise), lock, post-only,
# levels, band, one step per level's size.
_EVAL_CYCLES = 1 + 1 + 34 + 1 + 33 + 4 + 1 + 36 + 4 + MAX_LEVELS
#: Cycles from a top-of-book update's transfer to its quote set on ``o`` (``o`` ready, the
#: evaluator idle, the update not superseded).
QUOTER_LATENCY = _FRONT_CYCLES + _EVAL_CYCLES


def _floor_tick(x, rem, tick):
    """``floor_tick`` of signed ``x`` from ``rem = |x| % tick``."""
    return Mux(x >= 0, x - rem, x + rem - Mux(rem != 0, tick, 0))


def _ceil_tick(x, rem, tick):
    """``ceil_tick`` of signed ``x`` from ``rem = |x| % tick``."""
    return Mux(x >= 0, x + Mux(rem != 0, tick - rem, 0), x + rem)


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
    stats : Out(stats_layout(QuoterStat))
        Counters, see :class:`sim.quoter.QuoterStat`.
    busy : Out(1)
        An update or a quote set is in flight or waiting (for tests and the host).

    Latency
    -------
    :data:`QUOTER_LATENCY` (122) cycles from an update's transfer to its quote set on ``o``,
    when the evaluator is idle and ``o`` ready: 4 in the front end, then 118 to price. The
    microprice division takes 32 steps, each tick rounding 35 (``c -/+ half``) or 33 (the
    post-only limits, beside the products); every mode takes the same time.

    Throughput
    ----------
    ``i`` takes one update every 2 cycles (the book's own top rate) and never waits for the
    evaluator. The evaluator prices one slot every ``QUOTER_LATENCY - 3`` (119) cycles with
    ``o`` ready, in round-robin order among the slots with an update waiting. A slot updated
    again before its turn is priced once, on its newest top (counted ``SUPERSEDED``): a newer
    top supersedes an older one. The volatility EWMA is not affected: it is updated in the front
    end on every update, in arrival order, so the quote set of the newest top uses the EWMA of
    every update up to it, as the model's does.

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
        pending = Signal(n)

        # -- Front end ---------------------------------------------------------------------------
        # Taking an update every other cycle lets S2 read the EWMA that S3 of the previous update
        # wrote, without a forwarding path through the adder.
        took = Signal()
        m.d.comb += self.i.ready.eq(~took)
        m.d.sync += took.eq(self.i.valid & self.i.ready)

        upd = self.i.payload
        s1 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "mid": PRICE_BITS,
            "mid_ok": 1}))
        s2 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "sample": 1,
            "change": PRICE_BITS}))
        s3 = Signal(data.StructLayout({
            "valid": 1, "slot": self.slot_bits, "top": _TopLayout, "sample": 1,
            "vol": VOL_BITS, "delta": signed(VOL_BITS + 1), "shift": 4}))

        taken = self.i.valid & self.i.ready
        good_slot = upd.slot < n
        count(m, stats.updates, taken)
        count(m, stats.bad_slot, taken & ~good_slot)
        m.d.sync += [
            s1.valid.eq(taken & good_slot),
            s1.slot.eq(upd.slot),
            s1.top.eq(Cat(upd.bid_price, upd.bid_shares, upd.ask_price, upd.ask_shares,
                          upd.seq)),
            s1.mid.eq((upd.bid_price + upd.ask_price) >> 1),
            s1.mid_ok.eq((upd.bid_price != 0) & (upd.ask_price != 0)),
        ]

        # S1: the mid change against the slot's last mid, both differences at once.
        prev = last_mid[s1.slot]
        up, down = s1.mid - prev, prev - s1.mid
        m.d.sync += [
            s2.valid.eq(s1.valid),
            s2.slot.eq(s1.slot),
            s2.top.eq(s1.top),
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
            s3.sample.eq(s2.sample),
            s3.vol.eq(vol[s2.slot]),
            s3.delta.eq((s2.change << VOL_FRAC_BITS) - vol[s2.slot]),
            s3.shift.eq(shifts[s2.slot]),
        ]

        # S3: the EWMA moves; the top waits for the evaluator (a waiting older one is replaced).
        take = Signal()           # the evaluator takes slot ``pick`` this cycle
        pick = Signal(range(n))
        with m.If(s3.valid):
            with m.If(s3.sample):
                m.d.sync += vol[s3.slot].eq(s3.vol + (s3.delta >> s3.shift))
            m.d.sync += tops[s3.slot].eq(s3.top)
        count(m, stats.superseded, s3.valid & pending.bit_select(s3.slot, 1) &
              ~(take & (pick == s3.slot)))
        with m.If(take):
            m.d.sync += pending.bit_select(pick, 1).eq(0)
        with m.If(s3.valid):   # after the clear: an update stored in the same cycle stays
            m.d.sync += pending.bit_select(s3.slot, 1).eq(1)

        # -- Evaluator ---------------------------------------------------------------------------
        # Round robin: the lowest waiting slot above the last one taken, else the lowest.
        last = Signal(range(n))
        above = Signal(n)
        m.d.comb += above.eq(pending & Cat(last < k for k in range(n)))
        m.d.comb += pick.eq(Mux(above.any(), _lowest(above, n), _lowest(pending, n)))

        eval_busy = self._evaluator(m, vol, tops, pending, take, pick, last)

        m.d.comb += self.busy.eq(s1.valid | s2.valid | s3.valid | took | pending.any() |
                                 eval_busy)
        count(m, stats.quote_sets, self.o.valid & self.o.ready)
        return m

    def _evaluator(self, m, vol, tops, pending, take, pick, last):
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
        w_vol = Signal(VOL_BITS)
        w_pos = Signal(signed(POSITION_BITS))

        mul_ba = m.submodules.mul_ba = ShiftAddMultiplier(LEVEL_SHARES_BITS, PRICE_BITS)
        mul_ab = m.submodules.mul_ab = ShiftAddMultiplier(LEVEL_SHARES_BITS, PRICE_BITS)
        mul_kt = m.submodules.mul_kt = ShiftAddMultiplier(32, 16)
        mul_skew = m.submodules.mul_skew = ShiftAddMultiplier(48, POSITION_BITS)
        mul_vol = m.submodules.mul_vol = ShiftAddMultiplier(VOL_BITS, 16)
        mul_half = m.submodules.mul_half = ShiftAddMultiplier(16, 16)
        mul_step = m.submodules.mul_step = ShiftAddMultiplier(16, 16)
        rem_pb = m.submodules.rem_pb = RestoringDivider(PRICE_BITS, 16, PRICE_BITS)
        rem_pa = m.submodules.rem_pa = RestoringDivider(PRICE_BITS + 1, 16, PRICE_BITS + 1)
        div_fv = m.submodules.div_fv = RestoringDivider(2 * PRICE_BITS + 17, _WEIGHT_BITS,
                                                       PRICE_BITS)
        rem_xb = m.submodules.rem_xb = RestoringDivider(_ROUND_BITS, 16, _ROUND_BITS)
        rem_xa = m.submodules.rem_xa = RestoringDivider(_ROUND_BITS, 16, _ROUND_BITS)
        first_phase = (mul_ba, mul_ab, mul_kt, mul_vol, mul_half, mul_step, rem_pb, rem_pa)

        tick = w["tick_size"]
        bid_p, ask_p = w_top.bid_price, w_top.ask_price
        bid_ok, ask_ok = bid_p != 0, ask_p != 0
        pos_neg = w_pos < 0
        pos_mag = Mux(pos_neg, -w_pos, w_pos)[:POSITION_BITS]

        # Operands of the units, taken from the snapshot registers.
        m.d.comb += [
            mul_ba.a.eq(w_top.ask_shares), mul_ba.b.eq(bid_p),
            mul_ab.a.eq(w_top.bid_shares), mul_ab.b.eq(ask_p),
            mul_kt.a.eq(w["skew_ticks_per_unit"]), mul_kt.b.eq(tick),
            mul_vol.a.eq(w_vol), mul_vol.b.eq(w["vol_multiplier"]),
            mul_half.a.eq(w["base_half_spread"]), mul_half.b.eq(tick),
            mul_step.a.eq(w["level_spacing"]), mul_step.b.eq(tick),
            # With an empty side these wrap; their results are then not used.
            rem_pb.n.eq(ask_p - 1), rem_pb.d.eq(tick),
            rem_pa.n.eq(bid_p + 1), rem_pa.d.eq(tick),
            # The skew product's second half starts as its first ends.
            mul_skew.start.eq(mul_kt.done),
            mul_skew.a.eq(mul_kt.product), mul_skew.b.eq(pos_mag),
            rem_xb.d.eq(tick), rem_xa.d.eq(tick),
        ]

        weight = Signal(_WEIGHT_BITS)
        sum_ok = Signal()  # the weight is not zero
        pb = Signal(PRICE_BITS)       # floor_tick(best_ask - 1)
        pa = Signal(PRICE_BITS + 2)   # ceil_tick(best_bid + 1)
        low = Signal(PRICE_BITS)
        high = Signal(PRICE_BITS)
        room = {side: Signal(POSITION_BITS + 1, name=f"room_{side}") for side in ("bid", "ask")}
        no_fv = Signal()
        fv = Signal(PRICE_BITS)
        skew_mag = Signal(SKEW_BITS)
        half = Signal(HALF_BITS)
        skew = Signal(signed(SKEW_BITS))
        center = Signal(signed(CENTER_BITS))
        x_bid = Signal(signed(_SPREAD_BITS))
        x_ask = Signal(signed(_SPREAD_BITS))
        c_bid = Signal(signed(_ROUND_BITS + 1))
        c_ask = Signal(signed(_ROUND_BITS + 1))
        bid0 = Signal(signed(_ROUND_BITS + 3))
        ask0 = Signal(signed(_ROUND_BITS + 3))
        prices = {side: [Signal(signed(_ROUND_BITS + 5), name=f"{side}_price{k}")
                         for k in range(MAX_LEVELS)] for side in ("bid", "ask")}
        in_band = {side: Signal(MAX_LEVELS, name=f"{side}_in_band") for side in ("bid", "ask")}
        levels = {side: Signal(data.ArrayLayout(QuoteLevelLayout, MAX_LEVELS), name=f"{side}s")
                  for side in ("bid", "ask")}

        mode = w["fair_value_mode"]
        mid = (bid_p + ask_p) >> 1
        known_mode = Signal()
        m.d.comb += known_mode.eq((mode == FairValueMode.MID) | (mode == FairValueMode.MICROPRICE)
                                  | (mode == FairValueMode.REFERENCE))

        o = self.o
        eval_busy = Signal()
        with m.FSM(name="evaluator") as fsm:
            with m.State("IDLE"):
                with m.If(pending.any()):
                    m.d.comb += take.eq(1)
                    m.d.sync += [w_slot.eq(pick), last.eq(pick), w_top.eq(tops[pick]),
                                 w_vol.eq(vol[pick]), w_pos.eq(self.position[pick])]
                    for name in q_fields:
                        m.d.sync += w[name].eq(Array(getattr(q, name) for q in self.quote)[pick])
                    for name in ("max_long", "max_short"):
                        m.d.sync += w[name].eq(Array(getattr(r, name) for r in self.risk)[pick])
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [unit.start.eq(1) for unit in first_phase]
                limit_ceiling = w["price_ceiling"] < MAX_LIMIT_PRICE
                buy_room = w["max_long"] - w_pos
                sell_room = w["max_short"] + w_pos
                m.d.sync += [
                    low.eq(Mux(w["price_floor"] > 1, w["price_floor"], 1)),
                    high.eq(Mux(limit_ceiling, w["price_ceiling"], MAX_LIMIT_PRICE)),
                    room["bid"].eq(Mux(buy_room < 0, 0, buy_room)),
                    room["ask"].eq(Mux(sell_room < 0, 0, sell_room)),
                ]
                m.next = "PRODUCTS"
            with m.State("PRODUCTS"):
                with m.If(~Cat(unit.busy for unit in first_phase).any()):
                    # The microprice's dividend and divisor, and the post-only limits.
                    m.d.sync += [
                        weight.eq(w_top.bid_shares + w_top.ask_shares),
                        pb.eq(ask_p - 1 - rem_pb.remainder),
                        pa.eq(bid_p + 1 + Mux(rem_pa.remainder != 0, tick - rem_pa.remainder,
                                              0)),
                    ]
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):
                # (b * as + a * bs) < max(a, b) * (as + bs) <= 2**32 * weight: the quotient fits
                # the divider's 32 bits. A zero weight (never sent by the book) takes the mid.
                m.d.comb += [div_fv.start.eq(1),
                             div_fv.n.eq(mul_ba.product + mul_ab.product),
                             div_fv.d.eq(weight)]
                m.d.sync += sum_ok.eq(weight != 0)
                m.next = "QUOTIENT"
            with m.State("QUOTIENT"):
                with m.If(~div_fv.busy & ~mul_skew.busy):
                    m.next = "FAIR_VALUE"
            with m.State("FAIR_VALUE"):
                with m.Switch(mode):
                    with m.Case(FairValueMode.MID):
                        m.d.sync += fv.eq(mid)
                    with m.Case(FairValueMode.MICROPRICE):
                        m.d.sync += fv.eq(Mux(sum_ok, div_fv.quotient, mid))
                    with m.Default():
                        m.d.sync += fv.eq(w["reference_price"])
                with m.If(mode == FairValueMode.REFERENCE):
                    m.d.sync += no_fv.eq(w["reference_price"] == 0)
                with m.Else():
                    m.d.sync += no_fv.eq(~bid_ok | ~ask_ok)
                with m.If(~w["enable"] | (tick == 0) | ~known_mode):
                    m.d.sync += no_fv.eq(1)
                # ``(-p) >> 16`` is ``-ceil(p / 2**16)``: a short position's skew rounds its
                # magnitude up, so that the skew rounds toward minus infinity either way.
                product = mul_skew.product
                frac = product[:SKEW_FRAC_BITS] != 0
                m.d.sync += [
                    skew_mag.eq(product[SKEW_FRAC_BITS:] + (pos_neg & frac)),
                    half.eq(mul_half.product + (mul_vol.product >> (
                        VOL_FRAC_BITS + VOL_MULTIPLIER_FRAC_BITS))),
                ]
                m.next = "CENTER"
            with m.State("CENTER"):
                m.d.sync += [
                    skew.eq(Mux(pos_neg, -skew_mag, skew_mag)),
                    center.eq(Mux(pos_neg, fv + skew_mag, fv - skew_mag)),
                ]
                m.next = "SPREAD"
            with m.State("SPREAD"):
                m.d.sync += [x_bid.eq(center - half), x_ask.eq(center + half)]
                m.next = "CLAMP"
            with m.State("CLAMP"):
                for x, clamped in ((x_bid, c_bid), (x_ask, c_ask)):
                    m.d.sync += clamped.eq(Mux(x > ROUND_CLAMP, ROUND_CLAMP,
                                               Mux(x < -ROUND_CLAMP, -ROUND_CLAMP, x)))
                m.next = "ROUND_START"
            with m.State("ROUND_START"):
                m.d.comb += [
                    rem_xb.start.eq(1), rem_xb.n.eq(Mux(c_bid < 0, -c_bid, c_bid)),
                    rem_xa.start.eq(1), rem_xa.n.eq(Mux(c_ask < 0, -c_ask, c_ask)),
                ]
                m.next = "ROUND_WAIT"
            with m.State("ROUND_WAIT"):
                with m.If(~rem_xb.busy & ~rem_xa.busy):
                    m.d.sync += [bid0.eq(_floor_tick(c_bid, rem_xb.remainder, tick)),
                                 ask0.eq(_ceil_tick(c_ask, rem_xa.remainder, tick))]
                    m.next = "LOCK"
            with m.State("LOCK"):
                with m.If(ask0 == bid0):
                    m.d.sync += ask0.eq(ask0 + tick)
                m.next = "POST_ONLY"
            with m.State("POST_ONLY"):
                with m.If(ask_ok & (pb < bid0)):
                    m.d.sync += bid0.eq(pb)
                with m.If(bid_ok & (pa > ask0)):
                    m.d.sync += ask0.eq(pa)
                m.next = "LEVELS"
            with m.State("LEVELS"):
                step = mul_step.product
                for k in range(MAX_LEVELS):
                    m.d.sync += [prices["bid"][k].eq(bid0 - step * k),
                                 prices["ask"][k].eq(ask0 + step * k)]
                m.next = "BAND"
            with m.State("BAND"):
                for side in ("bid", "ask"):
                    m.d.sync += in_band[side].eq(Cat((p >= low) & (p <= high)
                                                     for p in prices[side]))
                m.next = "SIZE_0"
            # Rule 9, one level a cycle: each level takes what the levels before it left.
            for k in range(MAX_LEVELS):
                with m.State(f"SIZE_{k}"):
                    size = w["size"]
                    for side in ("bid", "ask"):
                        left = room[side]
                        share = Mux(size < left, size, left)
                        quoted = (~no_fv & (w["levels"] > k) & in_band[side][k] & (share != 0))
                        m.d.sync += [
                            levels[side][k].valid.eq(quoted),
                            levels[side][k].price.eq(prices[side][k]),
                            levels[side][k].quantity.eq(Mux(quoted, share, 0)),
                            left.eq(left - Mux(quoted, share, 0)),
                        ]
                    if k + 1 < MAX_LEVELS:
                        m.next = f"SIZE_{k + 1}"
                    else:
                        m.d.sync += o.valid.eq(1)
                        m.next = "OUTPUT"
            with m.State("OUTPUT"):
                with m.If(o.ready):
                    m.d.sync += o.valid.eq(0)
                    m.next = "IDLE"
        m.d.comb += eval_busy.eq(~fsm.ongoing("IDLE"))

        # The payload is the evaluator's registers, which hold from SIZE_2 until the transfer.
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
