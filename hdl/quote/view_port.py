"""The risk gate's questions to the order table, answered from the table's view.

The gate asks once per action (``RiskGate.o_query``: the UserRefNum it replaces or cancels, the
instrument and side) and takes the answer whenever it comes (``RiskGate.i_view``). The table
offers a lookup by UserRefNum, per-side exposure sums and order counts, with a ``stable`` flag
(``OrderTable.view``). This port puts the two together, and holds each answer until it tells
the truth the gate's rule asks for: the table after every action the gate has passed before the
query.
"""

from amaranth.hdl import Array, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.quote.order_table import LOOKUP_LATENCY, order_view_signature
from hdl.quote.risk_gate import OrderViewLayout, ViewQueryLayout

__all__ = ["VIEW_PORT_LATENCY", "TableViewPort"]

#: Cycles from a query's transfer to its answer offered, with the table stable and nothing in
#: flight: the UserRefNum goes to the table's lookup in the transfer cycle (then from the
#: port's register).
VIEW_PORT_LATENCY = LOOKUP_LATENCY


class TableViewPort(wiring.Component):
    """Answers :class:`~hdl.quote.risk_gate.RiskGate` queries from
    :class:`~hdl.quote.order_table.OrderTable`'s view.

    Parameters
    ----------
    slots : int
        The table's instrument slots.

    Ports
    -----
    query : In(stream.Signature(ViewQueryLayout))
        The gate's ``o_query``. Ready while no query waits for its answer.
    answer : Out(stream.Signature(OrderViewLayout))
        To the gate's ``i_view``: ``found``, ``busy``, ``slot``, ``side`` and ``exposure`` of the
        order ``ref`` names (ignored by the gate when not found), ``others`` the exposure of the
        query's instrument and side without that order (``OrderTable.exposure(slot, side,
        exclude=ref)``), ``live`` and ``unacked`` the table's counts.
    view : In(order_view_signature(slots))
        The table's view (``OrderTable.view``).
    in_flight : In(1)
        An action the gate passed has not yet reached the table (it is on the gate's output or
        in the encoder, ``OuchTx.busy``). No answer is offered meanwhile.

    Latency
    -------
    :data:`VIEW_PORT_LATENCY` (3) cycles from a query's transfer to its answer offered when
    the table is stable and nothing is in flight; otherwise the answer is offered in the first
    cycle after that in which both hold. The gate takes it at once.

    Throughput
    ----------
    One query at a time.

    Bad input
    ---------
    A query naming a slot at or above ``slots`` reads some slot's exposure; the gate denies
    such actions before it reads ``others``.
    """

    def __init__(self, slots: int):
        self.slots = slots
        super().__init__({
            "query": In(stream.Signature(ViewQueryLayout)),
            "answer": Out(stream.Signature(OrderViewLayout)),
            "view": In(order_view_signature(slots)),
            "in_flight": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        query, answer, view = self.query, self.answer, self.view
        pending = Signal()
        asked = Signal(ViewQueryLayout)
        age = Signal(range(LOOKUP_LATENCY + 1))     # cycles the UserRefNum has been presented

        # The lookup starts in the transfer cycle: the same UserRefNum is presented from then on.
        taken = query.valid & query.ready
        m.d.comb += [query.ready.eq(~pending),
                     view.ref.eq(Mux(taken, query.payload.ref, asked.ref))]
        with m.If(taken):
            m.d.sync += [pending.eq(1), asked.eq(query.payload), age.eq(1)]
        with m.Elif(pending):
            with m.If(age != LOOKUP_LATENCY):
                m.d.sync += age.eq(age + 1)
            with m.If(answer.valid & answer.ready):
                m.d.sync += pending.eq(0)

        lookup = view.lookup
        # The order is excluded from the sum only where it is counted: its own slot and side.
        own = lookup.found & (lookup.slot == asked.slot) & (lookup.side == asked.side)
        sums = Array(view.exposure[k] for k in range(self.slots))[asked.slot]
        side_sum = Array(sums[k] for k in range(2))[Value.cast(asked.side)]
        m.d.comb += [
            answer.valid.eq(pending & (age == LOOKUP_LATENCY) & view.stable & ~self.in_flight),
            answer.payload.found.eq(lookup.found),
            answer.payload.busy.eq(lookup.busy),
            answer.payload.slot.eq(lookup.slot),
            answer.payload.side.eq(lookup.side),
            answer.payload.exposure.eq(lookup.exposure),
            answer.payload.others.eq(side_sum - Mux(own, lookup.exposure, 0)),
            answer.payload.live.eq(view.live_count),
            answer.payload.unacked.eq(view.unacked_count),
        ]
        return m
