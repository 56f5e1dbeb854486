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

# The beat holding the first payload byte. The design decides a frame's fate in that beat, so
# it must be the same with and without the tag (it is: beat 5, lane 2 or lane 6).
PAYLOAD_BEAT = payload_pos(False).beat
assert payload_pos(True).beat == PAYLOAD_BEAT
# The UDP header must be complete in that beat too (a frame ending before is a runt).
_UDP_LAST = {v: BytePos.of(header_pos(UDP, v).offset + UDP.size - 1) for v in _VARIANTS}
assert all(pos.beat == PAYLOAD_BEAT for pos in _UDP_LAST.values())
# The beat whose type field tells whether a tag is present; later beats use the registered flag.
_TAG_BEAT = field_pos(ETHERNET, "ethertype", False).last_beat
# Width of a beat index that reaches the end of the largest IPv4 datagram.
_MAX_TOTAL_LENGTH = (1 << 8 * IPV4["total_length"].size) - 1
_INDEX_BITS = ((_MAX_TOTAL_LENGTH + eth_header_length(True)) // BEAT_BYTES).bit_length()
# The checksum is summed in 16-bit words; it must start at an even offset so that words are
# lane pairs, and its plain sum (ten words) must fit the accumulator.
_IP = {v: header_pos(IPV4, v) for v in _VARIANTS}
assert all(pos.offset % 2 == 0 for pos in _IP.values())
_SUM_BITS = (IPV4.size // 2 * 0xFFFF).bit_length()
assert 16 < _SUM_BITS < 32  # keeps the high part below 0xFFFF, as _checksum_ok requires


def _csa_sum(operands: list[Value], width: int) -> Value:
    """Sum of ``operands`` modulo ``2**width``: 3:2 compressors (LUTs only), then one adder.

    Keeps a many-operand sum to a few LUT levels and a single carry chain.
    """
    ops = [Value.cast(op) for op in operands]
    while len(ops) > 2:
        a, b, c = ops[:3]
        total = (a ^ b ^ c)[:width]
        carry = (((a & b) | (a & c) | (b & c)) << 1)[:width]
        ops = [*ops[3:], total, carry]
    return (ops[0] + ops[1])[:width]


def _checksum_ok(total: Value) -> Value:
    """The Internet checksum verifies: ``total`` (plain sum of the header words) folds to 0xFFFF.

    With ``total = h * 2**16 + l`` and ``h`` a k-bit number (k < 16), ``h + l`` is below
    ``2 * 0xFFFF``, so the folded sum is 0xFFFF exactly when ``l == 0xFFFF - h``: bits 15..k of
    ``l`` all ones and its low k bits ``~h``. Comparing bits this way needs no end-around-carry
    adder. (A zero sum, which folds to 0, fails as it should.)
    """
    high = total[16:]
    return total[len(high):16].all() & (total[:len(high)] ^ high).all()


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
    out_load : Out(1)
        The register behind ``o.payload`` loads ``i.payload.data`` this cycle (whether or not
        the beat will be valid), so a stage after can register values of the beat beside it
        (the feed ingress does, for MoldRx: ``hdl/feed/mold_hints.py``).
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
    Timing: every check is registered as soon as its bytes are in, and the payload's end is
    predicted a beat ahead, so the decision on the first payload beat is an OR of registered
    flags with the checks completing in that beat (16-bit compares of the UDP port and length
    when tagged, and a LUT-only test of the registered checksum sum), feeding ``o.valid`` alone.
    The checksum adds at most six 16/20-bit operands per beat through 3:2 compressors and one
    20-bit adder; which lane pairs it adds, and which beat a check completes in, are flip-flops
    set the cycle before from the next beat's position, so no beat-counter compare precedes them.
    """

    i: In(BeatStream())
    endpoint: In(UdpRxConfigLayout)
    o: Out(BeatStream())
    out_load: Out(1)
    stats: Out(stats_layout(UdpRxStat))

    def elaborate(self, platform):
        m = Module()
        i, o, endpoint = self.i, self.o, self.endpoint
        data_in, keep_in = i.payload.data, i.payload.keep
        accept = Signal()
        m.d.comb += accept.eq(i.valid & i.ready)

        # Where the input beat is: hdr_beat counts up to PAYLOAD_BEAT + 1 ("after the first
        # payload beat"), so header decisions use a 3-bit compare; `beat` counts every beat for
        # the payload's end and may wrap harmlessly on absurdly long frames (past_end is set).
        hdr_beat = Signal(range(PAYLOAD_BEAT + 2))
        beat = Signal(_INDEX_BITS)
        stored = [Signal(8 * BEAT_BYTES, name=f"header_beat{k}") for k in range(PAYLOAD_BEAT)]
        vlan = Signal()

        def byte_source(at: int):
            """Bytes of a field checked at beat ``at``: earlier beats come from ``stored``."""
            def byte_at(pos: BytePos) -> Value:
                assert pos.beat <= at
                word = data_in if pos.beat == at else stored[pos.beat]
                return word.word_select(pos.lane, 8)
            return byte_at

        tag_type = field_pos(ETHERNET, "ethertype", False)
        vlan_now = Signal()
        m.d.comb += vlan_now.eq(be_value(tag_type, byte_source(_TAG_BEAT)) == ETHERTYPE_VLAN)

        def variant(vlan_variant: bool | None, at: int) -> Value:
            if vlan_variant is None:
                return Const(1)
            assert at >= _TAG_BEAT
            flag = vlan_now if at == _TAG_BEAT else vlan
            return flag if vlan_variant else ~flag

        # Precomputed from the stored IPv4 total length, a cycle after it arrives, so that the
        # beats that use them see registers only.
        total_pos = {v: field_pos(IPV4, "total_length", v) for v in _VARIANTS}
        total_beat = max(pos.last_beat for pos in total_pos.values())
        # Registered during the beat after the total length, used from the next one on: by the
        # beat before the first payload beat at the latest (to predict `at_end`).
        assert total_beat + 2 <= PAYLOAD_BEAT - 1
        stored_byte = byte_source(PAYLOAD_BEAT)
        total = Mux(vlan, be_value(total_pos[True], stored_byte),
                    be_value(total_pos[False], stored_byte))
        udp_length_expected = Signal(16)
        end_beat_minus_1 = Signal(_INDEX_BITS)  # beat before the one with the last payload byte
        end_lane = Signal(range(BEAT_BYTES))
        end_oh = Signal(BEAT_BYTES)   # end_lane one-hot: the live keep test is an AND-OR
        empty_payload = Signal()
        # last payload byte's offset minus one beat: offset = eth header + total length - 1
        last_minus_beat = Signal(_INDEX_BITS + exact_log2(BEAT_BYTES))
        m.d.comb += last_minus_beat.eq(total + Mux(
            vlan, eth_header_length(True) - 1 - BEAT_BYTES,
            eth_header_length(False) - 1 - BEAT_BYTES))
        m.d.sync += [
            udp_length_expected.eq(total - IPV4.size),
            end_beat_minus_1.eq(last_minus_beat >> exact_log2(BEAT_BYTES)),
            end_lane.eq(last_minus_beat[:exact_log2(BEAT_BYTES)]),
            end_oh.eq(Const(1, BEAT_BYTES) << last_minus_beat[:exact_log2(BEAT_BYTES)]),
            empty_payload.eq(total == IPV4.size + UDP.size),
        ]

        # Header checks: (reason, beat completing the fields, tag variant or None, failed).
        checks = []

        def check(reason, fields, failed, after=0):
            pos = {v: [field_pos(header, name, v) for header, name in fields] for v in _VARIANTS}
            for vlan_variant in ((None,) if pos[False] == pos[True] else _VARIANTS):
                where: list[FramePos] = pos[bool(vlan_variant)]
                at = max(p.last_beat for p in where)
                assert at >= after, "a precomputed value would not be ready in time"
                values = [be_value(p, byte_source(at)) for p in where]
                checks.append((reason, at, vlan_variant, failed(*values)))

        check(UdpRxStat.MAC, [(ETHERNET, "dst")], lambda dst: dst != endpoint.mac)
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
        check(UdpRxStat.LENGTH, [(UDP, "length")],
              lambda length: length != udp_length_expected, after=total_beat + 2)
        check(UdpRxStat.DST_IP, [(IPV4, "dst")], lambda ip: ip != endpoint.ip)
        check(UdpRxStat.DST_PORT, [(UDP, "dst_port")], lambda port: port != endpoint.port)

        # IPv4 checksum: the header's 16-bit words (lane pairs) are added as their beat arrives,
        # so the sum is complete, in a register, the beat after the header's last one. Words of
        # beats up to the tag beat wait in `stored` for the tag flag and join the next beat.
        checksum_sum = Signal(_SUM_BITS)
        checksum_beat = max(pos.last_beat for pos in _IP.values()) + 1
        assert checksum_beat <= PAYLOAD_BEAT
        checks.append((UdpRxStat.IP_CHECKSUM, checksum_beat, None, ~_checksum_ok(checksum_sum)))

        def in_ip(beat_index: int, pair: int, vlan_variant: bool) -> bool:
            offset = beat_index * BEAT_BYTES + 2 * pair
            span = _IP[vlan_variant]
            return span.offset <= offset < span.offset + span.size

        def pair_word(word: Value, pair: int) -> Value:
            return Cat(word.word_select(2 * pair + 1, 8), word.word_select(2 * pair, 8))

        # The beat position and tag flag the next input beat will see, so that the checksum's
        # operand enables are registers: the sum's path starts at the data and the enables.
        hdr_beat_next = Signal.like(hdr_beat)
        vlan_next = Signal()
        m.d.comb += [hdr_beat_next.eq(hdr_beat), vlan_next.eq(vlan)]
        with m.If(accept):
            with m.If(i.payload.last):
                m.d.comb += hdr_beat_next.eq(0)
            with m.Elif(hdr_beat <= PAYLOAD_BEAT):
                m.d.comb += hdr_beat_next.eq(hdr_beat + 1)
            with m.If(hdr_beat == _TAG_BEAT):
                m.d.comb += vlan_next.eq(vlan_now)
        m.d.sync += [hdr_beat.eq(hdr_beat_next), vlan.eq(vlan_next)]

        # Registered beat tests, so that a check completing in a beat meets one register and its
        # data compare, not a compare of the beat counter as well.
        beat_flags = {}

        def beat_is(at: int, vlan_variant: bool | None = None) -> Value:
            """The input beat is beat ``at`` of a frame of ``vlan_variant`` (None: either)."""
            registered = vlan_variant if at > _TAG_BEAT else None
            if (at, registered) not in beat_flags:
                flag = Signal(name=f"at_beat{at}" + {None: "", False: "_untagged",
                                                    True: "_tagged"}[registered])
                cond = hdr_beat_next == at
                if registered is not None:
                    cond = cond & (vlan_next if registered else ~vlan_next)
                m.d.sync += flag.eq(cond)
                beat_flags[at, registered] = flag
            flag = beat_flags[at, registered]
            if vlan_variant is not None and registered is None:
                flag = flag & variant(vlan_variant, at)
            return flag

        def enable_for(pair: int, when: list[tuple[int, int]]) -> Value | None:
            """Add lane pair ``pair`` when the input is at beat ``now`` of a frame whose IPv4
            header covers that pair in beat ``source``, for each (now, source) of ``when``; a
            register set the cycle before."""
            terms = [(hdr_beat_next == now) & (vlan_next if v else ~vlan_next)
                     for now, source in when for v in _VARIANTS if in_ip(source, pair, v)]
            if not terms:
                return None
            enable = Signal(name=f"sum_en{pair}_{when[0][1]}")
            m.d.sync += enable.eq(Cat(*terms).any())
            return enable

        # The sum restarts at the first beat that adds header words (rather than being cleared
        # at a frame's end, which would put a multiplexer after the adder).
        restart = Signal()
        m.d.sync += restart.eq(hdr_beat_next == _TAG_BEAT + 1)
        addends = [Mux(restart, 0, checksum_sum)]
        for pair in range(BEAT_BYTES // 2):
            live = [(k, k) for k in range(_TAG_BEAT + 1, checksum_beat)]
            enable = enable_for(pair, live)
            if enable is not None:
                addends.append(Mux(enable, pair_word(data_in, pair), 0))
            for k in range(_TAG_BEAT + 1):
                enable = enable_for(pair, [(_TAG_BEAT + 1, k)])
                if enable is not None:
                    addends.append(Mux(enable, pair_word(stored[k], pair), 0))

        # Which header checks have failed so far, and with the checks completing in this beat.
        fail = {reason: Signal(name=f"fail_{reason.name.lower()}") for reason in HEADER_DROPS
                if reason is not UdpRxStat.RUNT}
        fail_now = {}
        for reason, flag in fail.items():
            now = flag
            for check_reason, at, vlan_variant, failed in checks:
                if check_reason is reason:
                    now = now | (beat_is(at, vlan_variant) & failed)
            fail_now[reason] = Signal(name=f"fail_now_{reason.name.lower()}")
            m.d.comb += fail_now[reason].eq(now)

        def by_variant(choice) -> Value:
            return Mux(vlan, choice(True), choice(False))

        first_beat = beat_is(PAYLOAD_BEAT)
        after_first = beat_is(PAYLOAD_BEAT + 1)   # hdr_beat stops there
        in_headers = Signal()
        m.d.sync += in_headers.eq(hdr_beat_next < PAYLOAD_BEAT)
        runt_now = Signal()
        m.d.comb += runt_now.eq(i.payload.last & (
            in_headers | (first_beat & ~by_variant(lambda v: keep_in[_UDP_LAST[v].lane]))))
        # The verdict on the first payload beat, built from what can decide it then: the beat
        # flags are exclusive, which synthesis cannot see, so the checks of earlier beats are
        # left to registers, and only the checks completing in this beat are live. The flags
        # registered up to the beat before are folded a cycle ahead into one flag with the beat's
        # position (``first_clean``); the checks completing in the beat before have a register
        # of their own (``late_fail``), so that no live compare meets the folding.
        first_clean = Signal()      # the first payload beat, no check failed before the last
        m.d.sync += first_clean.eq((hdr_beat_next == PAYLOAD_BEAT) & ~Cat(*fail.values()).any())
        late_fail = Signal()        # read after the beat before the first payload beat only
        with m.If(accept):
            m.d.sync += late_fail.eq(Cat(*(
                variant(vlan_variant, at) & failed
                for _, at, vlan_variant, failed in checks if at == PAYLOAD_BEAT - 1)).any())
        fail_first = Cat(*(variant(vlan_variant, at) & failed
                           for _, at, vlan_variant, failed in checks if at == PAYLOAD_BEAT)).any()
        # Read on the first payload beat only. A runt (the UDP header cut short there) needs no
        # term: its payload lanes are empty too (``empty_first``), and it is counted from
        # ``runt_now``.
        clean = first_clean & ~late_fail
        header_ok = Signal()
        m.d.comb += header_ok.eq(clean & ~fail_first)

        # The payload's end, predicted a beat ahead so the output path sees a register.
        at_end = Signal()  # this beat holds the last payload byte
        past_end = Signal()  # the last payload byte has gone by; the rest is padding
        pending = Signal()  # o holds the last payload beat, waiting for the frame's end
        deliver = Signal()  # the headers passed; pass the payload on
        truncated_now = Signal()
        m.d.comb += truncated_now.eq(i.payload.last & ~past_end
                                     & ~(at_end & (keep_in & end_oh).any()))

        start_lanes = by_variant(lambda v: _ALL_LANES << payload_pos(v).lane & _ALL_LANES)
        empty_first = empty_payload | (
            i.payload.last & ~by_variant(lambda v: keep_in[payload_pos(v).lane]))
        carries_payload = Signal()
        # (past_end is never set in the first payload beat.)
        m.d.comb += carries_payload.eq(Mux(
            first_beat, header_ok & ~empty_first, deliver & after_first & ~past_end))

        keep_out = (Mux(first_beat, start_lanes, _ALL_LANES)
                    & Mux(at_end, Cat(*(end_lane >= lane for lane in range(BEAT_BYTES))),
                          _ALL_LANES)
                    & Mux(i.payload.last, keep_in, _ALL_LANES))

        # Beats that cannot load the output register are taken whatever its state.
        skip = (in_headers
                | (first_beat & ~clean)
                | (after_first & (~deliver | past_end)))
        m.d.comb += i.ready.eq(~o.valid | o.ready | skip)

        # The payload registers load whenever they are free, so that only `o.valid` (and not 70
        # enables) waits for the header decision; a beat held for the frame's end stays put.
        # (A free register implies i.ready, so accept is not needed here.)
        m.d.comb += self.out_load.eq(i.valid & (~o.valid | o.ready) & ~pending)
        with m.If(self.out_load):
            m.d.sync += [
                o.payload.data.eq(data_in),
                o.payload.keep.eq(keep_out),
                o.payload.first.eq(first_beat),
                o.payload.last.eq(at_end | i.payload.last),
                o.payload.error.eq(i.payload.last & (i.payload.error | truncated_now)),
            ]
        # o.valid as one next-state expression, not an enable behind the verdict: a held beat
        # stays; a free register takes whatever this beat offers (a beat carrying payload or
        # releasing the held one is taken whenever the register is free, and never otherwise).
        offers = (carries_payload & (~at_end | i.payload.last)) | (pending & i.payload.last)
        m.d.sync += o.valid.eq(Mux(o.valid & ~o.ready, 1, i.valid & offers))
        with m.If(accept & carries_payload):
            m.d.sync += pending.eq(at_end & ~i.payload.last)
        with m.Elif(accept & pending & i.payload.last):
            m.d.sync += [o.payload.error.eq(i.payload.error), pending.eq(0)]

        # Verdict: raw reasons registered at the frame's end, prioritised and counted next cycle.
        done = Signal()
        raw = {
            UdpRxStat.FRAME_ERROR: i.payload.error,
            UdpRxStat.RUNT: runt_now,
            UdpRxStat.TRUNCATED: truncated_now,
            **fail_now,
        }
        reason_seen = {reason: Signal(name=f"seen_{reason.name.lower()}") for reason in PRIORITY}
        m.d.sync += done.eq(accept & i.payload.last)
        m.d.sync += [reason_seen[reason].eq(raw[reason]) for reason in PRIORITY]
        stats = self.stats
        count(m, stats.frames, done)
        higher = Const(0)
        for reason in PRIORITY:
            count(m, getattr(stats, reason.name.lower()), done & reason_seen[reason] & ~higher)
            higher = higher | reason_seen[reason]
        count(m, stats.accepted, done & ~higher)

        with m.If(accept):
            m.d.sync += [
                beat.eq(beat + 1),
                checksum_sum.eq(_csa_sum(addends, _SUM_BITS)),
                at_end.eq(beat == end_beat_minus_1),
            ]
            m.d.sync += [flag.eq(fail_now[reason]) for reason, flag in fail.items()]
            for k, word in enumerate(stored):
                with m.If(hdr_beat == k):
                    m.d.sync += word.eq(data_in)
            with m.If(first_beat):
                m.d.sync += deliver.eq(header_ok)
            with m.If(at_end & (hdr_beat >= PAYLOAD_BEAT)):
                m.d.sync += past_end.eq(1)
            with m.If(i.payload.last):
                m.d.sync += [beat.eq(0), deliver.eq(0),
                             past_end.eq(0), *(flag.eq(0) for flag in fail.values())]
        return m
