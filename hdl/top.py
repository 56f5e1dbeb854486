"""The core: Ethernet frames in on AXI-Stream, top-of-book updates of the tracked instruments out.

``FeedIngress`` (UDP receive, MoldUDP64 sequencing, ITCH decode) -> ``Book``, joined by the ITCH
event stream, is :class:`FeedBook`; its model twin is ``sim/top.py``. :class:`TickgateCore` adds the
market maker's loop (:class:`~hdl.quote.loop.QuoteLoop`) after the book and the control plane
beside them, so that every setting comes from a register and every counter and status can be
read by the host.
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.book.book import Book
from hdl.book.layout import top_update_layout
from hdl.csr.bus import CsrSignature
from hdl.csr.map import REGISTER_MAP
from hdl.csr.plane import ControlPlane, ControlSignature
from hdl.feed.ingress import FeedIngress
from hdl.quote.loop import LOOP_STAGES, TICK_TO_ORDER, QuoteLoop
from sim.book_mirror import BookGeometry

__all__ = ["FeedBook", "TickgateCore"]

# Ports of the ingress and of the book that the core passes through under the same name.
_INGRESS_PORTS = ("endpoint", "i_expected", "o_gap", "mold_status")
_BOOK_PORTS = ("o", "cfg", "clear_degraded", "clear_book", "q_addr", "q_data")
# Book ports that need the stage's name in front once they are beside the ingress's.
_BOOK_RENAMED = ("status", "busy", "idle", "hazard")


class FeedBook(wiring.Component):
    """Feed ingress and order book in one core.

    Parameters
    ----------
    geometry : BookGeometry, optional
        The book's table sizes (default: 8 slots, 16,384 orders; see ``sim.book_mirror``).
    queue_depth : int
        Operations the book's input queue holds (``Book``).
    drop_when_full : bool
        True (default): the core never stalls its input; an event meeting a full book queue is
        dropped, counted (``stats.book.overflow``) and marks its instrument degraded. False:
        the full queue holds the event and ``s_axis_tready`` falls until there is room (for
        replaying a capture faster than it was recorded without losing anything).
    gap_fifo_depth : int
        Gap reports the ingress holds for the host.

    Ports
    -----
    s_axis_tdata (64), s_axis_tkeep (8), s_axis_tlast, s_axis_tuser, s_axis_tvalid : In
        Ethernet frames from the MAC, destination MAC first in lane 0, FCS removed; ``tuser`` on
        the last beat marks a bad frame.
    s_axis_tready : Out
        High on every cycle unless ``drop_when_full`` is False and the book's queue is full.
    endpoint : In
        The feed's destination MAC, IPv4 address and UDP port.
    i_expected : In(stream)
        Next expected MoldUDP64 sequence number, for the host after a recovery.
    o : Out(top_update_stream)
        A top-of-book update whenever a tracked instrument's best bid or ask (price or shares)
        or its halted or degraded flag changes: slot, stock locate, bid and ask price and shares
        (an empty side is price 0, shares 0), and the sequence number and timestamp of the
        message that caused it.
    o_gap : Out(stream)
        MoldUDP64 gaps (first missing sequence number, count), for the host to re-request.
    cfg : In(ArrayLayout(SlotConfigLayout, slots))
        What each slot tracks: a stock locate, or a symbol bound by the stock directory message.
    clear_degraded, clear_book : In(slots)
        One-cycle strobes from the host: clear these slots' degraded flags; empty their books.
    q_addr : In, q_data : Out
        The book's depth read-out: one level of one side of one slot, a cycle later.
    stats : Out
        Every stage's counters: ``stats.udp_rx``, ``stats.mold_rx``, ``stats.itch_decode``,
        ``stats.book``.
    mold_status : Out
        Expected sequence number, session, end-of-session flag.
    book_status : Out(ArrayLayout(slot_status_layout, slots))
        Each slot's binding, flags and top of book.
    book_busy, book_idle, book_hazard : Out(1)
        The book's ``busy`` (reset sweep, clear or refill in progress; events wait meanwhile),
        ``idle`` (nothing queued or in flight) and sticky ``hazard`` (never set by design).

    Latency
    -------
    7 cycles from the input beat carrying a message's last byte to its top-of-book update at
    ``o`` (3 in the ingress, 4 in the book, which adds nothing for the stream between them);
    10 for a replace (``U``), whose update reflects its delete and its add. The book's queue
    must be empty and ``o`` ready; ``tests/cocotb/tb_top.py`` measures it at line rate.

    Throughput
    ----------
    One 64-bit beat per cycle in, back-to-back frames included. The book completes an event
    every 2 cycles (a replace every 4). Messages follow each other at least 21 bytes apart (``D``
    with its length prefix), more than 2 beats, and a replace takes 37 bytes, more than 4 beats,
    so the book keeps up with the decoder at line rate (measured: no stall, constant latency).
    Events of untracked instruments cost the book nothing. A
    next-best search (refill, at most 1,203 cycles with the default geometry) and a clear (``S``
    start or end of messages: one cycle per non-empty slot's empty top, then 4,097 cycles of
    table sweep, skipped when no order was added since the last one) stop the book's pipeline;
    its queue (512 events by default) absorbs the events arriving meanwhile, and beyond that
    ``drop_when_full`` applies.

    Bad input
    ---------
    Each stage drops what it cannot trust and counts it under its own reason: damaged frames and
    packets in the ingress (see ``FeedIngress``), unknown references, over-executions, refused
    adds and queue overflows in the book (see ``Book``). Nothing stalls or hangs.
    """

    def __init__(self, geometry: BookGeometry | None = None, *, queue_depth: int = 512,
                 drop_when_full: bool = True, gap_fifo_depth: int = 16):
        self._ingress = FeedIngress(gap_fifo_depth=gap_fifo_depth)
        self._book = Book(geometry, queue_depth=queue_depth, drop_when_full=drop_when_full)
        self.geometry = self._book.geometry
        ingress = self._ingress.signature.members
        book = self._book.signature.members
        stages = {name: field.shape for name, field in ingress["stats"].shape}
        super().__init__({
            **{name: member for name, member in ingress.items() if name.startswith("s_axis_")},
            **{name: ingress[name] for name in _INGRESS_PORTS},
            **{name: book[name] for name in _BOOK_PORTS},
            "stats": Out(data.StructLayout({**stages, "book": book["stats"].shape})),
            **{f"book_{name}": book[name] for name in _BOOK_RENAMED},
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ingress = ingress = self._ingress
        m.submodules.book = book = self._book

        wiring.connect(m, ingress.o, book.i)
        wiring.connect(m, wiring.flipped(self.i_expected), ingress.i_expected)
        wiring.connect(m, ingress.o_gap, wiring.flipped(self.o_gap))
        wiring.connect(m, book.o, wiring.flipped(self.o))

        for name in ("tdata", "tkeep", "tlast", "tuser", "tvalid"):
            m.d.comb += getattr(ingress, f"s_axis_{name}").eq(getattr(self, f"s_axis_{name}"))
        m.d.comb += self.s_axis_tready.eq(ingress.s_axis_tready)
        m.d.comb += [
            ingress.endpoint.eq(self.endpoint),
            self.mold_status.eq(ingress.mold_status),
            book.cfg.eq(self.cfg),
            book.clear_degraded.eq(self.clear_degraded),
            book.clear_book.eq(self.clear_book),
            book.q_addr.eq(self.q_addr),
            self.q_data.eq(book.q_data),
            self.stats.book.eq(book.stats),
        ]
        for name, _ in self.stats.shape():
            if name != "book":
                m.d.comb += getattr(self.stats, name).eq(getattr(ingress.stats, name))
        for name in _BOOK_RENAMED:
            m.d.comb += getattr(self, f"book_{name}").eq(getattr(book, name))
        return m


class TickgateCore(wiring.Component):
    """The whole core: Ethernet frames in, OUCH orders out, the exchange's answers in, every
    setting and counter in the register map.

    :class:`FeedBook` -> :class:`~hdl.quote.loop.QuoteLoop` (quoter, requoter and hedger, risk
    gate, OUCH encoder, answer decoder, order table), with the control plane
    (:class:`~hdl.csr.plane.ControlPlane`) beside them: it drives the feed's endpoint (``net``),
    the book's slots (``slot``), the MoldUDP64 recovery (``mold_recovery``), the quote
    parameters and risk limits (``quote``, ``risk``, ``port_limits``), arm, kill and the
    heartbeat watchdog (``ctrl``) and the order entry (``order_entry``; the symbol of slot ``k``
    on its orders is ``slot[k].symbol``), and reads every stage's counters, the Mold status, each
    slot's book (``book``), position (``position``) and risk state (``risk_state``).

    Parameters
    ----------
    uart_divisor : int, optional
        With it, the host link is the plane's UART (``rx``/``tx``); without, the CSR ``bus``.
    clk_hz, build_id : int
        Reported in ``ctrl.clk_hz`` and ``ctrl.build_id``.
    geometry, queue_depth, drop_when_full, gap_fifo_depth
        As :class:`FeedBook`. ``geometry.slots`` must equal the register map's instrument count.
    first_user_ref : int
        The encoder's UserRefNum after reset.

    Ports
    -----
    s_axis_tdata, s_axis_tkeep, s_axis_tlast, s_axis_tuser, s_axis_tvalid : In; s_axis_tready : Out
        Ethernet frames, as :class:`FeedBook`.
    m_axis_tdata (64), m_axis_tkeep (8), m_axis_tlast, m_axis_tvalid : Out; m_axis_tready : In
        Our OUCH 5.0 messages, one SoupBinTCP packet per frame, lane 0 first.
    s_axis_answer_tdata, _tkeep, _tlast, _tuser, _tvalid : In; s_axis_answer_tready : Out
        The exchange's SoupBinTCP packets, one per frame; ``tuser`` on the last beat marks a
        damaged frame.
    bus : In(CsrSignature) (without UART); rx : In(1), tx : Out(1) (with UART)
        The host link.
    control : Out(ControlSignature())
        ``armed``, ``killed``, ``heartbeat_lost``.
    o_top, o_decision, o_fill : Out(stream.Signature(..., always_ready=True))
        Monitors: each top-of-book update as the loop takes it, each risk decision, each fill.
    busy : Out(1)
        The book has events queued or in flight (or is sweeping, clearing or refilling), or the
        loop is working on an input; for testbenches that hand the core one input at a time.

    Latency
    -------
    The feed: as :class:`FeedBook` (7 cycles from a message's last byte to its top update).
    The loop: :data:`~hdl.quote.loop.TICK_TO_ORDER` (35) cycles from the update to the first
    beat of its first order when idle. Tick to trade: 7 + 35 = 42 cycles from the beat
    carrying the last byte of a top-changing message to the first beat of the resulting order
    (``tests/test_core_trade.py`` measures it). A committed configuration is in force the cycle
    after the commit.

    Throughput and bad input
    ------------------------
    As :class:`FeedBook`, :class:`~hdl.quote.loop.QuoteLoop` and
    :class:`~hdl.csr.plane.ControlPlane`.
    """

    def __init__(self, *, uart_divisor: int | None = None, clk_hz: int = 156_250_000,
                 build_id: int = 0, geometry: BookGeometry | None = None, queue_depth: int = 512,
                 drop_when_full: bool = True, gap_fifo_depth: int = 16,
                 link_timeout: int | None = None, first_user_ref: int = 1):
        self._feed = FeedBook(geometry, queue_depth=queue_depth, drop_when_full=drop_when_full,
                              gap_fifo_depth=gap_fifo_depth)
        self._plane = ControlPlane(REGISTER_MAP, uart_divisor=uart_divisor, clk_hz=clk_hz,
                                   build_id=build_id, link_timeout=link_timeout)
        slots = self._feed.geometry.slots
        if REGISTER_MAP.block("slot").count != slots:
            raise ValueError(f"the register map has {REGISTER_MAP.block('slot').count} "
                             f"instrument slots, the book {slots}")
        self.geometry = self._feed.geometry
        self._loop = QuoteLoop(slots, slot_bits=self.geometry.slot_bits,
                               first_user_ref=first_user_ref)
        self.regmap = REGISTER_MAP
        self.link_timeout = self._plane.link_timeout
        self.tick_to_order = TICK_TO_ORDER
        feed = self._feed.signature.members
        loop = self._loop.signature.members
        members = {name: member for name, member in feed.items() if name.startswith("s_axis_")}
        members.update({
            "m_axis_tdata": Out(64), "m_axis_tkeep": Out(8), "m_axis_tlast": Out(1),
            "m_axis_tvalid": Out(1), "m_axis_tready": In(1),
            "s_axis_answer_tdata": In(64), "s_axis_answer_tkeep": In(8),
            "s_axis_answer_tlast": In(1), "s_axis_answer_tuser": In(1),
            "s_axis_answer_tvalid": In(1), "s_axis_answer_tready": Out(1),
        })
        if uart_divisor is None:
            members["bus"] = In(CsrSignature(REGISTER_MAP.addr_width))
        else:
            members["rx"] = In(1, init=1)
            members["tx"] = Out(1, init=1)
        members["control"] = Out(ControlSignature())
        members["o_top"] = Out(stream.Signature(top_update_layout(self.geometry.slot_bits),
                                                always_ready=True))
        members["o_decision"] = loop["o_decision"]
        members["o_fill"] = loop["o_fill"]
        members["busy"] = Out(1)
        super().__init__(members)

    @property
    def loop_parameters(self):
        """The loop's parameter inputs as the quoter and the risk gate read them: ``quote`` and
        ``risk`` (one element per slot) and ``port``, each field named as its register; for
        testbenches that watch a commit reach the loop."""
        return self._loop.quote, self._loop.risk, self._loop.port

    def elaborate(self, platform):
        m = Module()
        m.submodules.feed = feed = self._feed
        m.submodules.loop = loop = self._loop
        m.submodules.plane = plane = self._plane

        for name in ("tdata", "tkeep", "tlast", "tuser", "tvalid"):
            m.d.comb += getattr(feed, f"s_axis_{name}").eq(getattr(self, f"s_axis_{name}"))
        m.d.comb += self.s_axis_tready.eq(feed.s_axis_tready)

        # Book -> loop, with a copy of each update taken for the monitor.
        wiring.connect(m, feed.o, loop.i)
        m.d.comb += [self.o_top.valid.eq(feed.o.valid & feed.o.ready),
                     self.o_top.payload.eq(feed.o.payload)]

        # The order port and the answers, as AXI-Stream.
        out, ans = loop.o, loop.i_answer
        m.d.comb += [
            self.m_axis_tdata.eq(out.payload.data), self.m_axis_tkeep.eq(out.payload.keep),
            self.m_axis_tlast.eq(out.payload.last), self.m_axis_tvalid.eq(out.valid),
            out.ready.eq(self.m_axis_tready),
            ans.payload.data.eq(self.s_axis_answer_tdata),
            ans.payload.keep.eq(self.s_axis_answer_tkeep),
            ans.payload.last.eq(self.s_axis_answer_tlast),
            ans.payload.error.eq(self.s_axis_answer_tuser),
            ans.valid.eq(self.s_axis_answer_tvalid),
            self.s_axis_answer_tready.eq(ans.ready),
        ]
        wiring.connect(m, loop.o_decision, wiring.flipped(self.o_decision))
        wiring.connect(m, loop.o_fill, wiring.flipped(self.o_fill))
        m.d.comb += self.busy.eq(loop.busy | feed.book_busy | ~feed.book_idle)

        wiring.connect(m, plane.control, wiring.flipped(self.control))
        m.d.comb += [loop.control.armed.eq(plane.control.armed),
                     loop.control.killed.eq(plane.control.killed),
                     loop.control.heartbeat_lost.eq(plane.control.heartbeat_lost),
                     loop.arm.eq(plane.arm),
                     # A gap waits for the host (it re-requests, then pops it): quotes pulled.
                     loop.feed_gap.eq(feed.o_gap.valid)]
        if "bus" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.bus), plane.bus)
        else:
            m.d.comb += [plane.rx.eq(self.rx), self.tx.eq(plane.tx)]

        wiring.connect(m, feed.o_gap, plane.i_gap)
        wiring.connect(m, plane.o_expected, feed.i_expected)
        m.d.comb += [
            feed.endpoint.eq(plane.net),
            plane.mold.eq(feed.mold_status),
            plane.book_stats.eq(feed.stats.book),
        ]
        for stage in ("udp_rx", "mold_rx", "itch_decode"):
            m.d.comb += getattr(plane, f"{stage}_stats").eq(getattr(feed.stats, stage))
        for stage in LOOP_STAGES:
            m.d.comb += getattr(plane, f"{stage}_stats").eq(loop.stats[stage])

        clear_degraded, clear_book = [], []
        for index in range(self.geometry.slots):
            slot, cfg, status = plane.slot[index], feed.cfg[index], feed.book_status[index]
            for name, _ in cfg.shape():
                m.d.comb += cfg[name].eq(getattr(slot, name))
            for name, _ in status.shape():
                m.d.comb += getattr(plane.book[index], name).eq(status[name])
            clear_degraded.append(slot.clear_degraded)
            clear_book.append(slot.clear_book)
            wiring.connect(m, plane.quote[index], loop.quote[index])
            wiring.connect(m, plane.risk[index], loop.risk[index])
            position = plane.position[index]
            m.d.comb += [
                loop.symbols[index].eq(slot.symbol),
                position.position.eq(loop.position[index]),
                position.live_orders.eq(loop.live_of[index]),
                position.unacked_orders.eq(loop.unacked_of[index]),
                plane.risk_state[index].state.eq(loop.state[index].state),
                plane.risk_state[index].cause.eq(loop.state[index].cause),
            ]
        m.d.comb += [feed.clear_degraded.eq(Cat(*clear_degraded)),
                     feed.clear_book.eq(Cat(*clear_book))]
        for name, _ in plane.port_limits.signature.members.items():
            m.d.comb += getattr(loop.port, name).eq(getattr(plane.port_limits, name))

        entry = plane.order_entry
        m.d.comb += [
            loop.clordid_prefix.as_value().eq(entry.clordid_prefix),
            entry.next_user_ref.eq(loop.next_ref),
            loop.i_next_ref.valid.eq(entry.set_next),
            loop.i_next_ref.payload.eq(entry.set_user_ref),
        ]
        return m
