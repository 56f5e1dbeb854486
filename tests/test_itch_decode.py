"""ITCH decode stage on the Amaranth simulator, compared event by event with ``sim/itch_decode.py``.

The message beats are built here the way the Mold stage lays them out (messages in their original
lanes, start/end marks, unused fields filled with junk so that the decoder must not look at them),
which also lets the cocotb testbench reuse :func:`message_beats` and :func:`random_message`.
"""

import random
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.sim import Simulator

from hdl.feed.itch_decode import ItchDecode
from hdl.feed.itch_event import ItchEventLayout
from sim.itch_decode import EVENT_SOURCES, ItchDecodeStat
from sim.itch_decode import ItchDecode as ItchDecodeModel
from sim.itch_event import EventKind, ItchEvent, Side, symbol_int
from sim.wire.itch import (
    BUY_INDICATOR,
    MESSAGE_SPECS,
    MIN_MESSAGE_LENGTH,
    SELL_INDICATOR,
    FieldKind,
    encode,
)

# ------------------------------------------------------------------------------------------------
# Stimulus helpers (shared with tests/cocotb/tb_itch_decode.py)

LANES = 8
# Type bytes the spec does not define (ITCH 5.0 has no 'Z', 'a', NUL or 0xff message).
UNKNOWN_TYPES = (ord("Z"), ord("a"), 0x00, 0xFF, ord("T"))


@dataclass
class Item:
    """One message in the beat stream.

    ``wire`` is what goes on the wire (all of it, or only the bytes before an abandon),
    ``length`` the length prefix the Mold stage reports, ``gap`` the bytes before it that belong
    to no message (length prefixes, headers, skipped duplicates).
    """

    wire: bytes
    seq: int
    gap: int = 2
    abandon: bool = False
    length: int = field(default=-1)

    def __post_init__(self):
        if self.length < 0:
            self.length = len(self.wire)


def random_message(rng: random.Random, msg_type: str) -> bytes:
    """A well-formed message of ``msg_type`` with random field values."""
    spec = MESSAGE_SPECS[msg_type]
    values = {}
    for f in spec.fields:
        if f.kind is FieldKind.ALPHA:
            values[f.name] = bytes(rng.randrange(0x20, 0x7F) for _ in range(f.size))
        else:
            values[f.name] = rng.getrandbits(8 * f.size)
    if "buy_sell" in values:
        values["buy_sell"] = rng.choice((BUY_INDICATOR, SELL_INDICATOR))
    return encode(msg_type, **values)


def bad_messages(rng: random.Random) -> list[bytes]:
    """Unknown types, known types at a wrong length, add orders without a valid side."""
    out = []
    for code in UNKNOWN_TYPES:
        out.append(bytes([code]) + rng.randbytes(rng.randrange(MIN_MESSAGE_LENGTH - 1, 60)))
    for msg_type in ("A", "S", "D", "U", "F", "P", "h"):
        good = random_message(rng, msg_type)
        out.append(good + rng.randbytes(rng.randrange(1, 9)))
        if len(good) > MIN_MESSAGE_LENGTH:
            out.append(good[:rng.randrange(MIN_MESSAGE_LENGTH, len(good))])
    for msg_type in ("A", "F"):
        raw = bytearray(random_message(rng, msg_type))
        raw[MESSAGE_SPECS[msg_type].field("buy_sell").offset] = ord("X")
        out.append(bytes(raw))
    return out


def message_beats(items: list[Item], rng: random.Random, first: int = 0) -> tuple[list[dict], dict]:
    """Lay ``items`` out as MessageBeat payload dicts; return them and ``{item index: end beat}``.

    Bytes outside messages and fields without their flag are random, so a decoder that reads
    them gets caught. Raises ``ValueError`` on a layout the Mold stage would never produce.
    """
    stream = bytearray(rng.randbytes(first))
    starts, ends = {}, {}
    for index, item in enumerate(items):
        stream += rng.randbytes(item.gap)
        starts[len(stream)] = index
        stream += item.wire
        ends[len(stream) - 1] = index
    stream += rng.randbytes(-len(stream) % LANES)
    beats, end_beat = [], {}
    for b in range(len(stream) // LANES):
        beat = {"data": int.from_bytes(stream[LANES * b:LANES * (b + 1)], "little"),
                "start": 0, "start_lane": rng.getrandbits(3), "length": rng.getrandbits(16),
                "seq": rng.getrandbits(64), "end": 0, "end_lane": rng.getrandbits(3),
                "error": rng.getrandbits(1)}
        for lane in range(LANES):
            pos = LANES * b + lane
            if pos in starts:
                item = items[starts[pos]]
                if beat["start"]:
                    raise ValueError("two messages start in one beat")
                beat.update(start=1, start_lane=lane, length=item.length, seq=item.seq)
            if pos in ends:
                if beat["end"]:
                    raise ValueError("two messages end in one beat")
                beat.update(end=1, end_lane=lane, error=int(items[ends[pos]].abandon))
                end_beat[ends[pos]] = b
        if beat["start"] and beat["end"] and \
                ends[LANES * b + beat["end_lane"]] == starts[LANES * b + beat["start_lane"]]:
            raise ValueError("a message starts and ends in one beat")
        beats.append(beat)
    return beats, end_beat


def expected(items: list[Item]) -> tuple[list[tuple[int, ItchEvent]], dict[str, int]]:
    """The model's events (with the index of their item) and counters, by counter field name."""
    model = ItchDecodeModel()
    events = []
    for index, item in enumerate(items):
        if not item.abandon:
            event = model.push(item.wire, item.seq)
            if event is not None:
                events.append((index, event))
    return events, {member.name.lower(): value for member, value in model.stats.items()}


def abandoned(rng: random.Random, raw: bytes, lane: int) -> bytes:
    """The part of ``raw`` sent before its packet is cut, ending in a later beat than its start."""
    return raw[:rng.randrange(LANES - lane + 1, len(raw))]


def lane_sweep(rng: random.Random, raws: list[bytes], seq0: int = 1) -> list[Item]:
    """Every message of ``raws`` at each of the 8 start lanes, with the smallest gap that gets it
    there (often 0: the next message starts in the beat where the previous one ends)."""
    items, pos, seq = [], 0, seq0
    for raw in raws:
        for lane in range(LANES):
            gap = (lane - pos) % LANES
            items.append(Item(raw, seq, gap=gap))
            pos += gap + len(raw)
            seq += 1
    return items


# ------------------------------------------------------------------------------------------------
# Amaranth simulation


def unpack(layout: data.StructLayout, word: int) -> dict:
    return {name: (word >> member.offset) & ((1 << member.width) - 1) for name, member in layout}


@dataclass
class Run:
    events: list[ItchEvent]
    stats: dict[str, int]
    accept_cycle: list[int]        # per beat
    first_valid_cycle: list[int]   # per event: the cycle it appeared at o
    taken_cycle: list[int]         # per event: the cycle it was taken from o
    stalls: list[tuple[int, int]]  # (cycle, beat index) of each beat offered and not taken
    cycles: int


def simulate(beats: list[dict], *, idle: float = 0.0, backpressure: float = 0.0,
             seed: int = 0) -> Run:
    dut = ItchDecode()
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run([], {}, [], [], [], [], 0)

    async def testbench(ctx):
        rng = random.Random(seed)
        index, presenting, cycle, prev_transfer, prev_valid = 0, False, 0, False, False
        drain = 0
        while index < len(beats) or drain < 4:
            if index == len(beats):
                drain += 1
            if not presenting and index < len(beats) and rng.random() >= idle:
                presenting = True
                ctx.set(dut.i.payload, beats[index])
            ctx.set(dut.i.valid, presenting)
            ready = index == len(beats) or rng.random() >= backpressure
            ctx.set(dut.o.ready, ready)
            i_ready, o_valid = ctx.get(dut.i.ready), ctx.get(dut.o.valid)
            if o_valid and (not prev_valid or prev_transfer):
                run.first_valid_cycle.append(cycle)
            if o_valid and ready:
                raw = unpack(ItchEventLayout, ctx.get(Value.cast(dut.o.payload)))
                run.events.append(ItchEvent.from_dict(raw))
                run.taken_cycle.append(cycle)
            if presenting:
                if i_ready:
                    run.accept_cycle.append(cycle)
                    index += 1
                    presenting = False
                else:
                    run.stalls.append((cycle, index))
            prev_valid, prev_transfer = o_valid, o_valid and ready
            await ctx.tick()
            cycle += 1
        assert not ctx.get(dut.o.valid), "an event is left in the output register"
        run.cycles = cycle
        stats = ctx.get(Value.cast(dut.stats))
        run.stats = unpack(dut.stats.shape(), stats)

    sim.add_testbench(testbench)
    sim.run()
    return run


def check(items: list[Item], *, first: int = 0, idle: float = 0.0, backpressure: float = 0.0,
          seed: int = 0) -> Run:
    """Run ``items`` through the gateware and compare everything with the model."""
    rng = random.Random(seed)
    beats, end_beat = message_beats(items, rng, first)
    want_events, want_stats = expected(items)
    run = simulate(beats, idle=idle, backpressure=backpressure, seed=seed + 1)
    assert run.events == [event for _, event in want_events]
    assert run.stats == want_stats
    # Latency: each event appears at o the cycle after its last beat is accepted, or, if the
    # event before it is still there then, the cycle after that one is taken.
    made = [run.accept_cycle[end_beat[index]] for index, _ in want_events]
    for n, shown in enumerate(run.first_valid_cycle):
        after = run.taken_cycle[n - 1] + 1 if n else 0
        assert shown == max(made[n] + 1, after)
    # A beat waits only while two events wait, one at o and one in the skid register.
    for cycle, _beat_index in run.stalls:
        pending = (sum(c < cycle for c in made) - sum(c < cycle for c in run.taken_cycle))
        assert pending == 2
    return run


# ------------------------------------------------------------------------------------------------
# Tests


def all_event_types() -> list[str]:
    return list(EVENT_SOURCES)


def test_event_sources_cover_every_kind():
    assert {source.kind for source in EVENT_SOURCES.values()} == set(EventKind)


@pytest.mark.parametrize("msg_type", list(MESSAGE_SPECS))
def test_every_type_at_every_start_lane(msg_type):
    rng = random.Random(ord(msg_type))
    items = lane_sweep(rng, [random_message(rng, msg_type) for _ in range(2)])
    run = check(items, seed=ord(msg_type))
    assert len(run.events) == (16 if msg_type in EVENT_SOURCES else 0)


@pytest.mark.parametrize("gap", [0, 2, 5])
def test_back_to_back_mix(gap):
    rng = random.Random(gap)
    raws = [random_message(rng, rng.choice(list(MESSAGE_SPECS))) for _ in range(60)]
    items = [Item(raw, 100 + n, gap=gap) for n, raw in enumerate(raws)]
    run = check(items, first=3, seed=gap)
    # No idle and no backpressure: one beat per cycle, the input is never held.
    assert run.stalls == []
    assert run.accept_cycle == list(range(len(run.accept_cycle)))


def test_bad_input_is_counted_without_events():
    rng = random.Random(7)
    items = lane_sweep(rng, bad_messages(rng))
    run = check(items, seed=7)
    assert run.events == []
    assert run.stats["unknown_type"] == LANES * len(UNKNOWN_TYPES)
    assert run.stats["bad_side"] == LANES * 2
    assert run.stats["bad_length"] > 0


def test_long_unknown_message_does_not_disturb_the_next():
    rng = random.Random(11)
    raws = [random_message(rng, "A"), bytes([ord("Z")]) + rng.randbytes(300),
            random_message(rng, "U"), random_message(rng, "I"), random_message(rng, "C")]
    check(lane_sweep(rng, raws), seed=11)


def test_abandoned_messages_are_dropped_silently():
    rng = random.Random(5)
    items, seq = [], 1
    for msg_type in ("A", "U", "S", "E", "P", "D"):
        for lane in range(LANES):
            raw = random_message(rng, msg_type)
            pos = sum(item.gap + len(item.wire) for item in items)
            gap = (lane - pos) % LANES
            cut = abandoned(rng, raw, lane)
            items.append(Item(cut, seq, gap=gap, abandon=True, length=len(raw)))
            items.append(Item(random_message(rng, rng.choice(all_event_types())), seq + 1, gap=0))
            seq += 2
    run = check(items, seed=5)
    assert len(run.events) == len(items) // 2
    # The abandoned ones are not counted anywhere: the Mold stage counted them.
    assert sum(run.stats.values()) == len(items) // 2


@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.5), (0.4, 0.0), (0.3, 0.7)])
def test_idle_and_backpressure(idle, backpressure):
    seed = int(idle * 10) * 10 + int(backpressure * 10)
    rng = random.Random(seed)
    raws = [random_message(rng, rng.choice([*all_event_types(), "P", "L"])) for _ in range(50)]
    raws += bad_messages(rng)[:6]
    rng.shuffle(raws)
    items = [Item(raw, n, gap=rng.choice((0, 2, 2, 9))) for n, raw in enumerate(raws)]
    run = check(items, idle=idle, backpressure=backpressure, seed=seed)
    # The scenario must really fill the output and skid registers while beats keep coming.
    assert bool(run.stalls) == (backpressure > 0)


def test_real_capture_excerpt(itch_data):
    from sim.capture import read_binaryfile

    messages = list(read_binaryfile(itch_data / "aapl-20200130-premarket-10k.itch"))[:300]
    rng = random.Random(3)
    items = [Item(raw, 1000 + n, gap=2) for n, raw in enumerate(messages)]
    run = check(items, first=rng.randrange(LANES), seed=3)
    assert run.stats["add_order"] > 0
    assert run.stats["unknown_type"] == run.stats["bad_length"] == 0


def test_stat_names_follow_the_spec_table():
    names = [member.name for member in ItchDecodeStat]
    assert names[:len(MESSAGE_SPECS)] == [spec.name for spec in MESSAGE_SPECS.values()]
    assert names[len(MESSAGE_SPECS):] == ["UNKNOWN_TYPE", "BAD_LENGTH", "BAD_SIDE"]


def test_model_events_follow_the_event_table():
    """The model against hand-written events, one per kind (the gateware is checked against it)."""
    header = {"stock_locate": 13, "tracking_number": 7, "timestamp": 0x123456789A}
    common = {"locate": 13, "timestamp": 0x123456789A, "seq": 42}
    aapl = symbol_int("AAPL")
    cases = [
        (encode("A", **header, order_ref=5, buy_sell="S", shares=100, stock="AAPL",
                price=3201400),
         ItchEvent(EventKind.ADD, **common, order_ref=5, side=Side.SELL, shares=100,
                   symbol=aapl, price=3201400)),
        (encode("F", **header, order_ref=6, buy_sell="B", shares=25, stock="AAPL",
                price=3201401, attribution="GSCO"),
         ItchEvent(EventKind.ADD_MPID, **common, order_ref=6, side=Side.BUY, shares=25,
                   symbol=aapl, price=3201401)),
        (encode("E", **header, order_ref=5, executed_shares=40, match_number=99),
         ItchEvent(EventKind.EXECUTE, **common, order_ref=5, shares=40)),
        (encode("C", **header, order_ref=5, executed_shares=10, match_number=98, printable="Y",
                execution_price=3201500),
         ItchEvent(EventKind.EXECUTE_PRICE, **common, order_ref=5, shares=10, price=3201500,
                   code=ord("Y"))),
        (encode("X", **header, order_ref=5, cancelled_shares=30),
         ItchEvent(EventKind.CANCEL, **common, order_ref=5, shares=30)),
        (encode("D", **header, order_ref=5),
         ItchEvent(EventKind.DELETE, **common, order_ref=5)),
        (encode("U", **header, original_order_ref=6, new_order_ref=8, shares=70, price=3201300),
         ItchEvent(EventKind.REPLACE, **common, order_ref=6, new_ref=8, shares=70,
                   price=3201300)),
        (encode("S", **header, event_code="Q"),
         ItchEvent(EventKind.SYSTEM, **common, code=ord("Q"))),
        (encode("R", **header, stock="AAPL", market_category="Q", round_lot_size=100),
         ItchEvent(EventKind.DIRECTORY, **common, symbol=aapl)),
        (encode("H", **header, stock="AAPL", trading_state="T"),
         ItchEvent(EventKind.TRADING_ACTION, **common, symbol=aapl, code=ord("T"))),
    ]
    model = ItchDecodeModel()
    for raw, event in cases:
        assert model.push(raw, 42) == event
    assert {event.kind for _, event in cases} == set(EventKind)
    check([Item(raw, 42) for raw, _ in cases])


def test_model_counts_every_message_once():
    model = ItchDecodeModel()
    assert model.push(encode("P"), 1) is None
    assert model.push(b"", 2) is None
    assert model.push(b"Z" + bytes(20), 3) is None
    assert model.push(encode("A")[:-1], 4) is None
    assert model.push(encode("A", buy_sell="x"), 5) is None
    assert model.push(encode("A", buy_sell="B"), 6) is not None
    assert model.stats == {**dict.fromkeys(ItchDecodeStat, 0), ItchDecodeStat.TRADE: 1,
                           ItchDecodeStat.UNKNOWN_TYPE: 2, ItchDecodeStat.BAD_LENGTH: 1,
                           ItchDecodeStat.BAD_SIDE: 1, ItchDecodeStat.ADD_ORDER: 1}
