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
by a mask registered from ``s`` at the start. Only the bytes some event needs are stored. The
header bytes that arrive in the start beat itself are kept twice over (see below).

How the event is built. On the last beat every byte of the event comes either from the store or
straight from one input lane. For a message of the right length, which is the only kind that
makes an event, that choice depends on nothing but the type and ``s``: so it is decided ahead,
into registers holding one "take input lane ``i``" flag per event byte and lane and one "take
stored byte ``k``" flag per event byte and source. The last beat then goes through two levels of
AND-OR into the output register, whatever the type. Those flags are worked out in the cycle after
the start beat, ready from the second beat after it on; every type that can end sooner (at most
16 bytes long: only ``S`` in ITCH 5.0) has its own flags, kept one-hot by type and start lane
from the start beat on, and the registered flags are ignored in the cycle right after a start.

What waits for ``accept``. ``accept`` depends on ``o.ready`` and so arrives late; it enables only
the few registers that follow the message in progress (beat counter, lane, start-lane one-hots).
What a starting message brings (sequence number, type byte, length class, header bytes of the
start beat) is written whenever a start beat is offered, into the one of two register sets the
message in progress is not using; the sets swap when the start beat is accepted. A start beat
that waits (it also ends a message) thus never disturbs the message it ends.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
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
# Event fields that are not copied from message bytes.
_NOT_BYTES = ("kind", "seq", "side")


def _in_last_beat(msg_type: str, offset: int, lane: int) -> bool:
    """Byte ``offset`` of a ``msg_type`` message of the spec's length, starting in ``lane``,
    arrives in the message's last beat."""
    return (lane + offset) // _LANES == (lane + spec_of(msg_type).length - 1) // _LANES


@dataclass(frozen=True)
class _Plan:
    """What the decoder stores and selects, worked out from the message and event tables.

    ``header``: per event byte read from the message header, the offset every type reads it
    from; ``body``: per other event byte, ``(field name, byte index)``, the offset each event
    type that has the field reads it from; ``needed``: every offset some event reads (the store);
    ``side_offset``, ``side_types``: where the add orders keep their side, which is taken apart
    as two flags; ``short``: the event types short enough (at most 16 bytes) to end in the beat
    right after their start beat; ``beats``: width of the one-hot beat counter, enough to reach
    the latest beat a needed byte can arrive in (``k // 8 + 1``).
    """

    header: dict[tuple[str, int], int]
    body: dict[tuple[str, int], dict[str, int]]
    needed: tuple[int, ...]
    side_offset: int
    side_types: tuple[str, ...]
    short: tuple[str, ...]
    beats: int


def _plan() -> _Plan:
    header, body = {}, {}
    for name, bits in EVENT_FIELD_BITS.items():
        if name in _NOT_BYTES:
            continue
        for msg_type, source in EVENT_SOURCES.items():
            wire = HEADER_SOURCES.get(name) or source.fields.get(name)
            if wire is None:
                continue
            field = spec_of(msg_type).field(wire)
            # The message offset behind each event byte, in the byte order of ``wire_field``.
            probe = Const.cast(wire_field({k: Const(k, 8) for k in field_offsets(field)}, field))
            if len(probe) != bits:
                raise ValueError(f"ITCH {msg_type!r}: {wire} does not fill event field {name}")
            for index in range(bits // 8):
                offset = (probe.value >> (8 * index)) & 0xFF
                if name in HEADER_SOURCES:
                    if header.setdefault((name, index), offset) != offset:
                        raise ValueError(f"header field {wire} moves from type to type")
                else:
                    body.setdefault((name, index), {})[msg_type] = offset
    needed = sorted({*header.values(), *(k for src in body.values() for k in src.values())})

    side_types = tuple(t for t, source in EVENT_SOURCES.items() if "side" in source.fields)
    side_offsets = {spec_of(t).field(EVENT_SOURCES[t].fields["side"]).offset for t in side_types}
    if len(side_offsets) != 1:
        raise ValueError(f"add orders place the side at different offsets {side_offsets}")
    (side_offset,) = side_offsets
    for msg_type in side_types:
        # The side flags are decoded the cycle after the side byte is stored: it must arrive two
        # beats before the last one at least.
        if spec_of(msg_type).length - 1 - side_offset < 2 * _LANES:
            raise ValueError(f"ITCH {msg_type!r}: side byte too close to the end")

    short = tuple(t for t in EVENT_SOURCES if spec_of(t).length <= 2 * _LANES)
    if set(short) & set(side_types):
        raise ValueError("an add order short enough to end in the beat after its start")
    for msg_type in short:
        # A short type's own body bytes are taken from the input only.
        for sources in body.values():
            k = sources.get(msg_type)
            if k is not None and not all(_in_last_beat(msg_type, k, lane)
                                         for lane in range(_LANES)):
                raise ValueError(f"ITCH {msg_type!r}: byte {k} may arrive before the last beat")
    return _Plan(header, body, tuple(needed), side_offset, side_types, short,
                 max(needed) // _LANES + 2)


_PLAN = _plan()


def _lane(value, j):
    return value[8 * j:8 * j + 8]


def _any(terms) -> Value:
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
        is counted once (see ``sim/itch_decode.py``), three cycles after its last beat is
        accepted (four for ``BAD_LENGTH``). Abandoned messages are not counted here (the Mold
        stage counts them).

    Latency
    -------
    1 cycle: the event is valid at ``o`` the cycle after the beat carrying the message's last byte
    is accepted.

    Throughput
    ----------
    One beat per cycle while ``o`` is ready (at most one event per beat, which the message-beat
    contract guarantees). While ``o`` holds an event that is not taken, a beat that ends a message
    waits, whatever the message; other beats (message bodies, starts) keep flowing. So
    ``i.ready`` is combinational from ``o.ready`` and the offered beat's ``end``.

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
        lengths = sorted({spec.length for spec in MESSAGE_SPECS.values()})
        event_types, side_types, short = list(EVENT_SOURCES), _PLAN.side_types, _PLAN.short

        # -- The message in progress: registers loaded when its start beat is accepted.
        busy = Signal()
        # Per rotated lane j, the input lane it comes from, (j + s) % 8: one register per lane so
        # that each lane multiplexer has its own select rather than all sharing one.
        source_lane = [Signal(3, name=f"source_lane{j}") for j in range(_LANES)]
        lane0 = source_lane[0]
        late = Signal(_LANES)              # rotated lane j arrives one beat late: j >= 8 - s
        nxt = Signal(_PLAN.beats)          # one-hot: index of the message's next beat
        # Per event type, one-hot over the start lane: the message is of this type, at the spec's
        # length, and starts in lane l. Decided per lane, so no lane multiplexer stands in front
        # of the type compare.
        good_at = {t: Signal(_LANES, name=f"good_at_{t}") for t in event_types}
        fresh = Signal()                   # the start beat was accepted in the previous cycle
        current = Signal()                 # which of the two sets below is the message's

        with m.If(accept):
            with m.If(beat.end):
                m.d.sync += [busy.eq(0), nxt.eq(0)]
            with m.Else():
                m.d.sync += nxt.eq(nxt << 1)
            with m.If(beat.start):
                m.d.sync += [
                    busy.eq(1),
                    current.eq(~current),
                    *(source_lane[j].eq(beat.start_lane + j) for j in range(_LANES)),
                    late.eq(Cat(j + beat.start_lane >= _LANES for j in range(_LANES))),
                    nxt.eq(0b10),
                ]
                for t, at in good_at.items():
                    spec = MESSAGE_SPECS[t]
                    m.d.sync += at.eq(Cat((_lane(beat.data, lane) == spec.code) &
                                          (beat.start_lane == lane) &
                                          (beat.length == spec.length)
                                          for lane in range(_LANES)))
        m.d.sync += fresh.eq(accept & beat.start)

        # -- What a starting message brings: written whenever a start beat is offered, into the
        # set the message in progress does not use.
        def twin(name, shape):
            pair = [Signal(shape, name=f"{name}_{n}") for n in range(2)]
            return pair, Mux(current, pair[1], pair[0])

        seq_set, seq = twin("seq", 64)
        type_set, type_byte = twin("type_byte", 8)
        length_set, length_is = twin("length_is", len(lengths))
        head_sets = {k: twin(f"head{k}", 8) for k in _PLAN.needed if k < _LANES}
        rot_new = Cat(beat.data, beat.data).bit_select(beat.start_lane * 8, 8 * _LANES)
        for n in range(2):
            with m.If(self.i.valid & beat.start & (current != n)):
                m.d.sync += [
                    seq_set[n].eq(beat.seq),
                    type_set[n].eq(_lane(rot_new, 0)),
                    length_set[n].eq(Cat(beat.length == length for length in lengths)),
                ]
                for k, (pair, _) in head_sets.items():
                    with m.If(beat.start_lane + k < _LANES):
                        m.d.sync += pair[n].eq(_lane(rot_new, k))

        # -- The store: byte k of the message in progress, written whenever the beat that carries
        # it is offered, accepted or not (the beat holds until accepted and ``nxt`` moves only
        # then, so the last write is the accepted beat's).
        rot = Cat(beat.data.word_select(source_lane[j], 8) for j in range(_LANES))

        def writes(k):
            """The beat on the input, if accepted, carries byte k of the message in progress."""
            j, word = k % _LANES, k // _LANES
            return Mux(late[j], nxt[word + 1], nxt[word])

        stored = {}
        for k in _PLAN.needed:
            later = Signal(8, name=f"byte{k}")
            with m.If(writes(k)):
                m.d.sync += later.eq(_lane(rot, k % _LANES))
            if k in head_sets:
                # Header bytes in the start beat are in the current set, later ones in ``later``.
                stored[k] = Mux(lane0 + k < _LANES, head_sets[k][1], later)
            else:
                stored[k] = later

        side_byte = Signal(8)
        with m.If(writes(_PLAN.side_offset)):
            m.d.sync += side_byte.eq(_lane(rot, _PLAN.side_offset % _LANES))
        side_ok, side_sell = Signal(), Signal()
        m.d.sync += [
            side_ok.eq((side_byte == ord(BUY_INDICATOR)) | (side_byte == ord(SELL_INDICATOR))),
            side_sell.eq(side_byte == ord(SELL_INDICATOR)),
        ]

        # -- Decisions about the message in progress. Long types' are registered from
        # ``good_at``, so stale in the cycle after a start beat, when only a short type can end;
        # short types' are read from ``good_at`` directly.
        good_bits = [at[lane] for at in good_at.values() for lane in range(_LANES)]
        good_long = [Signal(name=f"good_long{n}") for n in range(2)]
        side_needed, kind_long = Signal(), Signal(EVENT_FIELD_BITS["kind"])
        half = len(good_bits) // 2
        m.d.sync += [
            good_long[0].eq(_any(good_bits[:half])),
            good_long[1].eq(_any(good_bits[half:])),
            side_needed.eq(_any([good_at[t] for t in side_types])),
            kind_long.eq(Cat(_any([good_at[t] for t, source in EVENT_SOURCES.items()
                                   if (source.kind >> bit) & 1])
                             for bit in range(len(kind_long)))),
        ]
        good_short = _any([good_at[t] for t in short])
        kind_short = Cat(_any([good_at[t] for t in short if (EVENT_SOURCES[t].kind >> bit) & 1])
                         for bit in range(len(kind_long)))

        done = accept & beat.end & busy & ~beat.error
        side_fine = fresh | ~side_needed | side_ok
        emit = done & ((Cat(good_long).any() & ~fresh) | good_short) & side_fine

        # A beat that ends a message waits for the output register; others never do.
        m.d.comb += self.i.ready.eq(~(self.o.valid & ~self.o.ready & beat.end & busy))

        # -- The event as of the last beat.
        event = Signal(ItchEventLayout)
        m.d.comb += [
            event.kind.eq(Mux(fresh, 0, kind_long) | kind_short),
            event.seq.eq(seq),
            event.side.eq(Mux(side_needed & side_sell & ~fresh, Side.SELL, Side.BUY)),
        ]
        for (name, index), k in _PLAN.header.items():
            # Every type has it at the same offset: from the input if the beat carries it.
            byte = Mux(writes(k), _lane(rot, k % _LANES), stored[k])
            m.d.comb += getattr(event, name)[8 * index:8 * index + 8].eq(byte)
        data_lane = [_lane(beat.data, lane) for lane in range(_LANES)]
        cleared = []   # event bytes no short type has, which read stale flags after a start
        for (name, index), sources in _PLAN.body.items():
            byte = self._body_byte(m, f"{name}{index}", sources, good_at, fresh, data_lane,
                                   stored)
            m.d.comb += getattr(event, name)[8 * index:8 * index + 8].eq(byte)
            if not set(sources) & set(short):
                cleared.append(getattr(self.o.payload, name)[8 * index:8 * index + 8])

        # ``o_empty`` is ``~o.valid`` in a register of its own: the payload's enable, with its
        # hundreds of loads, then shares no logic with ``i.ready``, which needs ``o.valid`` fast.
        o_empty = Signal(init=1)
        with m.If(o_empty | self.o.ready):
            m.d.sync += self.o.payload.eq(event)
            # Only a short type can end in the cycle after a start beat, and it has none of these
            # bytes: a synchronous reset, which keeps ``fresh`` out of the bytes' logic.
            with m.If(fresh):
                m.d.sync += [byte.eq(0) for byte in cleared]
        with m.If(self.o.ready):
            m.d.sync += [self.o.valid.eq(0), o_empty.eq(1)]
        with m.If(emit):
            m.d.sync += [self.o.valid.eq(1), o_empty.eq(0)]

        self._count(m, types, lengths, type_byte, length_is, side_ok, done)
        return m

    @staticmethod
    def _body_byte(m, name, sources, good_at, fresh, data_lane, stored):
        """One event byte that depends on the type: an AND-OR of input lanes and stored bytes.

        ``sources`` maps each event type that has the field to the message offset it reads the
        byte from. Whether the byte comes from input lane ``i`` or stored byte ``k`` depends on
        the type and the start lane only: long types' choice is registered (from ``good_at``),
        short types' are ``good_at`` bits.
        """
        lanes = {}     # input lane -> ([long types' flags], [short types' flags])
        kept = {}      # stored offset -> the same
        short_in = bool(set(sources) & set(_PLAN.short))
        for t, k in sources.items():
            for lane in range(_LANES):
                where, key = ((lanes, (lane + k) % _LANES) if _in_last_beat(t, k, lane)
                              else (kept, k))
                where.setdefault(key, ([], []))[t in _PLAN.short].append(good_at[t][lane])
        terms = []
        for what, where, values in (("lane", lanes, data_lane), ("byte", kept, stored)):
            for key, (long_flags, short_flags) in where.items():
                take = _any(short_flags)
                if long_flags:
                    flag = Signal(name=f"take_{name}_{what}{key}")
                    m.d.sync += flag.eq(_any(long_flags))
                    # Stale in the cycle after a start beat: only a short type can end then. A
                    # byte no short type has is cleared in the output register instead.
                    take = take | ((flag & ~fresh) if short_in else flag)
                terms.append((take, values[key]))
        return Cat(_any([take & value[bit] for take, value in terms]) for bit in range(8))

    def _count(self, m, types, lengths, type_byte, length_is, side_ok, done):
        """Counters: every completed message exactly once.

        Which counter a message goes to is worked out in two registered steps (type compares,
        then the outcome per counter) from copies taken as its last beat goes by, so that neither
        the compares nor ``accept`` reach the 48-bit adders. ``BAD_LENGTH``, "none of the
        others", takes a third.
        """
        type_is, length_of = Signal(len(types)), Signal(len(lengths))
        side, ended = Signal(), Signal()
        m.d.sync += [
            type_is.eq(Cat(type_byte == MESSAGE_SPECS[t].code for t in types)),
            length_of.eq(length_is),
            side.eq(side_ok),
            ended.eq(done),
        ]
        good = {t: type_is[n] & length_of[lengths.index(MESSAGE_SPECS[t].length)]
                for n, t in enumerate(types)}
        side_needed = _any([good[t] for t in _PLAN.side_types])
        outcomes = {}
        for t in types:
            outcomes[STAT_OF_TYPE[t]] = good[t] & (side if t in _PLAN.side_types else 1)
        outcomes[ItchDecodeStat.BAD_SIDE] = side_needed & ~side
        outcomes[ItchDecodeStat.UNKNOWN_TYPE] = ~type_is.any()
        counted = Signal()
        m.d.sync += counted.eq(ended)
        registered = {}
        for stat, when in outcomes.items():
            registered[stat] = Signal(name=f"outcome_{stat.name.lower()}")
            m.d.sync += registered[stat].eq(when)
            count(m, getattr(self.stats, stat.name.lower()), counted & registered[stat])
        bad_length, counted_bad_length = Signal(), Signal()
        m.d.sync += [bad_length.eq(~Cat(registered.values()).any()),
                     counted_bad_length.eq(counted)]
        count(m, self.stats.bad_length, counted_bad_length & bad_length)
