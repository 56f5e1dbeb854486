"""The ITCH 5.0 decode stage: message beats in, typed order-book events out.

Twin of ``sim/itch_decode.py``; which message field feeds which event field comes from
``sim.itch_decode.EVENT_SOURCES`` and the offsets from ``sim.wire.itch``, so nothing here names a
message type or an offset.

How a message is gathered. The Mold stage leaves each message in its original lanes: byte ``k``
of a message whose type byte sits in lane ``s`` is in beat ``(s + k) // 8`` (counted from the
start beat), lane ``(s + k) % 8``. Rotating every beat of the message by ``s`` (rotated lane ``j``
is input lane ``(j + s) % 8``) puts byte ``k`` in rotated lane ``k % 8``, arriving in beat
``k // 8`` if ``k % 8 < 8 - s`` and in beat ``k // 8 + 1`` otherwise. So each stored byte has a
fixed rotated lane and is written when a one-hot beat counter reaches one of two positions, picked
by a mask registered from ``s`` at the start. Only the bytes some event needs are stored; on the
last beat they are taken from the store, or straight from the rotated beat for the bytes that
arrive with it, into the registered output. A beat that ends one message and starts the next
is rotated twice: by the old ``s`` for the ending message and by the new start lane for the
header bytes of the new one.

The message type and its length are checked when the message starts and kept as one flag per
type, "this type, at its spec length", so the last beat only has to OR a few registered flags.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.itch import field_offsets, spec_of, wire_field
from hdl.feed.itch_event import ItchEventLayout, ItchEventStream
from hdl.feed.message_beat import MessageBeatStream
from hdl.stats import count, stats_layout
from sim.itch_decode import (
    EVENT_SOURCES,
    HEADER_SOURCES,
    STAT_OF_TYPE,
    ItchDecodeStat,
)
from sim.itch_event import EVENT_FIELD_BITS, Side
from sim.wire.itch import BUY_INDICATOR, HEADER_FIELDS, MESSAGE_SPECS, SELL_INDICATOR

__all__ = ["ItchDecode"]

_LANES = 8


@dataclass(frozen=True)
class _Plan:
    """What the decoder stores, worked out from the message and event tables.

    ``needed``: the message offsets some event field reads (the side byte excepted: it is kept as
    two flags, at ``side_offset``); ``beats``: width of the one-hot beat counter, enough to reach
    the latest beat a needed byte can arrive in (``k // 8 + 1``).
    """

    needed: tuple[int, ...]
    side_offset: int
    side_types: tuple[str, ...]
    beats: int


def _plan() -> _Plan:
    needed = set()
    side_types = tuple(t for t, source in EVENT_SOURCES.items() if "side" in source.fields)
    side_offsets = {spec_of(t).field(EVENT_SOURCES[t].fields["side"]).offset for t in side_types}
    if len(side_offsets) != 1:
        raise ValueError(f"add orders place the side at different offsets {side_offsets}")
    (side_offset,) = side_offsets
    for msg_type, source in EVENT_SOURCES.items():
        spec = spec_of(msg_type)
        for name, wire in (HEADER_SOURCES | source.fields).items():
            if name != "side":
                needed.update(field_offsets(spec.field(wire)))
        # The side flags are taken as the byte goes by, from the message in progress, so the
        # byte must not arrive in the last beat (which holds only the last 8 bytes).
        if msg_type in side_types and side_offset >= spec.length - _LANES:
            raise ValueError(f"ITCH {msg_type!r}: side byte may arrive in the last beat")
    return _Plan(tuple(sorted(needed)), side_offset, side_types, max(needed) // _LANES + 2)


_PLAN = _plan()
_HEADER_FIELD = {field.name: field for field in HEADER_FIELDS}


def _rotate(data, lane):
    """``data`` rotated so that input byte lane ``lane`` lands in lane 0."""
    return Cat(data, data).bit_select(lane * 8, 8 * _LANES)


def _lane(value, j):
    return value[8 * j:8 * j + 8]


class ItchDecode(wiring.Component):
    """Decode ITCH 5.0 messages into :data:`~hdl.feed.itch_event.ItchEventLayout` events.

    Ports
    -----
    i : In(MessageBeatStream())
        Message beats from the MoldUDP64 stage (see ``hdl/feed/message_beat.py`` for the
        contract: at most one start and one end per beat, a message never starts and ends in the
        same beat, ``end`` with ``error`` abandons the message in progress).
    o : Out(ItchEventStream())
        One event per well-formed A, F, E, C, X, D, U, S, R or H message, in input order, with the
        fields listed in ``sim/itch_event.py`` and every other field 0.
    stats : Out(stats_layout(ItchDecodeStat))
        48-bit counters, one per :class:`~sim.itch_decode.ItchDecodeStat`; each completed message
        is counted once (see ``sim/itch_decode.py``). Abandoned messages are not counted here
        (the Mold stage counts them).

    Latency
    -------
    1 cycle: the event is valid at ``o`` the cycle after the beat carrying the message's last byte
    is accepted.

    Throughput
    ----------
    One beat per cycle while ``o`` is ready (at most one event per beat, which the message-beat
    contract guarantees). While ``o`` holds an event that is not taken, only a beat that would
    produce another event waits; other beats (message bodies, skipped types) keep flowing. So
    ``i.ready`` is combinational from ``o.ready`` and the offered beat's ``end`` and ``error``.

    Bad input
    ---------
    A type byte the spec does not define counts ``UNKNOWN_TYPE``; a known type whose length is not
    the spec's counts ``BAD_LENGTH``; an add order whose buy/sell indicator is neither ``B`` nor
    ``S`` counts ``BAD_SIDE``. None of these emits an event or stalls. Beats outside a message
    (``end`` with no message in progress, data with no start) are ignored; a ``start`` while a
    message is in progress begins the new message (the Mold stage never sends either).
    """

    i: In(MessageBeatStream())
    o: Out(ItchEventStream())
    stats: Out(stats_layout(ItchDecodeStat))

    def elaborate(self, platform):
        m = Module()
        beat = self.i.payload
        accept = self.i.valid & self.i.ready

        types = list(MESSAGE_SPECS)

        # Per-message state, loaded by the start beat.
        busy = Signal()                    # a message is in progress
        lane0 = Signal(3)                  # lane of its type byte
        late = Signal(_LANES)              # rotated lane j arrives one beat late: j >= 8 - lane0
        nxt = Signal(_PLAN.beats)          # one-hot: index of the message's next beat
        seq = Signal(64)
        known = Signal()                   # the type byte is a type of the spec
        good = Signal(len(types))          # per type: this type, at the spec's length

        store = {k: Signal(8, name=f"byte{k}") for k in _PLAN.needed}
        side_ok = Signal()                 # the side byte is B or S
        side_sell = Signal()

        rot = _rotate(beat.data, lane0)              # the message in progress
        rot_new = _rotate(beat.data, beat.start_lane)  # a message starting in this beat

        def writes(k):
            """The beat being offered carries byte k of the message in progress."""
            j, word = k % _LANES, k // _LANES
            return Mux(late[j], nxt[word + 1], nxt[word])

        # The message's bytes as of the end of this beat: stored, or arriving now.
        current = {}
        for k, stored in store.items():
            current[k] = Signal(8, name=f"cur{k}")
            m.d.comb += current[k].eq(Mux(writes(k), _lane(rot, k % _LANES), stored))

        with m.If(accept):
            for k, stored in store.items():
                if k < _LANES:
                    # Header bytes of a message starting in this beat.
                    with m.If(beat.start & (beat.start_lane + k < _LANES)):
                        m.d.sync += stored.eq(_lane(rot_new, k))
                    with m.Else():
                        m.d.sync += stored.eq(current[k])
                else:
                    m.d.sync += stored.eq(current[k])
            with m.If(writes(_PLAN.side_offset)):
                side_byte = _lane(rot, _PLAN.side_offset % _LANES)
                m.d.sync += [
                    side_ok.eq((side_byte == ord(BUY_INDICATOR)) |
                               (side_byte == ord(SELL_INDICATOR))),
                    side_sell.eq(side_byte == ord(SELL_INDICATOR)),
                ]

        # Start: classify the type byte (rotated lane 0) and the length once, for the whole
        # message.
        type_byte = _lane(rot_new, 0)
        type_is = {t: type_byte == MESSAGE_SPECS[t].code for t in types}
        with m.If(accept):
            with m.If(beat.end):
                m.d.sync += [busy.eq(0), nxt.eq(0)]
            with m.Else():
                m.d.sync += nxt.eq(nxt << 1)
            with m.If(beat.start):
                m.d.sync += [
                    busy.eq(1),
                    lane0.eq(beat.start_lane),
                    late.eq(Cat(j + beat.start_lane >= _LANES for j in range(_LANES))),
                    nxt.eq(0b10),
                    seq.eq(beat.seq),
                    known.eq(Cat(type_is.values()).any()),
                    good.eq(Cat(type_is[t] & (beat.length == MESSAGE_SPECS[t].length)
                                for t in types)),
                ]

        good_of = {t: good[n] for n, t in enumerate(types)}
        side_types, event_types = _PLAN.side_types, list(EVENT_SOURCES)
        side_needed = Cat(good_of[t] for t in side_types).any()
        side_fine = ~side_needed | side_ok
        done = accept & beat.end & busy & ~beat.error
        emit_type = Cat(good_of[t] for t in event_types).any()
        emit = done & emit_type & side_fine

        # Output register; only a beat that would emit waits for it.
        m.d.comb += self.i.ready.eq(~(self.o.valid & ~self.o.ready & beat.end & busy &
                                      emit_type & ~beat.error))
        event = Signal(ItchEventLayout)
        for name in ItchEventLayout.members:
            m.d.comb += getattr(event, name).eq(self._event_field(name, good_of, current,
                                                                  side_sell, seq))
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(emit):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(event)]

        # Counters: every completed message exactly once.
        for t in types:
            fine = side_fine if t in side_types else 1
            count(m, getattr(self.stats, STAT_OF_TYPE[t].name.lower()), done & good_of[t] & fine)
        count(m, self.stats.bad_side, done & side_needed & ~side_ok)
        count(m, self.stats.bad_length, done & known & ~good.any())
        count(m, self.stats.unknown_type, done & ~known)
        return m

    @staticmethod
    def _event_field(name, good_of, current, side_sell, seq):
        """The value of event field ``name`` for whichever type the message is (0 if unset)."""
        if name == "kind":
            return _one_hot_or([(good_of[t], Const(source.kind, EVENT_FIELD_BITS["kind"]))
                                for t, source in EVENT_SOURCES.items()])
        if name == "seq":
            return seq
        if name == "side":
            has_side = Cat(good_of[t] for t, source in EVENT_SOURCES.items()
                           if "side" in source.fields).any()
            return Mux(has_side & side_sell, Side.SELL, Side.BUY)
        if name in HEADER_SOURCES:
            # Same offset in every message: no selection.
            return wire_field(current, _HEADER_FIELD[HEADER_SOURCES[name]])
        # Group the types that read the same bytes, so each distinct source is selected once.
        by_field = {}
        for t, source in EVENT_SOURCES.items():
            wire = source.fields.get(name)
            if wire is not None:
                by_field.setdefault(spec_of(t).field(wire), []).append(good_of[t])
        return _one_hot_or([(Cat(flags).any(), wire_field(current, field))
                            for field, flags in by_field.items()])


def _one_hot_or(choices):
    """OR of ``value`` gated by ``select`` over ``choices``; the selects are mutually exclusive."""
    result = Const(0, 1)
    for select, value in choices:
        result = result | (value & select.replicate(len(value)))
    return result


