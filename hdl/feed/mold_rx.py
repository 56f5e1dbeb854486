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
beat later because a message has at least ``MIN_MESSAGE_LENGTH`` bytes: the end lane comes from
the length's low bits at once, the countdown from the registered length in the next beat (whether
the end is in that beat is a per-lane test, ``hints.ends_next``), and a beat holds at most one
block end and one block start.

The header is captured byte by byte, realigned by the start lane, into ``hdr``; ``hdr_next`` is
the same array with the current beat's bytes in place. After the first beat the lane of every
header byte is known a beat ahead, so it is a registered one-hot select (``hdrN_at``) and the
live path is an AND-OR; the framing lanes (``e_lane``, ``pl``) are kept one-hot too. The session
is compared on every beat, byte by byte into registered flags that the header's end ANDs. What the
first block's start mark needs and arrives early (the upper bytes of the sequence number) is
compared from registers; only the last sequence-number bytes, the count and the first length are
live when the first block's type byte shares a beat with the end of the header. That beat's start
mark is the longest path; its live tests (the count, the first length, the last sequence bytes)
are made on fixed lanes for every lane the header can end in, and picked by registered one-hots,
so no byte select comes before them. A start mark never falls on a packet's last beat, and every
other beat after the first is full, so the start mark's path has no ``keep`` term. The fixed-lane
tests need only the beat, the previous beat and ``expected`` (``hdl/feed/mold_hints.py``), so in
the feed ingress the UDP stage makes them a cycle ahead and this stage reads them from registers
(``hinted``); standalone it makes them itself.

Decisions that only affect counters are pipelined behind the packet: whether the packet is an
old duplicate (``S + N <= expected``) is known 3 cycles after the header, and the per-packet
counts are committed 3 cycles after the last beat. ``expected`` becomes ``max(expected, S + j)``,
``S + j`` counted up as blocks are framed: compared the cycle after the last beat, written the
cycle after that, and shown on ``status.expected`` a cycle ahead of the write, so that the stage
upstream sees it before the next packet's third beat (the first that can need it) is loaded
there; inside, the next packet reads it from its header's end on, at the earliest that third beat.
The header's fields are registered whenever the beat holding the header's end is on the input,
by its registered lane alone, rather than behind the live header checks. Later blocks'
duplicate test is a countdown loaded the cycle after the header, before the second block's type
byte can arrive; its start value comes from a 16-bit subtraction and compares of the upper 48
bits, not from a 64-bit carry chain. The later blocks' sequence number is loaded with ``S + 1``
at the same time, from the registered header. The counters that step on blocks (that sequence
number, the duplicate countdown, ``S + j``) step a cycle after the block, enabled by a register
rather than by the live framing tests, and their readers add the step still to come: no wide
enable and no 64-bit adder behind a live byte.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.mold import (
    COUNT_BITS,
    HEADER,
    HEADER_LENGTH,
    LENGTH_BITS,
    LENGTH_PREFIX,
    MIN_MESSAGE_LENGTH,
    SEQ_BITS,
    SESSION_BITS,
    field_offsets,
    header_field,
)
from hdl.feed.message_beat import MessageBeatStream
from hdl.feed.mold_hints import LATE_SEQ_BASES, LATE_SEQ_OFFSETS, MoldLaneHints, mold_lane_hints
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


def _or_all(values):
    """The bitwise OR of equally wide values (an AND-OR select when each is gated by one bit)."""
    result = values[0]
    for value in values[1:]:
        result = result | value
    return result


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
    hinted : bool
        False (default): the per-lane framing tests of :mod:`hdl.feed.mold_hints` are made here,
        on the input beat. True: they arrive registered on ``i_hints`` from a
        :class:`~hdl.feed.mold_hints.MoldHintStage` beside the previous stage's output register,
        which takes the compares off this stage's longest paths. The output is the same.

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
    i_hints : In(MoldLaneHints), only when ``hinted``
        The per-lane tests of the beat on ``i``, made with ``status.expected``.
    stats : Out(stats_layout(MoldRxStat))
        48-bit counters. Header outcomes and ``MESSAGES`` update 2 cycles after the beat; gap
        counters 4 cycles and the other per-packet counters 5 cycles after the last beat.
    status : Out(MoldRxStatusLayout)
        ``expected``, the latched ``session`` (first character most significant),
        ``session_valid`` and ``ended`` (an end-of-session packet was seen).

    Latency
    -------
    1 cycle from an input beat to its output beat (registered output). ``expected`` reflects a
    packet 2 cycles after its last beat (so it is settled before the next packet's third beat
    can arrive, which is what ``i_hints`` needs), ``o_gap`` 3 cycles after.

    Throughput
    ----------
    One beat per cycle whenever ``o`` is ready (``i.ready = o.ready | ~o.valid``), back-to-back
    packets included.

    Bad input
    ---------
    Every malformed or unwanted packet is dropped in whole or in part and counted; nothing stalls.
    A message already started when its packet turns out short or damaged ends with ``error``.
    """

    def __init__(self, *, gap_fifo_depth: int = 16, hinted: bool = False):
        if gap_fifo_depth < 1:
            raise ValueError(f"gap_fifo_depth must be at least 1, got {gap_fifo_depth}")
        self._gap_fifo_depth = gap_fifo_depth
        self._hinted = hinted
        super().__init__({
            "i": In(BeatStream()),
            **({"i_hints": In(MoldLaneHints)} if hinted else {}),
            "o": Out(MessageBeatStream()),
            "o_gap": Out(stream.Signature(GapLayout)),
            "i_expected": In(stream.Signature(SEQ_BITS)),
            "stats": Out(stats_layout(MoldRxStat)),
            "status": Out(MoldRxStatusLayout),
        })

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

        def pick(onehot, lanes):
            """The lane that a one-hot select names (0 when none): AND-OR, two LUT levels."""
            sels = [onehot[k] for k in range(len(onehot))]
            return _or_all([sel.replicate(len(v)) & v for sel, v in zip(sels, lanes, strict=True)])

        lanes = [lane(k) for k in range(BEAT_BYTES)]

        # --- Header capture, realigned: header byte h is in beat (s + h) // 8, lane (s + h) % 8,
        # s being the first beat's start lane.
        # The start lane one-hot, straight from keep (no encoder before the selects).
        start_oh = Signal(BEAT_BYTES)
        m.d.comb += start_oh.eq(Cat(*[beat.keep[k] & ~beat.keep[:k].any() if k else beat.keep[0]
                                      for k in range(BEAT_BYTES)]))
        hdr = [Signal(8, name=f"hdr{h}") for h in range(HEADER_LENGTH)]
        hdr_next = [Signal(8, name=f"hdr{h}_next") for h in range(HEADER_LENGTH)]
        # After the first beat the lanes of the header bytes are known a beat ahead: at[h] is a
        # registered one-hot of the lane holding header byte h in this beat (0: another beat), so
        # the live path is a 2-level AND-OR rather than an adder, a compare and an 8:1 mux.
        at = [Signal(BEAT_BYTES, name=f"hdr{h}_at") for h in range(HEADER_LENGTH)]
        # hdr_late[h]: hdr_next[h] on any beat but the first (the first beat's lanes depend on
        # its keep; only the session's early bytes can be there, and they are never on a short
        # path: they are compared a beat later).
        hdr_late = [Signal(8, name=f"hdr{h}_late") for h in range(HEADER_LENGTH)]
        for h in range(HEADER_LENGTH):
            m.d.comb += hdr_late[h].eq(Mux(at[h].any(), pick(at[h], lanes), hdr[h]))
            if h < BEAT_BYTES:
                in_first = start_oh[:BEAT_BYTES - h]
                m.d.comb += hdr_next[h].eq(
                    Mux(first, Mux(in_first.any(), pick(in_first, lanes[h:]), hdr[h]),
                        hdr_late[h]))
            else:
                m.d.comb += hdr_next[h].eq(hdr_late[h])
        with m.If(xfer):
            m.d.sync += [hdr[h].eq(hdr_next[h]) for h in range(HEADER_LENGTH)]
            # The next beat's lanes, none after a last beat. From the first beat: lane s + h - 8.
            # From a later beat: where byte h - 8 is in this one (lanes repeat every beat).
            for h in range(HEADER_LENGTH):
                after_first = Cat(*[start_oh[k + BEAT_BYTES - h] if 0 <= k + BEAT_BYTES - h
                                    < BEAT_BYTES else Const(0) for k in range(BEAT_BYTES)])
                after_mid = at[h - BEAT_BYTES] if h >= BEAT_BYTES else Const(0, BEAT_BYTES)
                m.d.sync += at[h].eq(Mux(last, 0, Mux(first, after_first, after_mid)))

        expected = Signal(SEQ_BITS, init=1)
        session = Signal(SESSION_BITS)
        session_valid = Signal()
        ended = Signal()

        # --- Framing state.
        seg = Signal(_Seg)
        # 1 + beats after this one until the segment's end. Loaded a beat late, in the beat after
        # the segment starts (``e_defer``), from registers: the live length's adder then only
        # makes the end lane (3 bits), and the count's carry chain starts at flip-flops.
        e_cnt = Signal(range((BEAT_BYTES - 1 + 2**LENGTH_BITS) // BEAT_BYTES + 2))
        e_defer = Signal()        # e_cnt is to come from the segment's registered length
        e_base = Signal(LENGTH_BITS + 1)   # the segment's end from lane 0, less a beat, less len
        e_add_len = Signal()      # ... to which cur_len is to be added (a block, not a header)
        e_now = Signal()          # the current segment ends in this beat
        e_lane = Signal(_LANE_BITS)
        pl = Signal(_LANE_BITS)   # lane of the next prefix's first byte: e_lane + 1
        # The same lanes one-hot, so that the live byte selects are 2-level AND-ORs.
        e_oh = Signal(BEAT_BYTES, init=1)
        pl_oh = Signal(BEAT_BYTES, init=1)
        prev = Signal(8 * BEAT_BYTES)   # the previous beat (a field straddling two beats)
        prev_lanes = [prev.word_select(k, 8) for k in range(BEAT_BYTES)]
        prev7 = prev_lanes[BEAT_BYTES - 1]
        if self._hinted:
            hints = self.i_hints
        else:
            hints = Signal(MoldLaneHints)
            m.d.comb += [getattr(hints, name).eq(value) for name, value
                         in mold_lane_hints(lanes, prev_lanes, expected).items()]
        type_next = Signal()      # BODY: its type byte is lane 0 of this beat
        cur_len = Signal(LENGTH_BITS)   # the length completed in the previous beat (for type_b)
        msg_open = Signal()       # a start mark was sent and no end yet
        blk0 = Signal()           # no block's type byte yet in this packet
        left = Signal(COUNT_BITS)  # blocks still to frame, the current one included
        left_one = Signal()       # left == 1
        blk_seq = Signal(SEQ_BITS)  # sequence number of the next block after the first ...
        # ... but for the step of a block taken in the previous beat, which it makes a cycle
        # late (from this register, not behind the live type byte tests): blk_seq + blk_step.
        blk_step = Signal()
        blk_seq_now = Signal(SEQ_BITS)
        m.d.comb += blk_seq_now.eq(blk_seq + blk_step)
        skip_cnt = Signal(COUNT_BITS)  # blocks after the first still to skip as duplicates ...
        skip_nz = Signal()        # skip_cnt != 0
        # ... but for the step of a block skipped in the previous beat, made a cycle late from
        # this register, like blk_seq's: what is left to skip is not 0 (skip_nz_now).
        skip_step = Signal()
        skip_nz_now = Signal()
        m.d.comb += skip_nz_now.eq(Mux(skip_step, skip_cnt[1:].any(), skip_nz))
        # How skip_cnt's load relates to the duplicates: none are (d < 0), all are (d saturated),
        # or skip_cnt counts them. Kept apart so that the load is a plain 16-bit difference.
        skip_none = Signal()
        skip_all = Signal()

        in_seg = {kind: Signal(name=f"in_{kind.name.lower()}") for kind in _Seg}
        for kind, flag in in_seg.items():
            m.d.comb += flag.eq(in_pkt & (seg == kind))

        e_byte = _or_all([e_oh[k] & here(k) for k in range(BEAT_BYTES)])

        # --- End of header.
        session_now = header_field(hdr, "session")   # complete in registers by then
        # The session's bytes are all in by the beat before the header's end, so each byte is
        # compared on every beat after the first (the last time with every byte in place) into a
        # flag that the header's end reads (per-byte flags placed faster than one registered
        # verdict of all ten bytes). The latch they compare with only moves at a header's end, at
        # least three beats before the next one.
        sess_bytes = field_offsets("session")
        sess_eq = Signal(len(sess_bytes))
        with m.If(xfer & ~first):
            m.d.sync += sess_eq.eq(Cat(*[
                hdr_late[h] == session.word_select(len(sess_bytes) - 1 - i, 8)
                for i, h in enumerate(sess_bytes)]))
        sess_ok = Signal()
        m.d.comb += sess_ok.eq(~session_valid | sess_eq.all())
        seq_now = header_field(hdr_next, "seq")
        count_now = header_field(hdr_next, "count")
        h_done = Signal()         # the header's last byte is in this beat
        h_pass = Signal()         # ... and the packet is of our session
        h_data = Signal()         # ... and carries blocks
        # The count's tests are made on fixed lanes, for every lane the header can end in, and the
        # registered one-hot of that lane picks the 1-bit results: no byte select in front of
        # them. The count's first byte is in the previous beat when the header ends in lane 0.
        # Only read when the header ends in this beat. Hinted, the tests come from registers.
        hb_at, eos_at = hints.heartbeat, hints.end_of_session
        is_hb = _or_all([e_oh[k] & hb_at[k] for k in range(BEAT_BYTES)])
        is_eos = _or_all([e_oh[k] & eos_at[k] for k in range(BEAT_BYTES)])
        # The header's last byte is in this beat exactly when its registered lane is set (never
        # on a first beat): the same as the header segment ending here, in one register.
        hdr_end = at[HEADER_LENGTH - 1]
        m.d.comb += [
            h_done.eq(_or_all([hdr_end[k] & here(k) for k in range(BEAT_BYTES)])),
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
        pl_last, pl_first = pl_oh[BEAT_BYTES - 1], pl_oh[0]
        pl_mid = ~pl_first & ~pl_last
        lo_oh = pl_oh.rotate_left(1)   # lane of the prefix's second byte
        lo_lane = (pl + 1)[:_LANE_BITS]
        first_here = (pfx_due & ~pl_first) | in_seg[_Seg.PFX2]   # prefix byte 1 at lane pl
        second_here = (pfx_due & pl_mid) | in_seg[_Seg.PFX1] | in_seg[_Seg.PFX2]
        len_done = Signal()
        length = Signal(LENGTH_BITS)
        short = Signal()
        blk_ok = Signal()
        here_lo = _or_all([lo_oh[k] & here(k) for k in range(BEAT_BYTES)])
        # The length's test is made on the fixed lanes of every prefix position, then picked by
        # the prefix's registered lane, like the count's.
        short_at = hints.short
        m.d.comb += [
            len_done.eq(second_here & here_lo),
            length.eq(Cat(pick(lo_oh, lanes), pick(pl_oh, [*lanes[:-1], prev7]))),
            short.eq(_or_all([pl_oh[k] & short_at[k] for k in range(BEAT_BYTES)])),
            blk_ok.eq(len_done & ~short),
        ]
        type_b = Signal()         # the type byte is lane 0, the length ended the previous beat
        m.d.comb += type_b.eq(in_seg[_Seg.BODY] & type_next)
        # The type byte follows the length in this beat (outside a last beat). A message never
        # starts in a packet's last beat, and every lane of any other beat after the first holds
        # a byte, so the keep tests (the header's and the prefix's last byte present) drop out.
        # Written per end lane (a header or body ending in lane k, with its prefix and type byte
        # after it in this beat), so that each live test meets only registered gates.
        type_a_mid = Signal()
        body_more = Signal()      # a body ends in this beat and another block follows
        m.d.comb += body_more.eq(in_seg[_Seg.BODY] & e_now & ~left_one)
        # The terms of a later block (after a body) kept apart from the header's: a later block's
        # counters need not wait for the session compare, whose terms are 0 after the first block.
        type_a_later = Signal()
        m.d.comb += [
            type_a_later.eq(_or_all([
                *[body_more & e_oh[k] & ~short_at[k + 1]
                  for k in range(BEAT_BYTES - 1 - LENGTH_PREFIX)],
                in_seg[_Seg.PFX1] & ~short_at[BEAT_BYTES - 1],
                in_seg[_Seg.PFX2] & ~short_at[0]])),
            type_a_mid.eq(type_a_later | _or_all([
                hdr_end[k] & sess_ok & ~hb_at[k] & ~eos_at[k] & ~short_at[k + 1]
                for k in range(BEAT_BYTES - 1 - LENGTH_PREFIX)])),
        ]

        # Is the block whose type byte is here a duplicate? The first block compares the header's
        # sequence number: its early bytes from registers, the late ones possibly live. Those are
        # live only when the first type byte shares a beat with the header's end; that beat
        # starts at one of a few packet offsets, each placing the live bytes in fixed lanes. So
        # the low compare is made once per such offset on fixed lanes (``hints.seq_below``; and
        # once from registers), and the registered lanes of the header bytes tell which one holds.
        late = LATE_SEQ_OFFSETS
        early = [o for o in field_offsets("seq") if o not in late]
        late_bits = 8 * len(late)
        seq_hi = header_field(hdr, "seq", range(early[0], early[-1] + 1))
        exp_hi, exp_lo = expected[late_bits:], expected[:late_bits]
        lo_lt_reg = header_field(hdr, "seq", range(late[0], late[-1] + 1)) < exp_lo
        lo_sel, lo_lt = [], []
        for i, base in enumerate(LATE_SEQ_BASES):
            # A beat whose lane 0 holds header byte base: the late bytes from base on are live.
            lo_sel.append(at[base][0])
            lo_lt.append(at[base][0] & hints.seq_below[i])
        dup0 = (seq_hi < exp_hi) | ((seq_hi == exp_hi) & Mux(Cat(*lo_sel).any(), _or_all(lo_lt),
                                                            lo_lt_reg))
        # A type byte outside a last beat: what the block counters step on. On a last beat they
        # need not step, as the next packet reloads them before reading them.
        type_mid = Signal()
        type_later = Signal()     # type_mid, if this is not the packet's first block
        start = Signal()
        m.d.comb += [
            type_mid.eq((type_a_mid | type_b) & ~last),
            type_later.eq((type_a_later | type_b) & ~last),
            start.eq(Mux(blk0, type_mid & ~dup0,
                         type_later & (skip_none | ~(skip_all | skip_nz_now)))),
        ]

        # --- Output register.
        abandon = last & msg_open & ~body_end
        with m.If(xfer):
            m.d.sync += [
                self.o.valid.eq(start | msg_open),
                out.data.eq(beat.data),
                out.start.eq(start),
                out.start_lane.eq(Mux(type_b, 0, (pl + LENGTH_PREFIX)[:_LANE_BITS])),
                out.length.eq(Mux(type_b, cur_len, length)),
                out.seq.eq(Mux(blk0, seq_now, blk_seq_now)),
                out.end.eq((body_end & msg_open) | abandon),
                out.end_lane.eq(e_lane),
                out.error.eq(abandon),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # --- Framing state updates.
        # The segment's end lane, from this beat's lane 0 (3-bit adders on the live length).
        e_lane_next = Signal(_LANE_BITS)
        m.d.comb += e_lane_next.eq(Mux(first, start_lane + (HEADER_LENGTH - 1),
                                       lo_lane + length[:_LANE_BITS])[:_LANE_BITS])
        # In the beat after: the beats from there to the end (e_cnt's next value), as one adder
        # from registers. The sum is never negative: a header ends in a later beat,
        # and a body's end lies more than a beat past its length's end (MIN_MESSAGE_LENGTH).
        e_sum = Signal(LENGTH_BITS + 1)
        m.d.comb += e_sum.eq(e_base + Mux(e_add_len, cur_len, 0))
        e_left = e_sum[_LANE_BITS:]
        with m.If(xfer):
            m.d.sync += [
                in_pkt.eq(~last),
                prev.eq(beat.data),
                type_next.eq(blk_ok & pl_oh[BEAT_BYTES - 2]),
                msg_open.eq(start | (msg_open & ~body_end & ~last)),
            ]
            with m.If(first | blk_ok):
                m.d.sync += [
                    e_defer.eq(1),
                    e_base.eq(Mux(first, start_lane + (HEADER_LENGTH - 1 - BEAT_BYTES),
                                  lo_lane - BEAT_BYTES)),
                    e_add_len.eq(~first),
                    # The end is in the next beat, made on fixed lanes: a header never ends
                    # there, a block's body does when its length is small enough for its lane.
                    e_now.eq(~first & _or_all([pl_oh[k] & hints.ends_next[k]
                                               for k in range(BEAT_BYTES)])),
                    e_lane.eq(e_lane_next),
                    pl.eq(e_lane_next + 1),
                    e_oh.eq(Const(1, BEAT_BYTES) << e_lane_next),
                    pl_oh.eq(Const(1, BEAT_BYTES) << (e_lane_next + 1)[:_LANE_BITS]),
                ]
            with m.Elif(e_defer):
                m.d.sync += [e_defer.eq(0), e_cnt.eq(e_left), e_now.eq(e_left == 1)]
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
            with m.Elif(pfx_due & pl_last):
                m.d.sync += seg.eq(_Seg.PFX1)
            with m.Elif(pfx_due & pl_first):
                m.d.sync += seg.eq(_Seg.PFX2)
            with m.Elif(body_end):
                m.d.sync += seg.eq(_Seg.TRAIL)

            # Only read on the beat right after a length completes: no enable needed.
            m.d.sync += cur_len.eq(length)
            with m.If(first):
                m.d.sync += blk0.eq(1)
            with m.Elif(type_mid):
                m.d.sync += blk0.eq(0)
            m.d.sync += skip_step.eq(type_later & ~blk0 & skip_nz_now)
        with m.Else():
            m.d.sync += skip_step.eq(0)
        with m.If(skip_step):
            m.d.sync += [skip_cnt.eq(skip_cnt - 1), skip_nz.eq(skip_cnt[1:].any())]
        with m.If(xfer):
            with m.If(body_end):
                m.d.sync += [left.eq(left - 1), left_one.eq(left == 2)]

            with m.If(h_done & ~session_valid):
                m.d.sync += session_valid.eq(1)
            with m.If(h_pass & is_eos):
                m.d.sync += ended.eq(1)
        # Like pkt_seq below: loaded while the beat holding the header's end is on the input, by
        # its registered lane alone; only read for a packet whose header passed (no body ends in
        # the header's beat). The session is loaded until it is valid; it is only compared, and
        # shown, once it is.
        with m.If(hdr_end.any()):
            # left == 1 made on fixed lanes, like the heartbeat test.
            m.d.sync += [left.eq(count_now),
                         left_one.eq(_or_all([hdr_end[k] & hints.count_one[k]
                                              for k in range(BEAT_BYTES)]))]
            with m.If(~session_valid):
                m.d.sync += session.eq(session_now)

        # --- Per-packet values for the pipelines behind the packet.
        pkt_pass = Signal()       # the header checks passed
        pkt_data = Signal()       # ... and the packet carries blocks
        pkt_seq = Signal(SEQ_BITS)
        pkt_count = Signal(COUNT_BITS)
        pkt_count_m1 = Signal(COUNT_BITS)   # N - 1 (N >= 1 for a packet with blocks), from h1
        with m.If(xfer):
            with m.If(first):
                m.d.sync += [pkt_pass.eq(0), pkt_data.eq(0)]
            with m.Elif(h_pass):
                m.d.sync += [pkt_pass.eq(1), pkt_data.eq(h_data)]
        # The header's fields are loaded whenever the beat holding its end is on the input, by
        # that registered lane alone (not behind the transfer and the header checks, whose live
        # terms would otherwise enable these 80 flip-flops): the last load is the beat's transfer,
        # and they are only read for a packet that passed (pkt_pass, h1, the packet's end), never
        # once the next packet's header can end (the previous packet's reads end the cycle after
        # its last beat, the next header ends at the earliest in the third beat after it).
        with m.If(hdr_end.any()):
            m.d.sync += [pkt_seq.eq(seq_now), pkt_count.eq(count_now)]
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
        # d is found without a 64-bit carry chain: split at bit 16, d = D * 2**16 + lo with
        # D = E_hi - S_hi and lo = E_lo - S_lo - 1 (in -2**16 .. 2**16 - 2, its sign from a 16-bit
        # adder's carry). D < 0: d < 0. D = 0: d = lo. D = 1: d = 2**16 + lo, saturated when
        # lo >= 0. D >= 2: saturated. Below the saturation d's low 16 bits are lo's. E_hi - 1 is
        # registered: expected is stable from the cycle before h1 on.
        e_lo, e_hi = expected[:COUNT_BITS], expected[COUNT_BITS:]
        s_lo, s_hi = pkt_seq[:COUNT_BITS], pkt_seq[COUNT_BITS:]
        e_hi_m1 = Signal(len(e_hi))
        e_hi_nz = Signal()
        m.d.sync += [e_hi_m1.eq(e_hi - 1), e_hi_nz.eq(e_hi.any())]
        lo = Signal(COUNT_BITS + 1)
        m.d.comb += lo.eq(e_lo + ~s_lo)         # lo + 2**16: the carry out says lo >= 0
        # The compares are registered as they are, and d's cases decoded from those registers
        # (a LUT level beside the live terms of ``start``, which reads them a cycle later at the
        # earliest), not before them: the 48-bit compares are the depth of this path.
        lo_pos, hi_lt, hi_eq, hi_eq1 = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [skip_none.eq(hi_lt | (hi_eq & ~lo_pos)),
                     skip_all.eq(~hi_lt & ~hi_eq & (~hi_eq1 | lo_pos))]
        # Unless d < 0 or d is saturated, d is lo's low 16 bits: these load the countdown as
        # they are, and the two cases are decoded beside it.
        skip0 = Signal(COUNT_BITS)
        dup_packet = Signal()
        with m.If(h1):
            m.d.sync += [
                blk_seq.eq(pkt_seq + 1),
                pkt_count_m1.eq(pkt_count - 1),
                skip_cnt.eq(lo[:COUNT_BITS]),
                skip_nz.eq(lo[:COUNT_BITS].any()),
                skip0.eq(lo[:COUNT_BITS]),
                lo_pos.eq(lo[COUNT_BITS]),
                hi_lt.eq(e_hi < s_hi),
                hi_eq.eq(e_hi == s_hi),
                hi_eq1.eq(e_hi_nz & (e_hi_m1 == s_hi)),
            ]
        with m.Elif(blk_step):
            m.d.sync += blk_seq.eq(blk_seq + 1)
        # (No later block's type byte comes before the beat after h1, so no step is lost to it.)
        m.d.sync += blk_step.eq(xfer & type_later & ~blk0)
        with m.If(h2):
            m.d.sync += dup_packet.eq(~skip_none & (skip_all | (pkt_count_m1 <= skip0)))

        # --- Per-packet counts, committed once the duplicate-packet decision is known.
        ev_dup_msg = body_end & ~msg_open
        ev_length_short = len_done & short
        here_pl = _or_all([pl_oh[k] & here(k) for k in range(BEAT_BYTES)])
        prefix_begun = (first_here & here_pl) | in_seg[_Seg.PFX1]
        ev_past_end = last & ~err & ((in_seg[_Seg.BODY] & ~body_end) | blk_ok
                                     | (prefix_begun & ~len_done))
        ev_count_short = last & ~err & ((first_here & ~here_pl) | (pfx_due & pl_first))
        after_end = (Const((1 << BEAT_BYTES) - 1, BEAT_BYTES) << (e_lane + 1))[:BEAT_BYTES]
        trail_enter = (h_pass & ~h_data) | (body_end & left_one)
        ev_trailing = ((trail_enter & (present & after_end).any())
                       | (in_seg[_Seg.TRAIL] & present.any()))

        flags = ("length_short", "length_past_end", "count_short", "trailing_bytes")
        events = dict(zip(flags, (ev_length_short, ev_past_end, ev_count_short, ev_trailing),
                          strict=True))
        acc = {name: Signal(name=f"acc_{name}") for name in flags}
        acc_next = {name: Signal(name=f"acc_{name}_next") for name in flags}
        for name in flags:
            m.d.comb += acc_next[name].eq((acc[name] & ~first) | events[name])
        with m.If(xfer):
            m.d.sync += [acc[name].eq(acc_next[name]) for name in flags]
        # The duplicate count adds a cycle behind the beat, so that its adder starts at registers
        # (the held count is taken a cycle after the last beat; the commit is 2 cycles later).
        dup_ev_r, first_r, end_r = Signal(), Signal(), Signal()
        m.d.sync += [dup_ev_r.eq(xfer & ev_dup_msg), first_r.eq(xfer & first), end_r.eq(pkt_end)]
        acc_dup = Signal(COUNT_BITS)
        acc_dup_next = Signal(COUNT_BITS)
        m.d.comb += acc_dup_next.eq(Mux(first_r, 0, acc_dup) + dup_ev_r)
        m.d.sync += acc_dup.eq(acc_dup_next)

        held = {name: Signal(name=f"held_{name}") for name in flags}
        held_dup = Signal(COUNT_BITS)
        held_data = Signal()
        timer = Signal(range(_PACKET_PIPE + 1))
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.If(pkt_end):
            m.d.sync += [timer.eq(_PACKET_PIPE), held_data.eq(data_now)]
            m.d.sync += [held[name].eq(acc_next[name]) for name in flags]
        with m.If(end_r):
            m.d.sync += held_dup.eq(acc_dup_next)
        commit = timer == 1
        dropped = held_data & dup_packet
        keep_counts = commit & ~dropped

        # --- Sequence update and gaps: expected and S - expected one cycle after the last beat,
        # the gap FIFO the cycle after. S + j is counted up as blocks are framed (``reach``).
        m.submodules.gap_fifo = gap_fifo = fifo.SyncFIFOBuffered(
            width=GapLayout.size, depth=self._gap_fifo_depth)
        wiring.connect(m, gap_fifo.r_stream, wiring.flipped(self.o_gap))
        sp1, sp2 = Signal(), Signal()
        # S + the blocks framed so far: one past the last message framed. Once the last beat is
        # taken it is final (the next packet's first beat cannot move it).
        # Stepped a cycle after each block's end, from a register (reach_step), like blk_seq.
        reach = Signal(SEQ_BITS + 1)
        reach_step = Signal()
        m.d.sync += reach_step.eq(xfer & body_end)
        with m.If(hdr_end.any()):   # loaded like pkt_seq; no body ends in the header's beat
            m.d.sync += reach.eq(seq_now)
        with m.Elif(reach_step):
            m.d.sync += reach.eq(reach + 1)
        gap = Signal()
        gap_first = Signal(SEQ_BITS)
        gap_count = Signal(SEQ_BITS)
        m.d.sync += [sp1.eq(pkt_end), sp2.eq(sp1)]
        with m.If(sp1):
            m.d.sync += [gap.eq(pkt_seq > expected), gap_first.eq(expected),
                         gap_count.eq(pkt_seq - expected)]
        gap_push = sp2 & gap
        m.d.comb += [
            gap_fifo.w_en.eq(gap_push),
            gap_fifo.w_data.eq(Cat(gap_first, gap_count)),
        ]
        # expected = max(expected, reach): the compare is registered, and expected written the
        # cycle after, from registers only (a 64-bit compare enabling 64 flip-flops was a longest
        # path). ``status.expected`` shows the value it takes a cycle ahead, so that it still
        # settles the cycle after the last beat (what the hint stage and the host see).
        # At sp1 the step of a block ending in the last beat is still to come (reach_step);
        # reach is final from sp2 on.
        advance = Signal()
        with m.If(sp1):
            m.d.sync += advance.eq(Mux(reach_step, reach >= expected, reach > expected))
        with m.If(sp2 & advance):
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
            self.status.expected.eq(Mux(sp2 & advance, reach[:SEQ_BITS], expected)),
            self.status.session.eq(Mux(session_valid, session, 0)),
            self.status.session_valid.eq(session_valid),
            self.status.ended.eq(ended),
        ]
        return m
