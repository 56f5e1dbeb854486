"""MoldUDP64 framing tests on fixed byte lanes, which the stage before MoldRx can make.

MoldRx decides its framing in the cycle a beat arrives: whether the header's count says heartbeat
or end of session, whether a length prefix is below the shortest message or ends its body in the
next beat, and whether the first block's sequence number is below the expected one. Each of these
tests is made once per lane the field can sit in, and MoldRx then picks the one its registered lane
names. None of the per-lane tests needs MoldRx's state: they read the beat's bytes, the previous
beat's last bytes and the expected sequence number. So a stage whose output register holds the beat
MoldRx will read next can make the tests from its own input and register them beside the beat
(:class:`MoldHintStage`); MoldRx then starts its framing from registers rather than from 16- and
24-bit compares of the beat's data. Standalone, MoldRx makes the same tests itself
(:func:`mold_lane_hints`), so both ways give the same bits.

Byte order: the count, the length prefix and the sequence number are big-endian, as in
:mod:`hdl.arch.mold`; lane ``k`` is byte ``k`` of the beat in wire order (:mod:`hdl.arch.beat`).
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES
from hdl.arch.mold import (
    END_OF_SESSION_COUNT,
    FIRST_TYPE_OFFSET,
    HEARTBEAT_COUNT,
    MIN_MESSAGE_LENGTH,
    SEQ_BITS,
    field_offsets,
)

__all__ = [
    "LATE_SEQ_BASES",
    "LATE_SEQ_OFFSETS",
    "MoldHintStage",
    "MoldLaneHints",
    "below",
    "mold_lane_hints",
]

#: The sequence number's bytes that can share a beat with the first block's type byte (the rest
#: are at least a beat earlier and are compared from MoldRx's registers).
LATE_SEQ_OFFSETS = [o for o in field_offsets("seq") if o + BEAT_BYTES > FIRST_TYPE_OFFSET]
#: Header offsets that lane 0 of that beat can hold while a late byte is in it.
LATE_SEQ_BASES = range(FIRST_TYPE_OFFSET - BEAT_BYTES + 1, LATE_SEQ_OFFSETS[-1] + 1)
# The late bytes before the base come from the previous beat, which must therefore be a beat of
# the same packet. Lane 0 of a packet's second beat holds an offset of at most BEAT_BYTES, so a
# beat whose lane 0 holds a base is at least the packet's third (MoldHintStage relies on it).
assert LATE_SEQ_BASES.start > BEAT_BYTES
_LATE_BITS = 8 * len(LATE_SEQ_OFFSETS)

#: Per-lane test results for one beat (bit ``k`` of each per-lane field is about lane ``k``).
MoldLaneHints = data.StructLayout({
    # A 2-byte count ending in lane k (its first byte in lane k - 1, or the previous beat's
    # lane 7 for k = 0) is HEARTBEAT_COUNT / END_OF_SESSION_COUNT / 1 (a single block).
    "heartbeat": BEAT_BYTES,
    "end_of_session": BEAT_BYTES,
    "count_one": BEAT_BYTES,
    # A length prefix starting in lane k (k = 7: in the previous beat's lane 7, ending in lane 0)
    # is below MIN_MESSAGE_LENGTH ...
    "short": BEAT_BYTES,
    # ... or, counted from the lane after the prefix, ends its body before the beat after next
    # (as the body is longer than a beat, that is in the next beat).
    "ends_next": BEAT_BYTES,
    # seq_below[i]: with header offset LATE_SEQ_BASES[i] in lane 0, the late sequence bytes (from
    # this beat and the previous one) are below the expected number's low bytes.
    "seq_below": len(LATE_SEQ_BASES),
})


def below(value, bound: int):
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


def mold_lane_hints(lanes, prev, expected) -> dict:
    """The values of :data:`MoldLaneHints`' fields for one beat.

    ``lanes`` and ``prev`` are the beat's and the previous beat's 8-bit lanes (only ``prev``'s
    last lanes are read); ``expected`` is the expected sequence number (its low bytes are read).
    """
    last_prev = prev[BEAT_BYTES - 1]
    # Byte before lane k, and byte after lane k, across the beat boundary where needed.
    before = [last_prev, *lanes[:-1]]
    counts = [Cat(lanes[k], before[k]) for k in range(BEAT_BYTES)]
    prefix_first = [*lanes[:-1], last_prev]
    prefix_second = [*lanes[1:], lanes[0]]
    seq_below = []
    for base in LATE_SEQ_BASES:
        # Header offset o sits in lane o - base, or in lane o - base + 8 of the previous beat.
        late = [lanes[o - base] if o >= base else prev[o - base + BEAT_BYTES]
                for o in LATE_SEQ_OFFSETS]
        seq_below.append(Cat(*reversed(late)) < expected[:_LATE_BITS])
    return {
        "heartbeat": Cat(*[count == HEARTBEAT_COUNT for count in counts]),
        "end_of_session": Cat(*[count == END_OF_SESSION_COUNT for count in counts]),
        "count_one": Cat(*[count == 1 for count in counts]),
        "short": Cat(*[below(Cat(prefix_second[k], prefix_first[k]), MIN_MESSAGE_LENGTH)
                       for k in range(BEAT_BYTES)]),
        "ends_next": Cat(*[below(Cat(prefix_second[k], prefix_first[k]),
                                 2 * BEAT_BYTES - (k + 1) % BEAT_BYTES)
                           for k in range(BEAT_BYTES)]),
        "seq_below": Cat(*seq_below),
    }


class MoldHintStage(wiring.Component):
    """Registers :data:`MoldLaneHints` beside the output register of the stage before MoldRx.

    The stage before (``UdpRx`` in the feed ingress) passes its input beats on in their lanes
    through one output register; this component watches that stage's input and its register's
    load strobe, so that ``hints`` always describe the beat in that register, which is the beat
    MoldRx reads. ``prev`` is the beat loaded before it: the beat MoldRx took before, for every
    beat but a packet's first (whose tests never look back).

    Ports
    -----
    data : In(64)
        The input beat of the stage before, as it will be loaded.
    load : In(1)
        That stage's output register loads ``data`` this cycle.
    expected : In(SEQ_BITS)
        MoldRx's expected sequence number. It may only change in a cycle that cannot load a beat
        whose ``seq_below`` MoldRx will read (MoldRx's ``status.expected`` meets this: it settles
        the cycle after a packet's last beat, before the next packet's third beat can load).
    hints : Out(MoldLaneHints)
        The tests of the beat in the register: for ``MoldRx(hinted=True).i_hints``.

    Latency: ``hints`` is registered with the beat. Throughput: one beat per cycle.
    """

    data: In(8 * BEAT_BYTES)
    load: In(1)
    expected: In(SEQ_BITS)
    hints: Out(MoldLaneHints)

    def elaborate(self, platform):
        m = Module()
        prev = Signal(8 * BEAT_BYTES)
        lanes = [self.data.word_select(k, 8) for k in range(BEAT_BYTES)]
        prev_lanes = [prev.word_select(k, 8) for k in range(BEAT_BYTES)]
        values = mold_lane_hints(lanes, prev_lanes, self.expected)
        with m.If(self.load):
            m.d.sync += prev.eq(self.data)
            m.d.sync += [getattr(self.hints, name).eq(value) for name, value in values.items()]
        return m
