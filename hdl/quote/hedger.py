"""The hedger: one immediate-or-cancel order that takes a position back toward flat.

Twin of :meth:`sim.hedger.Hedger.action` (the rule is in :mod:`sim.hedger`): each query carries
what the model reads, the instrument's best bid and ask (its ``top``), the position, whether a
hedge order of the instrument is still open (``OrderTable.hedge_busy``) and the instrument's
``hedge_enable``, ``hedge_threshold`` and ``hedge_size`` (its :class:`~hdl.csr.params.RiskLimits`
registers), and its answer is the model's action, or none. The
:class:`~hdl.quote.requote.Requoter` asks once per quote set, with the same snapshot that its
requote rules read, and sends the hedge first, as the model's evaluation does.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.ouch import TimeInForceCode
from hdl.csr.params import PRICE_BITS
from hdl.quote.order_action import SLOT_BITS, OrderActionLayout
from hdl.quote.quoter import POSITION_BITS
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, Origin

__all__ = ["HEDGER_LATENCY", "HedgeQueryLayout", "HedgeResultLayout", "Hedger"]

#: Width of ``hedge_threshold`` and ``hedge_size`` (their registers').
_SHARES_BITS = 32

#: One evaluation: the instrument slot, its position (long positive), its best bid and ask (0:
#: an empty side), ``hedge_open`` (a hedge order of the instrument has not ended) and its
#: ``hedge_*`` registers.
HedgeQueryLayout = data.StructLayout({
    "slot": SLOT_BITS,
    "position": signed(POSITION_BITS),
    "bid_price": PRICE_BITS,
    "ask_price": PRICE_BITS,
    "hedge_open": 1,
    "hedge_enable": 1,
    "hedge_threshold": _SHARES_BITS,
    "hedge_size": _SHARES_BITS,
})

#: The answer to one query: ``send`` and the action (all fields 0 when ``send`` is 0).
HedgeResultLayout = data.StructLayout({"send": 1, "action": OrderActionLayout})

#: Cycles from a query's transfer to its result on ``o`` (``o`` ready).
HEDGER_LATENCY = 2


class Hedger(wiring.Component):
    """The hedge order of one evaluation, :meth:`sim.hedger.Hedger.action` bit for bit.

    Ports
    -----
    i : In(stream.Signature(HedgeQueryLayout))
        Queries. Ready whenever ``o`` is empty or being taken.
    o : Out(stream.Signature(HedgeResultLayout))
        One result per query, in order: ``send`` and the action (kind NEW, the query's slot,
        level :data:`~sim.orders.HEDGE_LEVEL`, SELL at the best bid for a long position, BUY at
        the best ask for a short one, ``min(hedge_size, |position|)`` shares, time in force IOC,
        ``ref`` 0, origin HEDGER).

    Latency
    -------
    :data:`HEDGER_LATENCY` (2) cycles from a query's transfer to its result on ``o``: the
    position's magnitude and the side's price, then the two comparisons.

    Throughput
    ----------
    One query per cycle; a stall on ``o`` stalls both stages.

    Bad input
    ---------
    None: every query has an answer. A position of ``-2**31`` has the magnitude ``2**31``, as
    in the model. A ``hedge_size`` of 0 sends nothing (the register bank accepts it as "off").
    """

    def __init__(self):
        super().__init__({
            "i": In(stream.Signature(HedgeQueryLayout)),
            "o": Out(stream.Signature(HedgeResultLayout)),
        })

    def elaborate(self, platform):
        m = Module()
        q = self.i.payload
        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        # Stage 1: the magnitude of the position, which side trades and at what price, and the
        # conditions that do not need a comparison.
        s1 = Signal(data.StructLayout({
            "valid": 1, "slot": SLOT_BITS, "magnitude": POSITION_BITS, "sell": 1,
            "price": PRICE_BITS, "armed": 1, "threshold": _SHARES_BITS, "size": _SHARES_BITS}))
        long = q.position > 0
        with m.If(advance):
            m.d.sync += [
                s1.valid.eq(self.i.valid),
                s1.slot.eq(q.slot),
                s1.magnitude.eq(Mux(q.position < 0, -q.position, q.position)),
                s1.sell.eq(long),
                s1.price.eq(Mux(long, q.bid_price, q.ask_price)),
                s1.armed.eq(q.hedge_enable & (q.hedge_size != 0) & ~q.hedge_open),
                s1.threshold.eq(q.hedge_threshold),
                s1.size.eq(q.hedge_size),
            ]

        # Stage 2: the threshold, the empty side and the size.
        send = s1.armed & (s1.magnitude > s1.threshold) & (s1.price != 0)
        out = self.o.payload
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(s1.valid),
                out.send.eq(send),
                out.action.kind.eq(ActionKind.NEW),
                out.action.slot.eq(Mux(send, s1.slot, 0)),
                out.action.side.eq(Mux(send & s1.sell, Side.SELL, Side.BUY)),
                out.action.level.eq(Mux(send, HEDGE_LEVEL, 0)),
                out.action.price.eq(Mux(send, s1.price, 0)),
                out.action.quantity.eq(Mux(~send, 0, Mux(s1.size < s1.magnitude, s1.size,
                                                         s1.magnitude))),
                out.action.tif.eq(Mux(send, TimeInForceCode.IOC, TimeInForceCode.DAY)),
                out.action.ref.eq(0),
                out.action.origin.eq(Mux(send, Origin.HEDGER, Origin.QUOTER)),
            ]
        return m
