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
with start and end marks, so the stage is a one-register pipeline, and everything a start mark
depends on must be decided within the beat that carries the type byte. The stage is built so that
this decision is a few gates deep, whatever the alignment:

*Framing schedule.* The packet is cut into segments: the 20-byte header, then per block a 2-byte
length prefix and the message body. Only the end of the current segment is tracked, as a beat
countdown (``e_cnt``, with ``e_now`` precomputed) and a lane (``e_lane``); the next prefix starts
in lane ``pl = e_lane + 1``. The schedule (``hdr``, ``bod``, ``pf1``, ``pf2``, ``tn`` and the
countdown) advances as if every block were valid, so it depends on registers only. What the beat's
bytes say (a heartbeat count, a length below the minimum) is registered as a kill (``kc``, ``ks``)
and folded into ``dead`` the beat after, when the schedule no longer matters for this packet.

*Per-lane candidates.* Where a length can complete (8 cases, selected by the registered ``pl``)
and where the header can end (8 cases, the header's last lane ``L`` fixed by the first beat's
start lane) are known a beat ahead. Each case is evaluated from fixed lanes in parallel, and the
start mark is one 8:1 mux of them on a registered select (``ssel``). For the first block, whose
type byte may share the beat with the header's end, each header-end lane ``L`` has its own
checks: the session and the sequence number's upper bytes are compared in the beat before, from
the lanes they arrive in (``sess_m``, ``hi_gt``, ``hi_eq``), and only the count, the length and
the sequence number's last bytes (one carry chain against ``expected``) are live.

*Duplicates after the first block.* Block ``i`` is old when ``i <= d``, ``d = expected - S - 1``.
``d`` is computed the cycle after the header (``diff``) and saturated the cycle after that; the
second block's flag (``S + 1 < expected``) and the third's (``S + 2 < expected``) are compared
straight from ``S`` the cycle after the header, as those blocks can follow before ``d`` is ready.

*After the packet.* ``S + j`` is counted up as blocks are framed (``reach``); whether it passes
``expected`` is a small compare of ``j`` with ``d`` (or, for ``j <= 1``, the header-time
comparison), so ``expected`` is written the cycle after the last beat, before the next packet's
sequence number can need it. Gaps are pushed two cycles later.

*Counters.* Everything that only feeds counters is evaluated one cycle behind the beat from
registered copies of the beat's state (the ``d_`` signals), per-packet counts are committed once
the duplicate-packet decision is known, and every counter adds a registered increment.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.mold import (
    COUNT_BITS,
    END_OF_SESSION_COUNT,
    HEADER,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_BITS,
    LENGTH_PREFIX,
    MIN_MESSAGE_LENGTH,
    SEQ_BITS,
    SESSION_BITS,
    field_offsets,
)
from hdl.feed.message_beat import MessageBeatStream
from hdl.stats import stats_layout
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

_LANES = range(BEAT_BYTES)
_LANE_BITS = (BEAT_BYTES - 1).bit_length()
_BLOCK_MIN = LENGTH_PREFIX + MIN_MESSAGE_LENGTH
_HEADER_END = HEADER_LENGTH - 1          # offset of the header's last byte
_LEN_LAST = BEAT_BYTES - 1 - LENGTH_PREFIX   # a segment ending in a lane up to this one is
_TYPE_LAST = _LEN_LAST - 1                   # followed in the same beat by a length (a type byte)
_TN_SLOT = _LEN_LAST + 1                 # ``pl`` of a length whose type byte is in the next beat


def _where(end_lane: int, offset: int) -> tuple[int, int]:
    """(beat, lane) of header byte ``offset`` when the header's last byte is in ``end_lane``.

    The beat is counted from the header's last beat (0) backwards (-1, -2, ...).
    """
    x = offset - _HEADER_END + end_lane
    return x // BEAT_BYTES, x % BEAT_BYTES


def _type_beat(block: int) -> int:
    """The fewest beats between the header's last byte and the type byte of block ``block``."""
    return (HEADER_LENGTH + block * _BLOCK_MIN + LENGTH_PREFIX - _HEADER_END) // BEAT_BYTES


# The timing arguments of the design, checked against the wire format:
# a block spans more than a beat (one block end and one block start per beat; no body ends in the
# beat where it begins) ...
assert MIN_MESSAGE_LENGTH > BEAT_BYTES
# ... the header ends in the third beat or later, so the comparisons its end needs are made in the
# beat before, which is never the first ...
assert _HEADER_END >= 2 * BEAT_BYTES
# ... the session is complete before the header's last beat ...
assert all(_where(L, o)[0] <= -1 for L in _LANES for o in field_offsets("session"))
# ... the sequence number is in the header's last beat, the beat before, or (one byte) lane 7 of
# the beat before that; the count in the last beat, or its first byte in lane 7 of the beat before
assert all(_where(L, o)[0] >= -1 or _where(L, o) == (-2, BEAT_BYTES - 1)
           for L in _LANES for o in field_offsets("seq"))
assert all(_where(L, o)[0] == 0 or _where(L, o) == (-1, BEAT_BYTES - 1)
           for L in _LANES for o in field_offsets("count"))
# ... the count is the header's tail, and the first block's type byte can share its beat ...
assert field_offsets("count")[-1] == _HEADER_END and _TYPE_LAST >= 0
# ... the second block's type byte is at least two beats after the header's last byte, the third's
# at least three (their duplicate flags take that long), and a packet framing two blocks ends at
# least two beats after its header (the update of ``expected`` needs ``d`` then).
assert _type_beat(1) >= 2 and _type_beat(2) >= 3
assert (HEADER_LENGTH + 2 * _BLOCK_MIN - 1 - _HEADER_END) // BEAT_BYTES >= 2


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


def _pick(sel, items):
    """``items[sel]`` as a balanced tree of 2:1 muxes (``len(items) == 2 ** len(sel)``)."""
    items = list(items)
    for bit in range(len(sel)):
        items = [Mux(sel[bit], hi, lo) for lo, hi in zip(items[0::2], items[1::2], strict=True)]
    (item,) = items
    return item


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
        48-bit counters, for reading once traffic has drained. Header outcomes and ``MESSAGES``
        update 3 cycles after the beat; the per-packet counters and the gap counters 5 cycles
        after the last beat.
    status : Out(MoldRxStatusLayout)
        ``expected``, the latched ``session`` (first character most significant),
        ``session_valid`` and ``ended`` (an end-of-session packet was seen).

    Latency
    -------
    1 cycle from an input beat to its output beat (registered output). ``expected`` reflects a
    packet 2 cycles after its last beat; its gap enters the ``o_gap`` FIFO 4 cycles after.

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

        ready = Signal()
        xfer = Signal()
        m.d.comb += [
            ready.eq(self.o.ready | ~self.o.valid),
            self.i.ready.eq(ready),
            xfer.eq(self.i.valid & ready),
        ]
        last = beat.last
        err = beat.error & last
        # A beat that can carry a start mark: a message of MIN_MESSAGE_LENGTH bytes cannot end in
        # the beat holding its type byte, so none starts in a packet's last beat.
        live = self.i.valid & ~last

        def lane(k):
            return beat.data.word_select(k, 8)

        in_pkt = Signal()         # a packet's first beat was taken, its last not yet
        first = ~in_pkt
        # The two previous beats: with the header's last lane known, every header byte is at a
        # fixed place in them or in the current beat (see _where).
        prv = Signal(8 * BEAT_BYTES)
        prv2 = Signal(8 * BEAT_BYTES)
        prev7 = prv.word_select(BEAT_BYTES - 1, 8)
        prev7_zero = Signal()     # prev7 is 0x00 (the high byte of a count or a length)
        prev7_ones = Signal()     # ... is 0xFF
        with m.If(xfer):
            m.d.sync += [
                prv.eq(beat.data), prv2.eq(prv),
                prev7_zero.eq(lane(BEAT_BYTES - 1) == 0),
                prev7_ones.eq(lane(BEAT_BYTES - 1) == 0xFF),
                in_pkt.eq(~last),
            ]

        def header_byte(end_lane, offset, beat_rel):
            """Header byte ``offset`` seen from beat ``beat_rel`` of the header (0: its last)."""
            b, k = _where(end_lane, offset)
            return {0: beat.data, -1: prv, -2: prv2}[b - beat_rel].word_select(k, 8)

        # The first beat's start lane, one-hot: keep is contiguous (hdl/arch/beat.py), so the
        # packet starts where a kept lane follows one that is not.
        start_oh = [beat.keep[0]] + [beat.keep[k] & ~beat.keep[k - 1] for k in _LANES[1:]]

        def from_start(f):
            """``f(start lane)`` as gates on the one-hot start."""
            return Cat(*[Cat(*[start_oh[k] for k in _LANES if f(k) >> b & 1]).any()
                         for b in range(max(f(k) for k in _LANES).bit_length())])

        expected = Signal(SEQ_BITS, init=1)
        session = Signal(SESSION_BITS)
        session_valid = Signal()
        ended = Signal()
        session_end = HEADER["session"].end

        def session_byte(offset):
            return session.word_select(session_end - 1 - offset, 8)

        # --- Framing state.
        hdr_s = Signal()          # the header is in progress; it ends at the segment's end
        bod = Signal()            # a block's body is in progress; it ends at the segment's end
        tn = Signal()             # ... and its type byte is lane 0 of this beat
        pf1 = Signal()            # the previous beat ended with a length prefix's first byte
        pf2 = Signal()            # a length prefix starts in lane 0 of this beat
        dead = Signal()           # framing stopped: the rest is trailing bytes or dropped
        trl = Signal()            # ... and the rest counts as trailing bytes
        # What the previous beat's bytes said, folded into dead the beat after: its header's
        # count had no blocks (trailing bytes), its session did not match, its length was too
        # short (both dropped). Only what they could gate in the very next beat looks at them.
        kc_r = Signal()
        sf_r = Signal()
        ks_r = Signal()
        # The segment's end: e_cnt + e_inc beats from this one (1: this one), lane e_lane.
        e_cnt = Signal(LENGTH_BITS - _LANE_BITS + 1)
        e_inc = Signal()
        e_now = Signal()          # the segment ends in this beat
        e_nx = Signal()           # ... in the next one
        e_lane = Signal(_LANE_BITS)
        pl = Signal(_LANE_BITS)   # lane of the next prefix's first byte: e_lane + 1
        ssel = Signal(_LANE_BITS)  # the start mux's case: pl, or _TN_SLOT when tn
        hl = Signal(_LANE_BITS)   # the lane of the header's last byte
        cur_len = Signal(LENGTH_BITS)
        left = Signal(COUNT_BITS)  # blocks still to frame, the current one included
        left_one = Signal()       # left == 1
        framed = Signal(COUNT_BITS)
        blk0 = Signal()           # no block's type byte yet in this packet
        blk1 = Signal()           # the next type byte is the second block's
        bi = Signal(COUNT_BITS)   # index of the block whose type byte comes next
        dup2 = Signal()           # the third block is a duplicate
        dn = Signal()             # the block whose type byte comes next (not the first) is
        first_ok = Signal()       # the first block, when its type byte follows the header's
                                  # beat, has a session, a count and a sequence number to start
        nseq = Signal(SEQ_BITS)   # its sequence number, for blocks after the first
        st_x = Signal()           # the previous beat carried a start mark
        mo = Signal()             # a message open before the previous beat is still open

        alive = ~dead
        msg_open = mo | st_x      # a start mark was sent and no end yet
        se_h = hdr_s & e_now      # the header ends in this beat (lane e_lane)
        se_b = bod & e_now & alive
        here_e = ~last | beat.keep.bit_select(e_lane, 1)    # ... and its last byte is there
        h_done = se_h & here_e
        body_end = se_b & here_e
        cont = se_h | (se_b & ~left_one)    # a length prefix follows the segment's end
        pfx = pf1 | pf2
        len_sched = (cont & (e_lane <= _LEN_LAST)) | pfx
        type_sched = (cont & (e_lane <= _TYPE_LAST)) | pfx | tn

        # --- One hypothesis per lane L of the header's last byte, evaluated every beat as if the
        # header ended one or two beats later: the session compared in three steps (byte flags two
        # beats before, their conjunction and the next bytes' flags one beat before, the rest at
        # the end), the sequence number's upper bytes against expected one beat before.
        sess_two = {}             # session byte o (two or more beats before the end) matches
        sess_m = Signal(BEAT_BYTES)   # the session matches (or none is latched yet)
        hi_lt = Signal(BEAT_BYTES)    # sequence bytes before the header's last beat vs
        hi_gt = Signal(BEAT_BYTES)    # expected: less, greater
        session_next = Signal(SESSION_BITS)     # the session, assembled the beat before the end
        assembled = []
        for L in _LANES:
            late = []
            for o in field_offsets("session"):
                if _where(L, o)[0] <= -2:
                    flag = sess_two[L, o] = Signal(name=f"sess_{L}_{o}")
                    with m.If(xfer):
                        m.d.sync += flag.eq(header_byte(L, o, -2) == session_byte(o))
                else:
                    late.append(header_byte(L, o, -1) == session_byte(o))
            assembled.append(Cat(*reversed([header_byte(L, o, -1)
                                            for o in field_offsets("session")])))
            hi = [o for o in field_offsets("seq") if _where(L, o)[0] < 0]
            hi_val = Cat(*reversed([header_byte(L, o, -1) for o in hi]))   # big-endian
            e_hi = expected[SEQ_BITS - 8 * len(hi):]
            with m.If(xfer):
                m.d.sync += [
                    sess_m[L].eq(~session_valid
                                 | Cat(*late, *[f for (k, _), f in sess_two.items()
                                                if k == L]).all()),
                    hi_lt[L].eq(hi_val < e_hi),
                    hi_gt[L].eq(e_hi < hi_val),
                ]
        with m.If(xfer):
            m.d.sync += session_next.eq(_pick(hl, assembled))
        sess_ok = sess_m.bit_select(e_lane, 1)
        h_pass = h_done & sess_ok

        # Per header-end lane: the header's checks, from fixed lanes.
        seq_l, count_l, one_l, zero_l, ones_l, cok_l, ge_l, gt_l, hs_l = ([] for _ in range(9))
        for L in _LANES:
            seq_l.append(Cat(*reversed([header_byte(L, o, 0) for o in field_offsets("seq")])))
            count = Cat(*reversed([header_byte(L, o, 0) for o in field_offsets("count")]))
            count_l.append(count)
            if _where(L, field_offsets("count")[0])[0] == 0:
                one_l.append(count == 1)
                zero_l.append(count == HEARTBEAT_COUNT)
                ones_l.append(count == END_OF_SESSION_COUNT)
            else:   # the high byte is prev7: its comparisons are registered
                low = count[:8]
                one_l.append(prev7_zero & (low == 1))
                zero_l.append(prev7_zero & (low == HEARTBEAT_COUNT & 0xFF))
                ones_l.append(prev7_ones & (low == END_OF_SESSION_COUNT & 0xFF))
            cok_l.append(~zero_l[-1] & ~ones_l[-1])
            hs_l.append(se_h & sess_m[L])
            # S >= expected, S > expected: one carry chain each, the upper bytes' outcome (a
            # greater or less flag on either side) above the bytes of this beat.
            lo = [o for o in field_offsets("seq") if _where(L, o)[0] == 0]
            if lo:
                s_lo = Cat(Cat(*reversed([header_byte(L, o, 0) for o in lo])), hi_gt[L])
                e_lo = Cat(expected[:8 * len(lo)], hi_lt[L])
                ge_l.append(s_lo >= e_lo)
                gt_l.append(e_lo < s_lo)
            else:
                ge_l.append(~hi_lt[L])
                gt_l.append(hi_gt[L])
        seq_now = _pick(e_lane, seq_l)
        count_now = _pick(e_lane, count_l)

        # Per length position (pl): the length, whether it is long enough, and where the body
        # it announces ends (beats from here, as length[15:3] plus a carry; lane).
        len_l, len_ok, len_okl, enow_l, enx_l, en3_l, inc_l, el_l, pl_l = ([] for _ in range(9))
        for ls in _LANES:
            lo_k = (ls + 1) % BEAT_BYTES
            length = Cat(lane(lo_k), prev7 if ls == BEAT_BYTES - 1 else lane(ls))
            len_l.append(length)
            # length < bound for bound <= 256, with the high byte's test registered for prev7
            if ls == BEAT_BYTES - 1:
                def below(bound, length=length):
                    return prev7_zero & _below(length[:8], bound)
            else:
                def below(bound, length=length):
                    return _below(length, bound)
            len_ok.append(~below(MIN_MESSAGE_LENGTH))
            len_okl.append(len_ok[-1] & live)
            # (a length too short ends nothing: the framing stops there)
            enow_l.append(~below(MIN_MESSAGE_LENGTH) & below(2 * BEAT_BYTES - lo_k))
            enx_l.append(~below(2 * BEAT_BYTES - lo_k) & below(3 * BEAT_BYTES - lo_k))
            en3_l.append(~below(3 * BEAT_BYTES - lo_k) & below(4 * BEAT_BYTES - lo_k))
            low = length[:_LANE_BITS] + lo_k
            inc_l.append(low[_LANE_BITS])
            el_l.append(low[:_LANE_BITS])
            pl_l.append((low + 1)[:_LANE_BITS])
        length_now = _pick(pl, len_l)

        # --- Duplicates: the first block compares S where the header ends; block i after it is
        # old when i <= d = expected - S - 1 (blocks 1 and 2 compared directly, as they can come
        # before d is ready).
        sge_l = Signal(BEAT_BYTES)    # S >= expected, S > expected, per header-end lane
        sgt_l = Signal(BEAT_BYTES)
        sge_next = Signal()           # S >= expected, for a first block after the header's beat
        pkt_seq = Signal(SEQ_BITS)
        dup_next = Mux(blk1, dup1, dn)
        nodup = Mux(blk0, sge_next, ~dup_next)

        # --- Start marks: one case per ssel, each from fixed lanes and registered gates.
        sb = se_b & ~left_one & ~dup_next           # a later block starts after a body's end
        sp = pfx & nodup                            # a block starts after a split prefix
        st = tn & alive & nodup & live              # a block's type byte is lane 0
        s_cases, kill_cases, trail_cases = [], [], []
        for ls in _LANES:
            L = (ls - 1) % BEAT_BYTES     # the header's last lane, when its prefix is at ls
            count_ok = ~zero_l[L] & ~ones_l[L]
            if ls == _TN_SLOT:
                s_cases.append(st)
            elif ls in (0, BEAT_BYTES - 1):
                s_cases.append(len_okl[ls] & sp)
            else:
                s_cases.append(len_okl[ls] & (sb | (count_ok & ge_l[L] & hs_l[L])))
            # What ends the framing: a length below the minimum (the rest is dropped) or a count
            # without blocks (the rest is trailing bytes).
            no_blocks = hs_l[L] & ~count_ok
            if ls in (0, BEAT_BYTES - 1):
                short_gate = pfx
            else:
                short_gate = (se_b & ~left_one) | (hs_l[L] & count_ok)
            kill_cases.append((~len_ok[ls] & short_gate) | no_blocks)
            trail_cases.append(no_blocks)
        start = _pick(ssel, s_cases)
        # msg_open | start, with msg_open folded into every case (the mux's first level has room)
        open_v = msg_open & self.i.valid
        valid = _pick(ssel, [open_v | case for case in s_cases])

        # --- Output register; the payload loads whenever the register is free.
        abandon = last & msg_open & ~body_end
        with m.If(ready):
            m.d.sync += [
                self.o.valid.eq(valid),
                out.data.eq(beat.data),
                out.start.eq(start),
                out.start_lane.eq((ssel + LENGTH_PREFIX)[:_LANE_BITS]),
                out.length.eq(Mux(tn, cur_len, length_now)),
                out.seq.eq(Mux(blk0, Mux(se_h, seq_now, pkt_seq), nseq)),
                out.end.eq((body_end & msg_open) | abandon),
                out.end_lane.eq(e_lane),
                out.error.eq(abandon),
            ]

        # --- Framing state updates. The schedule runs on as if every block were valid; dead
        # says when it no longer matters. dead and trl are stale after a packet's last beat and
        # reset by the next one's first.
        h_cnt = from_start(lambda k: (k + _HEADER_END) // BEAT_BYTES)
        h_lane = from_start(lambda k: (k + _HEADER_END) % BEAT_BYTES)
        h_pl = from_start(lambda k: (k + _HEADER_END + 1) % BEAT_BYTES)
        h_nx = from_start(lambda k: (k + _HEADER_END) // BEAT_BYTES == 2)
        dead_old = dead | (se_h & ~sess_ok) | (se_b & left_one)
        trl_old = trl | (se_b & left_one)
        stay = ~last
        # The segment ends two beats from now (e_cnt + e_inc == 3), when no length loads.
        cnt3 = Mux(e_inc, e_cnt == 2, e_cnt == 3)
        with m.If(xfer):
            m.d.sync += [
                st_x.eq(start),
                mo.eq(msg_open & ~body_end & ~last),
            ]
            with m.If(first):
                m.d.sync += [
                    hdr_s.eq(~last), bod.eq(0), tn.eq(0), pf1.eq(0), pf2.eq(0),
                    dead.eq(0), trl.eq(0),
                    e_cnt.eq(h_cnt), e_inc.eq(0), e_now.eq(0), e_nx.eq(h_nx),
                    e_lane.eq(h_lane), hl.eq(h_lane), pl.eq(h_pl), ssel.eq(h_pl),
                    framed.eq(0), no_end.eq(1), blk0.eq(1), blk1.eq(0), bi.eq(0),
                ]
            with m.Else():
                g_cases = [pfx if ls in (0, BEAT_BYTES - 1) else cont for ls in _LANES]
                m.d.sync += [
                    hdr_s.eq(hdr_s & ~e_now & stay),
                    bod.eq(((bod & ~e_now) | (cont & (e_lane <= _LEN_LAST)) | pfx) & stay),
                    tn.eq(cont & (e_lane == _LEN_LAST) & stay),
                    pf1.eq(cont & (e_lane == BEAT_BYTES - 2) & stay),
                    pf2.eq(cont & (e_lane == BEAT_BYTES - 1) & stay),
                    dead.eq(_pick(pl, [dead_old | case for case in kill_cases])),
                    trl.eq(_pick(pl, [trl_old | case for case in trail_cases])),
                    e_now.eq(_pick(pl, [Mux(g, enow, e_nx)
                                        for g, enow in zip(g_cases, enow_l, strict=True)])),
                    e_nx.eq(_pick(pl, [Mux(g, enx, cnt3)
                                       for g, enx in zip(g_cases, enx_l, strict=True)])),
                ]
                with m.If(len_sched):
                    m.d.sync += [
                        e_cnt.eq(_pick(pl, [length[_LANE_BITS:] for length in len_l])),
                        e_inc.eq(_pick(pl, inc_l)),
                        e_lane.eq(_pick(pl, el_l)),
                        pl.eq(_pick(pl, pl_l)),
                        ssel.eq(_pick(pl, [Const(_TN_SLOT, _LANE_BITS) if ls == _TN_SLOT
                                           else pl_l[ls] for ls in _LANES])),
                        cur_len.eq(length_now),
                    ]
                with m.Else():
                    m.d.sync += [e_cnt.eq(e_cnt - 1), ssel.eq(pl)]
                with m.If(se_b):
                    m.d.sync += framed.eq(framed + here_e)
                with m.If(body_end):
                    m.d.sync += no_end.eq(0)
                with m.If(type_sched):
                    m.d.sync += [blk0.eq(0), blk1.eq(blk0), bi.eq(bi + 1)]
            with m.If(se_h):
                m.d.sync += [left.eq(count_now), left_hdr1.eq(_pick(e_lane, one_l))]
            with m.Elif(body_end):
                m.d.sync += [left.eq(left - 1), left_dec1.eq(left == 2)]
            with m.If(h_done & ~session_valid):
                m.d.sync += [session.eq(session_next), session_valid.eq(1)]

        # --- Per-packet values.
        pkt_count_m1 = Signal(COUNT_BITS)   # N - 1 (N >= 1 for a packet with blocks)
        reach = Signal(SEQ_BITS)            # S + blocks framed so far
        pkt_pass = Signal()                 # the header checks passed
        with m.If(xfer):
            with m.If(se_h):
                m.d.sync += [
                    pkt_seq.eq(seq_now),
                    pkt_count_m1.eq(count_now - 1),
                    sge_l.eq(Cat(*ge_l)),
                    sgt_l.eq(Cat(*gt_l)),
                    sge_next.eq(_pick(e_lane[:2], [ge_l[L | 4] for L in range(4)])),
                    reach.eq(seq_now),
                ]
            with m.Elif(se_b & here_e):
                m.d.sync += reach.eq(reach + 1)
            with m.If(first):
                m.d.sync += pkt_pass.eq(0)
            with m.Elif(h_pass):
                m.d.sync += pkt_pass.eq(1)

        # Blocks after the first: d = expected - S - 1 from the cycle after the header.
        e1 = Signal(SEQ_BITS)     # expected - 1, - 2, and whether they went below zero
        e2 = Signal(SEQ_BITS)
        e1_neg = Signal()
        e2_neg = Signal()
        m.d.sync += [
            e1.eq(expected - 1), e2.eq(expected - 2),
            e1_neg.eq(expected == 0), e2_neg.eq(expected[1:] == 0),
        ]
        h1, h2 = Signal(), Signal()
        m.d.sync += [h1.eq(xfer & se_h), h2.eq(h1)]
        diff = Signal(SEQ_BITS + 1)     # expected + ~S = d + 2**64: its carry says d >= 0
        with m.If(h1):
            m.d.sync += [
                diff.eq(expected + ~pkt_seq),
                dup1.eq(~e1_neg & (pkt_seq < e1)),
                dup2.eq(~e2_neg & (pkt_seq < e2)),
                nseq.eq(pkt_seq + 1),
            ]
        with m.Elif(xfer & type_sched & ~blk0):
            m.d.sync += nseq.eq(nseq + 1)
        d_pos, d_mag = diff[SEQ_BITS], diff[:SEQ_BITS]
        d_big = d_mag[COUNT_BITS:].any()
        dsat = Signal(COUNT_BITS)       # d, 0 when negative, saturated: no packet holds more
        dthr = Signal(COUNT_BITS + 1)   # j > dthr: S + j > expected, for j >= 2 blocks framed
        dup_packet = Signal()           # S + N <= expected
        with m.If(h2):
            m.d.sync += [
                dsat.eq(Mux(d_pos, Mux(d_big, (1 << COUNT_BITS) - 1, d_mag[:COUNT_BITS]), 0)),
                dthr.eq(Mux(d_pos, Mux(d_big, (1 << (COUNT_BITS + 1)) - 1,
                                       d_mag[:COUNT_BITS] + 1), 0)),
                dup_packet.eq(d_pos & (d_big | (d_mag[:COUNT_BITS] >= pkt_count_m1))),
            ]
        with m.If(xfer & type_sched & ~blk0):
            m.d.sync += dn.eq(Mux(blk1, dup2, bi < dsat))

        # --- Sequence update and gaps: expected the cycle after the last beat, the gap FIFO
        # two cycles later (its count S - expected comes from diff).
        m.submodules.gap_fifo = gap_fifo = fifo.SyncFIFOBuffered(
            width=GapLayout.size, depth=self._gap_fifo_depth)
        wiring.connect(m, gap_fifo.r_stream, wiring.flipped(self.o_gap))
        sp1, sp2, sp3 = Signal(), Signal(), Signal()
        fj = Signal(COUNT_BITS + 1)     # j: the blocks framed completely
        gap = Signal()
        gap_first = Signal(SEQ_BITS)
        gap_count = Signal(SEQ_BITS)
        m.d.sync += [
            sp1.eq(xfer & last & ((pkt_pass & ~first) | h_pass)),
            sp2.eq(sp1), sp3.eq(sp2),
        ]
        with m.If(xfer & last):
            m.d.sync += fj.eq(framed + body_end)
        sgt = sgt_l.bit_select(hl, 1)
        sge = sge_l.bit_select(hl, 1)
        advance = Mux(fj == 0, sgt, Mux(fj == 1, sge, dthr < fj))   # S + j > expected
        with m.If(sp1):
            m.d.sync += [gap.eq(sgt), gap_first.eq(expected)]
            with m.If(advance):
                m.d.sync += expected.eq(reach)
        with m.If(sp2):
            m.d.sync += gap_count.eq(~d_mag)
        gap_push = sp3 & gap
        m.d.comb += [
            gap_fifo.w_en.eq(gap_push),
            gap_fifo.w_data.eq(Cat(gap_first, gap_count)),
        ]
        m.d.comb += self.i_expected.ready.eq(~in_pkt & ~sp1)
        with m.If(self.i_expected.valid & self.i_expected.ready):
            m.d.sync += expected.eq(self.i_expected.payload)

        # --- Counter stages: the event logic behind the beat, on registered copies of its state
        # (d_), then its first half (c_) and the events (ev_) registered before they are
        # accumulated.
        dv = Signal()
        m.d.sync += dv.eq(xfer)
        d_first, d_last, d_err = Signal(), Signal(), Signal()
        d_hdr, d_bod, d_pf1, d_pf2, d_trail = Signal(), Signal(), Signal(), Signal(), Signal()
        d_enow, d_left_one, d_open, d_sess = Signal(), Signal(), Signal(), Signal()
        d_hb, d_eos, d_short = Signal(), Signal(), Signal()
        d_pl = Signal(_LANE_BITS)
        # Whether the lanes that matter hold packet bytes (middle beats are full whatever their
        # keep says): the segment's end, the next prefix's two bytes; any byte after the end, any.
        present = Mux(first | last, beat.keep, (1 << BEAT_BYTES) - 1)
        after_end = (Const((1 << BEAT_BYTES) - 1, BEAT_BYTES) << (e_lane + 1))[:BEAT_BYTES]
        d_here_e, d_here_pl, d_here_lo = Signal(), Signal(), Signal()
        d_after, d_any = Signal(), Signal()
        with m.If(xfer):
            m.d.sync += [
                d_first.eq(first), d_last.eq(last), d_err.eq(err),
                d_hdr.eq(hdr_s), d_bod.eq(bod & alive), d_pf1.eq(pf1 & alive),
                d_pf2.eq(pf2 & alive), d_trail.eq(in_pkt & dead & trl),
                d_enow.eq(e_now), d_pl.eq(pl), d_left_one.eq(left_one),
                d_open.eq(msg_open), d_sess.eq(sess_ok),
                d_hb.eq(_pick(e_lane, zero_l)), d_eos.eq(_pick(e_lane, ones_l)),
                d_short.eq(~_pick(pl, len_ok)),
                d_here_e.eq(present.bit_select(e_lane, 1)),
                d_here_pl.eq(present.bit_select(pl, 1)),
                d_here_lo.eq(present.bit_select((pl + 1)[:_LANE_BITS], 1)),
                d_after.eq((present & after_end).any()),
                d_any.eq(present.any()),
            ]

        # First half: the header's and the body's end.
        cv = Signal()
        m.d.sync += cv.eq(dv)
        c_hdone, c_hpass, c_hdata, c_bend = Signal(), Signal(), Signal(), Signal()
        c_first, c_last, c_err, c_bod, c_pf1, c_pf2 = (Signal() for _ in range(6))
        c_trail, c_left_one, c_open, c_short = (Signal() for _ in range(4))
        c_hb, c_eos, c_here_pl, c_here_lo, c_after, c_any = (Signal() for _ in range(6))
        c_pl = Signal(_LANE_BITS)
        with m.If(dv):
            m.d.sync += [
                c_hdone.eq(d_hdr & d_enow & d_here_e),
                c_hpass.eq(d_hdr & d_enow & d_here_e & d_sess),
                c_hdata.eq(d_hdr & d_enow & d_here_e & d_sess & ~d_hb & ~d_eos),
                c_bend.eq(d_bod & d_enow & d_here_e),
                c_first.eq(d_first), c_last.eq(d_last), c_err.eq(d_err), c_bod.eq(d_bod),
                c_pf1.eq(d_pf1), c_pf2.eq(d_pf2), c_trail.eq(d_trail),
                c_left_one.eq(d_left_one), c_open.eq(d_open), c_short.eq(d_short),
                c_hb.eq(d_hb), c_eos.eq(d_eos), c_here_pl.eq(d_here_pl),
                c_here_lo.eq(d_here_lo), c_after.eq(d_after), c_any.eq(d_any), c_pl.eq(d_pl),
            ]

        c_pfx_due = c_hdata | (c_bend & ~c_left_one)
        pl_mid = (c_pl != 0) & (c_pl != BEAT_BYTES - 1)
        first_here = (c_pfx_due & (c_pl != 0)) | c_pf2    # prefix byte 1 at lane pl
        second_here = (c_pfx_due & pl_mid) | c_pf1 | c_pf2
        len_done = second_here & c_here_lo
        blk_ok = len_done & ~c_short
        prefix_begun = (first_here & c_here_pl) | c_pf1
        trail_enter = (c_hpass & ~c_hdata) | (c_bend & c_left_one)

        # Whether the packet passed its header checks (and carries blocks), for its last beat.
        c_pass = Signal()
        c_data = Signal()
        with m.If(cv):
            with m.If(c_first):
                m.d.sync += [c_pass.eq(0), c_data.eq(0)]
            with m.Elif(c_hpass):
                m.d.sync += [c_pass.eq(1), c_data.eq(c_hdata)]

        flags = ("length_short", "length_past_end", "count_short", "trailing_bytes")
        events = {
            "length_short": len_done & c_short,
            "length_past_end": c_last & ~c_err & ((c_bod & ~c_bend) | blk_ok
                                                  | (prefix_begun & ~len_done)),
            "count_short": c_last & ~c_err & ((first_here & ~c_here_pl)
                                              | (c_pfx_due & (c_pl == 0))),
            "trailing_bytes": (trail_enter & c_after) | (c_trail & c_any),
        }
        ev = {name: Signal(name=f"ev_{name}") for name in flags}
        ev_v, ev_first, ev_dup_msg = Signal(), Signal(), Signal()
        ev_end, ev_data = Signal(), Signal()     # a passed packet's last beat; it carries blocks
        ev_hdr_only, ev_hb, ev_eos, ev_msg = Signal(), Signal(), Signal(), Signal()
        ev_mismatch, ev_short_hdr, ev_err = Signal(), Signal(), Signal()
        m.d.sync += [
            ev_v.eq(cv),
            ev_end.eq(cv & c_last & ((c_pass & ~c_first) | c_hpass)),
            ev_hdr_only.eq(cv & c_hpass & ~c_hdata),
            ev_hb.eq(cv & c_hpass & c_hb),
            ev_eos.eq(cv & c_hpass & c_eos),
            ev_msg.eq(cv & c_bend & c_open),
            ev_mismatch.eq(cv & c_hdone & ~c_hpass),
            ev_short_hdr.eq(cv & c_last & ~c_err & (c_first | c_hdr_s) & ~c_hdone),
            ev_err.eq(cv & c_err),
        ]
        with m.If(cv):
            m.d.sync += [
                ev_first.eq(c_first),
                ev_dup_msg.eq(c_bend & ~c_open),
                ev_data.eq((c_data & ~c_first) | c_hdata),
            ]
            m.d.sync += [ev[name].eq(events[name]) for name in flags]

        # Per-packet counts, committed once the duplicate-packet decision is known.
        acc = {name: Signal(name=f"acc_{name}") for name in flags}
        acc_next = {name: Signal(name=f"acc_{name}_next") for name in flags}
        acc_dup = Signal(COUNT_BITS)
        acc_dup_next = Signal(COUNT_BITS)
        m.d.comb += acc_dup_next.eq(Mux(ev_first, 0, acc_dup) + ev_dup_msg)
        for name in flags:
            m.d.comb += acc_next[name].eq((acc[name] & ~ev_first) | ev[name])
        with m.If(ev_v):
            m.d.sync += acc_dup.eq(acc_dup_next)
            m.d.sync += [acc[name].eq(acc_next[name]) for name in flags]

        held = {name: Signal(name=f"held_{name}") for name in flags}
        held_dup = Signal(COUNT_BITS)
        held_data = Signal()
        commit = Signal()
        m.d.sync += commit.eq(ev_end)
        with m.If(ev_end):
            m.d.sync += [held_dup.eq(acc_dup_next), held_data.eq(ev_data)]
            m.d.sync += [held[name].eq(acc_next[name]) for name in flags]
        dropped = held_data & dup_packet
        keep_counts = commit & ~dropped

        # --- Counters: each adds an increment registered the cycle before.
        def bump(name, by):
            counter = getattr(stats, name)
            inc = Signal(len(by), name=f"inc_{name}")
            m.d.sync += [inc.eq(by), counter.eq(counter + inc)]

        bump("packets", ev_hdr_only + (commit & held_data & ~dup_packet))
        bump("messages", ev_msg)
        bump("heartbeats", ev_hb)
        bump("end_of_session", ev_eos)
        bump("dup_packets", commit & dropped)
        bump("dup_messages", Mux(keep_counts, held_dup, 0))
        bump("gaps", gap_push)
        bump("gap_messages", Mux(gap_push, gap_count, 0))
        bump("gap_overflow", gap_push & ~gap_fifo.w_rdy)
        bump("session_mismatch", ev_mismatch)
        bump("short_header", ev_short_hdr)
        for name in flags:
            bump(name, keep_counts & held[name])
        bump("frame_error", ev_err)

        with m.If(ev_eos):
            m.d.sync += ended.eq(1)

        m.d.comb += [
            self.status.expected.eq(expected),
            self.status.session.eq(session),
            self.status.session_valid.eq(session_valid),
            self.status.ended.eq(ended),
        ]
        return m
