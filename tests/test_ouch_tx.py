"""OUCH encoder on the Amaranth simulator, compared byte for byte with ``sim/order_entry.py``.

Random approved actions (every kind, slot, side, day and IOC, prices and quantities up to the
widest the ports carry) are mixed with bad ones and UserRefNum changes, sent under idle cycles
and backpressure on both outputs; every packet must equal ``OrderEntry.send(action).packet`` and
every report the UserRefNum the model put in the message. The stimulus helpers are shared with
``tests/cocotb/tb_ouch.py``.
"""

import os
import random
from dataclasses import dataclass, field

import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.arch.beat import BEAT_BYTES, Beat
from hdl.quote.order_action import OrderActionLayout
from hdl.quote.ouch_tx import CLORDID_PREFIX_CHARS, OuchTx, SentLayout
from host.gatesim.streams import pack, unpack
from sim.itch_event import Side
from sim.order_entry import MAX_USER_REF, OrderEntry, OuchTxStat
from sim.orders import HEDGE_LEVEL, ActionKind, OrderAction, OrderTable, Origin
from sim.wire.ouch import MAX_LIMIT_PRICE, MAX_QUANTITY, TimeInForce

SEED = int(os.environ.get("TB_SEED", "1"))
SLOTS = 8
#: Slot 6 has no instrument (its symbol register is 0); slot 7 is "ABCDEFGH", all 8 characters.
SYMBOLS = ["AAPL", "MSFT", "A", "GOOGL", "NVDA", "SPY", None, "ABCDEFGH"]
BAD_TIF = ord("Z")
BAD_KIND = 3
SETTLE_CYCLES = 8


# ------------------------------------------------------------------------------------------------
# Stimulus and the model (shared with the cocotb testbench)


class PermissiveOrders(OrderTable):
    """An order table that takes every action: the encoder's job ends at the bytes, the order
    table's checks (the order exists, is not busy) are made before it."""

    class _Order:
        def __init__(self, ref):
            self.ref = ref

    def get(self, ref):
        return self._Order(ref)

    def entered(self, ref, action, now):
        return None

    def replacing(self, order, ref, price, quantity, now):
        return None

    def canceling(self, order):
        return None


@dataclass(frozen=True)
class Step:
    """An action as the port carries it (``kind``/``tif`` may be out of their enums), a write
    of the next UserRefNum (``next_ref``), or ``wait`` cycles with nothing offered."""

    fields: dict | None = None
    next_ref: int | None = None
    wait: int = 0


def symbol_word(symbol: str | None) -> int:
    return 0 if symbol is None else int.from_bytes(symbol.encode("ascii"), "little")


def prefix_chars(prefix: str) -> list[int]:
    return list(prefix.encode("ascii")) + [0] * (CLORDID_PREFIX_CHARS - len(prefix))


def action_fields(action: OrderAction) -> dict:
    return {"kind": int(action.kind), "slot": action.slot, "side": int(action.side),
            "level": action.level, "price": action.price, "quantity": action.quantity,
            "tif": ord(action.tif), "ref": action.ref, "origin": int(action.origin)}


def random_action(rng: random.Random, slots: int = SLOTS) -> OrderAction:
    """A valid action: any kind, any configured slot, prices and quantities with their edges."""
    price = rng.choice((rng.randrange(1, MAX_LIMIT_PRICE + 1), MAX_LIMIT_PRICE, 1,
                        (1 << 32) - 1, rng.randrange(1, 2_000_000)))
    quantity = rng.choice((rng.randrange(1, MAX_QUANTITY + 1), MAX_QUANTITY, 1, (1 << 32) - 1,
                           rng.randrange(1, 1000)))
    slot = rng.choice([s for s in range(slots) if SYMBOLS[s] is not None])
    kind = rng.choice(list(ActionKind))
    return OrderAction(kind, slot, rng.choice(list(Side)), rng.randrange(HEDGE_LEVEL + 1),
                       price, quantity, rng.choice((TimeInForce.DAY, TimeInForce.IOC,
                                                    rng.choice(list(TimeInForce)))),
                       0 if kind is ActionKind.NEW else rng.choice(
                           (rng.randrange(1, 1 << 32), MAX_USER_REF, 1)),
                       rng.choice(list(Origin)))


def bad_step(rng: random.Random) -> tuple[Step, OuchTxStat]:
    """An action the encoder must refuse, and the counter that says so."""
    fields = action_fields(random_action(rng))
    how = rng.choice(("kind", "tif", "slot", "unset"))
    if how == "kind":
        fields["kind"] = BAD_KIND
        return Step(fields), OuchTxStat.BAD_ACTION
    if how == "tif":
        fields["kind"] = rng.choice((ActionKind.NEW, ActionKind.REPLACE))
        fields["tif"] = BAD_TIF
        return Step(fields), OuchTxStat.BAD_ACTION
    fields["kind"] = ActionKind.NEW
    fields["slot"] = rng.randrange(SLOTS, 256) if how == "slot" else SYMBOLS.index(None)
    return Step(fields), OuchTxStat.UNKNOWN_SLOT


def _tif_or_day(code: int) -> TimeInForce:
    # A cancel carries no time in force: whatever its field holds, the packet is the same.
    return TimeInForce(chr(code)) if chr(code) in set(TimeInForce) else TimeInForce.DAY


def expected(steps: list[Step], first_user_ref: int, prefix: str):
    """The model's packets, reports (UserRefNum, action fields) and counters for ``steps``."""
    entry = OrderEntry([s or "?" for s in SYMBOLS], PermissiveOrders(), first_user_ref, prefix)
    packets, reports, sources = [], [], []
    stats = {stat.name.lower(): 0 for stat in OuchTxStat}
    for n, step in enumerate(steps):
        if step.fields is None and step.next_ref is None:
            continue
        if step.next_ref is not None:
            if step.next_ref == 0:
                stats["bad_next_ref"] += 1
            else:
                entry.next_user_ref = step.next_ref
            continue
        f = step.fields
        if f["kind"] not in ActionKind.__members__.values() or (
                f["kind"] != ActionKind.CANCEL and chr(f["tif"]) not in set(TimeInForce)):
            stats["bad_action"] += 1
            continue
        if f["kind"] == ActionKind.NEW and (f["slot"] >= SLOTS or SYMBOLS[f["slot"]] is None):
            stats["unknown_slot"] += 1
            continue
        if f["kind"] != ActionKind.CANCEL and entry.next_user_ref > MAX_USER_REF:
            stats["refs_exhausted"] += 1
            continue
        action = OrderAction(ActionKind(f["kind"]), f["slot"], Side(f["side"]), f["level"],
                             f["price"], f["quantity"], _tif_or_day(f["tif"]), f["ref"],
                             Origin(f["origin"]))
        sent = entry.send(action, 0)
        packets.append(sent.packet)
        reports.append((sent.message.user_ref_num, f))
        sources.append(n)
        stats["messages"] += 1
    return packets, reports, stats, entry.next_user_ref, sources


def random_steps(rng: random.Random, count: int, bad: float = 0.1) -> list[Step]:
    steps = []
    for _ in range(count):
        if rng.random() < bad:
            steps.append(bad_step(rng)[0])
        else:
            steps.append(Step(action_fields(random_action(rng))))
    return steps


class PacketCollector:
    """Rebuilds packets from beats and checks the beat contract (first, keep, last)."""

    def __init__(self):
        self.packets: list[bytes] = []
        self._open: bytearray | None = None

    def push(self, beat: dict) -> None:
        raw = beat["data"].to_bytes(BEAT_BYTES, "little")
        assert not beat["error"], "the encoder never marks an error"
        assert bool(beat["first"]) == (self._open is None), "first flag out of place"
        if self._open is None:
            self._open = bytearray()
        keep = beat["keep"]
        if not beat["last"]:
            assert keep == (1 << BEAT_BYTES) - 1, "a middle beat is not full"
        else:
            assert keep and keep & (keep + 1) == 0, f"last keep {keep:#x} not from lane 0"
        self._open += raw[:keep.bit_length()]
        if beat["last"]:
            self.packets.append(bytes(self._open))
            self._open = None

    def idle(self) -> bool:
        return self._open is None


# ------------------------------------------------------------------------------------------------
# Amaranth simulation


@dataclass
class Run:
    collector: PacketCollector = field(default_factory=PacketCollector)
    reports: list[tuple[int, dict]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    next_ref: int = 0
    accepts: dict[int, int] = field(default_factory=dict)  # step index -> cycle accepted
    offers: list[int] = field(default_factory=list)  # cycle each packet's first beat is offered
    latencies: list[int] = field(default_factory=list)   # accept -> first beat offered
    first_beat: int | None = None                         # cycle of the first beat taken
    last_beat: int = 0                                    # cycle of the last beat taken
    beats: int = 0


def simulate(steps: list[Step], *, idle=0.0, backpressure=0.0, first_user_ref=1, prefix="TKG",
             seed=0) -> Run:
    dut = OuchTx(slots=SLOTS, first_user_ref=first_user_ref)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    run = Run()
    rng = random.Random(seed)
    beat_layout = Beat.as_shape()

    async def testbench(ctx):
        for slot, symbol in enumerate(SYMBOLS):
            ctx.set(dut.symbols[slot], symbol_word(symbol))
        for k, char in enumerate(prefix_chars(prefix)):
            ctx.set(dut.clordid_prefix[k], char)
        await ctx.tick().repeat(2)   # the prefix length is registered
        index, cycle, quiet, presenting, waited = 0, 0, 0, False, 0
        offered_first = False        # the current packet's first beat was seen offered
        while index < len(steps) or quiet < SETTLE_CYCLES:
            step = steps[index] if index < len(steps) else None
            offer_action = offer_ref = False
            if step is not None and step.fields is None and step.next_ref is None:
                waited += 1
                if waited >= step.wait:
                    waited = 0
                    index += 1
            elif step is not None and (presenting or rng.random() >= idle):
                presenting = True
                if step.fields is not None:
                    offer_action = True
                    ctx.set(Value.cast(dut.i.payload), pack(OrderActionLayout, step.fields))
                else:
                    offer_ref = True
                    ctx.set(dut.i_next_ref.payload, step.next_ref)
            ctx.set(dut.i.valid, offer_action)
            ctx.set(dut.i_next_ref.valid, offer_ref)
            o_ready = rng.random() >= backpressure
            sent_ready = rng.random() >= backpressure
            ctx.set(dut.o.ready, o_ready)
            ctx.set(dut.o_sent.ready, sent_ready)

            o_valid, s_valid = ctx.get(dut.o.valid), ctx.get(dut.o_sent.valid)
            if o_valid:
                beat = unpack(beat_layout, ctx.get(Value.cast(dut.o.payload)))
                if beat["first"] and not offered_first:
                    offered_first = True
                    run.offers.append(cycle)
                if o_ready:
                    run.collector.push(beat)
                    run.beats += 1
                    run.first_beat = cycle if run.first_beat is None else run.first_beat
                    run.last_beat = cycle
                    if beat["last"]:
                        offered_first = False
            if s_valid and sent_ready:
                report = unpack(SentLayout, ctx.get(Value.cast(dut.o_sent.payload)))
                run.reports.append((report["user_ref"], report["action"]))
            if offer_action and ctx.get(dut.i.ready):
                run.accepts[index] = cycle
                presenting = False
                index += 1
            if offer_ref and ctx.get(dut.i_next_ref.ready):
                presenting = False
                index += 1
            busy = o_valid or s_valid or index < len(steps)
            quiet = 0 if busy else quiet + 1
            await ctx.tick()
            cycle += 1
        run.stats = unpack(dut.stats.shape(), ctx.get(Value.cast(dut.stats)))
        run.next_ref = ctx.get(dut.next_ref)

    sim.add_testbench(testbench)
    sim.run()
    return run


def check(steps: list[Step], *, first_user_ref=1, prefix="TKG", **kwargs) -> Run:
    want_packets, want_reports, want_stats, want_next, sources = expected(
        steps, first_user_ref, prefix)
    run = simulate(steps, first_user_ref=first_user_ref, prefix=prefix, **kwargs)
    assert run.collector.idle(), "a packet is left open"
    got = run.collector.packets
    for n, (g, w) in enumerate(zip(got, want_packets, strict=False)):
        assert g == w, f"packet {n}: gateware {g.hex(' ')}, model {w.hex(' ')}"
    assert len(got) == len(want_packets)
    assert run.reports == want_reports
    assert run.stats == want_stats
    assert run.next_ref == want_next
    run.latencies = [offer - run.accepts[source]
                     for offer, source in zip(run.offers, sources, strict=True)]
    return run


# ------------------------------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.0, 0.4),
                                                    (0.4, 0.4)])
def test_random_actions_match_the_model(idle, backpressure):
    rng = random.Random(f"{SEED}-{idle}-{backpressure}")
    check(random_steps(rng, 60), idle=idle, backpressure=backpressure, seed=SEED)


def test_latency_and_throughput():
    """The figures of the docstring: 2 cycles from accept to the first beat when the output is
    free, and packets back to back (one beat per cycle) when actions keep coming."""
    rng = random.Random(SEED)
    spaced = []
    for _ in range(12):
        spaced += [Step(action_fields(random_action(rng))), Step(wait=12)]
    run = check(spaced)
    assert run.latencies == [2] * 12

    run = check([Step(action_fields(random_action(rng))) for _ in range(40)])
    assert run.last_beat - run.first_beat + 1 == run.beats
    assert run.beats == sum(-(-len(p) // BEAT_BYTES) for p in run.collector.packets)


def edge_steps() -> list[Step]:
    steps = []
    for slot, symbol in enumerate(SYMBOLS):
        for side in Side:
            for tif in (TimeInForce.DAY, TimeInForce.IOC):
                action = OrderAction(ActionKind.NEW, slot, side, HEDGE_LEVEL, MAX_LIMIT_PRICE,
                                     MAX_QUANTITY, tif, 0, Origin.HEDGER)
                steps.append(Step(action_fields(action)))
                if symbol is None:
                    continue
                for kind in (ActionKind.REPLACE, ActionKind.CANCEL):
                    steps.append(Step(action_fields(OrderAction(
                        kind, slot, side, 0, (1 << 32) - 1, (1 << 32) - 1, tif, MAX_USER_REF,
                        Origin.GATE))))
    # A cancel ignores its time in force; slots past the table are unknown.
    cancel = action_fields(OrderAction(ActionKind.CANCEL, 0, Side.BUY, 0, ref=7))
    steps.append(Step({**cancel, "tif": BAD_TIF}))
    for slot in (SLOTS, 255):
        steps.append(Step({**action_fields(random_action(random.Random(slot))),
                           "kind": ActionKind.NEW, "slot": slot}))
    return steps


@pytest.mark.parametrize("prefix", ["TKG", "", "ABCDEF"])
def test_edge_cases_every_slot_side_and_kind(prefix):
    run = check(edge_steps(), prefix=prefix, backpressure=0.2, idle=0.2, seed=SEED)
    assert run.stats["unknown_slot"] == 4 + 2   # the unset slot, both sides and TIFs; 2 past
    assert run.stats["bad_action"] == 0


def test_user_refs_run_out_and_are_set_again():
    rng = random.Random(SEED + 1)
    new = [Step(action_fields(OrderAction(ActionKind.NEW, 0, Side.BUY, 0, 100, 1))),
           Step(action_fields(OrderAction(ActionKind.REPLACE, 1, Side.SELL, 1, 200, 2,
                                          TimeInForce.IOC, 5))),
           Step(action_fields(OrderAction(ActionKind.CANCEL, 2, Side.BUY, 2, ref=9)))]
    steps = new * 3 + [Step(next_ref=0)] + new + [Step(next_ref=MAX_USER_REF)] + new
    steps += [Step(next_ref=rng.randrange(1, 1 << 32)), *random_steps(rng, 20)]
    run = check(steps, first_user_ref=MAX_USER_REF - 2, idle=0.2, backpressure=0.3, seed=SEED)
    # 3 refs left: New, Replace, (Cancel), New; then Replace, New, Replace refused; after the
    # ignored 0, New and Replace; after MAX_USER_REF, one New goes and the Replace is refused.
    # Cancels always go.
    assert run.stats["refs_exhausted"] == 3 + 2 + 1
    assert run.stats["bad_next_ref"] == 1
