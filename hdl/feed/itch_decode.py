"""The ITCH 5.0 decode stage: message beats in, typed order-book events out.

Twin of ``sim/itch_decode.py``; which message field feeds which event field comes from
``sim.itch_decode.EVENT_SOURCES`` and the offsets from ``sim.wire.itch``, so nothing here names a
message type or an offset.

How a message is gathered. The Mold stage leaves each message in its original lanes: byte ``k``
of a message whose type byte sits in lane ``s`` is in beat ``(s + k) // 8`` (counted from the
start beat), lane ``(s + k) % 8``. Rotating every beat of the message by ``s`` (rotated lane ``j``
is input lane ``(j + s) % 8``, an index registered per rotated lane at the start, so that no one
register drives the multiplexers of all 64 bits) puts byte ``k`` in rotated lane ``k % 8``,
arriving in beat ``k // 8`` if ``k % 8 < 8 - s`` and in beat ``k // 8 + 1`` otherwise. So each
stored byte has a fixed rotated lane and is written when a one-hot beat counter reaches one of two
positions, picked by a mask registered from ``s`` at the start. It is written whenever that beat
is offered: a beat that waits is offered again unchanged, and the counter moves only when it is
taken. Only the bytes some event needs are stored. The header bytes are also written when a start
beat is taken, from the beat rotated by the new start lane (those not in that beat are
overwritten by the next one), so a beat that ends one message and starts the next serves both.
The side byte of an add order is stored the same way and checked in the next cycle, at least a
beat before the last.

How a message is classified. When the start beat is taken, the type byte is compared with every
event type's code in all eight lanes at once (no lane multiplexer in front of the compare), the
length with the spec's, and the result is kept as one flag per event type: "this type, at its
spec length".

How the event is built. Only a message of its type's spec length makes an event, and in such a
message each event byte comes from a place that depends on nothing but the type and ``s``: from
rotated lane ``k % 8`` of the last beat, or from stored byte ``k``. So in every cycle the type flags
and ``s`` are turned into registered "take this source" flags, one per event byte and source, and
on the last beat each event byte is an AND-OR of a few rotated lanes and stored bytes under those
flags, the skid register (below) being one more source. The flags are ready from the second beat
after the start on, and are cleared when a start beat is taken, so they never speak for the
previous message. Only types of at most 16 bytes (``S`` in ITCH 5.0) can end sooner, in the beat
right after their start; their flags are their type flag and, per byte, an "arrives in the last
beat" flag registered from ``s`` at the start.

Counters are decided in two registered steps after the last beat, from copies of the message's
type byte, length class and side check, so the compares against all the type codes are off the
path of the event.
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
from sim.wire.itch import BUY_INDICATOR, MESSAGE_SPECS, SELL_INDICATOR

__all__ = ["ItchDecode"]

_LANES = 8


def _in_last_beat(msg_type: str, offset: int, lane: int) -> bool:
    """Byte ``offset`` of a ``msg_type`` message of the spec's length whose type byte is in
    ``lane`` arrives in the message's last beat."""
    return (lane + offset) // _LANES == (lane + spec_of(msg_type).length - 1) // _LANES


@dataclass(frozen=True)
class _Plan:
    """What the decoder stores and selects, worked out from the message and event tables.

    ``event_bytes``: per event byte copied from the message, ``(field name, byte index)``, the
    message offset it is read from, per event type that sets it; ``needed``: every such offset
    (the store; the side byte is kept as two flags instead, at ``side_offset``); ``short``: the
    event types short enough to end in the beat right after their start beat; ``beats``: width of
    the one-hot beat counter, enough to reach the latest beat a needed byte can arrive in
    (``k // 8 + 1``).
    """

    event_bytes: dict[tuple[str, int], dict[str, int]]
    needed: tuple[int, ...]
    side_offset: int
    side_types: tuple[str, ...]
    short: tuple[str, ...]
    beats: int


def _plan() -> _Plan:
    event_bytes = {}
    for msg_type, source in EVENT_SOURCES.items():
        spec = spec_of(msg_type)
        for name, wire in (HEADER_SOURCES | source.fields).items():
            if name == "side":
                continue
            field = spec.field(wire)
            if 8 * field.size > EVENT_FIELD_BITS[name]:
                raise ValueError(f"ITCH {msg_type!r}: {wire} does not fit event field {name}")
            # Ask ``wire_field`` which message byte lands in each byte of the event field.
            placed = Const.cast(wire_field({k: Const(k, 8) for k in field_offsets(field)},
                                           field)).value
            for index in range(field.size):
                offset = (placed >> (8 * index)) & 0xFF
                event_bytes.setdefault((name, index), {})[msg_type] = offset
    needed = sorted({k for by_type in event_bytes.values() for k in by_type.values()})

    side_types = tuple(t for t, source in EVENT_SOURCES.items() if "side" in source.fields)
    side_offsets = {spec_of(t).field(EVENT_SOURCES[t].fields["side"]).offset for t in side_types}
    if len(side_offsets) != 1:
        raise ValueError(f"add orders place the side at different offsets {side_offsets}")
    (side_offset,) = side_offsets
    for msg_type in side_types:
        # The side byte is stored as it goes by, in a beat after the start beat, and checked in
        # the next cycle; the last beat reads the check, so the byte must come two beats before.
        if not _LANES <= side_offset < spec_of(msg_type).length - 2 * _LANES:
            raise ValueError(f"ITCH {msg_type!r}: side byte in the first or last two beats")
    short = tuple(t for t in EVENT_SOURCES if spec_of(t).length <= 2 * _LANES)
    return _Plan(event_bytes, tuple(needed), side_offset, side_types, short,
                 max(needed) // _LANES + 2)


_PLAN = _plan()


def _rotate(data, lane):
    """``data`` rotated so that input byte lane ``lane`` lands in lane 0."""
    return Cat(data, data).bit_select(lane * 8, 8 * _LANES)


def _lane(value, j):
    return value[8 * j:8 * j + 8]


def _any(terms):
    terms = list(terms)
    return Cat(terms).any() if terms else Const(0, 1)


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
        is counted once (see ``sim/itch_decode.py``), ``COUNTER_LATENCY + 2`` clock edges after
        the cycle its last beat is accepted in (``hdl/stats.py``). Abandoned messages are not
        counted here (the Mold stage counts them).

    Latency
    -------
    1 cycle: the event is valid at ``o`` the cycle after the beat carrying the message's last byte
    is accepted.

    Throughput
    ----------
    One beat per cycle while ``o`` is ready (at most one event per beat, which the message-beat
    contract guarantees). An event that finds ``o`` occupied waits in a skid register, and only
    while that register is full does ``i.ready`` fall: ``i.ready`` is a flip-flop, so the ready
    chain of the ingress ends here.

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
        accept, begin = Signal(), Signal()
        m.d.comb += [
            accept.eq(self.i.valid & self.i.ready),
            begin.eq(accept & beat.start),  # a message starts: its registers load
        ]
        event_types = list(EVENT_SOURCES)
        lengths = sorted({spec.length for spec in MESSAGE_SPECS.values()})

        # Per-message state, loaded by the start beat.
        busy = Signal()                    # a message is in progress
        lane0 = Signal(3)                  # the lane of its type byte, s
        # Rotated lane j is input lane (j + s) % 8: an index per rotated lane, so that no one
        # register drives the multiplexers of all 64 bits.
        source = [Signal(3, name=f"source{j}") for j in range(_LANES)]
        late = Signal(_LANES)              # rotated lane j arrives one beat late: j >= 8 - s
        nxt = Signal(_PLAN.beats)          # one-hot: index of the message's next beat
        seq = Signal(64)
        good = Signal(len(event_types))    # per event type: this type, at the spec's length
        type_byte = Signal(8)              # for the counters
        length_is = Signal(len(lengths))   # one-hot: which spec length the length is, if any

        rot = Signal(64)                   # the beat, rotated for the message in progress
        rot_new = Signal(64)               # the beat, rotated for a message starting in it
        m.d.comb += [
            rot.eq(Cat(beat.data.word_select(lane, 8) for lane in source)),
            rot_new.eq(_rotate(beat.data, beat.start_lane)),
        ]
        lane_is = Signal(_LANES)           # one-hot: the start lane of the offered beat
        m.d.comb += lane_is.eq(Cat(beat.start_lane == s for s in range(_LANES)))
        length_of = {length: beat.length == length for length in lengths}

        def starts_as(msg_type):
            """The type byte of a message starting in this beat is ``msg_type``'s code: compared
            in every lane, so that no lane multiplexer stands in front of the compare."""
            code = MESSAGE_SPECS[msg_type].code
            return _any((_lane(beat.data, s) == code) & lane_is[s] for s in range(_LANES))

        with m.If(accept):
            with m.If(beat.end):
                m.d.sync += [busy.eq(0), nxt.eq(0)]
            with m.Else():
                m.d.sync += nxt.eq(nxt << 1)
        with m.If(begin):
            m.d.sync += [
                busy.eq(1),
                lane0.eq(beat.start_lane),
                [lane.eq(beat.start_lane + j) for j, lane in enumerate(source)],
                late.eq(Cat(j + beat.start_lane >= _LANES for j in range(_LANES))),
                nxt.eq(0b10),
                seq.eq(beat.seq),
                good.eq(Cat(starts_as(t) & length_of[spec_of(t).length] for t in event_types)),
                type_byte.eq(_lane(rot_new, 0)),
                length_is.eq(Cat(length_of.values())),
            ]

        def writes(k):
            """The beat being offered carries byte k of the message in progress."""
            j, word = k % _LANES, k // _LANES
            return Mux(late[j], nxt[word + 1], nxt[word])

        # The store: written whenever the beat carrying the byte is offered (see above).
        store = {}
        for k in _PLAN.needed:
            stored = store[k] = Signal(8, name=f"byte{k}")
            if k < _LANES:
                # Written even if the byte is not in the start beat: the next beat then
                # overwrites it.
                with m.If(begin):
                    m.d.sync += stored.eq(_lane(rot_new, k))
                with m.Elif(writes(k)):
                    m.d.sync += stored.eq(_lane(rot, k % _LANES))
            else:
                with m.If(writes(k)):
                    m.d.sync += stored.eq(_lane(rot, k % _LANES))
        side_byte = Signal(8)
        with m.If(writes(_PLAN.side_offset)):
            m.d.sync += side_byte.eq(_lane(rot, _PLAN.side_offset % _LANES))
        side_ok = Signal()                 # the side byte is B or S
        side_sell = Signal()
        m.d.sync += [
            side_ok.eq((side_byte == ord(BUY_INDICATOR)) | (side_byte == ord(SELL_INDICATOR))),
            side_sell.eq(side_byte == ord(SELL_INDICATOR)),
        ]

        good_of = {t: good[n] for n, t in enumerate(event_types)}
        side_needed = _any(good_of[t] for t in _PLAN.side_types)

        # What the output register loads when it is free: the skid register's event if it holds
        # one, else the event of a message ending in this beat (made whatever the beat).
        skid_valid = Signal()
        skid = Signal(ItchEventLayout)
        event = Signal(ItchEventLayout)
        kind = _one_hot_or([(good_of[t], Const(source.kind, EVENT_FIELD_BITS["kind"]))
                            for t, source in EVENT_SOURCES.items()])
        m.d.comb += [
            event.kind.eq(Mux(skid_valid, skid.kind, kind)),
            event.seq.eq(Mux(skid_valid, skid.seq, seq)),
            event.side.eq(Mux(skid_valid, skid.side,
                              Mux(side_needed & side_sell, Side.SELL, Side.BUY))),
        ]
        # The bytes: an AND-OR of each byte's sources, the skid register being one more.
        takes = _Takes(m, good_of, lane0, lane_is, begin)
        skid_empty = Signal()
        m.d.comb += skid_empty.eq(~skid_valid)
        for (name, index), by_type in _PLAN.event_bytes.items():
            terms = []
            for (what, where), picks in _sources(by_type).items():
                use = Signal(name=f"use_{name}{index}_{what}{where}")
                m.d.comb += use.eq(takes.flag(f"{name}{index}_{what}{where}", picks) & skid_empty)
                terms.append((use, _lane(rot, where) if what == "lane" else store[where]))
            terms.append((skid_valid, getattr(skid, name)[8 * index:8 * index + 8]))
            m.d.comb += getattr(event, name)[8 * index:8 * index + 8].eq(_one_hot_or(terms))

        side_ok_or_none = ~side_needed | side_ok
        done, emit = Signal(), Signal()
        m.d.comb += [
            done.eq(accept & beat.end & busy & ~beat.error),
            emit.eq(done & good.any() & side_ok_or_none),
        ]

        # Output register and a skid register behind it. ``i.ready`` is the skid register's
        # emptiness, a flip-flop: ``o.ready`` reaches only the two output registers, not the
        # enables of the whole decoder. It has a flip-flop of its own (the inverse of
        # ``skid_valid``), because ``skid_valid`` drives every output byte's select and
        # ``i.ready`` heads the ready chain of the stages before.
        ready = Signal(init=1)
        m.d.comb += self.i.ready.eq(ready)
        with m.If(self.o.ready | ~self.o.valid):
            # The output register is free: the skid's event first (no event can be made while
            # it is full, as the input then waits), else this cycle's.
            m.d.sync += [
                self.o.valid.eq(skid_valid | emit),
                self.o.payload.eq(event),
                skid_valid.eq(0),
                ready.eq(1),
            ]
        with m.Else():
            # The skid register takes whatever is made while it is empty; only an emitted event
            # makes it full.
            with m.If(~skid_valid):
                m.d.sync += skid.eq(event)
            with m.If(emit):
                m.d.sync += [skid_valid.eq(1), ready.eq(0)]

        self._count(m, done, type_byte, length_is, lengths, side_ok)
        return m

    def _count(self, m, done, type_byte, length_is, lengths, side_ok):
        """Counters: every completed message exactly once.

        Decided in two registered steps after the last beat: copies of what the message brought
        (the registers behind them may already hold the next message's), then one outcome flag
        per counter; so the type compares reach neither the event nor the counters' adders.
        """
        types = list(MESSAGE_SPECS)
        ended, type_then, side_then = Signal(), Signal(8), Signal()
        length_then = Signal(len(lengths))
        m.d.sync += [ended.eq(done), type_then.eq(type_byte), length_then.eq(length_is),
                     side_then.eq(side_ok)]
        type_is = {t: Signal(name=f"type_is_{t}") for t in types}
        m.d.comb += [type_is[t].eq(type_then == MESSAGE_SPECS[t].code) for t in types]
        fits = {t: type_is[t] & length_then[lengths.index(MESSAGE_SPECS[t].length)]
                for t in types}
        outcomes = {STAT_OF_TYPE[t]: fits[t] & (side_then if t in _PLAN.side_types else 1)
                    for t in types}
        outcomes[ItchDecodeStat.BAD_SIDE] = _any(fits[t] for t in _PLAN.side_types) & ~side_then
        outcomes[ItchDecodeStat.BAD_LENGTH] = _any(type_is[t] & ~fits[t] for t in types)
        outcomes[ItchDecodeStat.UNKNOWN_TYPE] = ~_any(type_is.values())
        for stat, when in outcomes.items():
            outcome = Signal(name=f"outcome_{stat.name.lower()}")
            m.d.sync += outcome.eq(ended & when)
            count(m, getattr(self.stats, stat.name.lower()), outcome)


def _sources(by_type):
    """Where one event byte comes from, given the message offset it is read from per type.

    Returns ``{("lane", j) or ("byte", k): {type: start lanes}}``: rotated lane ``j`` of the last
    beat, or stored byte ``k``, for a message of that type starting in those lanes.
    """
    sources = {}
    for msg_type, k in by_type.items():
        for lane in range(_LANES):
            where = ("lane", k % _LANES) if _in_last_beat(msg_type, k, lane) else ("byte", k)
            sources.setdefault(where, {}).setdefault(msg_type, set()).add(lane)
    return sources


class _Takes:
    """The "take this source" flags of the event bytes (see the module docstring).

    For the types that cannot end in the beat after their start, a flag is registered from the
    type flags and the start lane every cycle, and cleared when a start beat is taken; identical
    flags are made once. For the short types it is the type flag and, unless the start lane does
    not matter, a flag registered at the start: "this byte arrives in the last beat".
    """

    def __init__(self, m, good_of, lane0, lane_is, begin):
        """``lane0``: the start lane of the message in progress; ``lane_is``: the one-hot start
        lane of the offered beat."""
        self._m, self._good_of, self._begin = m, good_of, begin
        # Decoded once, as the flags test it for sets of lanes.
        self._lane0, self._start_lane = Signal(_LANES), lane_is
        m.d.comb += self._lane0.eq(Cat(lane0 == s for s in range(_LANES)))
        self._registered = {}
        self._in_last = {}

    def flag(self, name, picks):
        """The flag of one event byte's source, taken by ``picks``, ``{type: start lanes}``."""
        long_picks = frozenset((t, frozenset(lanes)) for t, lanes in picks.items()
                               if t not in _PLAN.short)
        take = Const(0, 1)
        if long_picks:
            if long_picks not in self._registered:
                flag = Signal(name=f"take_{name}")
                self._m.d.sync += flag.eq(_any(self._good_of[t] & _one_of(self._lane0, lanes)
                                               for t, lanes in sorted(long_picks)))
                with self._m.If(self._begin):
                    self._m.d.sync += flag.eq(0)
                self._registered[long_picks] = flag
            take = self._registered[long_picks]
        for t, lanes in picks.items():
            if t in _PLAN.short:
                take = take | (self._good_of[t] & self._short_lanes(t, lanes))
        return take

    def _short_lanes(self, msg_type, lanes):
        if len(lanes) == _LANES:
            return Const(1, 1)
        # A byte arrives in the last beat for some start lanes: one flag serves both sources.
        others = frozenset(range(_LANES)) - lanes
        if (msg_type, others) in self._in_last:
            return ~self._in_last[msg_type, others]
        key = (msg_type, frozenset(lanes))
        if key not in self._in_last:
            flag = Signal(name=f"lanes_{MESSAGE_SPECS[msg_type].name.lower()}_{len(self._in_last)}")
            with self._m.If(self._begin):
                self._m.d.sync += flag.eq(_one_of(self._start_lane, lanes))
            self._in_last[key] = flag
        return self._in_last[key]


def _one_of(lane_at, lanes):
    """The lane ``lane_at`` decodes (one-hot) is one of ``lanes``."""
    if len(lanes) == _LANES:
        return Const(1, 1)
    return _any(lane_at[s] for s in sorted(lanes))


def _one_hot_or(choices):
    """OR of ``value`` gated by ``select`` over ``choices``; the selects are mutually exclusive."""
    result = Const(0, 1)
    for select, value in choices:
        result = result | Mux(select, value, 0)
    return result
