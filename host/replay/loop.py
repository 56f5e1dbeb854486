"""``tickgate replay --until loop``: the market maker's loop over one capture, model and gateware.

The capture goes through the feed model (UDP, MoldUDP64, ITCH decode) and each event is timed by
its ITCH timestamp in cycles of the core clock; pauses longer than ``max_gap`` cycles are
shortened (in both runs), so that simulation time goes to trading rather than to waiting. The
model's closed loop (:class:`~sim.market_maker.MarketMaker`) and the gateware loop
(:class:`~hdl.quote.loop.QuoteLoop` in Amaranth's simulator, closed by the same book and exchange
models, :mod:`host.gatesim.loop_tb`) run the same timed feed with the same parameters; their
OUCH messages are compared byte for byte and in order. The feed ingress and the book gateware are
compared on their own by ``--until events`` and ``--until book``.

Parameters come from a TOML file in the host's settings format (``tickgate host set``), blocks
``quote``, ``risk`` and ``port_limits``, over the bundled defaults (``default_params.toml``).
"""

from __future__ import annotations

import bisect
import dataclasses
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host.gatesim.loop_tb import LoopBench, LoopRun, compress
from host.replay.inputs import ReplayInput
from sim.book import Books
from sim.exchange import DEFAULT_CLK_HZ
from sim.fair_value import mid_price
from sim.ingress import Ingress
from sim.itch_event import EventKind, ItchEvent, Side, symbol_int, symbol_str
from sim.market_maker import (
    FEED_GAP,
    MarketMaker,
    MarketMakerConfig,
    MarketMakerResult,
    QuotedInstrument,
)
from sim.orders import Fill
from sim.our_quotes import quote_rows
from sim.position import FeeSchedule, PositionBook
from sim.udp_rx import UdpRxConfig
from sim.wire.ouch import CancelOrder, EnterOrder, ReplaceOrder

__all__ = ["DEFAULT_PARAMS", "FEED_TO_LOOP", "ORDER_COLUMNS", "WAVES_AFTER", "LoopReplay",
           "SideSummary", "load_params", "replay_feed", "run_loop", "timed_feed",
           "trading_figures"]

DEFAULT_PARAMS = Path(__file__).with_name("default_params.toml")
#: Cycles from the beat carrying a message's last byte at the Ethernet input to its top update
#: entering the loop, in the core (ingress and book; a replace takes the book 3 more). The loop
#: replay adds them to its tick to order for the tick to trade; the core's own tick-to-trade
#: test measures their sum at the core's ports.
FEED_TO_LOOP = 7
#: Cycles a pause in the capture is shortened to by default.
DEFAULT_MAX_GAP = 2_000
#: How far past the first differing order the waveform goes.
WAVES_AFTER = 500
_KINDS = {EnterOrder: "enter", ReplaceOrder: "replace", CancelOrder: "cancel"}
#: The fields of one order row (``time``: the feed's cycle when the risk gate passed it, the
#: same for both runs in lockstep; ``cycle``: the run's own cycle then, the gateware's clock
#: running from step to step in lockstep; ``orig_ref``: a Replace's original UserRefNum, else 0;
#: ``packet``: its SoupBinTCP bytes in hex).
ORDER_COLUMNS = ("index", "time", "cycle", "kind", "slot", "symbol", "user_ref", "orig_ref",
                 "side", "quantity", "price", "packet")


def load_params(path: str | Path | None, symbols: list[str]
                ) -> tuple[list[QuotedInstrument], object]:
    """The instruments' quote parameters and risk limits, and the port limits: the bundled
    defaults, then the file's values. Raises ValueError naming the culprit."""
    from hdl.csr.reg import from_values
    from host.commands.host import load_settings
    from host.regmap import REGMAP, parse_value

    values = load_settings(DEFAULT_PARAMS.read_text())
    if path is not None:
        try:
            values.update(load_settings(Path(path).read_text()))
        except KeyError as error:
            raise ValueError(f"{path}: {error.args[0]}") from None
        except ValueError as error:     # tomllib.TOMLDecodeError among them
            raise ValueError(f"{path}: {error}") from None
    raw = {loc: parse_value(REGMAP[loc], value) for loc, value in values.items()}

    def block(name: str, index: int | None):
        regs = REGMAP.block(name).regs
        prefix = f"{name}[{index}]" if index is not None else name
        return from_values(REGMAP.block(name), {r.name: raw.get(f"{prefix}.{r.name}", r.reset)
                                                for r in regs})

    instruments = [QuotedInstrument(symbol, block("quote", k), block("risk", k))
                   for k, symbol in enumerate(symbols)]
    return instruments, block("port_limits", None)


def timed_feed(inp: ReplayInput, clk_hz: int = DEFAULT_CLK_HZ
               ) -> tuple[list[tuple[int, ItchEvent | str]], list[str]]:
    """The capture's events through the feed model, each at the cycle of its ITCH timestamp
    (from the first event's; never earlier than the previous one), a :data:`FEED_GAP` item after
    each frame that opened a MoldUDP64 gap; and the stock directory's symbols in order."""
    ingress = Ingress(UdpRxConfig(inp.endpoint.mac, inp.endpoint.ip, inp.endpoint.port))
    feed: list[tuple[int, ItchEvent | str]] = []
    symbols: list[str] = []
    origin, last, gaps = None, 0, 0
    for frame in inp.frames:
        for event in ingress.push(frame).events:
            origin = event.timestamp if origin is None else origin
            last = max(last, max(event.timestamp - origin, 0) * clk_hz // 1_000_000_000)
            feed.append((last, event))
            if event.kind == EventKind.DIRECTORY:
                symbol = symbol_str(event.symbol).strip()
                if symbol not in symbols:
                    symbols.append(symbol)
        if len(ingress.gaps) > gaps:
            gaps = len(ingress.gaps)
            feed.append((last, FEED_GAP))
    return feed, symbols


def replay_feed(inp: ReplayInput, max_gap: int = DEFAULT_MAX_GAP
                ) -> tuple[list[tuple[int, ItchEvent | str]], list[str]]:
    """:func:`timed_feed` with pauses over ``max_gap`` cycles shortened to it (0: kept)."""
    feed, directory = timed_feed(inp)
    return (compress(feed, max_gap) if max_gap else feed), directory


@dataclass
class SideSummary:
    """What one side (model or gateware) did, per instrument slot and in all."""

    orders: list[dict] = field(default_factory=list)
    per_slot: list[dict] = field(default_factory=list)
    latencies: list[int] = field(default_factory=list)


@dataclass
class LoopReplay:
    config: MarketMakerConfig
    feed: list[tuple[int, ItchEvent | str]]
    model: MarketMakerResult
    gateware: LoopRun | None
    summaries: dict[str, SideSummary]
    mismatches: int = 0
    differences: list[dict] = field(default_factory=list)
    #: The gateware run was stopped early (Ctrl-C): both sides cover the feed up to there, and
    #: orders still in flight when it stopped may be missing from the gateware's.
    stopped: bool = False
    lockstep: bool = True
    #: The VCD written around the first mismatch, if any.
    waves: str | None = None


def _order_rows(records, slot_of_ref: dict[int, int], symbols: list[str]) -> list[dict]:
    rows = []
    for index, record in enumerate(records):
        m = record.message
        if isinstance(m, EnterOrder):
            slot = symbols.index(m.symbol.strip()) if m.symbol.strip() in symbols else -1
            slot_of_ref[m.user_ref_num] = slot
        elif isinstance(m, ReplaceOrder):
            slot = slot_of_ref.get(m.orig_user_ref_num, -1)
            slot_of_ref[m.user_ref_num] = slot
        else:
            slot = slot_of_ref.get(m.user_ref_num, -1)
        rows.append({"index": index, "time": getattr(record, "feed_time", record.time),
                     "cycle": record.time, "kind": _KINDS[type(m)],
                     "slot": slot, "symbol": symbols[slot] if slot >= 0 else "",
                     "user_ref": m.user_ref_num,
                     "orig_ref": getattr(m, "orig_user_ref_num", 0),
                     "side": getattr(m, "side", ""), "quantity": m.quantity,
                     "price": getattr(m, "price", 0), "packet": record.packet.hex()})
    return rows


def _quote_changes(rows: list[dict], slot: int) -> int:
    """How often our best bid or ask (price or shares) on ``slot`` changed."""
    changes, last = 0, None
    for q in quote_rows("", rows):
        if q["slot"] == slot:
            now = (q["bid_price"], q["bid_shares"], q["ask_price"], q["ask_shares"])
            changes += now != last
            last = now
    return changes


def _per_slot(rows: list[dict], fills: list[Fill], config: MarketMakerConfig,
              marks: dict[int, int | None], tops: Counter, messages: Counter,
              ticks: list[tuple[int, int, int]] | None = None) -> list[dict]:
    book = PositionBook(len(config.instruments), config.fees)
    for fill in fills:
        book.apply(fill)
    for slot, mark in marks.items():
        book.set_mark(slot, mark)
    out = []
    for slot, inst in enumerate(config.instruments):
        kinds = Counter(r["kind"] for r in rows if r["slot"] == slot)
        p = book.positions[slot]
        out.append({"slot": slot, "symbol": inst.symbol, "messages": messages[slot],
                    "top_changes": tops[slot], "quotes": _quote_changes(rows, slot),
                    "orders": sum(kinds.values()), **{k: kinds[k] for k in _KINDS.values()},
                    "fills": sum(1 for f in fills if f.slot == slot),
                    "position": p.shares, "realized": p.realized, "unrealized": p.unrealized(),
                    "rebates": p.rebates, "fees": p.fees, "net": p.net(),
                    **_tick_to_trade([t for k, _, t in ticks or () if k == slot])})
    return out


def trading_figures(per_slot: list[dict]) -> list[dict]:
    """Per-instrument figures without the latencies: what the model and the gateware, and one
    job and its shards, must agree on (the model has no latency; a shard simulates a loop of
    its own size)."""
    return [{k: v for k, v in row.items() if not k.startswith("tick_to_trade")}
            for row in per_slot]


def _tick_to_trade(tick_to_trade: list[int]) -> dict:
    """Per instrument: tick to trade as min / median / p99 / max cycles, None without samples
    (and for the model)."""
    figures = latency_figures(tick_to_trade) or {}
    return {f"tick_to_trade_{k}": figures.get(k) for k in ("min", "median", "p99", "max")}


def _gateware_fills(run: LoopRun) -> list[Fill]:
    return [Fill(f["time"], f["slot"], Side(f["side"]), f["quantity"], f["price"],
                 chr(f["liquidity"]), f["ref"], f["match_number"]) for f in run.fills]


#: Free running, a top update is timed only when no other update, order or answer moved within
#: this many cycles before it (nor an answer between it and its order): the loop is then quiet
#: and the order is the update's own.
_QUIET = 200


def _tick_to_order(run: LoopRun, lockstep: bool) -> list[tuple[int, int, int]]:
    """Per top update that finds the loop quiet, its slot, the cycles to the first beat of the
    first order it causes (the next order decided after it and before the next update) and the
    tick to trade: in a run of the whole core, measured from the beat that brought the last
    byte of the update's message to the Ethernet input; of the loop alone, the feed's
    :data:`FEED_TO_LOOP` cycles more than the tick to order. In lockstep every input goes into
    a settled loop, so each update's first order before the next input is its own."""
    tops = [cycle for cycle, _ in run.top_cycles]
    answered = [cycle for cycle, _ in run.answers]
    inputs = sorted(tops + answered)
    out = []
    for k, cycle in enumerate(tops):
        if lockstep:
            after = bisect.bisect_right(inputs, cycle)
            nxt = inputs[after] if after < len(inputs) else None
        else:
            nxt = tops[k + 1] if k + 1 < len(tops) else None
        first = next((r for r in run.sent if r.time >= cycle
                      and (nxt is None or r.time < nxt)), None)
        if first is None:
            continue
        busy = not lockstep and (
            (k > 0 and tops[k - 1] >= cycle - _QUIET)
            or any(cycle - _QUIET <= r.time < cycle for r in run.sent)
            or any(cycle - _QUIET <= t <= first.time for t in answered))
        if not busy:
            item = run.top_cycles[k][1]
            to_order = first.first_beat - cycle
            end = run.feed_ends.get(item)
            out.append((run.top_slots[k], to_order,
                        first.first_beat - end if end is not None else FEED_TO_LOOP + to_order))
    return out


def run_loop(inp: ReplayInput, *, symbols: list[str] | None = None, params: str | None = None,
             fees: FeeSchedule | None = None, latency: int = 2_500,
             max_gap: int = DEFAULT_MAX_GAP, gateware: bool = True,
             progress: Callable[[int, int], None] | None = None,
             stop: Callable[[], bool] | None = None, lockstep: bool = True,
             waves: str | None = None, simulator: str = "amaranth",
             core: bool = False) -> LoopReplay:
    """Run the capture's market-maker loop through the model and, with ``gateware``, through
    the gateware loop, and compare their orders.

    ``progress`` and ``stop`` go to the gateware run (:meth:`LoopBench.run`); when it stops
    early, the model is run again on the feed items the gateware was given, so both sides
    cover the same part of the capture (``LoopReplay.stopped``). With ``lockstep`` the
    gateware loop takes the model's inputs in the model's order, each once it has settled, and
    its orders reach the exchange when the model's do (see :meth:`LoopBench.run`), so the two
    loops are compared on the same inputs and answers; without, on the gateware's own timing.
    On a mismatch, ``waves`` names a VCD file to write: the gateware run again from cycle 0 to
    :data:`WAVES_AFTER` cycles past the first differing order. ``simulator`` runs the gateware
    in Amaranth's simulator or, under cocotb, in ``icarus`` or ``verilator`` (then without
    ``progress``, ``stop`` or ``waves``). With ``core`` the gateware is the whole core
    (:func:`host.gatesim.core_cocotb.run_core`): the capture's own Ethernet frames in, its
    book making the loop's top updates, set up by the host driver through the register map;
    it runs under cocotb only (``icarus`` or ``verilator``)."""
    if core and simulator == "amaranth":
        raise ValueError("the whole core runs under cocotb: choose icarus or verilator")
    if simulator != "amaranth" and waves is not None:
        raise ValueError(f"--waves writes Amaranth's VCD; under {simulator}, set "
                         "TICKGATE_WAVES=1 for an FST of the whole run in its build directory")
    feed, directory = replay_feed(inp, max_gap)
    if not symbols and not directory:
        raise ValueError("the capture has no stock directory message, so no instrument to "
                         "quote can be found by its symbol")
    symbols = list(symbols or directory[:2])
    if not 1 <= len(symbols) <= 8:
        raise ValueError(f"quote 1 to 8 instruments, got {len(symbols)}: {symbols}")
    unknown = [s for s in symbols if s not in directory]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not in the capture's stock directory "
                         f"({', '.join(directory[:12])}{' ...' if len(directory) > 12 else ''})")
    instruments, port = load_params(params, symbols)
    config = MarketMakerConfig(instruments, port, latency=latency,
                               fees=fees or FeeSchedule())
    model = MarketMaker(config).run(feed)
    run = None
    if gateware:
        times = [r.time + latency for r in model.sent] if lockstep else None
        if core:
            from host.gatesim.core_cocotb import run_core

            run = run_core(dataclasses.replace(config), feed, inp.frames, inp.endpoint,
                           exchange_times=times, simulator=simulator)
        elif simulator == "amaranth":
            run = LoopBench(dataclasses.replace(config)).run(
                feed, progress=progress, stop=stop, exchange_times=times)
        else:
            run = LoopBench(dataclasses.replace(config)).run(
                feed, exchange_times=times, simulator=simulator)
        if run.stopped:
            feed = feed[:run.fed]
            model = MarketMaker(config).run(feed)

    books = Books(slots=len(symbols))
    for slot, symbol in enumerate(symbols):
        books.track_symbol(slot, symbol_int(symbol))
    tops: Counter = Counter()
    messages: Counter = Counter()       # the feed's events per quoted instrument
    marks: dict[int, int | None] = {}
    for _, item in feed:
        if item == FEED_GAP:
            continue
        updates = books.push(item)
        slot = books.slot_of(item.locate)
        if slot is not None:
            messages[slot] += 1
        for update in updates:
            tops[update.slot] += 1
            mid = mid_price(update)
            if mid is not None:
                marks[update.slot] = mid

    summaries = {}
    model_rows = _order_rows(model.sent, {}, symbols)
    summaries["model"] = SideSummary(model_rows, _per_slot(model_rows, model.fills, config,
                                                           marks, tops, messages))
    replay = LoopReplay(config, feed, model, run, summaries,
                        stopped=run is not None and run.stopped, lockstep=lockstep)
    if run is not None:
        rows = _order_rows(run.sent, {}, symbols)
        ticks = _tick_to_order(run, lockstep)
        summaries["gateware"] = SideSummary(
            rows, _per_slot(rows, _gateware_fills(run), config, marks, tops, messages, ticks),
            [c for _, c, _ in ticks])
        ours, theirs = [r.packet for r in model.sent], [r.packet for r in run.sent]
        # A stopped run is compared as far as the gateware got.
        compared = len(theirs) if replay.stopped else max(len(ours), len(theirs))
        diff = [k for k in range(compared)
                if k >= len(ours) or k >= len(theirs) or ours[k] != theirs[k]]
        replay.mismatches = len(diff)
        for k in diff[:5]:
            first = model_rows[k] if k < len(model_rows) else rows[k]
            replay.differences.append({
                "index": k, "time": first["time"], "slot": first["slot"],
                "model": str(model.sent[k].message) if k < len(ours) else None,
                "gateware": str(run.sent[k].message) if k < len(theirs) else None,
                "context": [str(r.message) for r in model.sent[max(0, k - 2):k]]})
        if diff and waves is not None:
            k = diff[0]
            mark = run.sent[k].time if k < len(run.sent) else run.cycles
            LoopBench(dataclasses.replace(config)).run(
                feed, exchange_times=times, until=mark + WAVES_AFTER, vcd=waves)
            replay.waves = waves
    return replay


def latency_figures(latencies: list[int]) -> dict | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p99": ordered[min(len(ordered) - 1, (99 * len(ordered)) // 100)],
            "max": ordered[-1], "samples": len(ordered)}
