"""The core: Ethernet frames in on AXI-Stream, top-of-book updates of the tracked instruments out.

``FeedIngress`` (UDP receive, MoldUDP64 sequencing, ITCH decode) -> ``Book``, joined by the ITCH
event stream, is :class:`FeedBook`; its model twin is ``sim/top.py``. :class:`TickgateCore` puts
the control plane beside it, so that every setting comes from a register and every counter and
status can be read by the host. The quoter and the risk gate join here next.
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.book.book import Book
from hdl.csr.bus import CsrSignature
from hdl.csr.map import REGISTER_MAP
from hdl.csr.plane import ControlPlane, ControlSignature
from hdl.feed.ingress import FeedIngress
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
    start or end of messages, 4,097 cycles plus one per non-empty slot) stop the book's pipeline;
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
    """:class:`FeedBook` run from the register map: the host configures and reads it all.

    The control plane (:class:`~hdl.csr.plane.ControlPlane`) drives the feed's endpoint
    (``net``), the book's slots (``slot``: what each tracks, clear strobes) and the MoldUDP64
    recovery (gaps out to ``mold_recovery``, ``set_expected`` in); it reads every stage's
    counters, the Mold status and each slot's binding, flags and top of book (``book``).

    Parameters
    ----------
    uart_divisor : int, optional
        With it, the host link is the plane's UART (``rx``/``tx``); without, the CSR ``bus``.
    clk_hz, build_id : int
        Reported in ``ctrl.clk_hz`` and ``ctrl.build_id``.
    geometry, queue_depth, drop_when_full, gap_fifo_depth
        As :class:`FeedBook`. ``geometry.slots`` must equal the register map's instrument count.

    Ports
    -----
    s_axis_tdata, s_axis_tkeep, s_axis_tlast, s_axis_tuser, s_axis_tvalid : In; s_axis_tready : Out
        Ethernet frames, as :class:`FeedBook`.
    o : Out(top_update_stream)
        Top-of-book updates, as :class:`FeedBook` (for the quoter).
    bus : In(CsrSignature) (without UART); rx : In(1), tx : Out(1) (with UART)
        The host link.
    control : Out(ControlSignature())
        ``armed``, ``killed``, ``heartbeat_lost``, for the risk gate.

    Latency
    -------
    As :class:`FeedBook` for the data path. A committed configuration is in force the cycle after
    the commit; status and counters are read as the plane reads its ports, a cycle after they
    change (counters as their stage states).

    Throughput and bad input
    ------------------------
    As :class:`FeedBook` and :class:`~hdl.csr.plane.ControlPlane`.
    """

    def __init__(self, *, uart_divisor: int | None = None, clk_hz: int = 156_250_000,
                 build_id: int = 0, geometry: BookGeometry | None = None, queue_depth: int = 512,
                 drop_when_full: bool = True, gap_fifo_depth: int = 16,
                 link_timeout: int | None = None):
        self._feed = FeedBook(geometry, queue_depth=queue_depth, drop_when_full=drop_when_full,
                              gap_fifo_depth=gap_fifo_depth)
        self._plane = ControlPlane(REGISTER_MAP, uart_divisor=uart_divisor, clk_hz=clk_hz,
                                   build_id=build_id, link_timeout=link_timeout)
        slots = self._feed.geometry.slots
        if REGISTER_MAP.block("slot").count != slots:
            raise ValueError(f"the register map has {REGISTER_MAP.block('slot').count} "
                             f"instrument slots, the book {slots}")
        self.geometry = self._feed.geometry
        self.regmap = REGISTER_MAP
        self.link_timeout = self._plane.link_timeout
        feed = self._feed.signature.members
        members = {name: member for name, member in feed.items() if name.startswith("s_axis_")}
        members["o"] = feed["o"]
        if uart_divisor is None:
            members["bus"] = In(CsrSignature(REGISTER_MAP.addr_width))
        else:
            members["rx"] = In(1, init=1)
            members["tx"] = Out(1, init=1)
        members["control"] = Out(ControlSignature())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.feed = feed = self._feed
        m.submodules.plane = plane = self._plane

        for name in ("tdata", "tkeep", "tlast", "tuser", "tvalid"):
            m.d.comb += getattr(feed, f"s_axis_{name}").eq(getattr(self, f"s_axis_{name}"))
        m.d.comb += self.s_axis_tready.eq(feed.s_axis_tready)
        wiring.connect(m, feed.o, wiring.flipped(self.o))
        wiring.connect(m, plane.control, wiring.flipped(self.control))
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

        clear_degraded, clear_book = [], []
        for index in range(self.geometry.slots):
            slot, cfg, status = plane.slot[index], feed.cfg[index], feed.book_status[index]
            for name, _ in cfg.shape():
                m.d.comb += cfg[name].eq(getattr(slot, name))
            for name, _ in status.shape():
                m.d.comb += getattr(plane.book[index], name).eq(status[name])
            clear_degraded.append(slot.clear_degraded)
            clear_book.append(slot.clear_book)
        m.d.comb += [feed.clear_degraded.eq(Cat(*clear_degraded)),
                     feed.clear_book.eq(Cat(*clear_book))]
        return m
