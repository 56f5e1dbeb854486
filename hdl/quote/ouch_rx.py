"""OUCH 5.0 order entry, inbound: the exchange's SoupBinTCP packets in, typed answers out.

Twin of :class:`sim.ouch_rx.OuchRx`, whose docstring states the semantics: one SoupBinTCP packet
per frame; sequenced data packets carrying Order Accepted, Replaced, Canceled, Executed or
Rejected are delivered as one :data:`AnswerLayout` each; every frame is counted once under the
first :class:`~sim.ouch_rx.OuchRxStat` reason that applies (damaged, truncated, trailing bytes,
another packet type, longer than the buffer, unknown message type, malformed message, skipped
System Event, answer). Messages are checked as :func:`sim.wire.ouch.decode` checks them: length
against the fixed fields and the Appendage Length, and the TagValue elements' lengths.

How it works
------------
The frame's beats are stored in a buffer of ``max_packet`` bytes (beats past it are only
counted) while its length is counted. The cycle after the last beat, every check is made in
parallel from the buffer at the offsets of the model's tables, one set per message type, and
the answer's fields are picked the same way; one multiplexer per field selects the message
type's. A non-empty appendage is then walked, one TagValue element per cycle, before the answer
is offered.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.ouch import (
    ANSWER_FIELDS,
    ANSWER_MESSAGES,
    APPENDAGE_LENGTH_BYTES,
    LENGTH_BYTES,
    MESSAGE_OFFSET,
    OUTBOUND_SPECS,
    PACKET_LENGTH,
    PACKET_TYPE_OFFSET,
    SEQUENCED_DATA,
    Appendage,
    OutboundType,
    read_field,
)
from hdl.stats import count, stats_layout
from sim.ouch_rx import DEFAULT_MAX_PACKET, OuchRxStat
from sim.wire.field import Field
from sim.wire.ouch import FieldKind

__all__ = ["AnswerLayout", "OuchRx"]

#: One answer: its OUCH message type and the fields of :data:`sim.ouch_rx.ANSWER_FIELDS`
#: (integers; one-character fields as their code; 0 where the message has no such field).
AnswerLayout = data.StructLayout({"type": OutboundType, **ANSWER_FIELDS})

# Frames are counted in beats up to this, far beyond the longest packet a length can announce.
_BEAT_COUNT_BITS = 14
assert BEAT_BYTES << _BEAT_COUNT_BITS > LENGTH_BYTES + (1 << 8 * LENGTH_BYTES)


def _appendage_length(spec) -> Field:
    """The Appendage Length as a field after the fixed ones (the constructor checks that the
    buffer holds it for every outbound message)."""
    return Field("appendage_length", spec.fixed_length, APPENDAGE_LENGTH_BYTES, FieldKind.UINT)


class OuchRx(wiring.Component):
    """OUCH 5.0 decoder of the exchange's answers, frame by frame.

    Parameters
    ----------
    max_packet : int
        Bytes of the buffer, a multiple of 8: the longest frame (length field included) whose
        message is decoded; longer ones are counted as ``OVERSIZED``.

    Ports
    -----
    i : In(BeatStream())
        One SoupBinTCP packet per frame, from lane 0 of its first beat; middle beats full; the
        last beat's ``keep`` marks its bytes from lane 0 (its highest set lane counts); ``error``
        on the last beat marks a damaged frame. Frames are delimited by ``last``; ``first`` is
        not used.
    o : Out(stream.Signature(AnswerLayout))
        The answers in arrival order.
    stats : Out(stats_layout(OuchRxStat))
        48-bit counters, each frame counted once, 2 cycles after its verdict.

    Latency
    -------
    2 cycles from a frame's last beat accepted to its answer offered, plus one cycle per
    TagValue element of its appendage.

    Throughput
    ----------
    One beat per cycle within a frame; after its last beat the input waits 1 cycle for the
    checks, 1 per TagValue element, and for an answer until it is taken: a frame of ``n`` beats
    every ``n + 2`` cycles (``n + 1`` when nothing is delivered) with ``o`` always ready.

    Bad input
    ---------
    Every frame that is not a well-formed answer is dropped whole and counted under the first
    reason that applies (see ``sim/ouch_rx.py``); nothing is delivered from it and nothing
    stalls. Frame lengths are counted beyond any packet length, so no frame wraps a counter.
    """

    i: In(BeatStream())
    o: Out(stream.Signature(AnswerLayout))
    stats: Out(stats_layout(OuchRxStat))

    def __init__(self, *, max_packet: int = DEFAULT_MAX_PACKET):
        longest = max(MESSAGE_OFFSET + spec.fixed_length + APPENDAGE_LENGTH_BYTES
                      for spec in OUTBOUND_SPECS.values())
        if max_packet % BEAT_BYTES or max_packet < longest:
            raise ValueError(f"max_packet must be a multiple of {BEAT_BYTES} of at least "
                             f"{longest}, got {max_packet}")
        self._max_packet = max_packet
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        beat, stats = self.i.payload, self.stats
        size = self._max_packet
        buf = [Signal(8 * BEAT_BYTES, name=f"buf{k}") for k in range(size // BEAT_BYTES)]
        flat = Cat(*buf)
        packet = [flat[8 * k:8 * k + 8] for k in range(size)]

        index = Signal(_BEAT_COUNT_BITS)       # beats of the frame so far, saturating
        n_bytes = Signal(_BEAT_COUNT_BITS + 4)
        damaged = Signal()
        tail = Signal(range(BEAT_BYTES + 1))   # bytes of the last beat
        m.d.comb += tail.eq(0)
        for k in range(BEAT_BYTES):
            with m.If(beat.keep[k]):
                m.d.comb += tail.eq(k + 1)

        # --- The checks of the frame in the buffer, all in parallel (see sim/ouch_rx.py).
        length = read_field(packet, PACKET_LENGTH, base=0)
        payload_len = Signal(8 * LENGTH_BYTES)
        m.d.comb += payload_len.eq(length - 1)
        announced = length + LENGTH_BYTES
        truncated = (n_bytes < MESSAGE_OFFSET) | (length == 0) | (n_bytes < announced)
        trailing = n_bytes > announced
        other = packet[PACKET_TYPE_OFFSET] != SEQUENCED_DATA
        oversized = n_bytes > size
        msg_type = packet[MESSAGE_OFFSET]

        specs = list(OUTBOUND_SPECS.values())
        is_type = {spec.type: msg_type == spec.code for spec in specs}
        # An empty payload has no type byte: it is malformed, not of an unknown type.
        unknown = (payload_len != 0) & ~Cat(*is_type.values()).any()
        bad = Signal()
        walk = Signal()             # the appendage holds TagValue elements to check
        walk_from = Signal(range(size + 1))
        answer = Signal()
        m.d.comb += bad.eq(payload_len == 0)
        for spec in specs:
            fixed = spec.fixed_length
            at = MESSAGE_OFFSET + fixed
            app_len = read_field(packet, _appendage_length(spec))
            exact = payload_len == fixed
            with_app = ((payload_len >= fixed + APPENDAGE_LENGTH_BYTES)
                        & (payload_len == fixed + APPENDAGE_LENGTH_BYTES + app_len))
            if spec.appendage is Appendage.NONE:
                ok, elements = exact, 0
            elif spec.appendage is Appendage.OPTIONAL:
                ok, elements = exact | with_app, ~exact & (app_len != 0)
            else:
                ok, elements = with_app, app_len != 0
            with m.If(is_type[spec.type]):
                m.d.comb += [
                    bad.eq((payload_len == 0) | ~ok),
                    walk.eq(elements),
                    walk_from.eq(at + APPENDAGE_LENGTH_BYTES),
                    answer.eq(any(cls.SPEC is spec for cls in ANSWER_MESSAGES)),
                ]

        # --- The answer's fields, from the type's offsets.
        fields = {name: Signal(width, name=f"field_{name}")
                  for name, width in ANSWER_FIELDS.items()}
        for cls in ANSWER_MESSAGES:
            with m.If(is_type[cls.SPEC.type]):
                for f in cls.SPEC.fields:
                    if f.name in fields:
                        m.d.comb += fields[f.name].eq(read_field(packet, f))

        # --- TagValue walk: one element per cycle.
        cursor = Signal(range(size + 1))
        end = Signal(range(size + 1))
        is_answer = Signal()
        element = flat.word_select(cursor[:(size - 1).bit_length()], 8)
        after = Signal(range(2 * size + 2))
        m.d.comb += after.eq(cursor + 1 + element)

        o_valid = Signal()
        m.d.comb += self.o.valid.eq(o_valid)
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)

        def deliver(when_answer, cond):
            count(m, stats.answers, cond & when_answer)
            count(m, stats.skipped, cond & ~when_answer)
            with m.If(cond & when_answer):
                m.d.sync += o_valid.eq(1)

        with m.FSM():
            with m.State("RECV"):
                m.d.comb += self.i.ready.eq(~o_valid)
                with m.If(self.i.valid & self.i.ready):
                    for k, word in enumerate(buf):
                        with m.If(index == k):
                            m.d.sync += word.eq(beat.data)
                    m.d.sync += index.eq(Mux(index.all(), index, index + 1))
                    with m.If(beat.last):
                        m.d.sync += [
                            n_bytes.eq(Cat(Const(0, 3), index) + tail),
                            damaged.eq(beat.error),
                            index.eq(0),
                        ]
                        m.next = "CHECK"
            with m.State("CHECK"):
                # Each frame gets one verdict, the first that applies.
                v = {}
                rest = Signal(name="no_verdict_yet")
                m.d.comb += rest.eq(1)
                for stat, cond in ((OuchRxStat.FRAME_ERROR, damaged),
                                   (OuchRxStat.TRUNCATED, truncated),
                                   (OuchRxStat.TRAILING_BYTES, trailing),
                                   (OuchRxStat.OTHER_PACKETS, other),
                                   (OuchRxStat.OVERSIZED, oversized),
                                   (OuchRxStat.UNKNOWN_TYPE, unknown),
                                   (OuchRxStat.BAD_MESSAGE, bad)):
                    v[stat] = Signal(name=f"verdict_{stat.name.lower()}")
                    m.d.comb += v[stat].eq(rest & cond)
                    count(m, getattr(stats, stat.name.lower()), v[stat])
                    rest = rest & ~cond
                m.d.sync += [self.o.payload.type.eq(msg_type), is_answer.eq(answer),
                             cursor.eq(walk_from), end.eq(n_bytes)]
                m.d.sync += [getattr(self.o.payload, name).eq(value)
                             for name, value in fields.items()]
                deliver(answer, rest & ~walk)
                with m.If(rest & walk):
                    m.next = "WALK"
                with m.Else():
                    m.next = "RECV"
            with m.State("WALK"):
                broken = (element == 0) | (after > end)
                finished = ~broken & (after == end)
                count(m, stats.bad_message, broken)
                deliver(is_answer, finished)
                m.d.sync += cursor.eq(after)
                with m.If(broken | finished):
                    m.next = "RECV"
        return m

