"""The typed event the ITCH decoder emits for each message the book or control logic needs.

This is the contract between the feed stage and the book: the gateware emits the same fields
(see ``hdl/feed/itch_event.py``, derived from this module) and the model produces these objects.
Fields a message type does not carry are 0.

| kind            | ITCH | fields set (besides kind, locate, timestamp, seq)              |
|-----------------|------|----------------------------------------------------------------|
| ADD             | A    | order_ref, side, shares, symbol, price                         |
| ADD_MPID        | F    | order_ref, side, shares, symbol, price                         |
| EXECUTE         | E    | order_ref, shares (executed)                                    |
| EXECUTE_PRICE   | C    | order_ref, shares (executed), price (execution price), code (printable) |
| CANCEL          | X    | order_ref, shares (cancelled)                                   |
| DELETE          | D    | order_ref                                                       |
| REPLACE         | U    | order_ref (original), new_ref, shares, price                    |
| SYSTEM          | S    | code (event code)                                               |
| DIRECTORY       | R    | symbol                                                          |
| TRADING_ACTION  | H    | symbol, code (trading state)                                    |

``symbol`` is the 8-byte, space-padded ASCII stock field as an integer with the first character in
bits 7..0 (``int.from_bytes(stock, "little")``); ``side`` is :class:`Side`; ``seq`` is the
MoldUDP64 sequence number of the message.
"""

from dataclasses import dataclass, fields
from enum import IntEnum

__all__ = ["EVENT_FIELD_BITS", "EventKind", "ItchEvent", "Side", "symbol_int", "symbol_str"]


class EventKind(IntEnum):
    """What an :class:`ItchEvent` reports; the value is its 4-bit code in gateware."""

    ADD = 0
    ADD_MPID = 1
    EXECUTE = 2
    EXECUTE_PRICE = 3
    CANCEL = 4
    DELETE = 5
    REPLACE = 6
    SYSTEM = 7
    DIRECTORY = 8
    TRADING_ACTION = 9


class Side(IntEnum):
    """Buy/sell indicator; ITCH sends ``B`` or ``S``."""

    BUY = 0
    SELL = 1


# Bit width of every event field, in declaration order; the gateware layout is built from this.
EVENT_FIELD_BITS = {
    "kind": 4,
    "locate": 16,
    "timestamp": 48,
    "seq": 64,
    "order_ref": 64,
    "new_ref": 64,
    "side": 1,
    "shares": 32,
    "price": 32,
    "symbol": 64,
    "code": 8,
}


@dataclass(frozen=True, slots=True)
class ItchEvent:
    kind: EventKind
    locate: int
    timestamp: int
    seq: int
    order_ref: int = 0
    new_ref: int = 0
    side: Side = Side.BUY
    shares: int = 0
    price: int = 0
    symbol: int = 0
    code: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, int]) -> "ItchEvent":
        values = dict(values)
        values["kind"] = EventKind(values["kind"])
        values["side"] = Side(values["side"])
        return cls(**values)


def symbol_int(stock: bytes | str) -> int:
    """The ``symbol`` field for an 8-byte stock field (space padded if shorter)."""
    raw = stock.encode("ascii") if isinstance(stock, str) else stock
    return int.from_bytes(raw.ljust(8, b" ")[:8], "little")


def symbol_str(symbol: int) -> str:
    """The stock name of a ``symbol`` field, trailing spaces removed."""
    return symbol.to_bytes(8, "little").decode("ascii", "replace").rstrip()
