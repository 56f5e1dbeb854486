"""Nasdaq TotalView-ITCH 5.0 messages: the one declaration of every message type, with a codec.

# Ref: Nasdaq TotalView-ITCH 5.0 specification, section 4 "Message Formats" (4.1 to 4.8)

Byte order: every integer field (including prices and the timestamp) is big-endian, most
significant byte first on the wire. Alpha fields are left-justified ASCII, padded with spaces on
the right. Every message starts with the same 11-byte header: the message type (1 byte), the stock
locate code (2), the tracking number (2) and the timestamp (6 bytes, nanoseconds since midnight).

Field kinds:

- ``uint``: unsigned big-endian integer.
- ``alpha``: space-padded ASCII text, decoded as a string of exactly the field's size.
- ``price4``: unsigned 32-bit integer price with 4 implied decimals (``1234500`` is 123.45).
- ``price8``: unsigned 64-bit integer price with 8 implied decimals (MWCB levels only).

Prices stay integers in their own units: nothing here converts to floating point.

The gateware does not parse these tables at run time; ``hdl/arch/itch.py`` turns them into
constants, so a field's offset is written down only here. The messages are framed elsewhere
(MoldUDP64 message blocks, or the BinaryFILE length prefix read by ``sim.capture``).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from sim.wire.field import Field

__all__ = [
    "BUY_INDICATOR",
    "HEADER_FIELDS",
    "HEADER_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MESSAGE_LENGTHS",
    "MESSAGE_SPECS",
    "MIN_MESSAGE_LENGTH",
    "SELL_INDICATOR",
    "Field",
    "FieldKind",
    "Message",
    "MessageSpec",
    "decode",
    "encode",
]


class FieldKind(Enum):
    """How a field's bytes are read."""

    UINT = "uint"
    ALPHA = "alpha"
    PRICE4 = "price4"
    PRICE8 = "price8"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """The layout of one message type.

    ``name`` is the upper-case identifier used for counters and enums (it does not depend on the
    case of the type character: ``H`` is ``STOCK_TRADING_ACTION``, ``h`` is ``OPERATIONAL_HALT``).
    ``fields`` lists every field after the type byte, the header included, in wire order.
    """

    type: str
    name: str
    title: str
    section: str
    length: int
    fields: tuple[Field, ...]

    @property
    def code(self) -> int:
        """The type byte as an integer."""
        return ord(self.type)

    def field(self, name: str) -> Field:
        """The field called ``name``; ``KeyError`` if this message has none."""
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"ITCH {self.type!r} ({self.title}) has no field {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)


_U, _A, _P4, _P8 = FieldKind.UINT, FieldKind.ALPHA, FieldKind.PRICE4, FieldKind.PRICE8

# (name, size, kind) after the type byte; offsets are accumulated so that they cannot disagree.
_HEADER = (("stock_locate", 2, _U), ("tracking_number", 2, _U), ("timestamp", 6, _U))

# type, name, title, spec section, body fields (after the header): (name, size, kind).
_TABLE = (
    ("S", "SYSTEM_EVENT", "System Event", "4.1",
     (("event_code", 1, _A),)),
    ("R", "STOCK_DIRECTORY", "Stock Directory", "4.2.1",
     (("stock", 8, _A), ("market_category", 1, _A), ("financial_status_indicator", 1, _A),
      ("round_lot_size", 4, _U), ("round_lots_only", 1, _A), ("issue_classification", 1, _A),
      ("issue_sub_type", 2, _A), ("authenticity", 1, _A),
      ("short_sale_threshold_indicator", 1, _A), ("ipo_flag", 1, _A),
      ("luld_reference_price_tier", 1, _A), ("etp_flag", 1, _A),
      ("etp_leverage_factor", 4, _U), ("inverse_indicator", 1, _A))),
    ("H", "STOCK_TRADING_ACTION", "Stock Trading Action", "4.2.2",
     (("stock", 8, _A), ("trading_state", 1, _A), ("reserved", 1, _A), ("reason", 4, _A))),
    ("Y", "REG_SHO_RESTRICTION", "Reg SHO Short Sale Price Test Restricted Indicator", "4.2.3",
     (("stock", 8, _A), ("reg_sho_action", 1, _A))),
    ("L", "MARKET_PARTICIPANT_POSITION", "Market Participant Position", "4.2.4",
     (("mpid", 4, _A), ("stock", 8, _A), ("primary_market_maker", 1, _A),
      ("market_maker_mode", 1, _A), ("market_participant_state", 1, _A))),
    ("V", "MWCB_DECLINE_LEVEL", "MWCB Decline Level", "4.2.5.1",
     (("level1", 8, _P8), ("level2", 8, _P8), ("level3", 8, _P8))),
    ("W", "MWCB_STATUS", "MWCB Status", "4.2.5.2",
     (("breached_level", 1, _A),)),
    ("K", "IPO_QUOTING_PERIOD", "IPO Quoting Period Update", "4.2.6",
     (("stock", 8, _A), ("ipo_quotation_release_time", 4, _U),
      ("ipo_quotation_release_qualifier", 1, _A), ("ipo_price", 4, _P4))),
    ("J", "LULD_AUCTION_COLLAR", "LULD Auction Collar", "4.2.7",
     (("stock", 8, _A), ("auction_collar_reference_price", 4, _P4),
      ("upper_auction_collar_price", 4, _P4), ("lower_auction_collar_price", 4, _P4),
      ("auction_collar_extension", 4, _U))),
    ("h", "OPERATIONAL_HALT", "Operational Halt", "4.2.8",
     (("stock", 8, _A), ("market_code", 1, _A), ("operational_halt_action", 1, _A))),
    ("A", "ADD_ORDER", "Add Order (no MPID attribution)", "4.3.1",
     (("order_ref", 8, _U), ("buy_sell", 1, _A), ("shares", 4, _U), ("stock", 8, _A),
      ("price", 4, _P4))),
    ("F", "ADD_ORDER_MPID", "Add Order with MPID attribution", "4.3.2",
     (("order_ref", 8, _U), ("buy_sell", 1, _A), ("shares", 4, _U), ("stock", 8, _A),
      ("price", 4, _P4), ("attribution", 4, _A))),
    ("E", "ORDER_EXECUTED", "Order Executed", "4.4.1",
     (("order_ref", 8, _U), ("executed_shares", 4, _U), ("match_number", 8, _U))),
    ("C", "ORDER_EXECUTED_PRICE", "Order Executed With Price", "4.4.2",
     (("order_ref", 8, _U), ("executed_shares", 4, _U), ("match_number", 8, _U),
      ("printable", 1, _A), ("execution_price", 4, _P4))),
    ("X", "ORDER_CANCEL", "Order Cancel", "4.4.3",
     (("order_ref", 8, _U), ("cancelled_shares", 4, _U))),
    ("D", "ORDER_DELETE", "Order Delete", "4.4.4",
     (("order_ref", 8, _U),)),
    ("U", "ORDER_REPLACE", "Order Replace", "4.4.5",
     (("original_order_ref", 8, _U), ("new_order_ref", 8, _U), ("shares", 4, _U),
      ("price", 4, _P4))),
    ("P", "TRADE", "Trade (non-cross)", "4.5.1",
     (("order_ref", 8, _U), ("buy_sell", 1, _A), ("shares", 4, _U), ("stock", 8, _A),
      ("price", 4, _P4), ("match_number", 8, _U))),
    ("Q", "CROSS_TRADE", "Cross Trade", "4.5.2",
     (("shares", 8, _U), ("stock", 8, _A), ("cross_price", 4, _P4), ("match_number", 8, _U),
      ("cross_type", 1, _A))),
    ("B", "BROKEN_TRADE", "Broken Trade", "4.5.3",
     (("match_number", 8, _U),)),
    ("I", "NOII", "Net Order Imbalance Indicator", "4.6",
     (("paired_shares", 8, _U), ("imbalance_shares", 8, _U), ("imbalance_direction", 1, _A),
      ("stock", 8, _A), ("far_price", 4, _P4), ("near_price", 4, _P4),
      ("current_reference_price", 4, _P4), ("cross_type", 1, _A),
      ("price_variation_indicator", 1, _A))),
    ("N", "RPII", "Retail Price Improvement Indicator", "4.7",
     (("stock", 8, _A), ("interest_flag", 1, _A))),
    ("O", "DLCR_PRICE_DISCOVERY", "Direct Listing with Capital Raise Price Discovery", "4.8",
     (("stock", 8, _A), ("open_eligibility_status", 1, _A), ("minimum_allowable_price", 4, _P4),
      ("maximum_allowable_price", 4, _P4), ("near_execution_price", 4, _P4),
      ("near_execution_time", 8, _U), ("lower_price_range_collar", 4, _P4),
      ("upper_price_range_collar", 4, _P4))),
)


def _build_fields(entries) -> tuple[Field, ...]:
    offset = 1  # the type byte
    built = []
    for name, size, kind in entries:
        built.append(Field(name, offset, size, kind))
        offset += size
    return tuple(built)


HEADER_FIELDS: tuple[Field, ...] = _build_fields(_HEADER)
HEADER_LENGTH: int = HEADER_FIELDS[-1].end

MESSAGE_SPECS: dict[str, MessageSpec] = {}
for _type, _name, _title, _section, _body in _TABLE:
    _fields = _build_fields(_HEADER + _body)
    MESSAGE_SPECS[_type] = MessageSpec(_type, _name, _title, _section, _fields[-1].end, _fields)
del _type, _name, _title, _section, _body, _fields

MESSAGE_LENGTHS: dict[str, int] = {t: spec.length for t, spec in MESSAGE_SPECS.items()}
MIN_MESSAGE_LENGTH: int = min(MESSAGE_LENGTHS.values())
MAX_MESSAGE_LENGTH: int = max(MESSAGE_LENGTHS.values())

# The two values of the Buy/Sell Indicator (A, F, P); any other byte there is invalid.
BUY_INDICATOR = "B"
SELL_INDICATOR = "S"


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message: its type character and every field by name (header included).

    Integer, ``price4`` and ``price8`` fields are ``int``; alpha fields are ``str`` of exactly the
    field's size, trailing spaces kept, so that ``encode(m.type, **m.fields)`` gives the same bytes.
    """

    type: str
    fields: Mapping[str, int | str]

    @property
    def spec(self) -> MessageSpec:
        return MESSAGE_SPECS[self.type]

    def __getitem__(self, name: str) -> int | str:
        return self.fields[name]


# Alpha fields are ASCII by the spec; latin-1 maps every byte to one character and back, so a
# stray non-ASCII byte in a capture still decodes and re-encodes to itself instead of raising.
_TEXT = "latin-1"


def encode(msg_type: str, **fields: int | str | bytes) -> bytes:
    """The wire bytes of one message of type ``msg_type``.

    Fields not given are 0 (integers and prices) or spaces (alpha). ``timestamp`` is the 6-byte
    nanoseconds-since-midnight integer. Alpha fields take ``str`` or ``bytes`` no longer than the
    field and are padded with spaces.

    Raises
    ------
    ValueError
        Unknown message type, unknown field name, a value that does not fit its field.
    TypeError
        A value of the wrong type for its field (e.g. a string for an integer field).
    """
    spec = MESSAGE_SPECS.get(msg_type)
    if spec is None:
        raise ValueError(f"unknown ITCH 5.0 message type {msg_type!r}")
    unknown = set(fields) - set(spec.field_names)
    if unknown:
        raise ValueError(f"ITCH {msg_type!r} ({spec.title}) has no field(s) {sorted(unknown)}; "
                         f"fields are {list(spec.field_names)}")
    raw = bytearray(spec.length)
    raw[0] = spec.code
    for field in spec.fields:
        value = fields.get(field.name)
        if field.kind is FieldKind.ALPHA:
            text = b"" if value is None else _alpha_bytes(field, value)
            raw[field.offset:field.end] = text.ljust(field.size, b" ")
        else:
            number = 0 if value is None else value
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError(f"field {field.name!r} is an integer field, got {number!r}")
            if not 0 <= number < 1 << (8 * field.size):
                raise ValueError(f"field {field.name!r} ({field.size} bytes) cannot hold {number}")
            raw[field.offset:field.end] = number.to_bytes(field.size, "big")
    return bytes(raw)


def _alpha_bytes(field: Field, value: int | str | bytes) -> bytes:
    if isinstance(value, str):
        text = value.encode(_TEXT)
    elif isinstance(value, bytes | bytearray):
        text = bytes(value)
    else:
        raise TypeError(f"field {field.name!r} is an alpha field, got {value!r}")
    if len(text) > field.size:
        raise ValueError(f"field {field.name!r} holds {field.size} characters, got {value!r}")
    return text


def decode(raw: bytes) -> Message:
    """Decode one message (type byte first, no length prefix).

    Raises
    ------
    ValueError
        Empty input, unknown message type, or a length other than the type's.
    """
    if not raw:
        raise ValueError("empty ITCH message")
    msg_type = chr(raw[0])
    spec = MESSAGE_SPECS.get(msg_type)
    if spec is None:
        raise ValueError(f"unknown ITCH 5.0 message type 0x{raw[0]:02x}")
    if len(raw) != spec.length:
        raise ValueError(f"ITCH {msg_type!r} ({spec.title}) is {spec.length} bytes, "
                         f"got {len(raw)}")
    values: dict[str, int | str] = {}
    for field in spec.fields:
        chunk = raw[field.offset:field.end]
        if field.kind is FieldKind.ALPHA:
            values[field.name] = chunk.decode(_TEXT)
        else:
            values[field.name] = int.from_bytes(chunk, "big")
    return Message(msg_type, values)
