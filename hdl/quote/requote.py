"""The quoter's requote rules and the hedger: quote sets in, order actions out.

Twin of one evaluation of the core model (:mod:`sim.market_maker`) for one instrument: the
hedger's order (:meth:`sim.hedger.Hedger.action`), then the actions that move the resting
quotes to the quote set (:meth:`sim.quoter.Quoter.actions`, rules under "Moving the resting
quotes" in :mod:`sim.quoter`), in that order and field for field.

What the evaluation reads, and when
-----------------------------------
The model evaluates against the order table, the top of book and the time of one instant. The
gateware takes that instant to be the cycle a quote set is transferred on ``i``: in that cycle
it copies the slot's 8 orders of ``orders`` (its 6 quote orders and its 2 hedge order slots),
its best bid and ask from ``top``, its ``quote`` and ``risk`` registers and ``now``, and decides
every action of the quote set from that copy. The hedger's position is the quote set's own
``position`` (the one the quotes were priced with), as the model passes one position to both.

- ``now`` is the order table's free-running cycle counter, the one that stamps ``since``; an
  order has *aged* when ``now - since >= min_quote_life``, computed on 49 bits signed (a
  ``since`` ahead of ``now`` is not aged, as in the model). The 48-bit counter does not wrap
  within 20 days at 156.25 MHz.
- ``top`` is each slot's current best bid and ask (0: empty side), the model's
  ``Quoter.top``; it serves the locked-or-crossed test and the hedge price.
- The view must already show every action sent for the slot's earlier quote sets (recorded by
  the order table as busy, or ended), or an action would be decided twice. The loop
  (:class:`~hdl.quote.loop.QuoteLoop`) therefore passes a quote set only once every action of
  the one before is recorded.

How it works
------------
Four register stages. *Take*: the copy above. *Compute*: per order slot, ``want - price`` both
ways (33 bits), the quantity comparison, ``now - since``, the locked-or-crossed comparison; the
threshold ``requote_threshold * tick_size`` (16 x 16 bits, one DSP block with registered
operands and product); the hedger's query. *Compare*: ``|want - price|`` against the
threshold, the age against ``min_quote_life``. *Decide*: the kind of each order slot's action
and its fields, with the hedger's result; the first of them to send (hedge first, then BUY
levels 0 to 2, then SELL) goes straight into ``o``'s registers when ``o`` is free, the others
into 7 action registers and a mask of those left. *Send*: the lowest action left in the mask is
loaded into ``o``'s registers, one per cycle.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hdl.arch.ouch import ACTION_PRICE_BITS, TimeInForceCode
from hdl.csr.bank import block_signature
from hdl.csr.params import PRICE_BITS
from hdl.quote.hedger import HEDGER_LATENCY, Hedger
from hdl.quote.order_action import OrderActionLayout, OrderActionStream
from hdl.quote.order_table import (
    ORDERS_PER_SLOT,
    TIME_BITS,
    RestingLayout,
    order_index,
)
from hdl.quote.quoter import (
    POSITION_BITS,
    QUOTE_PARAMS_BLOCK,
    RISK_LIMITS_BLOCK,
    QuoteLevelLayout,
    quote_set_layout,
)
from hdl.stats import count, stats_layout
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, MAX_LEVELS, ActionKind, Origin
from sim.quoter import RequoteStat

__all__ = ["REQUOTE_LATENCY", "Requoter", "TopPricesLayout"]

#: A slot's best bid and ask; 0 is an empty side.
TopPricesLayout = data.StructLayout({"bid_price": PRICE_BITS, "ask_price": PRICE_BITS})


# The quote order slots in the model's order, after the hedge.
_QUOTE_SLOTS = [(side, level) for side in (Side.BUY, Side.SELL) for level in range(MAX_LEVELS)]
_ACTIONS = 1 + len(_QUOTE_SLOTS)

#: Cycles from a quote set's transfer on ``i`` to its first action on ``o`` (take, compute,
#: compare, decide and send); its ``n``-th action follows ``n - 1`` cycles later with ``o`` ready.
REQUOTE_LATENCY = 4


def _lowest(vector, width: int):
    """Index of the lowest set bit of ``vector`` (0 when none is)."""
    index = 0
    for bit in reversed(range(width)):
        index = Mux(vector[bit], bit, index)
    return index


class Requoter(wiring.Component):
    """The hedge order and the requote actions of each quote set.

    Parameters
    ----------
    slots : int
        Instrument slots (default 8).
    slot_bits : int, optional
        Width of the slot number on ``i`` (default: enough for ``slots``); the quoter's.

    Ports
    -----
    i : In(stream.Signature(quote_set_layout(slot_bits)))
        The quoter's quote sets (:class:`~hdl.quote.quoter.Quoter` ``o``). Ready when the
        previous quote set's actions have all been loaded into ``o``.
    o : Out(OrderActionStream())
        The actions, per quote set in the model's order: the hedge order, if any, then per order
        slot (BUY before SELL, level 0 to 2) a cancel, a new order or a replacement.
    orders : In(RestingLayout), an array of ``8 * slots``
        The order table, element :func:`order_index` ``(slot, side, level)`` (levels 0 to 2 the
        quotes, 3 the hedge).
    top : In(ArrayLayout(TopPricesLayout, slots))
        Each slot's current best bid and ask.
    quote : In(block_signature(QUOTE_PARAMS_BLOCK)), an array of ``slots``
        Each slot's :class:`~hdl.csr.params.QuoteParams` (``requote_threshold``, ``tick_size``
        and ``min_quote_life`` are read).
    risk : In(block_signature(RISK_LIMITS_BLOCK)), an array of ``slots``
        Each slot's :class:`~hdl.csr.params.RiskLimits` (``hedge_enable``,
        ``hedge_threshold``, ``hedge_size`` are read).
    now : In(48)
        The order table's cycle counter, the clock of ``since``.
    stats : Out(stats_layout(RequoteStat))
        Counters, see :class:`sim.quoter.RequoteStat`.
    busy : Out(1)
        A quote set is being evaluated or has actions left to send.

    Latency
    -------
    :data:`REQUOTE_LATENCY` (4) cycles from a quote set's transfer to its first action on
    ``o``; with ``o`` ready the ``n``-th follows in cycle ``3 + n``, so the last of at most 7
    (a hedge and 6 quote actions) 10 cycles after the transfer.

    Throughput
    ----------
    One action per cycle on ``o``. A quote set with ``n`` actions occupies the stage for
    ``3 + max(n, 1)`` cycles with ``o`` ready (4 to 10), fewer than the quoter takes to price one
    (:data:`~hdl.quote.quoter.QUOTER_MODE_PERIOD`).

    Bad input
    ---------
    A quote set of a slot number of ``slots`` or more is dropped and counted (``BAD_SLOT``).
    Every other input is decided exactly as the model decides it; the risk gate judges the
    actions (a valid quote level of 0 shares, which the quoter never sends, would become an
    order of 0 shares there).
    """

    def __init__(self, slots: int = 8, *, slot_bits: int | None = None):
        if slots < 1:
            raise ValueError("a requoter needs at least one slot")
        self.slots = slots
        self.slot_bits = slot_bits if slot_bits is not None else max(ceil_log2(slots), 1)
        if (1 << self.slot_bits) < slots:
            raise ValueError(f"{self.slot_bits} slot bits cannot number {slots} slots")
        super().__init__({
            "i": In(stream.Signature(quote_set_layout(self.slot_bits))),
            "o": Out(OrderActionStream()),
            "orders": In(RestingLayout).array(ORDERS_PER_SLOT * slots),
            "top": In(data.ArrayLayout(TopPricesLayout, slots)),
            "quote": In(block_signature(QUOTE_PARAMS_BLOCK)).array(slots),
            "risk": In(block_signature(RISK_LIMITS_BLOCK)).array(slots),
            "now": In(TIME_BITS),
            "stats": Out(stats_layout(RequoteStat)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.slots
        stats = self.stats
        m.submodules.hedger = hedger = Hedger()

        # -- Take: the copy every decision of the quote set reads --------------------------------
        qs = self.i.payload
        slot = qs.slot
        w_slot = Signal(self.slot_bits)
        w_pos = Signal(signed(POSITION_BITS))
        w_want = Signal(data.ArrayLayout(QuoteLevelLayout, len(_QUOTE_SLOTS)))
        w_order = Signal(data.ArrayLayout(RestingLayout, len(_QUOTE_SLOTS)))
        w_hedge_open = Signal()
        w_top = Signal(TopPricesLayout)
        w_now = Signal(TIME_BITS)
        w_q = {name: Signal.like(getattr(self.quote[0], name), name=f"w_{name}")
               for name in ("requote_threshold", "tick_size", "min_quote_life")}
        w_r = {name: Signal.like(getattr(self.risk[0], name), name=f"w_{name}")
               for name in ("hedge_enable", "hedge_threshold", "hedge_size")}

        def of_slot(values):
            return Array(values)[slot]

        def order_of(side, level):
            return RestingLayout(of_slot([self.orders[order_index(s, side, level)].as_value()
                                          for s in range(n)]))

        s1, s2, s3 = Signal(), Signal(), Signal()   # the stage holds a quote set
        pending = Signal(_ACTIONS)
        m.d.comb += self.i.ready.eq(~(s1 | s2 | s3) & ~pending.any())
        taken = self.i.valid & self.i.ready
        good_slot = slot < n
        count(m, stats.quote_sets, taken & good_slot)
        count(m, stats.bad_slot, taken & ~good_slot)
        m.d.sync += [s1.eq(taken & good_slot), s2.eq(s1), s3.eq(s2)]
        with m.If(taken):
            m.d.sync += [
                w_slot.eq(slot),
                w_pos.eq(qs.position),
                w_hedge_open.eq(order_of(Side.BUY, HEDGE_LEVEL).valid
                                | order_of(Side.SELL, HEDGE_LEVEL).valid),
                w_top.eq(of_slot([self.top[s].as_value() for s in range(n)])),
                w_now.eq(self.now),
            ]
            for j, (side, level) in enumerate(_QUOTE_SLOTS):
                levels = qs.bids if side == Side.BUY else qs.asks
                m.d.sync += [w_want[j].eq(levels[level]), w_order[j].eq(order_of(side, level))]
            for name, reg in w_q.items():
                m.d.sync += reg.eq(of_slot([getattr(q, name) for q in self.quote]))
            for name, reg in w_r.items():
                m.d.sync += reg.eq(of_slot([getattr(r, name) for r in self.risk]))

        # -- Compute -----------------------------------------------------------------------------
        wide = ACTION_PRICE_BITS + 1
        up = [Signal(signed(wide), name=f"up{j}") for j in range(len(_QUOTE_SLOTS))]
        down = [Signal(signed(wide), name=f"down{j}") for j in range(len(_QUOTE_SLOTS))]
        age = [Signal(signed(TIME_BITS + 1), name=f"age{j}") for j in range(len(_QUOTE_SLOTS))]
        resized = Signal(len(_QUOTE_SLOTS))
        through = Signal(len(_QUOTE_SLOTS))
        threshold = Signal(32)
        bid_ok, ask_ok = w_top.bid_price != 0, w_top.ask_price != 0
        for j, (side, _) in enumerate(_QUOTE_SLOTS):
            want, order = w_want[j], w_order[j]
            crosses = (ask_ok & (order.price >= w_top.ask_price) if side == Side.BUY
                       else bid_ok & (order.price <= w_top.bid_price))
            m.d.sync += [
                up[j].eq(want.price - order.price),
                down[j].eq(order.price - want.price),
                age[j].eq(w_now - order.since),
                resized[j].eq(want.quantity != order.quantity),
                through[j].eq(crosses),
            ]
        m.d.sync += threshold.eq(w_q["requote_threshold"] * w_q["tick_size"])

        # The hedger's query, from the same copy; its answer arrives for the decide stage.
        assert HEDGER_LATENCY == 2, "the hedger's answer must reach the decide stage"
        query = hedger.i.payload
        m.d.comb += [
            hedger.i.valid.eq(s1),
            query.slot.eq(w_slot),
            query.position.eq(w_pos),
            query.bid_price.eq(w_top.bid_price),
            query.ask_price.eq(w_top.ask_price),
            query.hedge_open.eq(w_hedge_open),
            query.hedge_enable.eq(w_r["hedge_enable"]),
            query.hedge_threshold.eq(w_r["hedge_threshold"]),
            query.hedge_size.eq(w_r["hedge_size"]),
            hedger.o.ready.eq(1),
        ]

        # -- Compare -----------------------------------------------------------------------------
        moved = Signal(len(_QUOTE_SLOTS))
        aged = Signal(len(_QUOTE_SLOTS))
        for j in range(len(_QUOTE_SLOTS)):
            distance = Mux(up[j] < 0, down[j], up[j])[:ACTION_PRICE_BITS]
            m.d.sync += [
                moved[j].eq((distance != 0) & (distance >= threshold)),
                aged[j].eq(age[j] >= w_q["min_quote_life"]),
            ]

        # -- Decide ------------------------------------------------------------------------------
        # ``decided``: the actions of this cycle's decision, latched into ``acts`` (the hedger's
        # output moves on after it).
        acts = [Signal(OrderActionLayout, name=f"act{j}") for j in range(_ACTIONS)]
        decided = [Signal(OrderActionLayout, name=f"decided{j}") for j in range(_ACTIONS)]
        send = Signal(_ACTIONS)
        m.d.comb += [send[0].eq(hedger.o.valid & hedger.o.payload.send),
                     decided[0].eq(hedger.o.payload.action)]
        for j, (side, level) in enumerate(_QUOTE_SLOTS):
            want, order = w_want[j], w_order[j]
            free = ~(order.valid & order.busy)
            cancel = free & ~want.valid & order.valid
            new = free & want.valid & ~order.valid
            replace = (free & want.valid & order.valid
                       & (through[j] | ((moved[j] | resized[j]) & aged[j])))
            act = decided[1 + j]
            m.d.comb += [
                send[1 + j].eq(s3 & (cancel | new | replace)),
                act.kind.eq(Mux(cancel, ActionKind.CANCEL,
                                    Mux(new, ActionKind.NEW, ActionKind.REPLACE))),
                    act.slot.eq(w_slot),
                    act.side.eq(side),
                    act.level.eq(level),
                    act.price.eq(Mux(cancel, 0, want.price)),
                    act.quantity.eq(Mux(cancel, 0, want.quantity)),
                    act.tif.eq(TimeInForceCode.DAY),
                act.ref.eq(Mux(new, 0, order.ref)),
                act.origin.eq(Origin.QUOTER),
            ]
        with m.If(s3):
            m.d.sync += [a.eq(d) for a, d in zip(acts, decided, strict=True)]

        # -- Send --------------------------------------------------------------------------------
        # The decision's first action goes to ``o`` from the decide stage itself when ``o`` is
        # free; the others, one a cycle, from ``acts``. In the decide cycle the mask is empty.
        o = self.o
        free = ~o.valid | o.ready
        first = _lowest(send, _ACTIONS)
        pick = _lowest(pending, _ACTIONS)
        direct = s3 & send.any() & free
        with m.If(direct):
            m.d.sync += [
                o.valid.eq(1),
                o.payload.eq(Array(d.as_value() for d in decided)[first]),
                pending.eq(send & ~(Const(1, _ACTIONS) << first)),
            ]
        with m.Elif(pending.any() & free):
            m.d.sync += [
                o.valid.eq(1),
                o.payload.eq(Array(a.as_value() for a in acts)[pick]),
                pending.bit_select(pick, 1).eq(0),
            ]
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(s3 & ~direct):
            m.d.sync += pending.eq(send)

        sent = o.valid & o.ready
        quoter = o.payload.origin == Origin.QUOTER
        count(m, stats.new, sent & quoter & (o.payload.kind == ActionKind.NEW))
        count(m, stats.replace, sent & quoter & (o.payload.kind == ActionKind.REPLACE))
        count(m, stats.cancel, sent & quoter & (o.payload.kind == ActionKind.CANCEL))
        count(m, stats.hedges, sent & (o.payload.origin == Origin.HEDGER))

        m.d.comb += self.busy.eq(s1 | s2 | s3 | pending.any() | o.valid)
        return m
