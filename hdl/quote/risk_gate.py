"""The pre-trade risk gate: every order action reaches the order port through here or not at all.

Twin of :class:`sim.risk.RiskGate`: instrument state (ACTIVE / REDUCING / HALTED and its cause),
checks 1 to 11 in the model's order, cancels never rate limited, the token bucket and market-maker
protection, each decision with the :class:`~sim.risk.RiskReason` the model gives.

Time
----
The model takes ``now`` from its caller; here it is the free-running cycle counter (``now``, 0 in
the first cycle after reset) and these rules place every input in the model's time line:

- A decision is taken *at* the cycle its order-table view is accepted on ``i_view`` (``t``): the
  view, the instrument's state, its top, the registers, the position, the control state, the
  feed-gap flag and the token bucket are those of cycle ``t``. The model's twin is
  ``check(action, t)``; ``t`` is reported in the decision (``time``).
- A top-of-book update accepted in cycle ``u`` is seen from cycle ``u + 1``: model
  ``on_book(update, u + 1)``.
- A fill accepted in cycle ``f`` counts in cycle ``f + 3`` (:data:`FILL_DELAY`): model
  ``on_fill(slot, shares, f + 3)``. Its window starts then, and a trip shows from then.
- ``arm`` high in cycle ``s``: model ``rearm(s)`` (trips cleared from ``s + 1``).
- ``state[n]`` in cycle ``c`` is the model's ``state(n, c - 1)``.

The token bucket advances every cycle with the register values of that cycle; the model
advances it in closed form with the values at each check. They agree while ``rate_tokens`` and
``rate_refill`` are not changed (the host changes them only with trading stopped). After reset
the bucket is full whatever depth the host writes before trading, as the model's bucket is
created full: the gate keeps the tokens *used*, not the tokens left.

Fair value
----------
The gate computes the fair value itself, from its own copy of the instrument's top and the
``quote`` registers, by the rules of :mod:`sim.fair_value`; it does not take the quoter's. The
quoter's value would be equal only for the top the quoter priced last, and the quoter coalesces
updates and prices each slot ~120 cycles after its update: the collar would be checked against a
price the model does not use. MID and REFERENCE are one addition; the microprice's two products
and its division are sequential (:mod:`hdl.quote.arith`, as the quoter's) and run only for a
decision that needs them (an instrument in MICROPRICE mode, both sides present, a nonzero size
and checks 1 to 3 passed): they lengthen that decision by :data:`MICROPRICE_CYCLES`.

Order-table view
----------------
The checks need what the order table knows. The gate asks for it once per action on
``o_query`` (:data:`ViewQueryLayout`) and the table answers on ``i_view``
(:data:`OrderViewLayout`), with any delay. The answer must describe the table after every action
the gate has passed before the query (the gate decides one action at a time and asks only after
the previous decision has left, so the table may hold its answer until it has recorded it).

Timing
------
Every check is one registered operation per cycle: an 8-way read of the slot's registers into
the snapshot, then comparisons of at most 37 bits, one adder in front of each; the worst
position after the action is a sum of three operands, 37 bits. The per-slot state is a 32-bit
comparison and a priority choice, registered. The widest carry chain is the
microprice dividend's 81-bit sum (as in the quoter), then the 64-bit cycle counter.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hdl.arch.ouch import QUANTITY_BITS, USER_REF_BITS, TimeInForceCode
from hdl.book.layout import top_update_stream
from hdl.csr.bank import block_signature
from hdl.csr.params import PRICE_BITS, FairValueMode, PortLimits
from hdl.csr.plane import ControlSignature
from hdl.csr.reg import Block
from hdl.quote.arith import PipelinedMultiplier, RadixDivider, divider_steps, multiplier_latency
from hdl.quote.order_action import SLOT_BITS, OrderActionLayout, OrderActionStream
from hdl.quote.quoter import POSITION_BITS, QUOTE_PARAMS_BLOCK, RISK_LIMITS_BLOCK
from hdl.stats import count, stats_layout
from sim.book import LEVEL_SHARES_BITS
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, Origin
from sim.risk import RiskReason, RiskState
from sim.wire.ouch import MAX_LIMIT_PRICE, MAX_QUANTITY, TimeInForce

__all__ = [
    "COUNT_BITS",
    "DECISION_LATENCY",
    "EXPOSURE_BITS",
    "FILL_DELAY",
    "MICROPRICE_CYCLES",
    "OTHERS_BITS",
    "PORT_LIMITS_BLOCK",
    "TIME_BITS",
    "DecisionLayout",
    "FillLayout",
    "OrderViewLayout",
    "RiskGate",
    "SlotStateLayout",
    "ViewQueryLayout",
]

PORT_LIMITS_BLOCK = Block.from_dataclass("port_limits", PortLimits, "Order port limits.")

TIME_BITS = 64
#: One order's worst-case exposure (``LiveOrder.exposure``): open shares or a requested size.
EXPOSURE_BITS = QUANTITY_BITS
#: The exposure of an instrument's orders on one side: at most ``HEDGE_LEVEL + 1`` of them.
OTHERS_BITS = EXPOSURE_BITS + ceil_log2(HEDGE_LEVEL + 1)
#: The table's order counts (saturating: a saturated count only denies more).
COUNT_BITS = 16
_AGE_BITS = 32          # ages compare with 32-bit timeouts and windows: saturate at 2**32 - 1
_MMP_COUNT_BITS = 33    # saturates; thresholds are below 2**31
_WORST_BITS = 37        # position + others + mine, signed
_WEIGHT_BITS = LEVEL_SHARES_BITS + 1
#: Cycles from a fill's transfer on ``i_fill`` to the cycle it counts in.
FILL_DELAY = 3
#: Cycles from a view's transfer on ``i_view`` (the decision's time) to the action on ``o`` (and
#: the decision on ``o_decision``), both ready, when no microprice is computed.
DECISION_LATENCY = 5
#: Quotient bits a step of the microprice divider (as the quoter's).
_FV_RADIX_BITS = 3
#: Cycles of the two pipelined products; they start from the top taken with the view.
_PRODUCT_CYCLES = multiplier_latency(LEVEL_SHARES_BITS, PRICE_BITS)
#: Extra cycles of a decision that computes a microprice: the division starts once the products
#: are valid (at least 2 cycles after the top is taken, when the decision reaches the state that
#: asks for it), its quotient is taken the cycle it is done, and the collar's differences take
#: one more cycle (without a division they are computed beside the worst position).
MICROPRICE_CYCLES = (max(_PRODUCT_CYCLES - 1, 1) + divider_steps(PRICE_BITS, _FV_RADIX_BITS)
                     + 1)

#: What the gate asks the order table about an action. ``ref`` is the order replaced or
#: canceled, 0 for a new order (0 names no order: UserRefNums start at 1).
ViewQueryLayout = data.StructLayout({
    "ref": USER_REF_BITS,
    "slot": SLOT_BITS,
    "side": Side,
})

#: The order table's answer to a query, computed by the table from its own state (the model's
#: :class:`~sim.orders.OrderTable`):
#:
#: - ``found``: the table holds order ``ref`` (``get(ref) is not None``); ``busy``, ``slot``,
#:   ``side`` and ``exposure`` are then that order's (``busy``, ``slot``, ``side``,
#:   ``exposure``) and otherwise ignored;
#: - ``others``: ``exposure(slot, side, exclude=ref)`` for the query's slot and side (0 excludes
#:   nothing);
#: - ``live``, ``unacked``: ``live_count`` and ``unacked_count``, saturating.
#:
#: The gate samples it in the cycle it accepts it, which is the decision's time.
OrderViewLayout = data.StructLayout({
    "found": 1,
    "busy": 1,
    "slot": SLOT_BITS,
    "side": Side,
    "exposure": EXPOSURE_BITS,
    "others": OTHERS_BITS,
    "live": COUNT_BITS,
    "unacked": COUNT_BITS,
})

#: A fill of one of our orders, for market-maker protection.
FillLayout = data.StructLayout({"slot": SLOT_BITS, "shares": QUANTITY_BITS})

#: One decision: the action (a forced cancel's origin reads ``GATE``), the reason, whether the
#: action went to ``o``, and the cycle it was decided at.
DecisionLayout = data.StructLayout({
    "action": OrderActionLayout,
    "reason": RiskReason,
    "passed": 1,
    "time": TIME_BITS,
})

#: An instrument's state and its cause (``PASSED`` when active, ``REDUCE_ONLY`` when reducing).
SlotStateLayout = data.StructLayout({"state": RiskState, "cause": RiskReason})

_TopLayout = data.StructLayout({
    "bid_price": PRICE_BITS,
    "bid_shares": LEVEL_SHARES_BITS,
    "ask_price": PRICE_BITS,
    "ask_shares": LEVEL_SHARES_BITS,
    "halted": 1,
    "degraded": 1,
})

_TIF_CODES = [TimeInForceCode[member.name].value for member in TimeInForce]


def _saturating_inc(value, bits: int):
    return Mux(value == (1 << bits) - 1, value, value + 1)


def _first(pairs, default):
    """The reason of the first true condition of ``pairs`` (condition, reason), else default."""
    result = default
    for cond, reason in reversed(pairs):
        result = Mux(cond, reason, result)
    return result


class RiskGate(wiring.Component):
    """Pre-trade risk gate for ``slots`` instruments, bit-exact with :class:`sim.risk.RiskGate`.

    Parameters
    ----------
    slots : int
        Instrument slots (default 8, as the book's).
    slot_bits : int, optional
        Width of the slot number on ``i_top`` (default: enough for ``slots``); actions and fills
        carry :data:`~hdl.quote.order_action.SLOT_BITS`.

    Ports
    -----
    i : In(OrderActionStream())
        Actions of the quoter and the hedger, decided one at a time.
    i_forced : In(OrderActionStream())
        The sweeper's cancels of halted instruments' orders (model: ``sweep``), taken before
        ``i``; each must be a cancel. A forced cancel passes unless its order is unknown, busy or
        of another instrument (``UNKNOWN_ORDER``); it leaves with origin ``GATE``, its decision
        names the instrument's cause (``PASSED`` if the instrument recovered meanwhile) and it is
        counted ``FORCED_CANCEL``.
    o : Out(OrderActionStream())
        The passed actions, to the order entry. Nothing else reaches it.
    o_decision : Out(stream.Signature(DecisionLayout))
        Every decision, passed or denied, in the order taken. The gate waits for it.
    o_query : Out(stream.Signature(ViewQueryLayout))
        One question to the order table per action; see the module notes.
    i_view : In(stream.Signature(OrderViewLayout))
        The table's answer; always ready while a query is answered.
    i_top : In(top_update_stream(slot_bits))
        The book's top-of-book updates; always ready.
    i_fill : In(stream.Signature(FillLayout))
        Filled shares per instrument; ready every other cycle.
    control : In(ControlSignature())
        ``armed``; ``killed`` and ``heartbeat_lost`` only say why not (cause ``DISARMED``).
    arm : In(1)
        The host's arm strobe: clears every market-maker protection trip from the next cycle.
    feed_gap : In(1)
        An unrecovered MoldUDP64 gap.
    quote, risk : In(block_signature(...)), arrays of ``slots``
        Each slot's :class:`~hdl.csr.params.QuoteParams` (fair value mode, reference price)
        and :class:`~hdl.csr.params.RiskLimits`, as the quoter takes them.
    port : In(block_signature(PORT_LIMITS_BLOCK))
        :class:`~hdl.csr.params.PortLimits`.
    position : In(ArrayLayout(signed(32), slots))
        Each slot's net position in shares.
    state : Out(ArrayLayout(SlotStateLayout, slots))
        Each instrument's state and cause, a cycle late: in cycle ``c`` that of cycle ``c - 1``.
        A sweeper cancels the live orders of a ``HALTED`` one; the host reads it.
    stats : Out(stats_layout(RiskReason))
        48-bit counters, one per reason as the model's ``stats`` (a forced cancel that passes
        counts ``FORCED_CANCEL`` only), updated 2 cycles after the decision is first offered.
    now : Out(64)
        The cycle counter decisions are timed with.
    busy : Out(1)
        A decision or a fill is in flight.

    Latency
    -------
    :data:`DECISION_LATENCY` (5) cycles from the view's transfer to the action on ``o`` and the
    decision on ``o_decision``; :data:`MICROPRICE_CYCLES` (14) more when the decision computes a
    microprice. The query is offered with the action, and transferred in the same cycle (an
    action on ``i`` or ``i_forced`` is taken only with its query). A top update counts from the
    next cycle, a fill :data:`FILL_DELAY` (3) cycles after its transfer.

    Throughput
    ----------
    One decision at a time: an action every ``DECISION_LATENCY + 1`` cycles plus the table's
    answer time (plus :data:`MICROPRICE_CYCLES` for a microprice), with ``o`` and
    ``o_decision`` ready. One top update per cycle, one fill every 2 cycles.

    Bad input
    ---------
    Denied and counted ``BAD_ORDER`` (checked before the state): a new order or replace naming a
    slot at or above ``slots``, a kind outside :class:`~sim.orders.ActionKind`, a time in force
    outside :class:`~sim.wire.ouch.TimeInForce`, a forced action that is not a cancel. A top
    update or fill of a slot at or above ``slots`` is ignored. An unknown fair value mode (the
    register bank refuses it) gives no fair value (``NO_FAIR_VALUE``); ``rate_refill = 0``
    (refused too) refills every cycle. The ``origin`` of an action on ``i`` is not checked.
    """

    def __init__(self, slots: int = 8, *, slot_bits: int | None = None):
        if not 1 <= slots <= 1 << SLOT_BITS:
            raise ValueError(f"slots must be in 1..{1 << SLOT_BITS}, got {slots}")
        self.slots = slots
        self.slot_bits = slot_bits if slot_bits is not None else max(ceil_log2(slots), 1)
        if (1 << self.slot_bits) < slots:
            raise ValueError(f"{self.slot_bits} slot bits cannot number {slots} slots")
        super().__init__({
            "i": In(OrderActionStream()),
            "i_forced": In(OrderActionStream()),
            "o": Out(OrderActionStream()),
            "o_decision": Out(stream.Signature(DecisionLayout)),
            "o_query": Out(stream.Signature(ViewQueryLayout)),
            "i_view": In(stream.Signature(OrderViewLayout)),
            "i_top": In(top_update_stream(self.slot_bits)),
            "i_fill": In(stream.Signature(FillLayout)),
            "control": In(ControlSignature()),
            "arm": In(1),
            "feed_gap": In(1),
            "quote": In(block_signature(QUOTE_PARAMS_BLOCK)).array(slots),
            "risk": In(block_signature(RISK_LIMITS_BLOCK)).array(slots),
            "port": In(block_signature(PORT_LIMITS_BLOCK)),
            "position": In(data.ArrayLayout(signed(POSITION_BITS), slots)),
            "state": Out(data.ArrayLayout(SlotStateLayout, slots)),
            "stats": Out(stats_layout(RiskReason)),
            "now": Out(TIME_BITS),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.slots
        now = self.now
        m.d.sync += now.eq(now + 1)

        tops = Signal(data.ArrayLayout(_TopLayout, n))
        seen = Signal(n)                  # a top of the slot has arrived
        ages = Signal(data.ArrayLayout(_AGE_BITS, n))   # cycles since it counts
        self._tops(m, tops, seen, ages)
        tripped = self._mmp(m)
        self._slot_states(m, tops, seen, ages, tripped)
        self._decide(m, tops, seen)
        return m

    # -- top of book -----------------------------------------------------------------------------

    def _tops(self, m, tops, seen, ages):
        upd = self.i_top.payload
        m.d.comb += self.i_top.ready.eq(1)
        for k in range(self.slots):
            m.d.sync += ages[k].eq(_saturating_inc(ages[k], _AGE_BITS))
        with m.If(self.i_top.valid & (upd.slot < self.slots)):
            # Seen from the next cycle with age 0: the model's ``on_book(update, u + 1)``.
            m.d.sync += [
                tops[upd.slot].eq(Cat(upd.bid_price, upd.bid_shares, upd.ask_price,
                                      upd.ask_shares, upd.halted, upd.degraded)),
                seen.bit_select(upd.slot, 1).eq(1),
                ages[upd.slot].eq(0),
            ]

    # -- market-maker protection -----------------------------------------------------------------

    def _mmp(self, m):
        """Fill counting; returns the per-slot trip bits.

        A fill accepted in cycle ``f`` is read against the slot's window in ``f + 1`` and written
        at the end of ``f + 2``, so it counts from ``V = f + 3``. ``win_age`` holds ``c + 2 -
        start`` in cycle ``c`` (saturating), so the test in ``f + 1`` is the model's ``V - start
        >= mmp_window``. An arm strobe clears every slot at the end of its cycle; one in ``f + 1``
        or ``f + 2`` comes before ``V`` in the model, so the fill then opens a new window and its
        write wins over the clear.
        """
        n = self.slots
        open_ = Signal(n)
        tripped = Signal(n)
        win_age = Signal(data.ArrayLayout(_AGE_BITS, n))
        counts = Signal(data.ArrayLayout(_MMP_COUNT_BITS, n))
        thresholds = Array(r.mmp_threshold for r in self.risk)
        windows = Array(r.mmp_window for r in self.risk)

        f1 = Signal(data.StructLayout({"valid": 1, "slot": SLOT_BITS, "shares": QUANTITY_BITS}))
        f2 = Signal(data.StructLayout({
            "valid": 1, "slot": SLOT_BITS, "shares": QUANTITY_BITS, "expired": 1,
            "base": _MMP_COUNT_BITS, "room": signed(_MMP_COUNT_BITS + 1),
            "thr": 32, "cleared": 1}))

        fill = self.i_fill
        m.d.comb += fill.ready.eq(~f1.valid)
        m.d.sync += [
            f1.valid.eq(fill.valid & fill.ready & (fill.payload.slot < n)),
            f1.slot.eq(fill.payload.slot),
            f1.shares.eq(fill.payload.shares),
        ]

        # f + 1: the window test, the count so far and the shares left to the threshold.
        thr = thresholds[f1.slot]
        m.d.sync += [
            f2.valid.eq(f1.valid),
            f2.slot.eq(f1.slot),
            f2.shares.eq(f1.shares),
            f2.expired.eq(~open_.bit_select(f1.slot, 1) |
                          (win_age[f1.slot] >= windows[f1.slot])),
            f2.base.eq(counts[f1.slot]),
            f2.room.eq(thr - counts[f1.slot]),
            f2.thr.eq(thr),
            f2.cleared.eq(self.arm),   # the registers read this cycle are cleared at its end
        ]

        for k in range(n):
            m.d.sync += win_age[k].eq(_saturating_inc(win_age[k], _AGE_BITS))
        with m.If(self.arm):
            m.d.sync += [open_.eq(0), tripped.eq(0), counts.eq(0)]

        # f + 2: the write, after any clear of this cycle (model: the clear settles first).
        fresh = f2.expired | f2.cleared | self.arm
        total = Mux(fresh, 0, f2.base) + f2.shares
        full = (1 << _MMP_COUNT_BITS) - 1
        trip = (f2.thr != 0) & Mux(fresh, f2.shares >= f2.thr, f2.shares >= f2.room)
        with m.If(f2.valid):
            m.d.sync += [
                counts[f2.slot].eq(Mux(total > full, full, total)),
                open_.bit_select(f2.slot, 1).eq(1),
                tripped.bit_select(f2.slot, 1).eq(
                    trip | (tripped.bit_select(f2.slot, 1) & ~self.arm)),
            ]
            with m.If(fresh):
                m.d.sync += win_age[f2.slot].eq(2)
        self._fill_busy = f1.valid | f2.valid
        return tripped

    # -- instrument state ------------------------------------------------------------------------

    def _slot_states(self, m, tops, seen, ages, tripped):
        timeout = self.port.stale_feed_timeout
        armed = self.control.armed
        for k in range(self.slots):
            top = tops[k]
            present = seen[k]
            limits = self.risk[k]
            position = self.position[k]
            halt = [
                (~armed, RiskReason.DISARMED),
                (tripped[k], RiskReason.MMP_TRIPPED),
                ((timeout != 0) & (~present | (ages[k] >= timeout)), RiskReason.STALE_FEED),
                (self.feed_gap, RiskReason.FEED_GAP),
                (present & top.halted, RiskReason.BOOK_HALTED),
                (present & top.degraded, RiskReason.BOOK_DEGRADED),
                (present & (top.bid_price != 0) & (top.ask_price != 0)
                 & (top.bid_price >= top.ask_price), RiskReason.BOOK_CROSSED),
            ]
            halted = Cat(cond for cond, _ in halt).any()
            beyond = (position > limits.max_long) | (position < -limits.max_short)
            m.d.sync += [
                self.state[k].state.eq(Mux(halted, RiskState.HALTED,
                                           Mux(beyond, RiskState.REDUCING, RiskState.ACTIVE))),
                self.state[k].cause.eq(_first(halt, Mux(beyond, RiskReason.REDUCE_ONLY,
                                                        RiskReason.PASSED))),
            ]

    # -- decisions -------------------------------------------------------------------------------

    def _decide(self, m, tops, seen):
        n = self.slots
        port = self.port
        stats = self.stats
        o, dec, query, view = self.o, self.o_decision, self.o_query, self.i_view

        act = Signal(OrderActionLayout)
        forced = Signal()
        sl = act.slot
        slot_ok = sl < n

        # Token bucket: tokens used (the depth minus the tokens left) and cycles toward the next.
        used = Signal(16)
        ticks = Signal(32)
        take = Signal()
        refund = Signal()
        reserved = Signal()
        decided = Signal()    # the decision is offered for the first time

        # The snapshot of cycle t.
        s = {
            "view": Signal(OrderViewLayout),
            "time": Signal(TIME_BITS),
            "top": Signal(_TopLayout),
            "seen": Signal(),
            "mode": Signal.like(self.quote[0].fair_value_mode),
            "reference": Signal(PRICE_BITS),
            "collar": Signal(PRICE_BITS),
            "max_qty": Signal(32),
            "max_long": Signal(32),
            "max_short": Signal(32),
            "position": Signal(signed(POSITION_BITS)),
            "max_live": Signal(16),
            "max_unacked": Signal(16),
            "token": Signal(),
        }
        v, top = s["view"], s["top"]

        # Stage registers.
        state = Signal(SlotStateLayout)
        f = {name: Signal(name=f"chk_{name}") for name in (
            "cancel_like", "bad", "unknown_cancel", "unknown_replace", "no_fv", "locks",
            "max_qty", "live", "unacked", "collar", "reduce", "long", "short", "need_div")}
        mine = Signal(EXPOSURE_BITS)
        mid = Signal(PRICE_BITS)
        weight = Signal(_WEIGHT_BITS)
        fv = Signal(PRICE_BITS)
        worst = Signal(signed(_WORST_BITS))
        d_hi = Signal(signed(PRICE_BITS + 2))
        d_lo = Signal(signed(PRICE_BITS + 2))

        mul_ba = m.submodules.mul_ba = PipelinedMultiplier(LEVEL_SHARES_BITS, PRICE_BITS)
        mul_ab = m.submodules.mul_ab = PipelinedMultiplier(LEVEL_SHARES_BITS, PRICE_BITS)
        div_fv = m.submodules.div_fv = RadixDivider(LEVEL_SHARES_BITS + PRICE_BITS + 1,
                                                    _WEIGHT_BITS, PRICE_BITS, _FV_RADIX_BITS)
        # The products follow ``top`` (loaded with the view): valid _PRODUCT_CYCLES after it.
        product_wait = Signal(range(_PRODUCT_CYCLES + 1))
        with m.If(product_wait != 0):
            m.d.sync += product_wait.eq(product_wait - 1)
        m.d.comb += [
            mul_ba.a.eq(top.ask_shares), mul_ba.b.eq(top.bid_price),
            mul_ab.a.eq(top.bid_shares), mul_ab.b.eq(top.ask_price),
            # (b * as + a * bs) < max(a, b) * weight <= 2**32 * weight: the quotient fits.
            div_fv.n.eq(mul_ba.product + mul_ab.product), div_fv.d.eq(weight),
        ]

        is_new = act.kind == ActionKind.NEW
        is_replace = act.kind == ActionKind.REPLACE
        is_cancel = act.kind == ActionKind.CANCEL
        buy = act.side == Side.BUY
        price, qty = act.price, act.quantity

        out_action = Signal(OrderActionLayout)
        m.d.comb += [out_action.eq(act), o.payload.eq(out_action),
                     dec.payload.action.eq(out_action), dec.payload.time.eq(s["time"])]
        with m.If(forced):
            m.d.comb += out_action.origin.eq(Origin.GATE)

        m.d.sync += decided.eq(0)     # set for one cycle by S5 below
        with m.FSM(name="decide") as fsm:
            with m.State("IDLE"):
                # The query leaves with the action's transfer: it names the incoming action.
                m.d.comb += [self.i_forced.ready.eq(query.ready),
                             self.i.ready.eq(~self.i_forced.valid & query.ready)]
                in_forced = self.i_forced.valid
                incoming = OrderActionLayout(Mux(in_forced, self.i_forced.payload.as_value(),
                                                 self.i.payload.as_value()))
                m.d.comb += [
                    query.valid.eq(in_forced | self.i.valid),
                    query.payload.ref.eq(Mux((incoming.kind == ActionKind.NEW) & ~in_forced, 0,
                                             incoming.ref)),
                    query.payload.slot.eq(incoming.slot),
                    query.payload.side.eq(incoming.side),
                ]
                with m.If(query.valid & query.ready):
                    m.d.sync += [act.eq(incoming), forced.eq(in_forced)]
                    m.next = "VIEW"
            with m.State("VIEW"):
                m.d.comb += view.ready.eq(1)
                with m.If(view.valid):
                    # The decision's time: everything it reads is taken in this cycle.
                    token = used < port.rate_tokens
                    m.d.comb += take.eq((is_new | is_replace) & ~forced & token)
                    m.d.sync += [
                        v.eq(view.payload),
                        s["time"].eq(self.now),
                        top.eq(tops[sl]),
                        s["seen"].eq(seen.bit_select(sl, 1)),
                        s["mode"].eq(Array(q.fair_value_mode for q in self.quote)[sl]),
                        s["reference"].eq(Array(q.reference_price for q in self.quote)[sl]),
                        s["collar"].eq(Array(r.collar for r in self.risk)[sl]),
                        s["max_qty"].eq(Array(r.max_order_qty for r in self.risk)[sl]),
                        s["max_long"].eq(Array(r.max_long for r in self.risk)[sl]),
                        s["max_short"].eq(Array(r.max_short for r in self.risk)[sl]),
                        s["position"].eq(self.position[sl]),
                        s["max_live"].eq(port.max_live_orders),
                        s["max_unacked"].eq(port.max_unacked_orders),
                        s["token"].eq(token),
                        reserved.eq(take),
                    ]
                    m.next = "S1"
            with m.State("S1"):
                # ``state`` in this cycle is that of cycle t. Checks that need one operation.
                known_tif = Cat(Value.cast(act.tif) == code for code in _TIF_CODES).any()
                mode = s["mode"]
                sides = (top.bid_price != 0) & (top.ask_price != 0)
                m.d.sync += product_wait.eq(_PRODUCT_CYCLES - 1)
                m.d.sync += [
                    state.eq(self.state[sl]),
                    f["cancel_like"].eq(is_cancel | forced),
                    f["bad"].eq(~slot_ok | (Value.cast(act.kind) > ActionKind.CANCEL)
                                | (forced & ~is_cancel) | ~known_tif
                                | (qty == 0) | (qty > MAX_QUANTITY)
                                | (price == 0) | (price > MAX_LIMIT_PRICE)),
                    f["unknown_cancel"].eq(~v.found | v.busy | (v.slot != sl)),
                    f["unknown_replace"].eq(is_replace & (~v.found | v.busy | (v.slot != sl)
                                                          | (v.side != act.side))),
                    f["locks"].eq((Value.cast(act.tif) == TimeInForceCode.DAY.value)
                                  & s["seen"]
                                  & Mux(buy, (top.ask_price != 0) & (price >= top.ask_price),
                                        (top.bid_price != 0) & (price <= top.bid_price))),
                    f["max_qty"].eq(qty > s["max_qty"]),
                    f["live"].eq(is_new & (v.live >= s["max_live"])),
                    f["unacked"].eq(v.unacked >= s["max_unacked"]),
                    # No top yet: no fair value in any mode (the model's ``fair_value``).
                    f["no_fv"].eq(~s["seen"] | Mux(mode == FairValueMode.REFERENCE,
                                                   s["reference"] == 0,
                                                   ~sides | (mode > FairValueMode.REFERENCE))),
                    f["need_div"].eq((mode == FairValueMode.MICROPRICE) & sides),
                    mine.eq(Mux(is_replace & (v.exposure > qty), v.exposure, qty)),
                    mid.eq((top.bid_price + top.ask_price) >> 1),
                    weight.eq(top.bid_shares + top.ask_shares),
                ]
                m.next = "S2"
            with m.State("S2"):
                # The position after the action at worst, and the collar's differences from the
                # fair value without a division (a microprice's come in S3).
                pos = s["position"]
                fv_now = Mux(s["mode"] == FairValueMode.REFERENCE, s["reference"], mid)
                om = v.others + mine
                m.d.sync += [
                    fv.eq(fv_now),
                    worst.eq(Mux(buy, pos + om, pos - om)),
                    d_hi.eq(price - fv_now),
                    d_lo.eq(fv_now - price),
                ]
                # Checks 1 to 3 decide without a fair value; so does a zero weight (the mid).
                early = (f["cancel_like"] | f["bad"] | (state.state == RiskState.HALTED)
                         | f["unknown_replace"])
                with m.If(f["need_div"] & (weight != 0) & ~early):
                    m.next = "PRODUCTS"
                with m.Else():
                    m.next = "S4"
            with m.State("PRODUCTS"):
                with m.If(product_wait == 0):
                    m.d.comb += div_fv.start.eq(1)
                    m.next = "QUOTIENT"
            with m.State("QUOTIENT"):
                with m.If(div_fv.done):
                    m.d.sync += fv.eq(div_fv.quotient)
                    m.next = "S3"
            with m.State("S3"):
                m.d.sync += [d_hi.eq(price - fv), d_lo.eq(fv - price)]
                m.next = "S4"
            with m.State("S4"):
                pos = s["position"]
                reducing = state.state == RiskState.REDUCING
                m.d.sync += [
                    f["collar"].eq((d_hi > s["collar"]) | (d_lo > s["collar"])),
                    f["reduce"].eq(reducing & Mux(buy, ~((pos < 0) & (worst <= 0)),
                                                  ~((pos > 0) & (worst >= 0)))),
                    f["long"].eq(buy & (worst > s["max_long"])),
                    f["short"].eq(~buy & (worst < -s["max_short"])),
                ]
                m.next = "S5"
            with m.State("S5"):
                # Bad input is named before the state; a bad quantity or price after checks 1-2.
                # (A cancel naming no slot names no order of ours: UNKNOWN_ORDER, as the model.)
                bad_input = (~slot_ok & ~is_cancel) | \
                    (Value.cast(act.kind) > ActionKind.CANCEL) | (forced & ~is_cancel)
                checks = _first([
                    (state.state == RiskState.HALTED, state.cause),
                    (f["unknown_replace"], RiskReason.UNKNOWN_ORDER),
                    (f["bad"], RiskReason.BAD_ORDER),
                    (f["no_fv"], RiskReason.NO_FAIR_VALUE),
                    (f["collar"], RiskReason.COLLAR),
                    (f["locks"], RiskReason.LOCKS_BOOK),
                    (f["max_qty"], RiskReason.MAX_ORDER_QTY),
                    (f["reduce"], RiskReason.REDUCE_ONLY),
                    (f["long"], RiskReason.MAX_LONG),
                    (f["short"], RiskReason.MAX_SHORT),
                    (f["live"], RiskReason.MAX_LIVE),
                    (f["unacked"], RiskReason.MAX_UNACKED),
                    (~s["token"], RiskReason.RATE),
                ], RiskReason.PASSED)
                reason = Signal(RiskReason)
                cancel_reason = Mux(f["unknown_cancel"], RiskReason.UNKNOWN_ORDER,
                                    Mux(forced, state.cause, RiskReason.PASSED))
                m.d.comb += reason.eq(Mux(bad_input, RiskReason.BAD_ORDER,
                                          Mux(f["cancel_like"], cancel_reason, checks)))
                passed = ~bad_input & Mux(f["cancel_like"], ~f["unknown_cancel"],
                                          reason == RiskReason.PASSED)
                m.d.comb += refund.eq(reserved & ~passed)
                m.d.sync += [dec.payload.reason.eq(reason), dec.payload.passed.eq(passed),
                             dec.valid.eq(1), o.valid.eq(passed), decided.eq(1)]
                m.next = "OUTPUT"
            with m.State("OUTPUT"):
                with m.If(o.ready):
                    m.d.sync += o.valid.eq(0)
                with m.If(dec.ready):
                    m.d.sync += dec.valid.eq(0)
                with m.If((~o.valid | o.ready) & (~dec.valid | dec.ready)):
                    m.next = "IDLE"

        # Counted from the decision's registers, in the first cycle it is offered.
        forced_passed = forced & dec.payload.passed
        for member in RiskReason:
            if member is RiskReason.FORCED_CANCEL:
                when = forced_passed
            else:
                when = (dec.payload.reason == member) & ~forced_passed
            count(m, getattr(stats, member.name.lower()), decided & when)

        self._bucket(m, used, ticks, take, refund)
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE") | self._fill_busy)

    def _bucket(self, m, used, ticks, take, refund):
        """Rule 11, one cycle at a time. A token is reserved at the decision's time and given
        back if the action is denied: the bucket then continues as if it had never been taken
        (the count toward the next token does not depend on the tokens used, except that it
        restarts when the bucket is full)."""
        port = self.port
        after = Signal(17)
        m.d.comb += after.eq(Mux(refund, Mux(used == 0, 0, used - 1), used + take))
        with m.If(after == 0):   # full: the count restarts (also after a refund)
            m.d.sync += [used.eq(0), ticks.eq(0)]
        with m.Elif(ticks + 1 >= port.rate_refill):
            m.d.sync += [used.eq(after - 1), ticks.eq(0)]
        with m.Else():
            m.d.sync += [used.eq(after), ticks.eq(ticks + 1)]

