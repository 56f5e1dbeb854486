"""The order table: our orders at the exchange, their fills and the position per instrument.

Twin of :class:`sim.orders.OrderTable` (bookkeeping rules in its docstring) and of the position
of :class:`sim.position.PositionBook` (``shares``): the messages sent (the ``o_sent`` reports of
:class:`~hdl.quote.ouch_tx.OuchTx`) are recorded as :meth:`~sim.orders.OrderTable.record`
records them, the exchange's answers (:class:`~hdl.quote.ouch_rx.OuchRx`) are applied as
:meth:`~sim.orders.OrderTable.answer` applies them, and each Executed answer becomes a fill
(:class:`~sim.orders.Fill`) that moves the instrument's position.

Where the gateware differs from the model, by rule
--------------------------------------------------
- Time: ``now`` is a free-running cycle counter, 0 in the first cycle after reset. A message
  is applied at the ``now`` of the cycle it is transferred on its input stream: that is the
  ``since`` of an order accepted or replaced by it and the ``time`` of its fill.
- An order's price is kept in 32 bits (``ACTION_PRICE_BITS``, the width of the prices we send).
  Accepted and Replaced carry 8-byte prices; one above ``2**32 - 1`` (the exchange echoes our
  price, so only a broken answer has one) is kept as ``2**32 - 1``. Fills keep all 64 bits.
- The position is 32 bits signed, as the ``position.position`` register; a fill that would
  take it beyond ``[-2**31, 2**31 - 1]`` leaves it at that bound and is counted
  (``POSITION_SATURATED``). The model's position has no bound.
- Not kept: the model's ``sent_at``, ``executed``, ``tif`` and the pending replace's price,
  which no rule reads. Cash, rebates, fees and the profit and loss stay in software
  (:mod:`sim.position`), computed from the fill stream.

How it works
------------
The table holds one entry per order slot ``(instrument, side, level)``, entry
``(slot * 2 + side) * 4 + level``, in registers. Messages are taken one at a time from the two
inputs (alternating when both wait) and applied in four steps, one cycle each:

1. *match*: the message's key UserRefNum is compared with the UserRefNum of every entry and
   with every pending replacement's (64 + 64 comparators);
2. *pick*: the lowest matching entry (or, for an Enter Order, the order slot it names);
3. *read*: the entry's flags, UserRefNum, open shares and pending replacement, and the
   instrument's position (the wide fields from 64-word memories written with the entries, which
   Yosys maps to block RAM, so that reading one entry of 64 is not a multiplexer of 64
   registers);
4. *apply*: the entry, the position and the fill are written.

The next message is taken in the *apply* cycle, so the table never compares against an entry
a message in flight is about to change. A written entry's exposure is registered the cycle
after *apply* and summed per side of an instrument in two more registered steps; the counts
per instrument are registered from the table, their totals a cycle later. The risk gate's
lookup by UserRefNum is a second set of 64 comparators, its own three-cycle pipeline
(:func:`order_view_signature`), which reads the open shares and exposure from copies too.

The forced cancels of halted instruments come from :class:`Sweeper`, which reads the
``orders`` port; :class:`OrderTable` contains one and exposes its ports.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdl.arch.ouch import (
    ACTION_PRICE_BITS,
    ANSWER_FIELDS,
    QUANTITY_BITS,
    USER_REF_BITS,
    OrderStateCode,
    OutboundType,
    TimeInForceCode,
)
from hdl.quote.order_action import SLOT_BITS, OrderActionLayout
from hdl.quote.ouch_rx import AnswerLayout
from hdl.quote.ouch_tx import SentLayout
from hdl.stats import count, stats_layout
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, OrderTableStat, Origin
from sim.risk import RiskReason

__all__ = [
    "APPLY_CYCLES",
    "EXPOSURE_BITS",
    "LOOKUP_LATENCY",
    "ORDERS_PER_SLOT",
    "POSITION_BITS",
    "REASON_BITS",
    "SIDE_EXPOSURE_BITS",
    "SWEEP_CYCLES",
    "TIME_BITS",
    "VIEW_SETTLE",
    "FillLayout",
    "LookupLayout",
    "OrderTable",
    "RestingLayout",
    "SweepLayout",
    "Sweeper",
    "order_index",
    "order_view_signature",
]

#: Width of ``now`` and ``since``: 2**48 cycles are 20 days at 156.25 MHz.
TIME_BITS = 48
#: The position, as the quoter's ``position`` input and the ``position.position`` register.
POSITION_BITS = 32
#: An order's worst-case exposure: open shares or a replacement's size.
EXPOSURE_BITS = QUANTITY_BITS
#: Order slots per instrument: 2 sides x (3 quote levels + the hedge).
LEVELS = HEDGE_LEVEL + 1
ORDERS_PER_SLOT = 2 * LEVELS
#: The exposure of the 4 orders of one side of an instrument.
SIDE_EXPOSURE_BITS = EXPOSURE_BITS + 2
#: Cycles a message occupies the table, from its transfer to the transfer of the next one.
APPLY_CYCLES = 4
#: Cycles from a UserRefNum on ``view.ref`` to its result on ``view.lookup``.
LOOKUP_LATENCY = 3
#: Cycles after the one an entry is written in before every output of ``view`` reflects it.
VIEW_SETTLE = 3

_PRICE_MAX = (1 << ACTION_PRICE_BITS) - 1
_POS_MAX = (1 << (POSITION_BITS - 1)) - 1
_POS_MIN = -(1 << (POSITION_BITS - 1))

#: One order slot's order, as the quoter's requote rules and the sweeper read it
#: (:class:`sim.orders.LiveOrder`). ``valid``: the slot holds an order (entered and not ended);
#: ``pending_new``: its Enter Order is not answered yet (``Status.PENDING_NEW``); ``replacing``:
#: a replace is in flight, to ``replace_ref`` for ``replace_quantity`` shares; ``cancel_pending``:
#: a cancel is in flight; ``busy``: any of the three. ``price`` and ``quantity`` are those in
#: force, ``open`` the shares open, ``since`` the cycle of the last Accepted or Replaced (of the
#: Enter Order's report while pending). Fields of a slot without an order are stale.
RestingLayout = data.StructLayout({
    "valid": 1,
    "busy": 1,
    "pending_new": 1,
    "replacing": 1,
    "cancel_pending": 1,
    "ref": USER_REF_BITS,
    "price": ACTION_PRICE_BITS,
    "quantity": QUANTITY_BITS,
    "open": QUANTITY_BITS,
    "since": TIME_BITS,
    "replace_ref": USER_REF_BITS,
    "replace_quantity": QUANTITY_BITS,
})

#: One fill, :class:`sim.orders.Fill` field for field: ``liquidity`` is the flag's character
#: code, ``price`` and ``match_number`` the answer's full 8 bytes.
FillLayout = data.StructLayout({
    "time": TIME_BITS,
    "slot": SLOT_BITS,
    "side": Side,
    "quantity": ANSWER_FIELDS["quantity"],
    "price": ANSWER_FIELDS["price"],
    "liquidity": ANSWER_FIELDS["liquidity_flag"],
    "ref": USER_REF_BITS,
    "match_number": ANSWER_FIELDS["match_number"],
})

#: The order a UserRefNum names (``OrderTable.get(ref)``): ``found`` (else the rest is 0), the
#: order slot, ``busy``, ``live`` (accepted: ``Status.LIVE``), ``open`` and ``exposure``
#: (``LiveOrder.exposure``).
LookupLayout = data.StructLayout({
    "found": 1,
    "busy": 1,
    "live": 1,
    "slot": SLOT_BITS,
    "side": Side,
    "level": HEDGE_LEVEL.bit_length(),
    "open": QUANTITY_BITS,
    "exposure": EXPOSURE_BITS,
})


def order_index(slot: int, side: int, level: int) -> int:
    """The entry (and ``orders`` element) of an order slot."""
    return (slot * 2 + int(side)) * LEVELS + level


def order_view_signature(slots: int) -> wiring.Signature:
    """What the risk gate reads of the order table, seen from the table (the gate takes the
    flipped signature).

    Members
    -------
    ref : In(32)
        A UserRefNum to look up: the ``ref`` of the action being checked.
    lookup : Out(LookupLayout)
        The order ``ref`` names, :data:`LOOKUP_LATENCY` (3) cycles after ``ref`` was presented:
        found, busy, live, slot, side, level, open shares, exposure. Only current UserRefNums
        match (not a pending replacement's).
    exposure : Out(ArrayLayout(ArrayLayout(34, 2), slots))
        ``exposure[slot][side]``: the summed exposure of the instrument's orders on that side,
        ``OrderTable.exposure(slot, side)``. The gate's exclude form for a replace is
        ``exposure[slot][side] - lookup.exposure``.
    live_count, unacked_count : Out(7), Out(8)
        ``OrderTable.live_count`` and ``unacked_count``.
    stable : Out(1)
        No message is being applied and every output above reflects the table: the counts,
        the sums and the lookup of a UserRefNum presented 3 cycles earlier include every
        message transferred before this cycle. Low from the cycle after a message is taken
        to the :data:`VIEW_SETTLE` (3) cycles after the one it is applied in.
    """
    return wiring.Signature({
        "ref": In(USER_REF_BITS),
        "lookup": Out(LookupLayout),
        "exposure": Out(data.ArrayLayout(data.ArrayLayout(SIDE_EXPOSURE_BITS, 2), slots)),
        "live_count": Out(range(LEVELS * 2 * slots + 1)),
        "unacked_count": Out(range(2 * LEVELS * 2 * slots + 1)),
        "stable": Out(1),
    })


def _named(m: Module, name: str, value) -> Signal:
    """``value`` as a signal of its own (one node for the simulator and the netlist)."""
    value = Value.cast(value)
    sig = Signal(value.shape(), name=name)
    m.d.comb += sig.eq(value)
    return sig


def _lowest(m: Module, vector, name: str) -> tuple:
    """``(any, index)`` of the lowest set bit of ``vector`` (a power-of-two width), as a tree
    of 2-way choices."""
    nodes = [(vector[k], Const(0, 0)) for k in range(len(vector))]
    level = 0
    while len(nodes) > 1:
        pairs = []
        for k, ((lo_any, lo_idx), (hi_any, hi_idx)) in enumerate(
                zip(nodes[::2], nodes[1::2], strict=True)):
            pairs.append((_named(m, f"{name}_any{level}_{k}", lo_any | hi_any),
                          _named(m, f"{name}_idx{level}_{k}",
                                 Cat(Mux(lo_any, lo_idx, hi_idx), ~lo_any))))
        nodes = pairs
        level += 1
    return nodes[0]


# ------------------------------------------------------------------------------------------------
# Forced cancels (twin of sim.risk.RiskGate.sweep)
#
# A cancel leaves the sweeper long before the table records it (the gate, the encoder and the
# table's own steps lie between), so each order canceled is marked in flight until the table
# shows it busy (its cancel recorded) or gone; an order in flight is not picked again. Picking is
# sequential: the candidates (valid, not busy, halted, not in flight) are registered; the lowest
# instrument with one is chosen with its 8 orders; a tournament of 3 registered rounds finds the
# lowest UserRefNum; the winner is checked again against the table (still a candidate, same
# UserRefNum) and offered, else the search starts over.

#: Width of a :class:`~sim.risk.RiskReason`.
REASON_BITS = max(RiskReason).bit_length()

#: One forced cancel: the action (kind ``CANCEL``, origin ``GATE``, the order's slot, side,
#: level and UserRefNum, price and quantity 0, time in force day, as ``RiskGate.sweep`` builds
#: it) and the halt's cause.
SweepLayout = data.StructLayout({"action": OrderActionLayout, "reason": REASON_BITS})

_PER_SLOT = ORDERS_PER_SLOT
_ROUNDS = (_PER_SLOT - 1).bit_length()
#: Cycles from the sweeper's start of a search to the cancel offered: the candidates, the
#: instrument, the tournament rounds, the check.
SWEEP_CYCLES = 2 + _ROUNDS + 1


def _lowest_slot(any_of: list) -> tuple:
    """(any, index) of the first true element."""
    index = Const(0, range(len(any_of)))
    for k in reversed(range(len(any_of))):
        index = Mux(any_of[k], k, index)
    return Cat(*any_of).any(), index


class Sweeper(wiring.Component):
    """Cancels of every live, not busy order of the halted instruments.

    Parameters
    ----------
    slots : int
        Instrument slots; the orders are ``8 * slots`` elements of
        :data:`~hdl.quote.order_table.RestingLayout`, element ``(slot * 2 + side) * 4 + level``.

    Ports
    -----
    orders : In(RestingLayout), an array of ``8 * slots``
        The order table (``OrderTable.orders``).
    halted : In(slots)
        Instruments halted (``RiskGate.state(slot) is HALTED``).
    cause : In(ArrayLayout(5, slots))
        Each instrument's halt cause (a :class:`~sim.risk.RiskReason`).
    o : Out(stream.Signature(SweepLayout))
        The forced cancels.

    Latency
    -------
    :data:`SWEEP_CYCLES` (6) cycles from a search's start to its cancel offered; a search
    starts in the cycle after the previous cancel's transfer (or a failed check), so a halt
    seen in cycle ``t`` gives its first cancel in ``t + 7`` at most if nothing was searching.

    Throughput
    ----------
    One cancel every 7 cycles with ``o`` ready.

    Bad input
    ---------
    An order canceled here whose cancel never reaches the table (it stays in flight) is not
    canceled again while it stays valid and not busy; the table's ``STALE`` count shows a
    cancel that arrived after its order ended (the order changed while the cancel was offered).
    """

    def __init__(self, slots: int):
        self.slots = slots
        super().__init__({
            "orders": In(RestingLayout).array(_PER_SLOT * slots),
            "halted": In(slots),
            "cause": In(data.ArrayLayout(REASON_BITS, slots)),
            "o": Out(stream.Signature(SweepLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.slots
        orders = [self.orders[e] for e in range(_PER_SLOT * n)]
        in_flight = Signal(len(orders))
        candidate = Cat(o.valid & ~o.busy & ~in_flight[e] & self.halted[e // _PER_SLOT]
                        for e, o in enumerate(orders))
        o = self.o
        taken = o.valid & o.ready

        # An order stays in flight until the table shows its cancel (busy) or its end.
        chosen = Signal(range(len(orders)))
        for e, order in enumerate(orders):
            with m.If(taken & (chosen == e)):
                m.d.sync += in_flight[e].eq(1)
            with m.Elif(~order.valid | order.busy):
                m.d.sync += in_flight[e].eq(0)

        cand = Signal(len(orders))
        slot = Signal(range(n))
        Entrant = data.StructLayout({"ok": 1, "index": range(_PER_SLOT), "ref": USER_REF_BITS})
        rounds = [[Signal(Entrant, name=f"round{r}_{k}") for k in range(_PER_SLOT >> r)]
                  for r in range(_ROUNDS + 1)]
        winner = rounds[-1][0]

        groups = [cand[s * _PER_SLOT:(s + 1) * _PER_SLOT] for s in range(n)]
        some, first = _lowest_slot([g.any() for g in groups])
        refs = Array(Cat(*(orders[s * _PER_SLOT + k].ref for k in range(_PER_SLOT)))
                     for s in range(n))
        group_of = Array(groups)

        with m.FSM():
            with m.State("CANDIDATES"):
                m.d.sync += cand.eq(candidate)
                m.next = "SLOT"
            with m.State("SLOT"):
                bits = Signal(_PER_SLOT)
                row = Signal(_PER_SLOT * USER_REF_BITS)
                m.d.comb += [bits.eq(group_of[first]), row.eq(refs[first])]
                m.d.sync += slot.eq(first)
                for k, entrant in enumerate(rounds[0]):
                    m.d.sync += [entrant.ok.eq(bits[k]), entrant.index.eq(k),
                                 entrant.ref.eq(row[k * USER_REF_BITS:(k + 1) * USER_REF_BITS])]
                with m.If(some):
                    m.next = "ROUND0"
                with m.Else():
                    m.next = "CANDIDATES"
            for r in range(_ROUNDS):
                with m.State(f"ROUND{r}"):
                    for k, out in enumerate(rounds[r + 1]):
                        a, b = rounds[r][2 * k], rounds[r][2 * k + 1]
                        a_wins = a.ok & (~b.ok | (a.ref <= b.ref))
                        m.d.sync += out.eq(Mux(a_wins, a, b))
                    m.next = f"ROUND{r + 1}" if r + 1 < _ROUNDS else "CHECK"
            with m.State("CHECK"):
                index = Cat(winner.index, slot)
                ok = candidate.bit_select(index, 1) & (
                    Array(order.ref for order in orders)[index] == winner.ref)
                action = o.payload.action
                with m.If(ok):
                    m.d.sync += [
                        chosen.eq(index),
                        o.valid.eq(1),
                        action.kind.eq(ActionKind.CANCEL),
                        action.slot.eq(slot),
                        action.side.eq(winner.index[-1]),
                        action.level.eq(winner.index[:-1]),
                        action.price.eq(0),
                        action.quantity.eq(0),
                        action.tif.eq(TimeInForceCode.DAY),
                        action.ref.eq(winner.ref),
                        action.origin.eq(Origin.GATE),
                        o.payload.reason.eq(self.cause[slot]),
                    ]
                    m.next = "OFFER"
                with m.Else():
                    m.next = "CANDIDATES"
            with m.State("OFFER"):
                with m.If(o.ready):
                    m.d.sync += o.valid.eq(0)
                    m.next = "CANDIDATES"
        return m


class OrderTable(wiring.Component):
    """Every order not ended, its fills and the position of each instrument slot.

    Parameters
    ----------
    slots : int
        Instrument slots (default 8), a power of two up to 32: ``8 * slots`` order slots.

    Ports
    -----
    i_sent : In(stream.Signature(SentLayout))
        One report per message sent (``OuchTx.o_sent``): enter, replace or cancel.
    i_answer : In(stream.Signature(AnswerLayout))
        The exchange's answers (``OuchRx.o``).
    o_fill : Out(stream.Signature(FillLayout))
        One fill per Executed answer applied to one of our orders.
    orders : Out(RestingLayout), an array of ``8 * slots``
        The table itself, element :func:`order_index` ``(slot, side, level)``, for the quoter's
        requote rules; changes the cycle after a message is applied.
    position : Out(ArrayLayout(signed(32), slots))
        Net shares per instrument (long positive), ``PositionBook.shares``; changes the cycle
        after its fill is offered.
    live_of, unacked_of : Out(ArrayLayout(4, slots)), Out(ArrayLayout(5, slots))
        ``OrderTable.live_of(slot)`` and ``unacked_of(slot)``, for the ``position`` registers,
        2 cycles after the table.
    view : Out(order_view_signature(slots))
        The risk gate's view: lookup by UserRefNum, exposure, counts (see the signature).
    halted : In(slots)
        Instruments the risk gate halts; their live orders are canceled (``o_sweep``).
    halt_cause : In(ArrayLayout(5, slots))
        The :class:`~sim.risk.RiskReason` of each halt, carried by its forced cancels.
    o_sweep : Out(stream.Signature(SweepLayout))
        Forced cancels, :class:`Sweeper` (``RiskGate.sweep``).
    now : Out(48)
        The cycle counter that times ``since`` and fills.
    answered : Out(slots)
        For one cycle, the instrument of an answer applied to one of our orders, in the first
        cycle the table and the position show it (the model evaluates that instrument then).
    stats : Out(stats_layout(OrderTableStat))
        48-bit counters, 2 cycles after the message is applied.
    busy : Out(1)
        A message is being applied.

    Latency
    -------
    A message transferred in cycle ``t`` is applied in cycle ``t + 4``: the table (``orders``)
    and the position show it from ``t + 5``, its fill is offered in ``t + 5``; ``live_of`` and
    ``unacked_of`` from ``t + 6``, ``view.live_count`` and ``unacked_count`` from ``t + 7``,
    ``view.exposure`` from ``t + 8``, when ``view.stable`` rises again (if nothing else came).
    A lookup takes 3 cycles.

    Throughput
    ----------
    One message every 4 cycles (:data:`APPLY_CYCLES`), from either input; when both wait they
    take turns. An Executed answer waits in *apply* while the previous fill is still offered.

    Bad input
    ---------
    Never corrupts another order: a replace or cancel report naming no order in the table is
    counted ``STALE``; a report the table cannot record (replace or cancel of a busy order,
    enter into an occupied order slot, with a UserRefNum in use or for a slot at or above
    ``slots``, an action kind outside the enum) ``CONFLICT``; an answer naming no order, or of
    a type that is not an answer, ``UNKNOWN``; all change nothing. Should two orders carry the
    same UserRefNum (a replace's new UserRefNum is not checked: the encoder's counter makes it
    fresh), a message naming it goes to the lower entry.
    """

    def __init__(self, slots: int = 8):
        if slots < 1 or slots > 32 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two from 1 to 32, got {slots}")
        self.slots = slots
        self.entries = ORDERS_PER_SLOT * slots
        super().__init__({
            "i_sent": In(stream.Signature(SentLayout)),
            "i_answer": In(stream.Signature(AnswerLayout)),
            "o_fill": Out(stream.Signature(FillLayout)),
            "orders": Out(RestingLayout).array(self.entries),
            "position": Out(data.ArrayLayout(signed(POSITION_BITS), slots)),
            "live_of": Out(data.ArrayLayout(range(ORDERS_PER_SLOT + 1), slots)),
            "unacked_of": Out(data.ArrayLayout(range(2 * ORDERS_PER_SLOT + 1), slots)),
            "view": Out(order_view_signature(slots)),
            "halted": In(slots),
            "halt_cause": In(data.ArrayLayout(REASON_BITS, slots)),
            "o_sweep": Out(stream.Signature(SweepLayout)),
            "now": Out(TIME_BITS),
            "answered": Out(slots),
            "stats": Out(stats_layout(OrderTableStat)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, count_e = self.slots, self.entries
        stats = self.stats
        ent = [Signal(RestingLayout, name=f"entry{e}") for e in range(count_e)]
        position = [Signal(signed(POSITION_BITS), name=f"position{s}") for s in range(n)]
        for e in range(count_e):
            m.d.comb += self.orders[e].eq(ent[e])
        for s in range(n):
            m.d.comb += self.position[s].eq(position[s])

        m.d.sync += self.now.eq(self.now + 1)

        # --- Taking a message: one at a time, the inputs alternating when both wait.
        match, pick, read, apply = (Signal(name=f"st_{s}") for s in ("match", "pick", "read",
                                                                        "apply"))
        fire = Signal()        # apply completes this cycle
        free = Signal()
        prefer_answer = Signal()
        m.d.comb += [
            free.eq(~(match | pick | read | apply) | fire),
            self.i_sent.ready.eq(free & (~prefer_answer | ~self.i_answer.valid)),
            self.i_answer.ready.eq(free & (prefer_answer | ~self.i_sent.valid)),
            self.busy.eq(match | pick | read | apply),
        ]
        take_sent = self.i_sent.valid & self.i_sent.ready
        take_answer = self.i_answer.valid & self.i_answer.ready
        with m.If(take_sent & self.i_answer.valid):
            m.d.sync += prefer_answer.eq(1)
        with m.Elif(take_answer & self.i_sent.valid):
            m.d.sync += prefer_answer.eq(0)

        sent = Signal(SentLayout)
        ans = Signal(AnswerLayout)
        is_sent = Signal()
        key = Signal(USER_REF_BITS)
        op_now = Signal(TIME_BITS)
        act = sent.action
        take = take_sent | take_answer
        with m.If(take):
            m.d.sync += [is_sent.eq(take_sent), op_now.eq(self.now)]
        with m.If(take_sent):
            sp = self.i_sent.payload
            m.d.sync += [
                sent.eq(sp),
                key.eq(Mux(sp.action.kind == ActionKind.NEW, sp.user_ref, sp.action.ref)),
            ]
        with m.If(take_answer):
            m.d.sync += [ans.eq(self.i_answer.payload),
                         key.eq(self.i_answer.payload.user_ref_num)]
        m.d.sync += [match.eq(take), pick.eq(match), read.eq(pick),
                     apply.eq(read | (apply & ~fire))]

        # --- Match: every UserRefNum against the key; the message decoded.
        hit_ref = Signal(count_e)
        hit_rep = Signal(count_e)
        m.d.sync += [
            hit_ref.eq(Cat(e.valid & (e.ref == key) for e in ent)),
            hit_rep.eq(Cat(e.valid & e.replacing & (e.replace_ref == key) for e in ent)),
        ]
        kinds = ("new", "replace", "cancel", "accepted", "replaced", "rejected", "canceled",
                 "executed")
        t = {k: Signal(name=f"t_{k}") for k in kinds}
        q_zero = Signal()
        dead = Signal()
        price_sat = Signal(ACTION_PRICE_BITS)
        slot_ok = Signal()
        direct = Signal(range(count_e))
        with m.If(match):
            answer_type = {"accepted": OutboundType.ACCEPTED, "replaced": OutboundType.REPLACED,
                           "rejected": OutboundType.REJECTED, "canceled": OutboundType.CANCELED,
                           "executed": OutboundType.EXECUTED}
            m.d.sync += [
                t["new"].eq(is_sent & (act.kind == ActionKind.NEW)),
                t["replace"].eq(is_sent & (act.kind == ActionKind.REPLACE)),
                t["cancel"].eq(is_sent & (act.kind == ActionKind.CANCEL)),
                *(t[k].eq(~is_sent & (ans.type == code)) for k, code in answer_type.items()),
                q_zero.eq(ans.quantity == 0),
                dead.eq(ans.order_state == OrderStateCode.DEAD),
                price_sat.eq(Mux(ans.price[ACTION_PRICE_BITS:].any(), _PRICE_MAX,
                                 ans.price[:ACTION_PRICE_BITS])),
                slot_ok.eq(act.slot < n),
                direct.eq(Cat(act.level, act.side, act.slot[:max(n.bit_length() - 1, 0)])),
            ]

        # --- Pick: the entry.
        use_rep = Signal()
        found = Signal()
        in_use = Signal()
        idx = Signal(range(count_e))
        ref_any, ref_idx = _lowest(m, hit_ref, "ref")
        rep_any, rep_idx = _lowest(m, hit_rep, "rep")
        with m.If(pick):
            choose_rep = t["replaced"] | (t["rejected"] & rep_any)
            m.d.sync += [
                use_rep.eq(choose_rep),
                found.eq(Mux(choose_rep, rep_any, ref_any)),
                in_use.eq(ref_any | rep_any),
                idx.eq(Mux(t["new"], direct, Mux(choose_rep, rep_idx, ref_idx))),
            ]

        # --- Read: the entry's fields the rules compute with, and the position.
        # The wide fields read by entry number (here and by the lookup) also live in 64-word
        # memories, written with the entries, instead of being read through 64-way multiplexers
        # of flip-flops; Yosys moves the registered address (``idx``, ``lk_at``) into the port
        # and maps them to block RAM. The copies are not reset: what a reset leaves in them
        # belongs to entries that are not valid, whose wide fields no rule uses (an entry's are
        # used only once a UserRefNum of it matched; an Enter Order reads but uses none).
        m.submodules.copy_ref = copy_ref = Memory(shape=USER_REF_BITS, depth=count_e, init=[])
        m.submodules.copy_open = copy_open = Memory(shape=QUANTITY_BITS, depth=count_e, init=[])
        m.submodules.copy_rep = copy_rep = Memory(
            shape=data.StructLayout({"ref": USER_REF_BITS, "quantity": QUANTITY_BITS}),
            depth=count_e, init=[])
        m.submodules.copy_exposure = copy_exposure = Memory(shape=EXPOSURE_BITS, depth=count_e,
                                                            init=[])
        read_ref, read_open, read_rep = (c.read_port(domain="comb")
                                         for c in (copy_ref, copy_open, copy_rep))
        m.d.comb += [read_ref.addr.eq(idx), read_open.addr.eq(idx), read_rep.addr.eq(idx)]
        cur = Signal(data.StructLayout({
            "valid": 1, "busy": 1, "pending_new": 1, "replacing": 1, "cancel_pending": 1,
            "ref": USER_REF_BITS, "open": QUANTITY_BITS, "replace_ref": USER_REF_BITS,
            "replace_quantity": QUANTITY_BITS}))
        cur_pos = Signal(signed(POSITION_BITS))
        sel = Signal(count_e)
        with m.If(read):
            m.d.sync += [getattr(cur, name).eq(Array(getattr(e, name) for e in ent)[idx])
                         for name in ("valid", "busy", "pending_new", "replacing",
                                      "cancel_pending")]
            m.d.sync += [
                cur.ref.eq(read_ref.data),
                cur.open.eq(read_open.data),
                cur.replace_ref.eq(read_rep.data.ref),
                cur.replace_quantity.eq(read_rep.data.quantity),
                cur_pos.eq(Array(position)[idx // ORDERS_PER_SLOT]),
                sel.eq((Const(1, count_e) << idx)[:count_e]),
            ]

        # --- Apply: the verdict, the entry's new state, the fill, the position.
        def node(name, value):
            return _named(m, name, value)

        new_ok = node("new_ok", t["new"] & slot_ok & ~in_use & ~cur.valid)
        targeted = t["replace"] | t["cancel"]
        stale = node("stale", targeted & ~found)
        mod_ok = node("mod_ok", targeted & found & ~cur.busy)
        recorded = node("recorded", new_ok | mod_ok)
        answer = Cat(t[k] for k in ("accepted", "replaced", "rejected", "canceled",
                                    "executed")).any()
        known = node("known", answer & found
                     & (~t["replaced"] | (cur.ref == ans.orig_user_ref_num)))
        rej_replace = t["rejected"] & use_rep
        opened = node("opened", known & (t["accepted"] | t["replaced"]))
        reduced = node("reduced", known & (t["canceled"] | t["executed"]))

        cut = node("cut", ans.quantity >= cur.open)
        ends = node("ends", (opened & (dead | q_zero)) | (known & t["rejected"] & ~use_rep)
                    | (reduced & cut))

        # The entry's next flags and the fields the exposure reads.
        n_valid = node("n_valid", (new_ok | cur.valid) & ~ends)
        n_pending = node("n_pending", n_valid & (new_ok | (cur.pending_new
                                                           & ~(known & t["accepted"]))))
        n_replacing = node("n_replacing", n_valid & ((mod_ok & t["replace"]) | (
            cur.replacing & ~new_ok & ~(known & (t["replaced"] | rej_replace)))))
        n_cancel = node("n_cancel", n_valid & ((mod_ok & t["cancel"]) | (
            cur.cancel_pending & ~new_ok & ~(known & t["canceled"]))))
        n_busy = node("n_busy", n_pending | n_replacing | n_cancel)
        n_open = node("n_open", Mux(new_ok, act.quantity,
                                    Mux(opened, ans.quantity,
                                        Mux(reduced & ~cut, cur.open - ans.quantity,
                                            Mux(reduced, 0, cur.open)))))
        n_rep_qty = node("n_rep_qty", Mux(mod_ok & t["replace"], act.quantity,
                                          cur.replace_quantity))

        fill_now = node("fill_now", known & t["executed"])
        fill = self.o_fill
        m.d.comb += fire.eq(apply & ~(t["executed"] & fill.valid))
        write = node("write", fire & (recorded | known))
        timed = node("timed", new_ok | opened)
        new_replace = node("new_replace", mod_ok & t["replace"])
        # Every written field's new value is computed once, here, from the message and ``cur``
        # (which no other message can change before this one is applied); each entry only
        # enables its flip-flops. Choosing among sources per entry (such as its own
        # ``replace_ref``) would put a multiplexer behind every bit of all 64.
        took_replacement = node("took_replacement", opened & t["replaced"])
        set_order = node("set_order", new_ok | took_replacement)
        set_price = node("set_price", new_ok | opened)
        n_ref = node("n_ref", Mux(new_ok, sent.user_ref, cur.replace_ref))
        n_quantity = node("n_quantity", Mux(new_ok, act.quantity, cur.replace_quantity))
        n_price = node("n_price", Mux(opened, price_sat, act.price))
        write_ref, write_open, write_rep = (c.write_port() for c in (copy_ref, copy_open,
                                                                     copy_rep))
        m.d.comb += [
            write_open.addr.eq(idx), write_open.en.eq(write), write_open.data.eq(n_open),
            write_ref.addr.eq(idx), write_ref.en.eq(write & set_order),
            write_ref.data.eq(n_ref),
            write_rep.addr.eq(idx), write_rep.en.eq(write & new_replace),
            write_rep.data.ref.eq(sent.user_ref), write_rep.data.quantity.eq(act.quantity),
        ]
        for e, entry in enumerate(ent):
            with m.If(write & sel[e]):
                m.d.sync += [
                    entry.valid.eq(n_valid),
                    entry.pending_new.eq(n_pending),
                    entry.replacing.eq(n_replacing),
                    entry.cancel_pending.eq(n_cancel),
                    entry.busy.eq(n_busy),
                    entry.open.eq(n_open),
                ]
                with m.If(set_order):
                    m.d.sync += [entry.ref.eq(n_ref), entry.quantity.eq(n_quantity)]
                with m.If(set_price):
                    m.d.sync += entry.price.eq(n_price)
                with m.If(timed):
                    m.d.sync += entry.since.eq(op_now)
                with m.If(new_replace):
                    m.d.sync += [entry.replace_ref.eq(sent.user_ref),
                                 entry.replace_quantity.eq(act.quantity)]

        # The fill and the position (a sell subtracts), saturating at the register's range.
        with m.If(fill.ready):
            m.d.sync += fill.valid.eq(0)
        moved = Signal(signed(POSITION_BITS + 2))
        m.d.comb += moved.eq(Mux(idx[2] == Side.SELL, cur_pos - ans.quantity,
                                 cur_pos + ans.quantity))
        over, under = _named(m, "over", moved > _POS_MAX), _named(m, "under", moved < _POS_MIN)
        with m.If(fire & fill_now):
            m.d.sync += [
                fill.valid.eq(1),
                fill.payload.time.eq(op_now),
                fill.payload.slot.eq(idx // ORDERS_PER_SLOT),
                fill.payload.side.eq(idx[2]),
                fill.payload.quantity.eq(ans.quantity),
                fill.payload.price.eq(ans.price),
                fill.payload.liquidity.eq(ans.liquidity_flag),
                fill.payload.ref.eq(ans.user_ref_num),
                fill.payload.match_number.eq(ans.match_number),
                Array(position)[idx // ORDERS_PER_SLOT].eq(
                    Mux(over, _POS_MAX, Mux(under, _POS_MIN, moved))),
            ]

        m.d.sync += self.answered.eq(Mux(fire & known, Const(1, n) << (idx // ORDERS_PER_SLOT), 0))

        count(m, stats.sent, fire & recorded)
        count(m, stats.stale, fire & stale)
        count(m, stats.conflict, fire & is_sent & ~recorded & ~stale)
        count(m, stats.answers, fire & known)
        count(m, stats.unknown, fire & ~is_sent & ~known)
        count(m, stats.fills, fire & fill_now)
        count(m, stats.position_saturated, fire & fill_now & (over | under))

        # --- Derived: the written entry's exposure, then the sums and counts.
        w_strobe = Signal()
        w_idx = Signal(range(count_e))
        w = Signal(data.StructLayout({"valid": 1, "replacing": 1, "open": QUANTITY_BITS,
                                      "replace_quantity": QUANTITY_BITS}))
        m.d.sync += w_strobe.eq(write)
        with m.If(write):
            m.d.sync += [w_idx.eq(idx), w.valid.eq(n_valid), w.replacing.eq(n_replacing),
                         w.open.eq(n_open), w.replace_quantity.eq(n_rep_qty)]
        exposure = [Signal(EXPOSURE_BITS, name=f"exposure{e}") for e in range(count_e)]
        w_exposure = Mux(~w.valid, 0,
                         Mux(w.replacing & (w.replace_quantity > w.open), w.replace_quantity,
                             w.open))
        with m.If(w_strobe):
            m.d.sync += Array(exposure)[w_idx].eq(w_exposure)
        write_exposure = copy_exposure.write_port()
        m.d.comb += [write_exposure.addr.eq(w_idx), write_exposure.en.eq(w_strobe),
                     write_exposure.data.eq(w_exposure)]

        view = self.view
        pairs = [Signal(EXPOSURE_BITS + 1, name=f"exposure_pair{k}")
                 for k in range(count_e // 2)]
        m.d.sync += [p.eq(exposure[2 * k] + exposure[2 * k + 1]) for k, p in enumerate(pairs)]
        for s in range(n):
            for side in range(2):
                g = 2 * s + side
                m.d.sync += view.exposure[s][side].eq(pairs[2 * g] + pairs[2 * g + 1])

        live_of = [Signal(range(ORDERS_PER_SLOT + 1), name=f"live_of{s}") for s in range(n)]
        unacked_of = [Signal(range(2 * ORDERS_PER_SLOT + 1), name=f"unacked_of{s}")
                      for s in range(n)]
        for s in range(n):
            group = ent[s * ORDERS_PER_SLOT:(s + 1) * ORDERS_PER_SLOT]
            m.d.sync += [
                live_of[s].eq(sum(e.valid for e in group)),
                unacked_of[s].eq(sum(e.pending_new for e in group)
                                 + sum(e.replacing for e in group)),
            ]
            m.d.comb += [self.live_of[s].eq(live_of[s]), self.unacked_of[s].eq(unacked_of[s])]
        m.d.sync += [view.live_count.eq(sum(live_of)), view.unacked_count.eq(sum(unacked_of))]

        settle = Signal(VIEW_SETTLE)
        m.d.sync += settle.eq(Cat(write, settle[:-1]))
        m.d.comb += view.stable.eq(~self.busy & ~settle.any())

        # --- The risk gate's lookup by UserRefNum: compare, pick, read.
        lk_hit = Signal(count_e)
        m.d.sync += lk_hit.eq(Cat(e.valid & (e.ref == view.ref) for e in ent))
        lk_any, lk_idx = _lowest(m, lk_hit, "lookup")
        lk_found = Signal()
        lk_at = Signal(range(count_e))
        m.d.sync += [lk_found.eq(lk_any), lk_at.eq(lk_idx)]
        lk = view.lookup
        lookup_open, lookup_exposure = (c.read_port(domain="comb")
                                        for c in (copy_open, copy_exposure))
        m.d.comb += [lookup_open.addr.eq(lk_at), lookup_exposure.addr.eq(lk_at)]
        m.d.sync += [
            lk.found.eq(lk_found),
            lk.busy.eq(lk_found & Array(e.busy for e in ent)[lk_at]),
            lk.live.eq(lk_found & ~Array(e.pending_new for e in ent)[lk_at]),
            lk.slot.eq(Mux(lk_found, lk_at // ORDERS_PER_SLOT, 0)),
            lk.side.eq(Mux(lk_found, lk_at[2], 0)),
            lk.level.eq(Mux(lk_found, lk_at[:2], 0)),
            lk.open.eq(Mux(lk_found, lookup_open.data, 0)),
            lk.exposure.eq(Mux(lk_found, lookup_exposure.data, 0)),
        ]

        # --- Forced cancels of the halted instruments.
        m.submodules.sweeper = sweeper = Sweeper(n)
        m.d.comb += [sweeper.orders[e].eq(self.orders[e]) for e in range(count_e)]
        m.d.comb += [
            sweeper.halted.eq(self.halted),
            sweeper.cause.eq(self.halt_cause),
        ]
        wiring.connect(m, sweeper.o, wiring.flipped(self.o_sweep))
        return m
