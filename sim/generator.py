"""A seeded generator of realistic, internally consistent TotalView-ITCH 5.0 sessions.

The session has the shape of a real trading day, in miniature:

* ``S 'O'`` (start of messages), a Stock Directory ``R`` per instrument, ``S 'S'`` (start of system
  hours), a Trading Action ``H 'T'`` per instrument, ``S 'Q'`` (start of market hours);
* order flow around a random-walk reference price per instrument: adds (``A``, some ``F``),
  executions (``E``, some ``C``), partial cancels ``X``, deletes ``D``, replaces ``U``, hidden
  trades ``P``, and now and then a type the book ignores (``I``, ``L``, ``Y``, ``N``, ``Q``,
  ``B``) so that a decoder's skip path is exercised;
* ``S 'M'``, ``S 'E'``, ``S 'C'`` (end of market hours, end of system hours, end of messages).

What a consumer can rely on (``tests/test_generator.py`` checks every item):

* every ``E``/``C``/``X``/``D``/``U`` refers to a live order, never executes or cancels more shares
  than remain, and ``X`` always leaves at least one share (a full cancel is a ``D``);
* order reference numbers and match numbers are never reused;
* prices are positive integer multiples of ``tick`` (ITCH units, 4 implied decimals), and a new
  order never crosses the opposite side, so the book is never crossed or locked;
* timestamps strictly increase; the total number of messages is exactly ``messages``;
* the same configuration gives byte-identical output (one ``random.Random(seed)``, no set or hash
  iteration order anywhere).

Messages are packed with :mod:`struct` formats compiled once from ``sim.wire.itch.MESSAGE_SPECS``
(the one declaration of the layouts): the generic ``encode`` is about ten times slower, and a
million-message session should take seconds, not minutes.
"""

from __future__ import annotations

import random
import struct
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

from sim.capture import CapturedFrame
from sim.feed_framer import DEFAULT_SESSION, FeedFrame, frame_packets
from sim.wire.itch import HEADER_FIELDS, MESSAGE_SPECS, FieldKind
from sim.wire.net import DEFAULT_SOURCE, TEST_FEED, FeedEndpoint

__all__ = [
    "DEFAULT_MIDNIGHT_NS",
    "Instrument",
    "SessionConfig",
    "captured",
    "default_instruments",
    "generate_frames",
    "generate_messages",
    "generate_session",
]

_NS_PER_S = 1_000_000_000
_HOUR_NS = 3600 * _NS_PER_S
_DAY_NS = 24 * _HOUR_NS

# Nasdaq's schedule, in nanoseconds since midnight Eastern time (ITCH timestamps count from there).
_START_OF_MESSAGES = 3 * _HOUR_NS
_START_OF_SYSTEM_HOURS = 4 * _HOUR_NS
_START_OF_MARKET_HOURS = 9 * _HOUR_NS + 30 * 60 * _NS_PER_S
_END_OF_MARKET_HOURS = 16 * _HOUR_NS
_END_OF_SYSTEM_HOURS = 20 * _HOUR_NS
_END_OF_MESSAGES = 20 * _HOUR_NS + 5 * 60 * _NS_PER_S

# Midnight US Eastern (UTC-5) on 2024-01-02, in ns since the Unix epoch: the capture timestamps of
# generated frames are this plus the ITCH timestamp.
DEFAULT_MIDNIGHT_NS = 1_704_171_600 * _NS_PER_S

# Well-known Nasdaq names and plausible prices in ITCH units ($185.00 is 1_850_000).
_KNOWN = (
    ("AAPL", 1_850_000), ("MSFT", 3_750_000), ("NVDA", 4_800_000), ("AMZN", 1_500_000),
    ("GOOGL", 1_400_000), ("META", 3_500_000), ("TSLA", 2_450_000), ("AMD", 1_400_000),
    ("INTC", 480_000), ("QQQ", 4_050_000), ("CSCO", 500_000), ("PEP", 1_690_000),
    ("COST", 6_600_000), ("ADBE", 5_950_000), ("NFLX", 4_850_000), ("SIRI", 47_500),
)

# Market-participant identifiers used for attributed adds (F) and position messages (L).
_MPIDS = (b"GSCO", b"MSCO", b"JPMS", b"UBSS", b"CDRG", b"VIRT", b"CITD", b"NITE")


@dataclass(frozen=True, slots=True)
class Instrument:
    """One stock in a generated session.

    Attributes
    ----------
    symbol : str
        Up to 8 ASCII characters (space padded on the wire).
    locate : int
        Stock locate code, 1..65535, unique within the session.
    start_price : int
        Initial reference price in ITCH units (4 implied decimals); a multiple of the tick.
    """

    symbol: str
    locate: int
    start_price: int


def default_instruments(count: int = 4) -> tuple[Instrument, ...]:
    """``count`` instruments: well-known names first, then made-up ``TKGxxxxx`` symbols.

    Locates are assigned 1, 2, ... in alphabetical order of the symbols, as Nasdaq does.
    """
    if not 1 <= count <= 0xFFFF:
        raise ValueError(f"instrument count must be 1..65535, got {count}")
    chosen = list(_KNOWN[:count])
    for k in range(count - len(chosen)):
        # Deterministic spread of prices between $5 and $300.
        chosen.append((f"TKG{_letters(k)}", (5 + (k * 37) % 296) * 10_000))
    chosen.sort()
    return tuple(Instrument(sym, i + 1, price) for i, (sym, price) in enumerate(chosen))


def _letters(k: int) -> str:
    out = ""
    for _ in range(5):
        k, digit = divmod(k, 26)
        out = chr(ord("A") + digit) + out
    return out


@dataclass(frozen=True)
class SessionConfig:
    """What :func:`generate_messages` builds.

    Attributes
    ----------
    seed : int
        Seed of the one random generator; the same configuration gives the same bytes.
    messages : int
        Total messages in the session, the opening and closing system events and directory
        messages included; at least ``2 * len(instruments) + 6``.
    instruments : tuple of Instrument
        The stocks traded; see :func:`default_instruments`.
    tick : int
        Price increment in ITCH units (100 is one cent).
    max_live_orders : int
        Live orders per instrument above which new adds turn into deletes (bounds the book).
    max_levels : int
        New orders are placed up to this many ticks away from the reference price.
    move_probability : float
        Chance per order event that its instrument's reference price moves one tick.
        (A float only steers the random choices; every price is an integer.)
    mean_gap_ns : int
        Mean time between order events during market hours (exponentially distributed).
    midnight_ns : int
        Capture time of ITCH time 0, for the frame timestamps of :func:`generate_frames`.
    """

    seed: int = 1
    messages: int = 10_000
    instruments: tuple[Instrument, ...] = field(default_factory=default_instruments)
    tick: int = 100
    max_live_orders: int = 200
    max_levels: int = 20
    move_probability: float = 0.03
    mean_gap_ns: int = 20_000
    midnight_ns: int = DEFAULT_MIDNIGHT_NS

    def __post_init__(self) -> None:
        object.__setattr__(self, "instruments", tuple(self.instruments))
        if self.tick <= 0 or self.max_live_orders <= 0 or self.max_levels <= 0:
            raise ValueError("tick, max_live_orders and max_levels must be positive")
        if self.mean_gap_ns <= 0:
            raise ValueError("mean_gap_ns must be positive")
        if not 0 <= self.move_probability <= 1:
            raise ValueError("move_probability must be in [0, 1]")
        if not self.instruments:
            raise ValueError("a session needs at least one instrument")
        locates = [inst.locate for inst in self.instruments]
        if len(set(locates)) != len(locates) or not all(0 < x <= 0xFFFF for x in locates):
            raise ValueError(f"stock locates must be unique and in 1..65535: {locates}")
        symbols = [inst.symbol for inst in self.instruments]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols must be unique: {symbols}")
        for inst in self.instruments:
            if not (0 < len(inst.symbol) <= 8 and inst.symbol.isascii() and inst.symbol.isalnum()):
                raise ValueError(f"symbol {inst.symbol!r} must be 1..8 ASCII letters or digits")
            if inst.start_price % self.tick or not inst.start_price > 0:
                raise ValueError(
                    f"{inst.symbol}: start price {inst.start_price} is not a positive multiple "
                    f"of the tick {self.tick}"
                )
            if inst.start_price + (self.max_levels + 2) * self.tick > 0xFFFF_FFFF:
                raise ValueError(f"{inst.symbol}: start price {inst.start_price} is too close "
                                 "to the largest ITCH price")
        if (self.messages - 6) * self.mean_gap_ns > _END_OF_MESSAGES - _START_OF_MARKET_HOURS:
            raise ValueError(
                f"{self.messages} messages at a mean gap of {self.mean_gap_ns} ns do not fit "
                "in one trading day; lower mean_gap_ns"
            )
        if self.messages < self.overhead_messages:
            raise ValueError(
                f"{self.messages} messages cannot hold a session of {len(self.instruments)} "
                f"instruments: at least {self.overhead_messages} are needed"
            )

    @property
    def overhead_messages(self) -> int:
        """System events (6), a directory and a trading action per instrument."""
        return 6 + 2 * len(self.instruments)


# --------------------------------------------------------------------------------------------
# Packing


# struct codes of the big-endian unsigned integers ITCH uses, by size in bytes.
_STRUCT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


class _Packer:
    """Packs one message type from keyword fields; the layout comes from ``MESSAGE_SPECS``.

    The header (locate, tracking number, 6-byte timestamp) is passed positionally and the
    tracking number is always 0. Alpha fields must be bytes of exactly their size: :mod:`struct`
    would pad a shorter value with NULs where ITCH wants spaces (the tests decode and re-encode
    every generated message with ``sim.wire.itch`` to catch that).
    """

    __slots__ = ("_body", "_code", "_struct")

    def __init__(self, msg_type: str) -> None:
        spec = MESSAGE_SPECS[msg_type]
        header = tuple((f.name, f.size) for f in HEADER_FIELDS)
        if tuple((f.name, f.size) for f in spec.fields[: len(header)]) != header or header != (
            ("stock_locate", 2), ("tracking_number", 2), ("timestamp", 6)
        ):
            raise ValueError(f"ITCH {msg_type!r}: unexpected header layout {header}")
        fmt = ">cHHHI"  # the 6-byte timestamp goes out as its high 16 and low 32 bits
        for f in spec.fields[len(header) :]:
            if f.kind is FieldKind.ALPHA:
                fmt += f"{f.size}s"
            elif f.size in _STRUCT_CODES:
                fmt += _STRUCT_CODES[f.size]
            else:
                raise ValueError(f"ITCH {msg_type!r}: no packing for {f.size}-byte {f.name}")
        self._struct = struct.Struct(fmt)
        if self._struct.size != spec.length:
            raise ValueError(f"ITCH {msg_type!r}: packed {self._struct.size} != {spec.length}")
        self._code = msg_type.encode("ascii")
        self._body = tuple(f.name for f in spec.fields[len(header) :])

    def __call__(self, locate: int, timestamp: int, **fields: int | bytes) -> bytes:
        return self._struct.pack(
            self._code, locate, 0, timestamp >> 32, timestamp & 0xFFFF_FFFF,
            *[fields[name] for name in self._body],
        )


_PACK = {t: _Packer(t) for t in "SRHYLAFECXDUPQBIN"}


def _stock(symbol: str) -> bytes:
    return symbol.encode("ascii").ljust(8, b" ")


# --------------------------------------------------------------------------------------------
# Book state


class _Order:
    __slots__ = ("buy", "price", "shares")

    def __init__(self, buy: bool, price: int, shares: int) -> None:
        self.buy = buy
        self.price = price
        self.shares = shares


class _Book:
    """Live orders of one instrument, by side and price level, oldest first within a level."""

    __slots__ = ("asks", "best_ask", "best_bid", "bids", "instrument", "live", "pos", "ref",
                 "stock")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.stock = _stock(instrument.symbol)
        self.ref = instrument.start_price
        # price -> {order_ref: None}: a dict keeps time priority and removes in O(1).
        self.bids: dict[int, dict[int, None]] = {}
        self.asks: dict[int, dict[int, None]] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        # Live order refs, for uniform random choice with O(1) removal (swap with the last).
        self.live: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, ref: int, order: _Order) -> None:
        levels = self.bids if order.buy else self.asks
        level = levels.get(order.price)
        if level is None:
            levels[order.price] = level = {}
        level[ref] = None
        if order.buy:
            if self.best_bid is None or order.price > self.best_bid:
                self.best_bid = order.price
        elif self.best_ask is None or order.price < self.best_ask:
            self.best_ask = order.price
        self.pos[ref] = len(self.live)
        self.live.append(ref)

    def remove(self, ref: int, order: _Order) -> None:
        levels = self.bids if order.buy else self.asks
        level = levels[order.price]
        del level[ref]
        if not level:
            del levels[order.price]
            if order.buy and order.price == self.best_bid:
                self.best_bid = max(levels) if levels else None
            elif not order.buy and order.price == self.best_ask:
                self.best_ask = min(levels) if levels else None
        index = self.pos.pop(ref)
        last = self.live.pop()
        if last != ref:
            self.live[index] = last
            self.pos[last] = index

    def oldest_at_best(self, buy: bool) -> int:
        level = self.bids[self.best_bid] if buy else self.asks[self.best_ask]
        return next(iter(level))


# --------------------------------------------------------------------------------------------
# The session


# Relative frequencies of order events, near Nasdaq's real mix (adds and deletes dominate).
_ACTIONS = (
    ("A", 40), ("F", 2), ("D", 30), ("U", 8), ("X", 4), ("E", 6), ("C", 1), ("P", 3), ("other", 3),
)
_ACTION_NAMES = tuple(name for name, _ in _ACTIONS)
_ACTION_CUM = tuple(accumulate(weight for _, weight in _ACTIONS))
# Types no book or quoter acts on; one is drawn for an "other" event.
_OTHER_TYPES = ("I", "L", "Y", "N", "Q", "B")
# Share sizes: mostly round lots, some odd lots and a few blocks.
_LOTS = (100, 100, 100, 100, 200, 200, 300, 400, 500, 1000)


class _Session:
    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.out: list[bytes] = []
        self.books = [_Book(inst) for inst in config.instruments]
        self.orders: dict[int, _Order] = {}
        self.next_ref = 1 + self.rng.randrange(1_000_000)
        self.next_match = 1 + self.rng.randrange(1_000_000)
        self.last_match: int | None = None
        self.time = 0
        # Busier names first: instrument k gets weight 1 / (k + 1), a rough Zipf law.
        weights = [1.0 / (k + 1) for k in range(len(self.books))]
        self.book_cum = tuple(accumulate(weights))
        # The reference stays a positive price, and far enough below the 32-bit price limit
        # for the asks placed above it.
        self.floor = config.tick
        self.ceiling = 0xFFFF_FFFF - (config.max_levels + 2) * config.tick

    # ---- helpers -----------------------------------------------------------------------------

    def at(self, not_before: int) -> int:
        """Advance the clock to ``not_before`` or by at least 1 ns, and return it."""
        self.time = max(self.time + 1, not_before)
        return self.time

    def step(self) -> int:
        gap = 1 + int(self.rng.expovariate(1.0 / self.config.mean_gap_ns))
        self.time += gap
        return self.time

    def shares(self) -> int:
        r = self.rng.random()
        if r < 0.1:
            return self.rng.randint(1, 99)
        if r < 0.13:
            return self.rng.randint(20, 100) * 100
        return self.rng.choice(_LOTS)

    def match(self) -> int:
        number = self.next_match
        self.next_match += 1 + (self.rng.random() < 0.2)  # other books take match numbers too
        self.last_match = number
        return number

    def new_ref(self) -> int:
        ref = self.next_ref
        self.next_ref += 1 + self.rng.randrange(4)  # refs are shared across books: gaps
        return ref

    def place(self, book: _Book, buy: bool) -> int:
        """A price for a new order on ``buy``'s side that does not cross or lock the book."""
        tick = self.config.tick
        # Most orders sit at or near the touch; the geometric tail gives the book its depth.
        away = min(int(self.rng.expovariate(0.3)), self.config.max_levels)
        if buy:
            price = max(book.ref - away * tick, tick)
            if book.best_ask is not None and price >= book.best_ask:
                price = book.best_ask - tick
        else:
            price = book.ref + (away + 1) * tick
            if book.best_bid is not None and price <= book.best_bid:
                price = book.best_bid + tick
        return price

    def emit(self, msg_type: str, book: _Book, **fields: int | bytes) -> None:
        self.out.append(_PACK[msg_type](book.instrument.locate, self.step(), **fields))

    # ---- the day -----------------------------------------------------------------------------

    def run(self) -> list[bytes]:
        cfg = self.config
        system = _PACK["S"]
        self.out.append(system(0, self.at(_START_OF_MESSAGES), event_code=b"O"))
        for book in self.books:
            self.time += self.rng.randint(1_000, 50_000)
            self.out.append(_PACK["R"](
                book.instrument.locate, self.time, stock=book.stock, market_category=b"Q",
                financial_status_indicator=b"N", round_lot_size=100, round_lots_only=b"N",
                issue_classification=b"C", issue_sub_type=b"Z ", authenticity=b"P",
                short_sale_threshold_indicator=b"N", ipo_flag=b"N",
                luld_reference_price_tier=b"1", etp_flag=b"N", etp_leverage_factor=0,
                inverse_indicator=b"N",
            ))
        self.out.append(system(0, self.at(_START_OF_SYSTEM_HOURS), event_code=b"S"))
        for book in self.books:
            self.time += self.rng.randint(1_000, 50_000)
            self.out.append(_PACK["H"](
                book.instrument.locate, self.time, stock=book.stock, trading_state=b"T",
                reserved=b" ", reason=b"    ",
            ))
        self.out.append(system(0, self.at(_START_OF_MARKET_HOURS), event_code=b"Q"))

        actions = {
            "A": self.add, "F": self.add, "D": self.delete, "U": self.replace,
            "X": self.cancel, "E": self.execute, "C": self.execute, "P": self.trade,
            "other": self.other,
        }
        rng = self.rng
        books, book_cum, total = self.books, self.book_cum, self.book_cum[-1]
        action_total = _ACTION_CUM[-1]
        for _ in range(cfg.messages - cfg.overhead_messages):
            book = books[bisect_right(book_cum, rng.random() * total)]
            if rng.random() < cfg.move_probability:
                book.ref += cfg.tick if rng.random() < 0.5 else -cfg.tick
                book.ref = min(max(book.ref, self.floor), self.ceiling)
            action = _ACTION_NAMES[bisect_right(_ACTION_CUM, rng.random() * action_total)]
            if action in ("D", "U", "X", "E", "C") and not book.live:
                action = "A"
            elif action in ("A", "F") and len(book.live) >= cfg.max_live_orders:
                action = "D"
            actions[action](book, action)

        if self.time >= _DAY_NS - 10 * 60 * _NS_PER_S:
            raise ValueError(
                f"{cfg.messages} messages at a mean gap of {cfg.mean_gap_ns} ns run past the end "
                "of the day; lower mean_gap_ns"
            )
        self.out.append(system(0, self.at(_END_OF_MARKET_HOURS), event_code=b"M"))
        self.out.append(system(0, self.at(_END_OF_SYSTEM_HOURS), event_code=b"E"))
        self.out.append(system(0, self.at(_END_OF_MESSAGES), event_code=b"C"))
        return self.out

    # ---- order events ------------------------------------------------------------------------

    def add(self, book: _Book, kind: str) -> None:
        buy = self.rng.random() < 0.5
        price = self.place(book, buy)
        shares = self.shares()
        ref = self.new_ref()
        order = _Order(buy, price, shares)
        self.orders[ref] = order
        book.add(ref, order)
        fields = dict(order_ref=ref, buy_sell=b"B" if buy else b"S", shares=shares,
                      stock=book.stock, price=price)
        if kind == "F":
            fields["attribution"] = self.rng.choice(_MPIDS)
        self.emit(kind, book, **fields)

    def random_live(self, book: _Book) -> tuple[int, _Order]:
        ref = book.live[self.rng.randrange(len(book.live))]
        return ref, self.orders[ref]

    def delete(self, book: _Book, _kind: str) -> None:
        self.delete_ref(book, *self.random_live(book))

    def cancel(self, book: _Book, _kind: str) -> None:
        ref, order = self.random_live(book)
        if order.shares < 2:  # X must leave something; a full cancel is a delete
            self.delete_ref(book, ref, order)
            return
        cancelled = self.rng.randint(1, order.shares - 1)
        order.shares -= cancelled
        self.emit("X", book, order_ref=ref, cancelled_shares=cancelled)

    def delete_ref(self, book: _Book, ref: int, order: _Order) -> None:
        book.remove(ref, order)
        del self.orders[ref]
        self.emit("D", book, order_ref=ref)

    def replace(self, book: _Book, _kind: str) -> None:
        ref, order = self.random_live(book)
        book.remove(ref, order)
        del self.orders[ref]
        # The replacement keeps side and stock, and loses time priority.
        new = _Order(order.buy, self.place(book, order.buy), self.shares())
        new_ref = self.new_ref()
        self.orders[new_ref] = new
        book.add(new_ref, new)
        self.emit("U", book, original_order_ref=ref, new_order_ref=new_ref, shares=new.shares,
                  price=new.price)

    def execute(self, book: _Book, kind: str) -> None:
        # Aggressive flow takes the side the reference price has moved through, if any.
        has_bid, has_ask = book.best_bid is not None, book.best_ask is not None
        if has_ask and book.best_ask <= book.ref:
            buy_side = False
        elif has_bid and book.best_bid > book.ref:
            buy_side = True
        elif has_bid and has_ask:
            buy_side = self.rng.random() < 0.5
        else:
            buy_side = has_bid
        ref = book.oldest_at_best(buy_side)
        order = self.orders[ref]
        executed = order.shares
        if executed > 1 and self.rng.random() < 0.4:
            executed = self.rng.randint(1, order.shares - 1)
        order.shares -= executed
        if kind == "E":
            self.emit("E", book, order_ref=ref, executed_shares=executed, match_number=self.match())
        else:
            self.emit("C", book, order_ref=ref, executed_shares=executed,
                      match_number=self.match(), printable=b"Y" if self.rng.random() < 0.8
                      else b"N", execution_price=order.price)
        if order.shares == 0:
            book.remove(ref, order)
            del self.orders[ref]

    def trade(self, book: _Book, _kind: str) -> None:
        # A hidden order executing: inside the spread when there is one. Nasdaq sends the order
        # reference of non-cross trades as 0.
        tick = self.config.tick
        low = book.best_bid if book.best_bid is not None else book.ref - tick
        high = book.best_ask if book.best_ask is not None else book.ref + tick
        low, high = min(low, high), max(low, high)
        price = low + tick * self.rng.randint(0, (high - low) // tick)
        self.emit("P", book, order_ref=0, buy_sell=b"B" if self.rng.random() < 0.5 else b"S",
                  shares=self.shares(), stock=book.stock, price=max(price, tick),
                  match_number=self.match())

    def other(self, book: _Book, _kind: str) -> None:
        rng = self.rng
        kind = rng.choice(_OTHER_TYPES)
        if kind == "B" and self.last_match is None:
            kind = "I"
        if kind == "I":
            tick = self.config.tick
            self.emit("I", book, paired_shares=rng.randrange(0, 500_000, 100),
                      imbalance_shares=rng.randrange(0, 100_000, 100),
                      imbalance_direction=rng.choice((b"B", b"S", b"N", b"O")), stock=book.stock,
                      far_price=max(book.ref + tick * rng.randint(-5, 5), tick),
                      near_price=max(book.ref + tick * rng.randint(-5, 5), tick),
                      current_reference_price=book.ref, cross_type=b"C",
                      price_variation_indicator=b"L")
        elif kind == "L":
            self.emit("L", book, mpid=rng.choice(_MPIDS), stock=book.stock,
                      primary_market_maker=b"N", market_maker_mode=b"N",
                      market_participant_state=b"A")
        elif kind == "Y":
            self.emit("Y", book, stock=book.stock, reg_sho_action=b"0")
        elif kind == "N":
            self.emit("N", book, stock=book.stock, interest_flag=rng.choice((b"B", b"S", b"N")))
        elif kind == "Q":
            self.emit("Q", book, shares=rng.randrange(100, 100_000, 100), stock=book.stock,
                      cross_price=book.ref, match_number=self.match(), cross_type=b"I")
        else:
            self.emit("B", book, match_number=self.last_match)


def generate_messages(config: SessionConfig) -> list[bytes]:
    """The ITCH 5.0 messages of one session (type byte first, no length prefix).

    Raises
    ------
    ValueError
        If the configuration is inconsistent (see :class:`SessionConfig`) or the order flow
        would run past the end of the day.
    """
    return _Session(config).run()


def generate_frames(
    config: SessionConfig,
    *,
    endpoint: FeedEndpoint = TEST_FEED,
    source: FeedEndpoint = DEFAULT_SOURCE,
    vlan: int | None = None,
    session: bytes = DEFAULT_SESSION,
    max_payload: int | None = None,
    heartbeat_every: int | None = None,
    end_of_session: bool = True,
) -> list[FeedFrame]:
    """The session as framed MoldUDP64 packets (see :func:`sim.feed_framer.frame_packets`),
    sequence numbers from 1, ending with an end-of-session packet unless told otherwise."""
    options = {} if max_payload is None else {"max_payload": max_payload}
    return frame_packets(
        generate_messages(config), endpoint=endpoint, source=source, session=session,
        vlan=vlan, heartbeat_every=heartbeat_every, end_of_session=end_of_session, **options,
    )


def generate_session(
    config: SessionConfig,
    *,
    endpoint: FeedEndpoint = TEST_FEED,
    source: FeedEndpoint = DEFAULT_SOURCE,
    vlan: int | None = None,
    session: bytes = DEFAULT_SESSION,
) -> list[bytes]:
    """The Ethernet frames of :func:`generate_frames`."""
    return [f.frame for f in generate_frames(config, endpoint=endpoint, source=source, vlan=vlan,
                                             session=session)]


def captured(config: SessionConfig, frames: list[FeedFrame]) -> list[CapturedFrame]:
    """Frames with capture timestamps: ``config.midnight_ns`` plus each packet's ITCH time."""
    return [CapturedFrame(config.midnight_ns + f.itch_time, f.frame) for f in frames]
