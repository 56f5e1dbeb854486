"""The reference model for notebooks: a capture in, pandas DataFrames of what happened out.

A quant explores a strategy here without gateware: the book of each tracked instrument, and the
market maker's closed loop (:mod:`sim.market_maker`) with the same parameter objects the host
writes into the registers (:class:`~hdl.csr.params.QuoteParams`,
:class:`~hdl.csr.params.RiskLimits`, :class:`~hdl.csr.params.PortLimits`), so that a parameter
set found here is the one to load on the board. Every price is an integer in ITCH units (1e-4 $)
and every time an integer cycle count of the core clock; money is price units times shares.

::

    from hdl.csr.params import PortLimits, QuoteParams, RiskLimits
    from sim import frames
    from sim.market_maker import QuotedInstrument

    feed = frames.load_feed("aapl-20200130-premarket-10k.itch")
    aapl = QuotedInstrument("AAPL", QuoteParams(enable=True, size=100),
                            RiskLimits(max_long=500, max_short=500, max_order_qty=1000,
                                       collar=50_000))
    port = PortLimits(rate_tokens=20, rate_refill=1000, max_live_orders=16,
                      max_unacked_orders=16)
    result = frames.run(feed, [aapl], port)
    frames.orders(result).head()
    frames.sweep(feed, [aapl], port, {"base_half_spread": [1, 2, 4]})

Functions
---------
:func:`load_feed`
    A capture (pcap or pcapng of MoldUDP64, or a raw ITCH 5.0 BinaryFILE) as timed feed items.
:func:`book`
    One row per top-of-book change of the tracked instruments.
:func:`run`
    The closed loop over a feed, armed from cycle 0.
:func:`orders`, :func:`quotes`, :func:`decisions`, :func:`fills`, :func:`positions`,
:func:`summary`
    The run's messages, our best quotes after each, risk decisions, fills, position and PnL
    history, and per-instrument totals.
:func:`sweep`
    :func:`run` over a grid of quote parameters, one summary row per instrument and point.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from hdl.csr.params import PortLimits
from sim.book import Books, TopUpdate
from sim.capture import CaptureError, detect_format, read_binaryfile, read_frames
from sim.exchange import DEFAULT_CLK_HZ
from sim.itch_event import ItchEvent, symbol_int
from sim.market_maker import (
    HostAction,
    HostKind,
    MarketMaker,
    MarketMakerConfig,
    MarketMakerResult,
    QuotedInstrument,
    timed_events,
    timed_frame_events,
)
from sim.orders import Fill
from sim.our_quotes import QUOTE_COLUMNS, quote_rows
from sim.udp_rx import UdpRxConfig
from sim.wire.ouch import CancelOrder, EnterOrder, ReplaceOrder

__all__ = ["book", "decisions", "fills", "load_feed", "orders", "positions", "quotes", "run",
           "summary", "sweep"]

FeedItem = tuple[int, ItchEvent | str]

_ORDER_KINDS = {EnterOrder: "enter", ReplaceOrder: "replace", CancelOrder: "cancel"}
_BOOK_COLUMNS = ["time", "slot", "locate", "seq", "timestamp", "bid_price", "bid_shares",
                 "ask_price", "ask_shares", "halted", "degraded"]


def load_feed(path: str | Path, *, endpoint: UdpRxConfig | None = None,
              clk_hz: int = DEFAULT_CLK_HZ) -> list[FeedItem]:
    """A capture as ``(cycle, event)`` items, timed by its timestamps (see
    :func:`sim.market_maker.timed_events`).

    A pcap or pcapng goes through the feed ingress model, which needs the feed's ``endpoint``
    (destination MAC, IP and UDP port); gaps it reports appear as
    :data:`~sim.market_maker.FEED_GAP` items. A raw ITCH BinaryFILE is decoded directly.
    """
    if detect_format(path) != "itch":
        if endpoint is None:
            raise CaptureError(f"{path}: a pcap needs the feed's endpoint (MAC, IP, UDP port)")
        return list(timed_frame_events(read_frames(path), endpoint, clk_hz))
    return list(timed_events(read_binaryfile(path), clk_hz))


def book(feed: Iterable[FeedItem], symbols: Sequence[str]) -> pd.DataFrame:
    """Every top-of-book change of the instruments ``symbols`` (slot ``i`` is ``symbols[i]``,
    bound by the feed's stock directory message), with the cycle it happened in.

    An empty side is price 0 and 0 shares.
    """
    books = Books(slots=len(symbols))
    for slot, symbol in enumerate(symbols):
        books.track_symbol(slot, symbol_int(symbol))
    rows = []
    for time, item in feed:
        if isinstance(item, str):
            continue
        for update in books.push(item):
            rows.append(_book_row(time, update))
    return pd.DataFrame(rows, columns=_BOOK_COLUMNS)


def _book_row(time: int, update: TopUpdate) -> dict:
    return {"time": time, **{name: getattr(update, name) for name in _BOOK_COLUMNS[1:]}}


def run(feed: Iterable[FeedItem], instruments: Sequence[QuotedInstrument], port: PortLimits,
        **config) -> MarketMakerResult:
    """The market maker's closed loop over ``feed``, armed at cycle 0.

    ``config`` takes the other fields of :class:`~sim.market_maker.MarketMakerConfig`
    (``latency``, ``fees``, ``heartbeat_timeout``, ``geometry``, ...). With a heartbeat timeout
    the host never beats, so quoting stops when it expires, as it would on the board.
    """
    cfg = MarketMakerConfig(list(instruments), port, **config)
    return MarketMaker(cfg).run(feed, [HostAction(0, HostKind.ARM)])


def orders(result: MarketMakerResult) -> pd.DataFrame:
    """One row per message our order port sent: when, why, and what."""
    rows = []
    for record in result.sent:
        action, message = record.decision.action, record.message
        rows.append({
            "time": record.time,
            "trigger": record.trigger.value,
            "feed_items": record.feed_items,
            "message": type(message).__name__,
            "kind": action.kind.name,
            "slot": action.slot,
            "side": action.side.name,
            "level": action.level,
            "price": action.price,
            "quantity": action.quantity,
            "tif": str(action.tif),
            "origin": action.origin.name,
            "reason": record.decision.reason.name,
            "bytes": len(record.packet),
        })
    return pd.DataFrame(rows, columns=["time", "trigger", "feed_items", "message", "kind",
                                       "slot", "side", "level", "price", "quantity", "tif",
                                       "origin", "reason", "bytes"])


def quotes(result: MarketMakerResult, symbols: Sequence[str] = ()) -> pd.DataFrame:
    """Our best bid and ask (price, shares, orders per side) on an instrument after each order
    we sent for it (:mod:`sim.our_quotes`); ``symbols[slot]`` names the instruments."""
    rows = []
    for index, record in enumerate(result.sent):
        m, slot = record.message, record.decision.action.slot
        rows.append({"index": index, "time": record.time, "kind": _ORDER_KINDS[type(m)],
                     "slot": slot, "symbol": symbols[slot] if slot < len(symbols) else "",
                     "user_ref": m.user_ref_num, "orig_ref": getattr(m, "orig_user_ref_num", 0),
                     "side": getattr(m, "side", ""), "quantity": m.quantity,
                     "price": getattr(m, "price", 0)})
    columns = [c for c in QUOTE_COLUMNS if c != "run"]
    return pd.DataFrame([{c: q[c] for c in columns} for q in quote_rows("model", rows)],
                        columns=columns)


def decisions(result: MarketMakerResult) -> pd.DataFrame:
    """Every decision of the risk gate, passed or denied, with its reason."""
    rows = [{"time": d.time, "passed": d.passed, "reason": d.reason.name,
             "kind": d.action.kind.name, "slot": d.action.slot, "side": d.action.side.name,
             "level": d.action.level, "price": d.action.price, "quantity": d.action.quantity,
             "origin": d.action.origin.name} for d in result.decisions]
    return pd.DataFrame(rows, columns=["time", "passed", "reason", "kind", "slot", "side",
                                       "level", "price", "quantity", "origin"])


def fills(result: MarketMakerResult) -> pd.DataFrame:
    """Every fill of our orders."""
    columns = [f.name for f in dataclasses.fields(Fill)]
    rows = [{name: getattr(f, name) for name in columns} | {"side": f.side.name}
            for f in result.fills]
    return pd.DataFrame(rows, columns=columns)


def positions(result: MarketMakerResult) -> pd.DataFrame:
    """Position and PnL of the instrument after each fill (money in price units x shares)."""
    columns = ["time", "slot", "shares", "realized", "unrealized", "rebates", "fees", "net"]
    return pd.DataFrame([dataclasses.asdict(r) for r in result.history], columns=columns)


def summary(result: MarketMakerResult,
            instruments: Sequence[QuotedInstrument] | None = None) -> pd.DataFrame:
    """Per instrument: messages sent, fills, shares traded, final position and PnL."""
    sent, filled = orders(result), fills(result)
    rows = []
    for slot, position in enumerate(result.positions):
        mine = filled[filled["slot"] == slot]
        rows.append({
            "slot": slot,
            "symbol": instruments[slot].symbol if instruments else None,
            "messages": int((sent["slot"] == slot).sum()),
            "fills": len(mine),
            "traded": int(mine["quantity"].sum()),
            "position": position.shares,
            "realized": position.realized,
            "unrealized": position.unrealized(),
            "rebates": position.rebates,
            "fees": position.fees,
            "net": position.net(),
        })
    return pd.DataFrame(rows)


def sweep(feed: Iterable[FeedItem], instruments: Sequence[QuotedInstrument], port: PortLimits,
          grid: Mapping[str, Sequence], **config) -> pd.DataFrame:
    """:func:`run` at every point of ``grid`` (quote parameter name -> values, applied to every
    instrument), one :func:`summary` row per instrument and point, the point's values in front.

    The feed is materialized once and replayed for every point.
    """
    feed = list(feed)
    names = list(grid)
    frames_out = []
    for values in itertools.product(*(grid[name] for name in names)):
        point = dict(zip(names, values, strict=True))
        varied = [dataclasses.replace(i, quote=dataclasses.replace(i.quote, **point))
                  for i in instruments]
        table = summary(run(feed, varied, port, **config), varied)
        for name, value in reversed(point.items()):
            table.insert(0, name, value)
        frames_out.append(table)
    return pd.concat(frames_out, ignore_index=True)
