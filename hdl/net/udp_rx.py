"""Ethernet/IPv4/UDP receive: frame beats in, the feed's UDP payload out, cut-through.

The model twin is ``sim/udp_rx.py``; the verdict priority and the counters are defined there.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hdl.arch.beat import BEAT_BYTES, BeatStream
from hdl.arch.net import (
    ETHERNET,
    ETHERTYPE_IPV4,
    ETHERTYPE_VLAN,
    IPPROTO_UDP,
    IPV4,
    IPV4_FLAG_MF,
    IPV4_FRAGMENT_OFFSET_MASK,
    IPV4_IHL,
    IPV4_IHL_MASK,
    IPV4_VERSION,
    IPV4_VERSION_SHIFT,
    UDP,
    BytePos,
    FramePos,
    be_value,
    field_pos,
    header_pos,
    payload_pos,
)
from hdl.stats import count, stats_layout
from sim.udp_rx import HEADER_DROPS, PRIORITY, UdpRxStat
from sim.wire.net import eth_header_length

__all__ = ["UdpRx", "UdpRxConfigLayout"]

# The feed's destination, as integers with the first wire byte most significant (sim.wire.net).
UdpRxConfigLayout = data.StructLayout({"mac": 48, "ip": 32, "port": 16})

_VARIANTS = (False, True)  # without / with one 802.1Q tag
_ALL_LANES = (1 << BEAT_BYTES) - 1
_LANE_BITS = exact_log2(BEAT_BYTES)

# The beat holding the first payload byte. The design decides a frame's fate in that beat, so
# it must be the same with and without the tag (it is: beat 5, lane 2 or lane 6).
PAYLOAD_BEAT = payload_pos(False).beat
assert payload_pos(True).beat == PAYLOAD_BEAT
# The UDP header must be complete in that beat too (a frame ending before is a runt).
_UDP_LAST = {v: BytePos.of(header_pos(UDP, v).offset + UDP.size - 1) for v in _VARIANTS}
assert all(pos.beat == PAYLOAD_BEAT for pos in _UDP_LAST.values())
# The beat whose type field tells whether a tag is present; later beats use the registered flag.
_TAG_BEAT = field_pos(ETHERNET, "ethertype", False).last_beat
# The IPv4 total length arrives in the same beat with and without the tag, after the tag beat,
# so the values derived from it are registered from the input in that beat.
_TOTAL = {v: field_pos(IPV4, "total_length", v) for v in _VARIANTS}
_TOTAL_BEAT = _TOTAL[False].last_beat
assert _TOTAL[True].last_beat == _TOTAL_BEAT > _TAG_BEAT
# Width of a beat index that reaches the end of the largest IPv4 datagram.
_MAX_TOTAL_LENGTH = (1 << 8 * IPV4["total_length"].size) - 1
_INDEX_BITS = ((_MAX_TOTAL_LENGTH + eth_header_length(True)) // BEAT_BYTES).bit_length()
# The beat counter starts at this value, so that comparing it with the index of the beat holding
# the last payload byte tells, one beat early, that the next beat holds it: the comparison is
# then registered twice before the output path uses it.
_COUNT_AHEAD = 2
# The checksum is summed in 16-bit words; it must start at an even offset so that words are
# lane pairs.
_IP = {v: header_pos(IPV4, v) for v in _VARIANTS}
assert all(pos.offset % 2 == 0 for pos in _IP.values())
_WORD = 16
_DST = {v: field_pos(IPV4, "dst", v) for v in _VARIANTS}
# The checksum test's bits are registered as this many partial ANDs.
_CHECKSUM_GROUPS = 4


def _rotate_left(value: Value) -> Value:
    return Cat(value[-1], value[:-1])


def _ring_csa(operands: list[Value]) -> tuple[Value, Value]:
    """Reduce 16-bit ``operands`` to two whose sum is congruent to theirs modulo ``0xFFFF``.

    3:2 compressors whose carry out of bit 15 wraps round to bit 0 (``2**16 == 1`` modulo
    ``0xFFFF``, the end-around carry of the Internet checksum), so no carry chain is needed and
    every level is one LUT. The two results are both zero only when every operand is zero.
    """
    ops = [Value.cast(op) for op in operands]
    assert all(len(op) == _WORD for op in ops)
    if len(ops) == 1:
        return ops[0], Const(0, _WORD)
    while len(ops) > 2:
        a, b, c = ops[:3]
        ops = [*ops[3:], a ^ b ^ c, _rotate_left((a & b) | (a & c) | (b & c))]
    return ops[0], ops[1]


def _ring_sum_is_ones(s: Value, c: Value) -> Value:
    """The Internet checksum verifies when all of these 16 bits are set: ``s + c`` (a carry-save
    ``_ring_csa`` result) is a nonzero multiple of ``0xFFFF``, i.e. the header's one's complement
    sum is ``0xFFFF``.

    With 16-bit ``s`` and ``c``, that is ``s + c`` equal to ``0xFFFF`` (``s == ~c``) or to
    ``0x1FFFE`` (both all ones); ``s == c == 0`` is an all-zero header, which fails as it should.
    One more half-adder step, ``x = s ^ c`` and ``y = rotl(s & c)``, keeps the sum and rules out
    the both-all-ones case, so the test is ``x == ~y``: one LUT per bit, then an AND.
    """
    x = s ^ c
    y = _rotate_left(s & c)
    return x ^ y


class UdpRx(wiring.Component):
    """Ethernet II (+ one optional 802.1Q tag) / IPv4 / UDP receive for one feed.

    Checks each frame against ``endpoint`` and the feed's structure (see ``sim/udp_rx.py`` for
    the drop reasons and their priority) and passes on the UDP payload of the frames that pass.

    Ports
    -----
    i : In(BeatStream)
        Frames from the MAC: lane 0 of the first beat is the first byte of the destination MAC;
        no FCS. ``keep`` is all ones except on the last beat, where it is a run of ones from lane
        0; ``error`` on the last beat marks a bad frame (FCS error, the MAC's ``tuser``).
    endpoint : In(UdpRxConfigLayout)
        ``mac`` (48), ``ip`` (32), ``port`` (16): the feed's destination, first wire byte most
        significant. Sampled as the matching header bytes arrive. (Not named ``config``, a
        reserved word in Verilog.)
    o : Out(BeatStream)
        The UDP payload in its original lanes (no realignment, which would cost latency):
        ``keep`` marks the payload bytes; ``first`` is set on the beat holding the first payload
        byte (beat 5 of the frame, lane 2, or lane 6 with a tag), ``last`` on the beat holding the
        last one; ``error`` on the last beat when the frame was truncated or flagged by the MAC.
    stats : Out(stats_layout(UdpRxStat))
        48-bit counters: ``frames``, ``accepted`` and one per reason; every frame counts in
        ``frames`` and in exactly one other. They update 3 cycles after the frame's last beat.

    Cut-through policy
    ------------------
    No payload byte is passed on before every header check has passed: the decision is taken on
    the beat holding the first payload byte, when the IPv4 checksum (summed across the header
    beats) and the UDP header are complete. The frame's end is only known at the end, so damage
    found there (bad FCS, frame shorter than the IPv4 total length) is signalled by ``error`` on
    the last beat and the downstream stage decides what to do with the bytes it already has (the
    Mold stage abandons the message in progress). When Ethernet padding follows the payload, the
    beat with the last payload byte is held until the frame's last beat, so that it carries the
    frame's ``error`` flag. The UDP checksum is not verified: the MAC's FCS covers the payload.
    A datagram with no payload bytes passes nothing on (a stream packet cannot be empty) but is
    still counted.

    Latency
    -------
    1 cycle from an input beat to its output beat (registered output). The last payload beat of
    a padded frame leaves 1 cycle after the frame's last input beat.

    Throughput
    ----------
    One beat per cycle whenever ``o`` is ready, back-to-back frames included. Header beats, and
    the beats of a frame already known to be dropped, are taken even while ``o`` is stalled (a
    frame failing only a check completed in its first payload beat, such as the IPv4 checksum,
    waits there for ``o`` like a good one).

    Bad input
    ---------
    Dropped frames pass nothing on and are counted under their reason; nothing can stall or
    hang. Frames longer than the IPv4 total length have the rest ignored (padding).

    Notes
    -----
    Timing: the beat position is one-hot. Every check is registered in the beat that completes
    it, so the decision on the first payload beat is an AND of one registered flag with the
    checks completing in that beat (the tagged UDP port and length, 32 bits compared with the
    input, and the checksum test). The IPv4 checksum is accumulated in carry-save form with an
    end-around carry (at most six operands, three LUT levels, per header beat; no carry chain)
    and tested without adding the two halves. Registers whose value only depends on the beat in
    front of them (stored header bytes, checksum stages, values derived from the total length)
    load while at their beat whether or not it is taken, which keeps ``o.ready`` away from their
    enables; so do the output payload registers whenever the output is free. The payload's end
    is predicted two beats ahead, so the keep mask and the end markers come from registers; the
    counters add a registered, already prioritised increment.
    """

    i: In(BeatStream())
    endpoint: In(UdpRxConfigLayout)
    o: Out(BeatStream())
    stats: Out(stats_layout(UdpRxStat))

    def elaborate(self, platform):
        m = Module()
        i, o, endpoint = self.i, self.o, self.endpoint
        data_in, keep_in, last_in = i.payload.data, i.payload.keep, i.payload.last
        accept = Signal()
        m.d.comb += accept.eq(i.valid & i.ready)

        # Where the input beat is, one-hot: header beats 0..PAYLOAD_BEAT-1, the first payload
        # beat, then `beyond` for the rest of the frame.
        at = [Signal(name=f"at_beat{k}", init=int(k == 0)) for k in range(PAYLOAD_BEAT + 1)]
        first_beat = at[PAYLOAD_BEAT]
        in_header = Signal(init=1)  # any of at[0..PAYLOAD_BEAT-1]
        beyond = Signal()
        with m.If(accept):
            with m.If(last_in):
                m.d.sync += [at[0].eq(1), *(a.eq(0) for a in at[1:]), in_header.eq(1),
                             beyond.eq(0)]
            with m.Else():
                m.d.sync += [at[0].eq(0), *(at[k + 1].eq(at[k]) for k in range(PAYLOAD_BEAT)),
                             in_header.eq(Cat(*at[:PAYLOAD_BEAT - 1]).any()),
                             beyond.eq(beyond | first_beat)]

        # Header beats are always taken when valid, and a beat not taken is offered again
        # unchanged, so registers fed from the beat at a given position can load whenever the
        # position is current: the last load is the beat that was taken.
        stored = [Signal(8 * BEAT_BYTES, name=f"header_beat{k}") for k in range(PAYLOAD_BEAT)]
        for k, word in enumerate(stored):
            with m.If(at[k]):
                m.d.sync += word.eq(data_in)
        vlan = Signal()

        def byte_source(beat: int):
            """Bytes of a field checked at beat ``beat``: earlier beats come from ``stored``."""
            def byte_at(pos: BytePos) -> Value:
                assert pos.beat <= beat
                word = data_in if pos.beat == beat else stored[pos.beat]
                return word.word_select(pos.lane, 8)
            return byte_at

        tag_type = field_pos(ETHERNET, "ethertype", False)
        vlan_now = Signal()
        m.d.comb += vlan_now.eq(be_value(tag_type, byte_source(_TAG_BEAT)) == ETHERTYPE_VLAN)
        with m.If(at[_TAG_BEAT]):
            m.d.sync += vlan.eq(vlan_now)

        def variant(vlan_variant: bool | None, beat: int) -> Value:
            if vlan_variant is None:
                return Const(1)
            assert beat >= _TAG_BEAT
            flag = vlan_now if beat == _TAG_BEAT else vlan
            return flag if vlan_variant else ~flag

        def by_variant(choice) -> Value:
            return Mux(vlan, choice(True), choice(False))

        # From the IPv4 total length, registered in its beat: the expected UDP length and where
        # the last payload byte will be (beat index and lane).
        total_byte = byte_source(_TOTAL_BEAT)
        totals = {v: be_value(_TOTAL[v], total_byte) for v in _VARIANTS}
        udp_length_expected = Signal(16)
        end_beat = Signal(_INDEX_BITS)
        end_lanes = Signal(BEAT_BYTES)  # lanes up to the last payload byte's, in its beat
        end_lane_bit = Signal(BEAT_BYTES)  # the last payload byte's lane, one-hot
        empty_payload = Signal()
        def end_lane_in(lanes: range) -> Value:
            # From the low bits of the length field, not through the adder's carry chain.
            def matches(v: bool) -> Value:
                low = totals[v][:_LANE_BITS]
                offset = eth_header_length(v) - 1
                return Cat(*(low == (lane - offset) % BEAT_BYTES for lane in lanes)).any()
            return by_variant(matches)

        # Per variant, then selected: the tag flag is a register, so it only adds a LUT after
        # each carry chain.
        with m.If(at[_TOTAL_BEAT]):
            m.d.sync += [
                udp_length_expected.eq(by_variant(lambda v: totals[v] - IPV4.size)),
                end_beat.eq(by_variant(lambda v: (totals[v] + eth_header_length(v) - 1)
                                       >> _LANE_BITS)),
                end_lanes.eq(Cat(*(end_lane_in(range(lane, BEAT_BYTES))
                                   for lane in range(BEAT_BYTES)))),
                end_lane_bit.eq(Cat(*(end_lane_in(range(lane, lane + 1))
                                      for lane in range(BEAT_BYTES)))),
                empty_payload.eq(by_variant(lambda v: totals[v] == IPV4.size + UDP.size)),
            ]

        # Header checks: (reason, beat completing the fields, tag variant or None, failed, and
        # for an equality check the (value, expected) pair).
        checks = []

        def check(reason, fields, failed=None, after=None, equals=None):
            pos = {v: [field_pos(header, name, v) for header, name in fields] for v in _VARIANTS}
            for vlan_variant in ((None,) if pos[False] == pos[True] else _VARIANTS):
                where: list[FramePos] = pos[bool(vlan_variant)]
                beat = max(p.last_beat for p in where)
                assert after is None or beat > after, "a precomputed value would not be ready"
                values = [be_value(p, byte_source(beat)) for p in where]
                if equals is None:
                    checks.append((reason, beat, vlan_variant, failed(*values), None))
                else:
                    (value,) = values
                    # (XOR rather than !=, which synthesis may merge into a subtractor.)
                    checks.append((reason, beat, vlan_variant, (value ^ equals).any(),
                                   (value, equals)))

        check(UdpRxStat.MAC, [(ETHERNET, "dst")], equals=endpoint.mac)
        check(UdpRxStat.NOT_IPV4, [(ETHERNET, "ethertype"), (IPV4, "version_ihl")],
              lambda ethertype, vi: ((ethertype != ETHERTYPE_IPV4)
                                     | ((vi >> IPV4_VERSION_SHIFT) != IPV4_VERSION)))
        check(UdpRxStat.IP_OPTIONS, [(IPV4, "version_ihl")],
              lambda vi: (vi & IPV4_IHL_MASK) != IPV4_IHL)
        check(UdpRxStat.FRAGMENT, [(IPV4, "flags_fragment")],
              lambda ff: (ff & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK)).any())
        check(UdpRxStat.NOT_UDP, [(IPV4, "protocol")], lambda proto: proto != IPPROTO_UDP)
        check(UdpRxStat.LENGTH, [(IPV4, "total_length")],
              lambda length: length < IPV4.size + UDP.size)
        check(UdpRxStat.LENGTH, [(UDP, "length")], equals=udp_length_expected, after=_TOTAL_BEAT)
        # The address is sampled once, in the first beat, for this check and for the checksum's
        # stand-in words (below), so that both see the same value.
        ip = Signal(len(endpoint.ip), name="ip_sampled")
        with m.If(at[0]):
            m.d.sync += ip.eq(endpoint.ip)
        check(UdpRxStat.DST_IP, [(IPV4, "dst")], equals=ip, after=0)
        check(UdpRxStat.DST_PORT, [(UDP, "dst_port")], equals=endpoint.port)

        # IPv4 checksum: each header beat's 16-bit words (lane pairs, masked by the tag flag when
        # only one variant has them there) are compressed with the previous beat's two vectors
        # into a new register pair; the header's words up to the tag beat wait in `stored` and
        # join the next beat. The sum is tested in the first payload beat, for the counters.
        # The decision in that beat needs a test started a beat earlier, with fewer operands:
        # the destination address words of the header's last beat are stood in for by the
        # sampled address (summed in advance and added in the first checksum beat), since a
        # frame whose address differs is dropped anyway. The exact sum takes the real words
        # and subtracts the stand-in (adds its complement, modulo 0xFFFF); its test then errs
        # only for an all-zero header, which the version check drops first.
        checksum_beat = max(pos.last_beat for pos in _IP.values()) + 1
        first_sum_beat = _TAG_BEAT + 1
        last_header = checksum_beat - 1
        assert checksum_beat == PAYLOAD_BEAT and first_sum_beat < last_header

        def in_field(pos: FramePos, beat: int, pair: int) -> bool:
            offset = beat * BEAT_BYTES + 2 * pair
            return pos.offset <= offset < pos.offset + pos.size

        def words_of(word: Value, beat: int, stand_in: bool = False) -> list[Value]:
            """The IPv4 header words of ``word``, frame beat ``beat``, as checksum operands."""
            operands = []
            for pair in range(BEAT_BYTES // 2):
                value = Cat(word.word_select(2 * pair + 1, 8), word.word_select(2 * pair, 8))
                present = [v for v in _VARIANTS if in_field(_IP[v], beat, pair)
                           and not (stand_in and in_field(_DST[v], beat, pair))]
                if len(present) == len(_VARIANTS):
                    operands.append(value)
                elif present:
                    operands.append(Mux(vlan if present[0] else ~vlan, value, 0))
            return operands

        def stand_in_words(v: bool) -> list[Value]:
            words = []
            for pair in range(BEAT_BYTES // 2):
                if in_field(_DST[v], last_header, pair):
                    k = (last_header * BEAT_BYTES + 2 * pair - _DST[v].offset) // 2
                    high = len(endpoint.ip) - _WORD * k
                    words.append(endpoint.ip[high - _WORD:high])
            assert len(words) <= 2  # one end-around fold is then enough
            return words

        # Added up (one per variant) from the address as it is sampled in the first beat, folded
        # in the tag beat, ready for the first checksum beat.
        assert _TAG_BEAT == 1
        stand_in_sums = {v: Signal(_WORD + 1, name=f"stand_in_sum_{int(v)}") for v in _VARIANTS}
        stand_in = Signal(_WORD)
        with m.If(at[0]):
            m.d.sync += [stand_in_sums[v].eq(sum(stand_in_words(v), Const(0, _WORD + 1)))
                         for v in _VARIANTS]
        with m.If(at[_TAG_BEAT]):
            m.d.sync += stand_in.eq(Mux(vlan_now, *(
                (stand_in_sums[v][:_WORD] + stand_in_sums[v][_WORD])[:_WORD]
                for v in (True, False))))

        partial: list[Value] = []
        for beat in range(first_sum_beat, checksum_beat):
            operands = [*partial, *words_of(data_in, beat)]
            if beat == first_sum_beat:
                operands += [w for k in range(beat) for w in words_of(stored[k], k)]
                operands.append(stand_in)
            if beat == last_header:
                early_bits = _ring_sum_is_ones(*_ring_csa(
                    [*partial, *words_of(data_in, beat, stand_in=True)]))
                checksum_early = Signal(_CHECKSUM_GROUPS)  # ANDs of the test's bits, in groups
                with m.If(at[beat]):
                    m.d.sync += checksum_early.eq(Cat(*(
                        early_bits[k::_CHECKSUM_GROUPS].all() for k in range(_CHECKSUM_GROUPS))))
                operands.append(~stand_in)
            s, c = _ring_csa(operands)
            partial = [Signal(_WORD, name=f"checksum_s{beat}"),
                       Signal(_WORD, name=f"checksum_c{beat}")]
            with m.If(at[beat]):
                m.d.sync += [partial[0].eq(s), partial[1].eq(c)]
        assert not any(in_field(_IP[v], checksum_beat, pair)
                       for pair in range(BEAT_BYTES // 2) for v in _VARIANTS)
        checks.append((UdpRxStat.IP_CHECKSUM, checksum_beat, None,
                       ~_ring_sum_is_ones(*partial).all(), None))

        # Each check's result is registered in its beat (a frame's later checks only go by when
        # its earlier beats did, so none is stale when read). A reason's flag, for the verdict,
        # is the OR of its checks' registers. For the decision in the first payload beat,
        # `early_fail` gathers the registers of the checks done before the last header beat;
        # those done in that beat are used directly (each compare is then a shallow tree).
        decide_beat = PAYLOAD_BEAT - 1
        flags = {reason: [] for reason in HEADER_DROPS if reason is not UdpRxStat.RUNT}
        tagged_compares = []  # (value, expected) checked in the first payload beat, tagged only
        early_fail = Signal()
        early_terms, late_terms = [], {}
        for number, (reason, beat, vlan_variant, failed, compare) in enumerate(checks):
            result = Signal(name=f"check{number}_{reason.name.lower()}")
            term = variant(vlan_variant, beat) & failed
            with m.If(at[beat]):
                m.d.sync += result.eq(term)
            flags[reason].append(result)
            if beat == PAYLOAD_BEAT:
                if reason is not UdpRxStat.IP_CHECKSUM:  # checksum_early stands in for it
                    # Untagged frames have the whole UDP header in the beat before.
                    assert vlan_variant is True and compare is not None
                    tagged_compares.append(compare)
            elif beat == decide_beat:
                late_terms.setdefault(vlan_variant, []).append(term)
            else:
                assert beat < decide_beat
                early_terms.append(result)
        # The checks of the last header beat are gathered per tag variant: each group is then a
        # shallow tree of compares, and there are few registers to OR in the next beat.
        late_fail = [Signal(name=f"late_fail_{key}") for key in late_terms]
        with m.If(at[decide_beat]):
            # (A datagram without payload bytes passes nothing on either.)
            m.d.sync += early_fail.eq(Cat(*early_terms).any() | empty_payload)
            m.d.sync += [flag.eq(Cat(*terms).any())
                         for flag, terms in zip(late_fail, late_terms.values(), strict=True)]
        header_fail = Signal()
        m.d.comb += header_fail.eq(early_fail | Cat(*late_fail).any())

        runt_first = last_in & ~by_variant(lambda v: keep_in[_UDP_LAST[v].lane])
        runt_now = Signal()
        m.d.comb += runt_now.eq((last_in & in_header) | (first_beat & runt_first))

        # The payload's end, two beats ahead: `end_next` (registered) says that the next beat
        # holds the last payload byte, `at_end` that this one does.
        beat_count = Signal(_INDEX_BITS, init=_COUNT_AHEAD)
        end_next = Signal()
        at_end = Signal()  # this beat holds the last payload byte
        past_end = Signal()  # the last payload byte has gone by; the rest is padding
        pending = Signal()  # o holds the last payload beat, waiting for the frame's end
        # Beyond the first payload beat, the headers passed and payload remains (implies beyond)
        flow = Signal()
        lanes = Signal(BEAT_BYTES)  # lanes of this beat that may carry payload
        end_bit = Signal(BEAT_BYTES)  # this beat's last payload lane, if it holds the end
        start_lanes = by_variant(lambda v: _ALL_LANES << payload_pos(v).lane & _ALL_LANES)
        with m.If(accept):
            m.d.sync += [
                beat_count.eq(Mux(last_in, _COUNT_AHEAD, beat_count + 1)),
                end_next.eq(beat_count == end_beat),
                at_end.eq(end_next),
                lanes.eq(Mux(at[PAYLOAD_BEAT - 1], start_lanes, _ALL_LANES)
                         & Mux(end_next, end_lanes, _ALL_LANES)),
                end_bit.eq(Mux(end_next, end_lane_bit, 0)),
            ]

        truncated_now = Signal()
        m.d.comb += truncated_now.eq(last_in & ~past_end & ~(keep_in & end_bit).any())

        # The decision on the first payload beat: the frame passes when `first_ready` (registers
        # and the keep of a last beat) and, if it is tagged, the UDP header compares (the
        # deepest terms) hold.
        first_ready = Signal()
        m.d.comb += first_ready.eq(
            ~header_fail & checksum_early.all()
            & ~(last_in & ~by_variant(lambda v: keep_in[_UDP_LAST[v].lane]
                                      & keep_in[payload_pos(v).lane])))
        tagged_ok = Signal()
        m.d.comb += tagged_ok.eq(~Cat(*((value ^ expected).any()
                                        for value, expected in tagged_compares)).any())

        def with_decision(other: Value, go: Value) -> Value:
            """``other``, or ``go`` and the frame passing; factored so that `tagged_ok`, the
            deepest term, can enter the last LUT only."""
            return other | (go & first_ready & ~vlan) | (go & first_ready & tagged_ok)

        # Beats that cannot load the output register are taken whatever its state.
        out_free = ~o.valid | o.ready
        skip = in_header | (first_beat & header_fail) | (beyond & ~flow)
        m.d.comb += i.ready.eq(out_free | skip)

        # The payload registers load whenever the output is free (what they hold while o.valid
        # is low does not matter), so that only `o.valid` waits for the header decision; a beat
        # held for the frame's end stays put.
        with m.If(out_free & ~pending):
            m.d.sync += [
                o.payload.data.eq(data_in),
                o.payload.keep.eq(lanes & Mux(last_in, keep_in, _ALL_LANES)),
                o.payload.first.eq(first_beat),
                o.payload.last.eq(at_end | last_in),
                o.payload.error.eq(last_in & (i.payload.error | truncated_now)),
            ]
        with m.Elif(pending & i.valid & last_in):  # o.valid is low while pending: taken
            m.d.sync += o.payload.error.eq(i.payload.error)
        # A payload beat is taken only when the output is free (it is not skipped), and a beat
        # ending a pending payload finds o.valid low. A first payload beat that passes is not
        # skipped either, so `go` is its transfer.
        ends_here = ~at_end | last_in  # a payload beat that can leave now
        go = i.valid & out_free
        m.d.sync += o.valid.eq(with_decision(
            (o.valid & ~o.ready) | (go & ((flow & ends_here) | (pending & last_in))),
            go & first_beat & ends_here))
        holds_end = at_end & ~last_in  # the payload ends here, padding follows
        m.d.sync += pending.eq(with_decision(
            (pending & ~(accept & last_in)) | (accept & holds_end & flow),
            go & holds_end & first_beat))
        m.d.sync += flow.eq(with_decision(
            flow & ~(accept & (last_in | first_beat | at_end)),
            go & first_beat & ~last_in & ~at_end))
        with m.If(accept):
            with m.If(last_in):
                m.d.sync += past_end.eq(0)
            with m.Elif(at_end & (first_beat | beyond)):
                m.d.sync += past_end.eq(1)

        # Verdict: the frame-end reasons registered with its last beat; the next cycle picks the
        # one to count (the header flags are final then) and registers it as the increment.
        done = Signal()
        seen = {
            UdpRxStat.FRAME_ERROR: Signal(name="seen_frame_error"),
            UdpRxStat.RUNT: Signal(name="seen_runt"),
            UdpRxStat.TRUNCATED: Signal(name="seen_truncated"),
        }
        m.d.sync += done.eq(accept & last_in)
        with m.If(accept & last_in):
            m.d.sync += [
                seen[UdpRxStat.FRAME_ERROR].eq(i.payload.error),
                seen[UdpRxStat.RUNT].eq(runt_now),
                seen[UdpRxStat.TRUNCATED].eq(truncated_now),
            ]
        seen.update({reason: Cat(*results).any() for reason, results in flags.items()})
        stats = self.stats
        increments = {UdpRxStat.FRAMES: done}
        higher = Const(0)
        for reason in PRIORITY:
            increments[reason] = done & seen[reason] & ~higher
            higher = higher | seen[reason]
        increments[UdpRxStat.ACCEPTED] = done & ~higher
        for member, when in increments.items():
            increment = Signal(name=f"inc_{member.name.lower()}")
            m.d.sync += increment.eq(when)
            count(m, getattr(stats, member.name.lower()), increment)
        return m
