"""Reference model of the ITCH decode stage: one whole ITCH 5.0 message in, at most one event out.

The gateware twin (``hdl/feed/itch_decode.py``) sees the same messages as 64-bit beats and must
produce the same events and the same counters. Both read which message field feeds which event
field from :data:`EVENT_SOURCES`, declared once here.

Every message pushed is counted exactly once, under one :class:`ItchDecodeStat` member:

- a known type whose length is the spec's: under its type (e.g. ``ADD_ORDER``); an ``A``, ``F``,
  ``E``, ``C``, ``X``, ``D``, ``U``, ``S``, ``R`` or ``H`` also becomes an :class:`ItchEvent`, any
  other type is skipped (counted only);
- a type byte the spec does not define: ``UNKNOWN_TYPE``, no event;
- a known type with another length: ``BAD_LENGTH``, no event;
- an add order (``A``/``F``) of the right length whose buy/sell indicator is neither ``B`` nor
  ``S``: ``BAD_SIDE``, no event (the book cannot place an order without a side).

Messages the MoldUDP64 stage abandons (a packet cut short) never reach this stage, so they are
neither counted nor decoded here.
"""

from dataclasses import dataclass
from enum import IntEnum

from sim.itch_event import EventKind, ItchEvent, Side
from sim.wire.itch import (
    BUY_INDICATOR,
    MESSAGE_SPECS,
    SELL_INDICATOR,
    FieldKind,
    MessageSpec,
)

__all__ = [
    "EVENT_SOURCES",
    "HEADER_SOURCES",
    "SIDE_OF_INDICATOR",
    "STAT_OF_TYPE",
    "EventSource",
    "ItchDecode",
    "ItchDecodeStat",
]


class ItchDecodeStat(IntEnum):
    """What the decode stage counts: one counter per ITCH 5.0 message type, then the drops."""

    SYSTEM_EVENT = 0
    STOCK_DIRECTORY = 1
    STOCK_TRADING_ACTION = 2
    REG_SHO_RESTRICTION = 3
    MARKET_PARTICIPANT_POSITION = 4
    MWCB_DECLINE_LEVEL = 5
    MWCB_STATUS = 6
    IPO_QUOTING_PERIOD = 7
    LULD_AUCTION_COLLAR = 8
    OPERATIONAL_HALT = 9
    ADD_ORDER = 10
    ADD_ORDER_MPID = 11
    ORDER_EXECUTED = 12
    ORDER_EXECUTED_PRICE = 13
    ORDER_CANCEL = 14
    ORDER_DELETE = 15
    ORDER_REPLACE = 16
    TRADE = 17
    CROSS_TRADE = 18
    BROKEN_TRADE = 19
    NOII = 20
    RPII = 21
    DLCR_PRICE_DISCOVERY = 22
    UNKNOWN_TYPE = 23
    BAD_LENGTH = 24
    BAD_SIDE = 25


# Which counter a well-formed message of each type goes to (by the spec's name for the type).
STAT_OF_TYPE: dict[str, ItchDecodeStat] = {
    msg_type: ItchDecodeStat[spec.name] for msg_type, spec in MESSAGE_SPECS.items()}


@dataclass(frozen=True, slots=True)
class EventSource:
    """How one message type becomes an event.

    ``fields`` maps an :class:`ItchEvent` field to the message field it is read from. Besides
    these, every event takes ``locate`` from ``stock_locate``, ``timestamp`` from ``timestamp`` and
    ``seq`` from the MoldUDP64 sequence number; the other event fields are 0.

    Conversion: integer and price fields are read big-endian; alpha fields keep their wire order
    (first character in bits 7..0, see ``sim.itch_event``); ``side`` is 0 for ``B``, 1 for ``S``.
    """

    kind: EventKind
    fields: dict[str, str]


_ADD_FIELDS = {"order_ref": "order_ref", "side": "buy_sell", "shares": "shares",
               "symbol": "stock", "price": "price"}

EVENT_SOURCES: dict[str, EventSource] = {
    "A": EventSource(EventKind.ADD, _ADD_FIELDS),
    "F": EventSource(EventKind.ADD_MPID, _ADD_FIELDS),
    "E": EventSource(EventKind.EXECUTE, {"order_ref": "order_ref", "shares": "executed_shares"}),
    "C": EventSource(EventKind.EXECUTE_PRICE,
                     {"order_ref": "order_ref", "shares": "executed_shares",
                      "price": "execution_price", "code": "printable"}),
    "X": EventSource(EventKind.CANCEL, {"order_ref": "order_ref", "shares": "cancelled_shares"}),
    "D": EventSource(EventKind.DELETE, {"order_ref": "order_ref"}),
    "U": EventSource(EventKind.REPLACE,
                     {"order_ref": "original_order_ref", "new_ref": "new_order_ref",
                      "shares": "shares", "price": "price"}),
    "S": EventSource(EventKind.SYSTEM, {"code": "event_code"}),
    "R": EventSource(EventKind.DIRECTORY, {"symbol": "stock"}),
    "H": EventSource(EventKind.TRADING_ACTION, {"symbol": "stock", "code": "trading_state"}),
}

# Header fields every event carries.
HEADER_SOURCES: dict[str, str] = {"locate": "stock_locate", "timestamp": "timestamp"}

SIDE_OF_INDICATOR: dict[int, Side] = {
    ord(BUY_INDICATOR): Side.BUY, ord(SELL_INDICATOR): Side.SELL}


def _field_value(spec: MessageSpec, message: bytes, name: str) -> int:
    field = spec.field(name)
    raw = message[field.offset:field.end]
    return int.from_bytes(raw, "little" if field.kind is FieldKind.ALPHA else "big")


class ItchDecode:
    """The decode stage as plain Python.

    Attributes
    ----------
    stats : dict[ItchDecodeStat, int]
        Messages seen, by outcome (see the module docstring); every message is counted once.

    Methods
    -------
    push(message, seq)
        Decode one message (type byte first, no length prefix) that carried MoldUDP64 sequence
        number ``seq``; returns its :class:`ItchEvent`, or ``None`` when it is skipped or dropped.
    """

    def __init__(self):
        self.stats: dict[ItchDecodeStat, int] = {member: 0 for member in ItchDecodeStat}

    def push(self, message: bytes, seq: int) -> ItchEvent | None:
        # An empty block has no type byte; the MoldUDP64 stage never passes one, but a library
        # user might, and it is certainly not of a known type.
        spec = MESSAGE_SPECS.get(chr(message[0])) if message else None
        if spec is None:
            self.stats[ItchDecodeStat.UNKNOWN_TYPE] += 1
            return None
        if len(message) != spec.length:
            self.stats[ItchDecodeStat.BAD_LENGTH] += 1
            return None
        source = EVENT_SOURCES.get(spec.type)
        side = Side.BUY
        if source is not None and "side" in source.fields:
            side_field = spec.field(source.fields["side"])
            side = SIDE_OF_INDICATOR.get(message[side_field.offset])
            if side is None:
                self.stats[ItchDecodeStat.BAD_SIDE] += 1
                return None
        self.stats[STAT_OF_TYPE[spec.type]] += 1
        if source is None:
            return None
        values = {name: _field_value(spec, message, wire)
                  for name, wire in (HEADER_SOURCES | source.fields).items() if name != "side"}
        return ItchEvent(kind=source.kind, seq=seq, side=side, **values)
