"""The market maker's loop in gateware: top-of-book updates in, OUCH orders out, answers in.

top updates -> :class:`~hdl.quote.quoter.Quoter` -> :class:`~hdl.quote.requote.Requoter` (with
the hedger) -> :class:`~hdl.quote.risk_gate.RiskGate` -> :class:`~hdl.quote.ouch_tx.OuchTx` ->
order port; exchange answers -> :class:`~hdl.quote.ouch_rx.OuchRx` ->
:class:`~hdl.quote.order_table.OrderTable` -> fills and position -> quoter, requoter and gate.
The table's sweeper sends the forced cancels of halted instruments through the gate as well, so
nothing reaches the order port without it. Its model twin is :class:`sim.market_maker.MarketMaker`
(without the book and the exchange, which are on either side of this loop).

Where the gateware waits on purpose
-----------------------------------
The model decides at one instant: the quoter's actions for a top are decided against the order
table as it is, and every action passed is in the table before the next one is decided. The
gateware is a pipeline, so two rules keep it to that picture:

- The risk gate asks the table about each action only once every action it passed before has
  been recorded (:class:`~hdl.quote.view_port.TableViewPort`, ``in_flight``).
- A quote set is taken by the requoter only when the previous one's actions have all been
  decided and recorded (the requoter, the gate, the encoder and the table are all idle). The
  requoter copies the table when it takes a quote set; without this wait it could copy a table
  that does not yet show the previous set's orders and send them twice.

Answers from the exchange may still land between the requoter's copy and the gate's decision;
the gate then decides on the newer table (an action on an order that has meanwhile ended is
denied ``UNKNOWN_ORDER`` and counted), as the model would had the answer come a moment later.
"""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BeatStream
from hdl.arch.ouch import USER_REF_BITS
from hdl.book.layout import top_update_stream
from hdl.csr.bank import block_signature
from hdl.csr.params import FairValueMode
from hdl.csr.plane import ControlSignature
from hdl.quote.order_table import SWEEP_CYCLES, FillLayout, OrderTable
from hdl.quote.ouch_rx import OuchRx
from hdl.quote.ouch_tx import CLORDID_PREFIX_CHARS, OUCH_TX_LATENCY, OuchTx
from hdl.quote.quoter import (
    POSITION_BITS,
    QUOTE_PARAMS_BLOCK,
    QUOTER_MODE_LATENCY,
    RISK_LIMITS_BLOCK,
    Quoter,
)
from hdl.quote.requote import REQUOTE_LATENCY, Requoter, TopPricesLayout
from hdl.quote.risk_gate import (
    DECISION_LATENCY,
    PORT_LIMITS_BLOCK,
    DecisionLayout,
    RiskGate,
    SlotStateLayout,
)
from hdl.quote.view_port import VIEW_PORT_LATENCY, TableViewPort
from hdl.stats import stats_layout
from sim.order_entry import OuchTxStat
from sim.orders import OrderTableStat
from sim.ouch_rx import OuchRxStat
from sim.quoter import QuoterStat, RequoteStat
from sim.risk import RiskReason, RiskState

__all__ = ["DISARM_TO_CANCEL", "LOOP_STAGES", "TICK_TO_ORDER", "QuoteLoop", "loop_stats_layout"]

#: The loop's stages and the counters of each, as ``stats`` holds them.
LOOP_STAGES = {"quoter": QuoterStat, "requote": RequoteStat, "risk": RiskReason,
               "order_table": OrderTableStat, "ouch_tx": OuchTxStat, "ouch_rx": OuchRxStat}

#: Cycles from a top update's transfer on ``i`` to the first beat of its first order on ``o``,
#: with everything idle, fair value MID or REFERENCE and no microprice in the collar: the
#: quoter, the requoter, the gate's query (with the action's transfer) and answer, its decision,
#: the encoder.
TICK_TO_ORDER = (QUOTER_MODE_LATENCY[FairValueMode.MID] + REQUOTE_LATENCY + VIEW_PORT_LATENCY
                 + DECISION_LATENCY + OUCH_TX_LATENCY)


#: Most cycles from ``control.armed`` falling (a kill, or the heartbeat watchdog) to the first
#: beat of the first forced cancel, the loop otherwise idle (one fewer when the sweeper's idle
#: loop is in phase): the gate's state shows it a cycle later, the sweeper's search starts within
#: a cycle and finds the oldest live order, then the gate's query, answer and decision and the
#: encoder. Each further cancel follows once the table has recorded the previous one, 15 cycles
#: later when nothing else reaches the gate.
DISARM_TO_CANCEL = 2 + SWEEP_CYCLES + VIEW_PORT_LATENCY + DECISION_LATENCY + OUCH_TX_LATENCY


def loop_stats_layout() -> data.StructLayout:
    return data.StructLayout({name: stats_layout(reasons) for name, reasons in LOOP_STAGES.items()})


class QuoteLoop(wiring.Component):
    """Quoter, requoter and hedger, risk gate, OUCH encoder and decoder and the order table.

    Parameters
    ----------
    slots : int
        Instrument slots (default 8, a power of two).
    slot_bits : int, optional
        Width of the slot number of the top updates (the book's ``geometry.slot_bits``).
    first_user_ref : int
        The encoder's UserRefNum after reset.

    Ports
    -----
    i : In(top_update_stream(slot_bits))
        The book's top-of-book updates. Ready every other cycle (the quoter's rate); the gate
        and the requoter's copy of the tops take each update as the quoter does.
    o : Out(BeatStream())
        OUCH 5.0 packets in SoupBinTCP framing, one per order message.
    i_answer : In(BeatStream())
        The exchange's SoupBinTCP packets, one frame each.
    quote, risk : In(block_signature(...)), arrays of ``slots``
        Each slot's :class:`~hdl.csr.params.QuoteParams` and :class:`~hdl.csr.params.RiskLimits`.
    port : In(block_signature(PORT_LIMITS_BLOCK))
        :class:`~hdl.csr.params.PortLimits`.
    control : In(ControlSignature())
        ``armed``, ``killed``, ``heartbeat_lost`` from the control block.
    arm : In(1)
        The host's arm strobe (clears market-maker protection trips).
    feed_gap : In(1)
        A MoldUDP64 gap is not recovered: quotes are pulled.
    symbols : In(ArrayLayout(64, slots))
        Each slot's symbol for the orders (first character in bits 7..0; 0: no instrument).
    clordid_prefix : In(ArrayLayout(8, 6))
        The ClOrdID prefix, first character in element 0, ending at the first zero.
    i_next_ref : In(stream.Signature(32))
        Sets the encoder's next UserRefNum.
    o_decision : Out(stream.Signature(DecisionLayout, always_ready=True))
        Every decision of the gate, passed or denied, for a monitor.
    o_fill : Out(stream.Signature(FillLayout, always_ready=True))
        Every fill, as the table applies it.
    position : Out(ArrayLayout(signed(32), slots))
    live_of, unacked_of : Out(ArrayLayout(..., slots))
        Per slot, the table's live and unacknowledged orders.
    state : Out(ArrayLayout(SlotStateLayout, slots))
        Each instrument's risk state and cause.
    next_ref : Out(33)
        The encoder's next UserRefNum.
    stats : Out(loop_stats_layout())
        Every stage's counters (:data:`LOOP_STAGES`).
    busy : Out(1)
        Something is being priced, decided, sent or recorded.

    Latency
    -------
    :data:`TICK_TO_ORDER` cycles from a top update's transfer on ``i`` to the first beat of its
    first order on ``o`` when the loop is idle (MID or REFERENCE fair value; a microprice adds 9
    in the quoter and 14 in the gate's collar): the quoter's 21, the requoter's 4, the view
    port's 3 after the gate's query, the gate's 5, the encoder's 2. Each further action of the
    same quote set follows one decision later (:attr:`RiskGate` throughput plus the table's 4
    cycles to record the previous one).

    Throughput
    ----------
    One top update every 2 cycles in; a slot updated again before it is priced is priced once
    on its newest top (``quoter.superseded``). One quote set is decided at a time, its actions
    one after another through the gate; while a quote set's actions are on their way the next
    one waits in the quoter's output. One beat per cycle out.

    Bad input
    ---------
    As each stage: the quoter and requoter drop and count bad slots, the gate denies and counts
    by :class:`~sim.risk.RiskReason`, the encoder refuses and counts bad actions, the decoder
    and the table count what they cannot use. Nothing waits on the monitors.
    """

    def __init__(self, slots: int = 8, *, slot_bits: int | None = None, first_user_ref: int = 1):
        self._quoter = Quoter(slots, slot_bits=slot_bits)
        self.slots = slots
        self.slot_bits = self._quoter.slot_bits
        self._requoter = Requoter(slots, slot_bits=self.slot_bits)
        self._gate = RiskGate(slots, slot_bits=self.slot_bits)
        self._table = OrderTable(slots)
        self._view = TableViewPort(slots)
        self._tx = OuchTx(slots=slots, first_user_ref=first_user_ref)
        self._rx = OuchRx()
        table = self._table.signature.members
        super().__init__({
            "i": In(top_update_stream(self.slot_bits)),
            "o": Out(BeatStream()),
            "i_answer": In(BeatStream()),
            "quote": In(block_signature(QUOTE_PARAMS_BLOCK)).array(slots),
            "risk": In(block_signature(RISK_LIMITS_BLOCK)).array(slots),
            "port": In(block_signature(PORT_LIMITS_BLOCK)),
            "control": In(ControlSignature()),
            "arm": In(1),
            "feed_gap": In(1),
            "symbols": In(data.ArrayLayout(64, slots)),
            "clordid_prefix": In(data.ArrayLayout(8, CLORDID_PREFIX_CHARS)),
            "i_next_ref": In(stream.Signature(USER_REF_BITS)),
            "o_decision": Out(stream.Signature(DecisionLayout, always_ready=True)),
            "o_fill": Out(stream.Signature(FillLayout, always_ready=True)),
            "position": Out(data.ArrayLayout(signed(POSITION_BITS), slots)),
            "live_of": table["live_of"],
            "unacked_of": table["unacked_of"],
            "state": Out(data.ArrayLayout(SlotStateLayout, slots)),
            "next_ref": Out(USER_REF_BITS + 1),
            "stats": Out(loop_stats_layout()),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.quoter = quoter = self._quoter
        m.submodules.requoter = requoter = self._requoter
        m.submodules.gate = gate = self._gate
        m.submodules.table = table = self._table
        m.submodules.view_port = view_port = self._view
        m.submodules.ouch_tx = tx = self._tx
        m.submodules.ouch_rx = rx = self._rx
        n = self.slots

        # Top updates: the quoter paces them; the gate and the requoter's tops see each
        # transfer (both always take one).
        top_in = self.i
        took_top = top_in.valid & quoter.i.ready
        m.d.comb += [
            quoter.i.valid.eq(top_in.valid),
            quoter.i.payload.eq(top_in.payload),
            top_in.ready.eq(quoter.i.ready),
            gate.i_top.valid.eq(took_top),
            gate.i_top.payload.eq(top_in.payload),
        ]
        tops = Signal(data.ArrayLayout(TopPricesLayout, n))
        with m.If(took_top & (top_in.payload.slot < n)):
            m.d.sync += [tops[top_in.payload.slot].bid_price.eq(top_in.payload.bid_price),
                         tops[top_in.payload.slot].ask_price.eq(top_in.payload.ask_price)]
        m.d.comb += requoter.top.eq(tops)

        # A quote set goes to the requoter only once the previous set's actions are recorded.
        drained = Signal()
        m.d.comb += [
            drained.eq(~requoter.busy & ~gate.busy & ~gate.o.valid & ~tx.busy
                       & table.view.stable),
            requoter.i.valid.eq(quoter.o.valid & drained),
            requoter.i.payload.eq(quoter.o.payload),
            quoter.o.ready.eq(requoter.i.ready & drained),
        ]

        wiring.connect(m, requoter.o, gate.i)
        wiring.connect(m, gate.o, tx.i)
        wiring.connect(m, gate.o_query, view_port.query)
        wiring.connect(m, view_port.answer, gate.i_view)
        wiring.connect(m, table.view, view_port.view)
        m.d.comb += view_port.in_flight.eq(gate.o.valid | tx.busy)
        wiring.connect(m, tx.o_sent, table.i_sent)
        wiring.connect(m, tx.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.i_answer), rx.i)
        wiring.connect(m, rx.o, table.i_answer)
        wiring.connect(m, wiring.flipped(self.i_next_ref), tx.i_next_ref)

        # The sweeper's forced cancels: the gate names the cause itself.
        sweep = table.o_sweep
        m.d.comb += [
            gate.i_forced.valid.eq(sweep.valid),
            gate.i_forced.payload.eq(sweep.payload.action),
            sweep.ready.eq(gate.i_forced.ready),
        ]
        for k in range(n):
            m.d.comb += [table.halted[k].eq(gate.state[k].state == RiskState.HALTED),
                         table.halt_cause[k].eq(gate.state[k].cause)]

        # The model evaluates an instrument again after an answer about one of its orders, and
        # every instrument when the host acts or a risk state changes: the quoter prices those
        # slots again on their last top.
        last_state = Signal.like(gate.state)
        m.d.sync += last_state.eq(gate.state)
        changed = Signal(n)
        m.d.comb += changed.eq(Cat(gate.state[k].as_value() != last_state[k].as_value()
                                   for k in range(n)))
        m.d.comb += quoter.reprice.eq(table.answered | changed | self.arm.replicate(n))

        # Fills: to the gate's protection, and a copy to the monitor as the gate takes each.
        fill = table.o_fill
        m.d.comb += [
            gate.i_fill.valid.eq(fill.valid),
            gate.i_fill.payload.slot.eq(fill.payload.slot),
            gate.i_fill.payload.shares.eq(fill.payload.quantity),
            fill.ready.eq(gate.i_fill.ready),
            self.o_fill.valid.eq(fill.valid & gate.i_fill.ready),
            self.o_fill.payload.eq(fill.payload),
        ]

        # Decisions: the gate waits for none; the monitor sees each once.
        m.d.comb += [
            gate.o_decision.ready.eq(1),
            self.o_decision.valid.eq(gate.o_decision.valid),
            self.o_decision.payload.eq(gate.o_decision.payload),
        ]

        for k in range(n):
            for block in ("quote", "risk"):
                wiring.connect(m, wiring.flipped(getattr(self, block)[k]),
                               getattr(quoter, block)[k], getattr(requoter, block)[k],
                               getattr(gate, block)[k])
        wiring.connect(m, wiring.flipped(self.port), gate.port)
        wiring.connect(m, wiring.flipped(self.control), gate.control)
        m.d.comb += [
            gate.arm.eq(self.arm),
            gate.feed_gap.eq(self.feed_gap),
        ]
        m.d.comb += [requoter.orders[e].eq(table.orders[e]) for e in range(len(table.orders))]
        m.d.comb += [
            requoter.now.eq(table.now),
            quoter.position.eq(table.position),
            gate.position.eq(table.position),
            self.position.eq(table.position),
            self.live_of.eq(table.live_of),
            self.unacked_of.eq(table.unacked_of),
            self.state.eq(gate.state),
            tx.symbols.eq(self.symbols),
            tx.clordid_prefix.eq(self.clordid_prefix),
            self.next_ref.eq(tx.next_ref),
            self.stats.quoter.eq(quoter.stats),
            self.stats.requote.eq(requoter.stats),
            self.stats.risk.eq(gate.stats),
            self.stats.order_table.eq(table.stats),
            self.stats.ouch_tx.eq(tx.stats),
            self.stats.ouch_rx.eq(rx.stats),
            self.busy.eq(quoter.busy | requoter.busy | gate.busy | tx.busy | table.busy
                         | ~table.view.stable | self.o.valid),
        ]
        return m
