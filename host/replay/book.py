"""The order book in a replay (``--until book``): which instruments it tracks, what it produced.

The book has ``BookGeometry.slots`` slots (8 by default), each tracking one instrument, so a
replay first decides what goes in them:

- ``--track AAPL,MSFT,13``: a number is a stock locate, tracked from the first message; anything
  else is a symbol, bound to its locate when the capture's stock directory message (``R``) names
  it, exactly as the gateware's instrument filter does (orders before that ``R`` are not seen);
- by default, the first instruments of the capture's stock directory, in order, then (when the
  directory names fewer than there are slots) the first other locates seen in order messages;
  all tracked by locate, so a capture that starts mid-session loses nothing.

The model and the gateware are configured alike, and their top-of-book streams compared update by
update.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from host.replay.tables import write_table
from sim.book import Books
from sim.itch_event import EVENT_FIELD_BITS, EventKind, symbol_int, symbol_str

__all__ = [
    "BBO_COLUMNS",
    "BookRun",
    "TrackedSlot",
    "bbo_rows",
    "default_tracking",
    "describe_tracking",
    "directory_of",
    "model_books",
    "parse_track",
    "slot_configs",
    "write_bbo",
]

BBO_COLUMNS = ("msg_index", "seq", "timestamp", "locate", "bid_px", "bid_qty", "ask_px", "ask_qty")
LOCATE_MAX = (1 << EVENT_FIELD_BITS["locate"]) - 1
SYMBOL_CHARS = EVENT_FIELD_BITS["symbol"] // 8

# Fields of a final book that both sides report; the model adds the live order count.
BOOK_FIELDS = ("slot", "locate", "bid_price", "bid_shares", "ask_price", "ask_shares", "bids",
               "asks", "halted", "degraded")
# Events the book acts on for one instrument (besides its stock directory message).
_INSTRUMENT_KINDS = {EventKind.ADD, EventKind.ADD_MPID, EventKind.EXECUTE, EventKind.EXECUTE_PRICE,
                EventKind.CANCEL, EventKind.DELETE, EventKind.REPLACE, EventKind.TRADING_ACTION}


@dataclass(frozen=True)
class TrackedSlot:
    """What one book slot tracks: stock ``locate``, or else the locate announced for ``symbol``."""

    locate: int | None = None
    symbol: str | None = None

    def __post_init__(self):
        if (self.locate is None) == (self.symbol is None):
            raise ValueError("a slot tracks either a locate or a symbol")

    @property
    def by_symbol(self) -> bool:
        return self.locate is None

    def cfg(self) -> dict[str, int]:
        """The gateware's ``SlotConfigLayout`` fields for this slot."""
        return {"enable": 1, "by_symbol": int(self.by_symbol), "locate": self.locate or 0,
                "symbol": symbol_int(self.symbol) if self.by_symbol else 0}

    def apply(self, books: Books, slot: int) -> None:
        """Configure the model's ``slot`` the way :meth:`cfg` configures the gateware's."""
        if self.by_symbol:
            books.track_symbol(slot, symbol_int(self.symbol))
        else:
            books.track_locate(slot, self.locate)

    def as_json(self) -> dict:
        return {"locate": self.locate} if self.locate is not None else {"symbol": self.symbol}


def parse_track(spec: str, slots: int) -> list[TrackedSlot]:
    """``--track``: comma-separated symbols and stock locates, at most ``slots`` of them.

    Raises
    ------
    ValueError
        Empty entries, a locate out of 1..65535, a symbol longer than 8 characters or not
        printable ASCII, a repeated entry, or more entries than slots.
    """
    tracked = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise ValueError(f"--track {spec!r}: empty entry")
        if item.isdigit():
            locate = int(item)
            if not 1 <= locate <= LOCATE_MAX:
                raise ValueError(f"--track: stock locate {locate} is not in 1..{LOCATE_MAX}")
            slot = TrackedSlot(locate=locate)
        else:
            if len(item) > SYMBOL_CHARS or not (item.isascii() and item.isprintable()):
                raise ValueError(f"--track: {item!r} is not a stock symbol (up to "
                                 f"{SYMBOL_CHARS} ASCII characters) nor a stock locate")
            slot = TrackedSlot(symbol=item.upper())
        if slot in tracked:
            raise ValueError(f"--track: {item} is listed twice")
        tracked.append(slot)
    if len(tracked) > slots:
        raise ValueError(f"--track: {len(tracked)} instruments, but the book has {slots} slots")
    return tracked


def default_tracking(events: Iterable[dict], slots: int) -> list[TrackedSlot]:
    """The first ``slots`` instruments of the stock directory, then of the order messages.

    ``events`` are event dicts (``ItchEvent.as_dict``) in feed order; the scan stops as soon as
    the directory has named ``slots`` instruments.
    """
    directory: list[int] = []
    others: list[int] = []
    for event in events:
        locate = event["locate"]
        if event["kind"] == EventKind.DIRECTORY:
            if locate not in directory:
                directory.append(locate)
                if len(directory) == slots:
                    break
        elif event["kind"] in _INSTRUMENT_KINDS and locate not in others:
            others.append(locate)
    chosen = directory + [locate for locate in others if locate not in directory]
    return [TrackedSlot(locate=locate) for locate in chosen[:slots]]


def describe_tracking(tracked: list[TrackedSlot]) -> str:
    """``locates 1, 2; symbols AAPL`` (or ``nothing``), in slot order within each kind."""
    locates = [str(t.locate) for t in tracked if not t.by_symbol]
    symbols = [t.symbol for t in tracked if t.by_symbol]
    parts = [f"{name} {', '.join(items)}" for name, items in
             (("locates", locates), ("symbols", symbols)) if items]
    return "; ".join(parts) or "nothing"


def slot_configs(tracked: list[TrackedSlot], slots: int) -> list[dict[str, int]]:
    """``cfg`` of every slot of the gateware: the tracked ones, then disabled slots."""
    disabled = {"enable": 0, "by_symbol": 0, "locate": 0, "symbol": 0}
    return [t.cfg() for t in tracked] + [dict(disabled) for _ in range(slots - len(tracked))]


def model_books(books: Books, tracked: list[TrackedSlot], depth: int) -> list[dict]:
    """The final book of every tracked slot of the model, ``depth`` levels a side."""
    out = []
    for snap in books.snapshot(depth)[:len(tracked)]:
        out.append({
            "slot": snap.slot, "locate": snap.locate,
            "bid_price": snap.top.bid_price, "bid_shares": snap.top.bid_shares,
            "ask_price": snap.top.ask_price, "ask_shares": snap.top.ask_shares,
            "bids": [[level.price, level.shares] for level in snap.bids],
            "asks": [[level.price, level.shares] for level in snap.asks],
            "halted": int(snap.halted), "degraded": int(snap.degraded), "orders": snap.orders,
        })
    return out


@dataclass
class BookRun:
    """The book's side of one replay run (model or gateware).

    ``updates`` are ``TopUpdate.as_dict()`` dicts in output order; ``books`` the final book of
    each tracked slot (:data:`BOOK_FIELDS`, plus ``orders`` from the model).
    """

    tracked: list[TrackedSlot]
    updates: list[dict] = field(default_factory=list)
    books: list[dict] = field(default_factory=list)
    # Model only: the triggering message of each update, as its position among the messages
    # the feed delivered, and the global input beat holding that message's last byte.
    update_messages: list[int] = field(default_factory=list)
    update_beats: list[int] = field(default_factory=list)
    # Gateware only: cycles from that beat to the update, and the book's sticky hazard flag.
    latencies: list[int] = field(default_factory=list)
    hazard: bool = False

    def as_json(self, directory: dict[int, str] | None = None) -> dict:
        """The update count and the final books, each named by ``directory`` (locate ->
        symbol, from the capture's stock directory) or by the symbol it tracks."""
        names = directory or {}
        return {
            "top_of_book_updates": len(self.updates),
            "final_books": [{**book, "symbol": names.get(book["locate"]) or (tracked.symbol or "")}
                            for book, tracked in zip(self.books, self.tracked, strict=False)],
        }


def directory_of(events: Iterable[dict]) -> dict[int, str]:
    """Locate -> symbol, from the stock directory messages among ``events``."""
    return {event["locate"]: symbol_str(event["symbol"]) for event in events
            if event["kind"] == EventKind.DIRECTORY}


def bbo_rows(run: BookRun) -> Iterator[tuple[int, ...]]:
    """One row of :data:`BBO_COLUMNS` per change of a slot's best bid or ask (price or shares).

    Updates that only change the halted or degraded flag are left out: the rows have no column
    for them and would repeat the previous prices.
    """
    last: dict[int, tuple[int, int, int, int]] = {}
    for update, message in zip(run.updates, run.update_messages, strict=True):
        top = (update["bid_price"], update["bid_shares"], update["ask_price"],
               update["ask_shares"])
        if last.get(update["slot"], (0, 0, 0, 0)) == top:
            continue
        last[update["slot"]] = top
        yield (message, update["seq"], update["timestamp"], update["locate"], *top)


def write_bbo(path: str | Path, run: BookRun) -> int:
    """Write :func:`bbo_rows` to ``path``, CSV or Parquet by its suffix
    (:func:`~host.replay.tables.write_table`); returns the number of rows."""
    return write_table(path, BBO_COLUMNS, bbo_rows(run))
