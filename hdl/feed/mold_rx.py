"""The MoldUDP64 sequencing stage: UDP payload beats in, sequenced message beats out.

Twin of ``sim/mold_rx.py``; both implement these semantics, bit for bit. ``expected`` (the next
sequence number wanted) starts at 1.

- A payload shorter than the 20-byte header: ``SHORT_HEADER``, dropped.
- The first packet with a complete header latches its session (a duplicate or damaged packet
  included); a later packet with another session: ``SESSION_MISMATCH``, dropped. Reset clears it.
- Heartbeat (count 0), end of session (count 0xFFFF, also sets ``ended``): ``PACKETS`` and
  ``HEARTBEATS`` or ``END_OF_SESSION``; no blocks.
- Otherwise, with sequence number ``S`` and count ``N``: ``S + N <= expected`` is ``DUP_PACKETS``,
  dropped, nothing else counted. Else ``PACKETS``; block ``i`` is message ``S + i``, skipped if
  ``S + i < expected`` (``DUP_MESSAGES``), else delivered (``MESSAGES``).
- A block length below ``MIN_MESSAGE_LENGTH``: ``LENGTH_SHORT``, rest of the packet dropped. A
  block or its prefix running past the end: ``LENGTH_PAST_END`` (a message already started ends
  with ``error``). Clean end after fewer than ``N`` blocks: ``COUNT_SHORT``. Bytes after the last
  block (after the header for a heartbeat or end of session): ``TRAILING_BYTES`` once.
- ``error`` on the last beat: ``FRAME_ERROR``; blocks complete in the payload are delivered, the
  one in progress is abandoned (``end`` with ``error``), and the end-of-packet reasons above
  (``SHORT_HEADER``, ``LENGTH_PAST_END``, ``COUNT_SHORT``) are not counted.
- After a packet that passed the header checks: if ``S > expected`` the gap
  ``(expected, S - expected)`` goes to ``o_gap`` (``GAPS``, ``GAP_MESSAGES``); then
  ``expected = max(expected, S + j)``, ``j`` being the blocks framed completely.

How it works
------------
Messages stay in their original lanes (see ``hdl/feed/message_beat.py``): each beat is passed on
with start and end marks, so the stage is a one-register pipeline. The packet is cut into
segments: the 20-byte header, then per block a 2-byte length prefix and the message body. Only
the end of the current segment is tracked, as a beat countdown (``e_cnt``, with ``e_now``
precomputed) and a lane (``e_lane``); the next block's prefix starts in the following byte (lane
``pl``). When a prefix's second byte arrives its length gives the body's end, which is at least a
beat later because a message has at least ``MIN_MESSAGE_LENGTH`` bytes: the length-to-end adder
feeds registers only, and a beat holds at most one block end and one block start.

The header is captured byte by byte, realigned by the start lane, into ``hdr``; ``hdr_next`` is
the same array with the current beat's bytes in place. What the first block's start mark needs
and arrives early (the session, the upper bytes of the sequence number) is compared from
registers; only the last sequence-number bytes, the count and the first length are live when the
first block's type byte shares a beat with the end of the header. That beat's start mark is the
longest path: 8:1 lane muxes, a 16-bit count test and a 24-bit compare, then a few gates.

Decisions that only affect counters are pipelined behind the packet: whether the packet is an
old duplicate (``S + N <= expected``) is known 3 cycles after the header, and the per-packet
counts are committed 3 cycles after the last beat. ``expected`` is written in the second cycle
after the last beat, before the next packet's header can need it. Later blocks' duplicate test is
a countdown loaded the cycle after the header, before the second block's type byte can arrive.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.mold import (
    COUNT_BITS,
    END_OF_SESSION_COUNT,
    FIRST_TYPE_OFFSET,
    HEADER,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_BITS,
    LENGTH_PREFIX,
    MIN_MESSAGE_LENGTH,
    SEQ_BITS,
    SESSION_BITS,
    field_offsets,
    header_field,
)
from hdl.feed.message_beat import MessageBeatStream
from hdl.stats import count, stats_layout
from sim.mold_rx import MoldRxStat

__all__ = ["GapLayout", "MoldRx", "MoldRxStatusLayout"]

#: A gap to re-request: messages ``first`` to ``first + count - 1`` were never seen.
GapLayout = data.StructLayout({"first": SEQ_BITS, "count": SEQ_BITS})

#: ``session`` has the first character in the most significant byte (the host's text format).
MoldRxStatusLayout = data.StructLayout({
    "expected": SEQ_BITS,
    "session": SESSION_BITS,
    "session_valid": 1,
    "ended": 1,
})

_LANE_BITS = (BEAT_BYTES - 1).bit_length()
_BLOCK_MIN = LENGTH_PREFIX + MIN_MESSAGE_LENGTH

# The timing arguments of the design, checked against the wire format:
# a block spans more than a beat (one block end and one block start per beat, and a body cannot
# end in the beat that completes its length, nor in the beat after when the type byte is there) ...
assert MIN_MESSAGE_LENGTH > BEAT_BYTES
# ... the second block's type byte is at least two beats after the header's last byte (the
# duplicate count for blocks after the first takes two cycles from the header) ...
assert HEADER_LENGTH + _BLOCK_MIN + LENGTH_PREFIX - (HEADER_LENGTH - 1) >= 2 * BEAT_BYTES
# ... a packet with a whole header spans at least three beats (per-packet pipelines 3 deep) ...
assert HEADER_LENGTH > 2 * BEAT_BYTES
# ... and the session is complete a beat before the header ends (compared from registers).
assert HEADER["session"].end <= HEADER_LENGTH - BEAT_BYTES

_PACKET_PIPE = 3  # cycles from a packet's last beat to its counter commit


def _below(value, bound: int):
    """``value < bound`` for a constant ``bound``, as gates rather than a carry chain.

    ``value`` is below ``bound`` when, at some bit set in ``bound``, ``value`` has 0 and agrees
    with ``bound`` on every bit above it.
    """
    width = len(value)
    if bound >= 1 << width:
        return Const(1)
    terms = []
    for i in range(width):
        if bound >> i & 1:
            above = [value[j] if bound >> j & 1 else ~value[j] for j in range(i + 1, width)]
            terms.append(Cat(~value[i], *above).all())
    return Cat(*terms).any() if terms else Const(0)


class _Seg(enum.Enum, shape=3):
    """What the framing pointer is in, for the beat being processed."""

    HDR = 0    # the header; it ends at (e_cnt, e_lane)
    BODY = 1   # a block's message bytes; they end at (e_cnt, e_lane)
    PFX1 = 2   # the previous beat ended with a length prefix's first byte (lane 7)
    PFX2 = 3   # a length prefix starts in lane 0 of this beat
    TRAIL = 4  # every block is framed: any byte here is trailing
    DROP = 5   # the rest of the packet is ignored


class MoldRx(wiring.Component):
    """MoldUDP64 receiver: frames message blocks, drops duplicates, reports gaps.

    Semantics are those of :class:`sim.mold_rx.MoldRx` (see ``sim/mold_rx.py``): short header,
    session latch and mismatch, heartbeats and end of session, duplicate packets and messages,
    gaps, block lengths below ``MIN_MESSAGE_LENGTH``, blocks past the end, short counts, trailing
    bytes and damaged frames, each counted under its :class:`~sim.mold_rx.MoldRxStat` reason.

    Parameters
    ----------
    gap_fifo_depth : int
        Gaps held for the host at ``o_gap``; a gap that finds the FIFO full is counted in
        ``GAP_OVERFLOW`` and lost (``GAPS`` and ``GAP_MESSAGES`` still count it).

    Ports
    -----
    i : In(BeatStream())
        UDP payloads in their original lanes. The first beat's lowest ``keep`` lane is the first
        payload byte (any lane); middle beats are full; the last beat's ``keep`` marks its bytes
        (none is allowed); ``error`` on the last beat marks a damaged frame. Packets are
        delimited by ``last``; ``first`` is not used.
    o : Out(MessageBeatStream())
        The beats carrying bytes of delivered messages, with start and end marks (see
        ``hdl/feed/message_beat.py``). Beats with nothing to deliver (headers, duplicates,
        dropped packets) are consumed without output. ``end_lane`` has no meaning with ``error``.
    o_gap : Out(stream.Signature(GapLayout))
        Gaps in arrival order, through a FIFO of ``gap_fifo_depth`` entries.
    i_expected : In(stream.Signature(64))
        Sets ``expected`` (the host recovered messages elsewhere). Taken between packets only.
    stats : Out(stats_layout(MoldRxStat))
        48-bit counters. Header outcomes and ``MESSAGES`` update 2 cycles after the beat; gap
        counters 4 cycles and the other per-packet counters 5 cycles after the last beat.
    status : Out(MoldRxStatusLayout)
        ``expected``, the latched ``session`` (first character most significant),
        ``session_valid`` and ``ended`` (an end-of-session packet was seen).

    Latency
    -------
    1 cycle from an input beat to its output beat (registered output). ``expected`` and
    ``o_gap`` reflect a packet 3 cycles after its last beat.

    Throughput
    ----------
    One beat per cycle whenever ``o`` is ready (``i.ready = o.ready | ~o.valid``), back-to-back
    packets included.

    Bad input
    ---------
    Every malformed or unwanted packet is dropped in whole or in part and counted; nothing stalls.
    A message already started when its packet turns out short or damaged ends with ``error``.
    """

    i: In(BeatStream())
    o: Out(MessageBeatStream())
    o_gap: Out(stream.Signature(GapLayout))
    i_expected: In(stream.Signature(SEQ_BITS))
    stats: Out(stats_layout(MoldRxStat))
    status: Out(MoldRxStatusLayout)

    def __init__(self, *, gap_fifo_depth: int = 16):
        if gap_fifo_depth < 1:
            raise ValueError(f"gap_fifo_depth must be at least 1, got {gap_fifo_depth}")
        self._gap_fifo_depth = gap_fifo_depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        beat, out, stats = self.i.payload, self.o.payload, self.stats

        xfer = Signal()
        m.d.comb += [
            self.i.ready.eq(self.o.ready | ~self.o.valid),
            xfer.eq(self.i.valid & self.i.ready),
        ]
        last = beat.last
        err = beat.error & last

        def lane(k):
            return beat.data.word_select(k, 8)

        in_pkt = Signal()         # a packet's first beat was taken, its last not yet
        first = ~in_pkt
        # Lanes holding packet bytes; middle beats are full whatever their keep says.
        present = Signal(BEAT_BYTES)
        m.d.comb += present.eq(Mux(first | last, beat.keep, (1 << BEAT_BYTES) - 1))

        def here(k):
            return present.bit_select(k, 1)

        start_lane = Signal(_LANE_BITS)     # of the first beat: its lowest keep lane
        for k in reversed(range(BEAT_BYTES)):
            with m.If(beat.keep[k]):
                m.d.comb += start_lane.eq(k)

        # --- Header capture, realigned: header byte h is in beat (s + h) // 8, lane (s + h) % 8.
        s = Signal(_LANE_BITS)
        # Index of the beat in its packet, saturating past the header's last possible beat.
        bidx_stop = (BEAT_BYTES - 1 + HEADER_LENGTH - 1) // BEAT_BYTES + 1
        bidx = Signal(range(bidx_stop + 1))
        hdr = [Signal(8, name=f"hdr{h}") for h in range(HEADER_LENGTH)]
        hdr_next = [Signal(8, name=f"hdr{h}_next") for h in range(HEADER_LENGTH)]
        for h in range(HEADER_LENGTH):
            # Only the bytes that can be in the first beat depend on its keep: the rest must not,
            # as some of them decide the first message's start mark.
            pos = (Mux(first, start_lane, s) if h < BEAT_BYTES else s) + h
            m.d.comb += hdr_next[h].eq(
                Mux(pos[_LANE_BITS:] == bidx, lane(pos[:_LANE_BITS]), hdr[h]))
        with m.If(xfer):
            m.d.sync += [hdr[h].eq(hdr_next[h]) for h in range(HEADER_LENGTH)]
            m.d.sync += bidx.eq(Mux(last, 0, Mux(bidx == bidx_stop, bidx, bidx + 1)))
            with m.If(first):
                m.d.sync += s.eq(start_lane)

        expected = Signal(SEQ_BITS, init=1)
        session = Signal(SESSION_BITS)
        session_valid = Signal()
        ended = Signal()

        # --- Framing state.
        seg = Signal(_Seg)
        # 1 + beats after this one until the segment's end: loaded straight from the adder.
        e_cnt = Signal(range((BEAT_BYTES - 1 + 2**LENGTH_BITS) // BEAT_BYTES + 2))
        e_now = Signal()          # the current segment ends in this beat
        e_lane = Signal(_LANE_BITS)
        pl = Signal(_LANE_BITS)   # lane of the next prefix's first byte: e_lane + 1
        prev7 = Signal(8)         # lane 7 of the previous beat (a prefix straddling two beats)
        type_next = Signal()      # BODY: its type byte is lane 0 of this beat
        cur_len = Signal(LENGTH_BITS)
        msg_open = Signal()       # a start mark was sent and no end yet
        blk0 = Signal()           # no block's type byte yet in this packet
        left = Signal(COUNT_BITS)  # blocks still to frame, the current one included
        left_one = Signal()       # left == 1
        framed = Signal(COUNT_BITS)
        blk_seq = Signal(SEQ_BITS)  # sequence number of the next block after the first
        skip_cnt = Signal(COUNT_BITS)  # blocks after the first still to skip as duplicates
        skip_nz = Signal()

        in_seg = {kind: Signal(name=f"in_{kind.name.lower()}") for kind in _Seg}
        for kind, flag in in_seg.items():
            m.d.comb += flag.eq(in_pkt & (seg == kind))

        e_byte = here(e_lane)

        # --- End of header.
        session_now = header_field(hdr, "session")   # complete in registers by then
        seq_now = header_field(hdr_next, "seq")
        count_now = header_field(hdr_next, "count")
        h_done = Signal()         # the header's last byte is in this beat
        sess_ok = Signal()
        h_pass = Signal()         # ... and the packet is of our session
        h_data = Signal()         # ... and carries blocks
        is_hb = count_now == HEARTBEAT_COUNT
        is_eos = count_now == END_OF_SESSION_COUNT
        m.d.comb += [
            h_done.eq(in_seg[_Seg.HDR] & e_now & e_byte),
            sess_ok.eq(~session_valid | (session_now == session)),
            h_pass.eq(h_done & sess_ok),
            h_data.eq(h_pass & ~is_hb & ~is_eos),
        ]

        # --- Block framing.
        body_end = Signal()
        pfx_due = Signal()        # a length prefix follows a segment ending in this beat
        m.d.comb += [
            body_end.eq(in_seg[_Seg.BODY] & e_now & e_byte),
            pfx_due.eq(h_data | (body_end & ~left_one)),
        ]
        pl_mid = (pl != 0) & (pl != BEAT_BYTES - 1)
        lo_lane = (pl + 1)[:_LANE_BITS]
        first_here = (pfx_due & (pl != 0)) | in_seg[_Seg.PFX2]   # prefix byte 1 at lane pl
        second_here = (pfx_due & pl_mid) | in_seg[_Seg.PFX1] | in_seg[_Seg.PFX2]
        len_done = Signal()
        length = Signal(LENGTH_BITS)
        short = Signal()
        blk_ok = Signal()
        m.d.comb += [
            len_done.eq(second_here & here(lo_lane)),
            length.eq(Cat(lane(lo_lane), Mux(pl == BEAT_BYTES - 1, prev7, lane(pl)))),
            short.eq(_below(length, MIN_MESSAGE_LENGTH)),
            blk_ok.eq(len_done & ~short),
        ]
        type_a = Signal()         # the type byte follows the length in this beat
        type_b = Signal()         # the type byte is lane 0, the length ended the previous beat
        type_here = Signal()
        m.d.comb += [
            type_a.eq(blk_ok & (pl != BEAT_BYTES - 2)),
            type_b.eq(in_seg[_Seg.BODY] & type_next),
            type_here.eq(type_a | type_b),
        ]

        # Is the block whose type byte is here a duplicate? The first block compares the header's
        # sequence number: its early bytes from registers, the late ones possibly live.
        early = [o for o in field_offsets("seq") if o + BEAT_BYTES <= FIRST_TYPE_OFFSET]
        late = [o for o in field_offsets("seq") if o not in early]
        late_bits = 8 * len(late)
        seq_hi = header_field(hdr, "seq", range(early[0], early[-1] + 1))
        seq_lo = header_field(hdr_next, "seq", range(late[0], late[-1] + 1))
        exp_hi, exp_lo = expected[late_bits:], expected[:late_bits]
        dup0 = (seq_hi < exp_hi) | ((seq_hi == exp_hi) & (seq_lo < exp_lo))
        start = Signal()
        m.d.comb += start.eq(type_here & ~Mux(blk0, dup0, skip_nz) & ~last)

        # --- Output register.
        abandon = last & msg_open & ~body_end
        with m.If(xfer):
            m.d.sync += [
                self.o.valid.eq(start | msg_open),
                out.data.eq(beat.data),
                out.start.eq(start),
                out.start_lane.eq(Mux(type_b, 0, (pl + LENGTH_PREFIX)[:_LANE_BITS])),
                out.length.eq(Mux(type_b, cur_len, length)),
                out.seq.eq(Mux(blk0, seq_now, blk_seq)),
                out.end.eq((body_end & msg_open) | abandon),
                out.end_lane.eq(e_lane),
                out.error.eq(abandon),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # --- Framing state updates.
        e_tot = Signal(range(BEAT_BYTES + 2**LENGTH_BITS))   # segment end from this beat's lane 0
        m.d.comb += e_tot.eq(Mux(first, start_lane + (HEADER_LENGTH - 1), lo_lane + length))
        with m.If(xfer):
            m.d.sync += [
                in_pkt.eq(~last),
                prev7.eq(lane(BEAT_BYTES - 1)),
                type_next.eq(blk_ok & (pl == BEAT_BYTES - 2)),
                msg_open.eq(start | (msg_open & ~body_end & ~last)),
            ]
            with m.If(first | blk_ok):
                m.d.sync += [
                    e_cnt.eq(e_tot[_LANE_BITS:]),
                    e_now.eq(e_tot[_LANE_BITS:] == 1),
                    e_lane.eq(e_tot[:_LANE_BITS]),
                    pl.eq(e_tot[:_LANE_BITS] + 1),
                ]
            with m.Else():
                m.d.sync += [e_cnt.eq(e_cnt - 1), e_now.eq(e_cnt == 2)]

            with m.If(first):
                m.d.sync += seg.eq(_Seg.HDR)
            with m.Elif(h_done & ~sess_ok):
                m.d.sync += seg.eq(_Seg.DROP)
            with m.Elif(h_pass & ~h_data):
                m.d.sync += seg.eq(_Seg.TRAIL)
            with m.Elif(len_done & short):
                m.d.sync += seg.eq(_Seg.DROP)
            with m.Elif(blk_ok):
                m.d.sync += seg.eq(_Seg.BODY)
            with m.Elif(pfx_due & (pl == BEAT_BYTES - 1)):
                m.d.sync += seg.eq(_Seg.PFX1)
            with m.Elif(pfx_due & (pl == 0)):
                m.d.sync += seg.eq(_Seg.PFX2)
            with m.Elif(body_end):
                m.d.sync += seg.eq(_Seg.TRAIL)

            with m.If(len_done):
                m.d.sync += cur_len.eq(length)
            with m.If(first):
                m.d.sync += [blk0.eq(1), framed.eq(0)]
            with m.Elif(type_here):
                m.d.sync += [blk0.eq(0), blk_seq.eq(Mux(blk0, seq_now, blk_seq) + 1)]
                with m.If(~blk0 & skip_nz):
                    m.d.sync += [skip_cnt.eq(skip_cnt - 1), skip_nz.eq(skip_cnt[1:].any())]
            with m.If(h_data):
                m.d.sync += [left.eq(count_now), left_one.eq(count_now == 1)]
            with m.Elif(body_end):
                m.d.sync += [left.eq(left - 1), left_one.eq(left == 2), framed.eq(framed + 1)]

            with m.If(h_done & ~session_valid):
                m.d.sync += [session.eq(session_now), session_valid.eq(1)]
            with m.If(h_pass & is_eos):
                m.d.sync += ended.eq(1)

        # --- Per-packet values for the pipelines behind the packet.
        pkt_pass = Signal()       # the header checks passed
        pkt_data = Signal()       # ... and the packet carries blocks
        pkt_seq = Signal(SEQ_BITS)
        pkt_count_m1 = Signal(COUNT_BITS)   # N - 1 (N >= 1 for a packet with blocks)
        with m.If(xfer):
            with m.If(first):
                m.d.sync += [pkt_pass.eq(0), pkt_data.eq(0)]
            with m.Elif(h_pass):
                m.d.sync += [pkt_pass.eq(1), pkt_data.eq(h_data), pkt_seq.eq(seq_now),
                             pkt_count_m1.eq(count_now - 1)]
        # On a packet's first beat the registers still describe the previous packet.
        pass_now = (pkt_pass & ~first) | h_pass
        data_now = (pkt_data & ~first) | h_data
        pkt_end = Signal()        # the last beat of a packet that passed the header checks
        m.d.comb += pkt_end.eq(xfer & last & pass_now)

        # Duplicates after the first block: d = expected - S - 1 blocks of the packet are old
        # (first included); saturated to 16 bits, as a packet holds fewer blocks. One cycle after
        # the header it sets the skip counter, two cycles after it tells a duplicate packet.
        h1, h2 = Signal(), Signal()
        m.d.sync += [h1.eq(xfer & h_data), h2.eq(h1)]
        # expected + ~S is d + 2**64: one adder, its carry out says d >= 0.
        diff = Signal(SEQ_BITS + 1)
        m.d.comb += diff.eq(expected + ~pkt_seq)
        d_neg, d_mag = ~diff[SEQ_BITS], diff[:SEQ_BITS]
        d_sat = Mux(d_mag[COUNT_BITS:].any(), (1 << COUNT_BITS) - 1, d_mag[:COUNT_BITS])
        skip0 = Signal(COUNT_BITS)
        dup0_reg = Signal()
        dup_packet = Signal()
        with m.If(h1):
            m.d.sync += [
                skip_cnt.eq(Mux(d_neg, 0, d_sat)),
                skip_nz.eq(~d_neg & d_mag.any()),
                skip0.eq(Mux(d_neg, 0, d_sat)),
                dup0_reg.eq(~d_neg),
            ]
        with m.If(h2):
            m.d.sync += dup_packet.eq(dup0_reg & (pkt_count_m1 <= skip0))

        # --- Per-packet counts, committed once the duplicate-packet decision is known.
        ev_dup_msg = body_end & ~msg_open
        ev_length_short = len_done & short
        prefix_begun = (first_here & here(pl)) | in_seg[_Seg.PFX1]
        ev_past_end = last & ~err & ((in_seg[_Seg.BODY] & ~body_end) | blk_ok
                                     | (prefix_begun & ~len_done))
        ev_count_short = last & ~err & ((first_here & ~here(pl)) | (pfx_due & (pl == 0)))
        after_end = (Const((1 << BEAT_BYTES) - 1, BEAT_BYTES) << (e_lane + 1))[:BEAT_BYTES]
        trail_enter = (h_pass & ~h_data) | (body_end & left_one)
        ev_trailing = ((trail_enter & (present & after_end).any())
                       | (in_seg[_Seg.TRAIL] & present.any()))

        flags = ("length_short", "length_past_end", "count_short", "trailing_bytes")
        events = dict(zip(flags, (ev_length_short, ev_past_end, ev_count_short, ev_trailing),
                          strict=True))
        acc = {name: Signal(name=f"acc_{name}") for name in flags}
        acc_next = {name: Signal(name=f"acc_{name}_next") for name in flags}
        acc_dup = Signal(COUNT_BITS)
        acc_dup_next = Signal(COUNT_BITS)
        m.d.comb += acc_dup_next.eq(Mux(first, 0, acc_dup) + ev_dup_msg)
        for name in flags:
            m.d.comb += acc_next[name].eq((acc[name] & ~first) | events[name])
        with m.If(xfer):
            m.d.sync += acc_dup.eq(acc_dup_next)
            m.d.sync += [acc[name].eq(acc_next[name]) for name in flags]

        held = {name: Signal(name=f"held_{name}") for name in flags}
        held_dup = Signal(COUNT_BITS)
        held_data = Signal()
        timer = Signal(range(_PACKET_PIPE + 1))
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.If(pkt_end):
            m.d.sync += [timer.eq(_PACKET_PIPE), held_dup.eq(acc_dup_next), held_data.eq(data_now)]
            m.d.sync += [held[name].eq(acc_next[name]) for name in flags]
        commit = timer == 1
        dropped = held_data & dup_packet
        keep_counts = commit & ~dropped

        # --- Sequence update and gaps: S + j and S - expected one cycle after the last beat,
        # expected and the gap FIFO the cycle after.
        m.submodules.gap_fifo = gap_fifo = fifo.SyncFIFOBuffered(
            width=GapLayout.size, depth=self._gap_fifo_depth)
        wiring.connect(m, gap_fifo.r_stream, wiring.flipped(self.o_gap))
        sp1, sp2 = Signal(), Signal()
        sp_framed = Signal(COUNT_BITS)
        reach = Signal(SEQ_BITS + 1)    # S + j: one past the last message framed
        gap = Signal()
        gap_count = Signal(SEQ_BITS)
        m.d.sync += [sp1.eq(pkt_end), sp2.eq(sp1)]
        with m.If(pkt_end):
            m.d.sync += sp_framed.eq(framed + body_end)
        with m.If(sp1):
            m.d.sync += [reach.eq(pkt_seq + sp_framed), gap.eq(pkt_seq > expected),
                         gap_count.eq(pkt_seq - expected)]
        gap_push = sp2 & gap
        m.d.comb += [
            gap_fifo.w_en.eq(gap_push),
            gap_fifo.w_data.eq(Cat(expected, gap_count)),
        ]
        with m.If(sp2 & (reach > expected)):
            m.d.sync += expected.eq(reach[:SEQ_BITS])
        m.d.comb += self.i_expected.ready.eq(~in_pkt & ~sp1 & ~sp2)
        with m.If(self.i_expected.valid & self.i_expected.ready):
            m.d.sync += expected.eq(self.i_expected.payload)

        # --- Counters.
        def bump(name, by):
            count(m, getattr(stats, name), 1, by)

        header_event = xfer & h_done
        bump("packets", (xfer & h_pass & ~h_data) + (commit & held_data & ~dup_packet))
        bump("messages", xfer & body_end & msg_open)
        bump("heartbeats", xfer & h_pass & is_hb)
        bump("end_of_session", xfer & h_pass & is_eos)
        bump("dup_packets", commit & dropped)
        bump("dup_messages", Mux(keep_counts, held_dup, 0))
        bump("gaps", gap_push)
        bump("gap_messages", Mux(gap_push, gap_count, 0))
        bump("gap_overflow", gap_push & ~gap_fifo.w_rdy)
        bump("session_mismatch", header_event & ~sess_ok)
        bump("short_header", xfer & last & ~err & (first | in_seg[_Seg.HDR]) & ~h_done)
        for name in flags:
            bump(name, keep_counts & held[name])
        bump("frame_error", xfer & err)

        m.d.comb += [
            self.status.expected.eq(expected),
            self.status.session.eq(session),
            self.status.session_valid.eq(session_valid),
            self.status.ended.eq(ended),
        ]
        return m
