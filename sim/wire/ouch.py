"""Nasdaq OUCH 5.0 order entry messages: the one declaration of their layouts, with a codec.

# Ref: Nasdaq OUCH 5.0 Order Entry Specification (revision of October 2025): 1.2 "Data Types";
# 2.1 "Enter Order", 2.2 "Replace Order Request", 2.3 "Cancel Order Request"; 3.1 "System
# Event", 3.2 "Order Accepted", 3.3 "Order Replaced", 3.4 "Order Canceled", 3.6 "Order
# Executed", 3.8 "Rejected"; Appendix A "Optional Fields" (TagValue elements), Appendix B
# "Cancel Reasons", Appendix C "Reject Reasons", Appendix D "Liquidity Flags"

Byte order: every integer field is unsigned big-endian (most significant byte first). Alpha
fields are left-justified ASCII padded with spaces on the right. Prices are 8-byte integers with
4 implied decimals (``1234500`` is $123.45), the same units as ITCH prices, so a book price goes
into an order unchanged. Timestamps are 8-byte nanoseconds since midnight.

Directions follow the specification's names: *inbound* messages go from the client (us) to
Nasdaq, *outbound* messages from Nasdaq to the client. Inbound messages travel in SoupBinTCP
unsequenced data packets, outbound ones in sequenced data packets (:mod:`sim.wire.soupbin`), one
message per packet.

The optional appendage
----------------------
Most messages end with a 2-byte *Appendage Length* and that many bytes of TagValue elements
(Appendix A): each element is a 1-byte length counting the tag and the value, a 1-byte tag and
the value. How the length field itself appears depends on the message (:class:`Appendage`):

- ``REQUIRED`` (Enter Order, Replace Order, Accepted, Replaced, Executed): always present, 0
  when there are no elements.
- ``OPTIONAL`` (Cancel Order; Canceled and Rejected): the specification's later revisions added
  the field but allow the message to end before it (older revisions had no appendage at all;
  Nasdaq sends it on Canceled and Rejected only for a non-zero UserRefIdx channel). The encoder
  writes it exactly when the message carries ``options`` (``None`` means "absent"), the decoder
  accepts both forms. The core always sends Cancel Order without it: 9 bytes.
- ``NONE`` (System Event): no appendage.

Messages are frozen dataclasses whose fields are named as the table's; :func:`encode` and
:func:`decode` walk the table, so an offset is written down only here (the gateware derives its
constants from these tables, as it does for ITCH).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from enum import Enum, IntEnum, StrEnum
from typing import ClassVar

from sim.wire.field import Field
from sim.wire.soupbin import SEQUENCED_DATA, UNSEQUENCED_DATA, encode_packet, split_packets

__all__ = [
    "APPENDAGE_LENGTH_BYTES",
    "INBOUND_SPECS",
    "MAX_LIMIT_PRICE",
    "MAX_QUANTITY",
    "OUTBOUND_SPECS",
    "Accepted",
    "Appendage",
    "CancelOrder",
    "CancelReason",
    "Canceled",
    "Capacity",
    "CrossType",
    "Direction",
    "Display",
    "EnterOrder",
    "EventCode",
    "Executed",
    "Field",
    "FieldKind",
    "LiquidityFlag",
    "Message",
    "MessageSpec",
    "Option",
    "OptionTag",
    "OrderState",
    "RejectReason",
    "Rejected",
    "ReplaceOrder",
    "Replaced",
    "SideCode",
    "SystemEvent",
    "TimeInForce",
    "decode",
    "decode_inbound_stream",
    "decode_outbound_stream",
    "encode",
    "frame",
]


class FieldKind(Enum):
    """How a field's bytes are read (1.2 "Data Types")."""

    UINT = "uint"
    ALPHA = "alpha"
    #: 8-byte unsigned integer price with 4 implied decimals.
    PRICE = "price"


class Direction(Enum):
    """Who sends a message, in the specification's words."""

    #: Client to Nasdaq (section 2); carried in SoupBinTCP unsequenced data.
    INBOUND = "inbound"
    #: Nasdaq to client (section 3); carried in SoupBinTCP sequenced data.
    OUTBOUND = "outbound"


class Appendage(Enum):
    """Whether a message ends with an Appendage Length and TagValue elements."""

    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """The layout of one message type in one direction.

    ``fields`` are the fixed fields after the type byte, in wire order; ``fixed_length`` is the
    length of the type byte and those fields, i.e. the offset of the Appendage Length when there
    is one.
    """

    type: str
    direction: Direction
    name: str
    title: str
    section: str
    fields: tuple[Field, ...]
    appendage: Appendage

    @property
    def code(self) -> int:
        return ord(self.type)

    @property
    def fixed_length(self) -> int:
        return self.fields[-1].end

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"OUCH {self.type!r} ({self.title}) has no field {name!r}")


#: Size of the Appendage Length field.
APPENDAGE_LENGTH_BYTES = 2
#: Quantities must be greater than 0 and less than 1,000,000 (2.1).
MAX_QUANTITY = 999_999
#: Largest limit price, $199,999.99 (1.2); larger values are invalid or mean a market order.
MAX_LIMIT_PRICE = 1_999_999_900

_U, _A, _P = FieldKind.UINT, FieldKind.ALPHA, FieldKind.PRICE
_REQ, _OPT, _NONE = Appendage.REQUIRED, Appendage.OPTIONAL, Appendage.NONE

# type, name, title, section, fixed fields after the type byte (name, size, kind), appendage.
_INBOUND = (
    ("O", "ENTER_ORDER", "Enter Order", "2.1",
     (("user_ref_num", 4, _U), ("side", 1, _A), ("quantity", 4, _U), ("symbol", 8, _A),
      ("price", 8, _P), ("time_in_force", 1, _A), ("display", 1, _A), ("capacity", 1, _A),
      ("intermarket_sweep", 1, _A), ("cross_type", 1, _A), ("cl_ord_id", 14, _A)), _REQ),
    ("U", "REPLACE_ORDER", "Replace Order Request", "2.2",
     (("orig_user_ref_num", 4, _U), ("user_ref_num", 4, _U), ("quantity", 4, _U),
      ("price", 8, _P), ("time_in_force", 1, _A), ("display", 1, _A),
      ("intermarket_sweep", 1, _A), ("cl_ord_id", 14, _A)), _REQ),
    ("X", "CANCEL_ORDER", "Cancel Order Request", "2.3",
     (("user_ref_num", 4, _U), ("quantity", 4, _U)), _OPT),
)
_OUTBOUND = (
    ("S", "SYSTEM_EVENT", "System Event", "3.1",
     (("timestamp", 8, _U), ("event_code", 1, _A)), _NONE),
    ("A", "ACCEPTED", "Order Accepted", "3.2",
     (("timestamp", 8, _U), ("user_ref_num", 4, _U), ("side", 1, _A), ("quantity", 4, _U),
      ("symbol", 8, _A), ("price", 8, _P), ("time_in_force", 1, _A), ("display", 1, _A),
      ("order_reference_number", 8, _U), ("capacity", 1, _A), ("intermarket_sweep", 1, _A),
      ("cross_type", 1, _A), ("order_state", 1, _A), ("cl_ord_id", 14, _A)), _REQ),
    ("U", "REPLACED", "Order Replaced", "3.3",
     (("timestamp", 8, _U), ("orig_user_ref_num", 4, _U), ("user_ref_num", 4, _U),
      ("side", 1, _A), ("quantity", 4, _U), ("symbol", 8, _A), ("price", 8, _P),
      ("time_in_force", 1, _A), ("display", 1, _A), ("order_reference_number", 8, _U),
      ("capacity", 1, _A), ("intermarket_sweep", 1, _A), ("cross_type", 1, _A),
      ("order_state", 1, _A), ("cl_ord_id", 14, _A)), _REQ),
    ("C", "CANCELED", "Order Canceled", "3.4",
     (("timestamp", 8, _U), ("user_ref_num", 4, _U), ("quantity", 4, _U),
      ("reason", 1, _A)), _OPT),
    ("E", "EXECUTED", "Order Executed", "3.6",
     (("timestamp", 8, _U), ("user_ref_num", 4, _U), ("quantity", 4, _U), ("price", 8, _P),
      ("liquidity_flag", 1, _A), ("match_number", 8, _U)), _REQ),
    ("J", "REJECTED", "Rejected", "3.8",
     (("timestamp", 8, _U), ("user_ref_num", 4, _U), ("reason", 2, _U),
      ("cl_ord_id", 14, _A)), _OPT),
)


def _specs(direction: Direction, table) -> dict[str, MessageSpec]:
    specs = {}
    for msg_type, name, title, section, body, appendage in table:
        offset, built = 1, []  # offsets accumulate from the sizes: no gaps, no overlaps
        for field_name, size, kind in body:
            built.append(Field(field_name, offset, size, kind))
            offset += size
        specs[msg_type] = MessageSpec(msg_type, direction, name, title, section, tuple(built),
                                      appendage)
    return specs


INBOUND_SPECS: dict[str, MessageSpec] = _specs(Direction.INBOUND, _INBOUND)
OUTBOUND_SPECS: dict[str, MessageSpec] = _specs(Direction.OUTBOUND, _OUTBOUND)
_SPECS = {Direction.INBOUND: INBOUND_SPECS, Direction.OUTBOUND: OUTBOUND_SPECS}

# Derived from the tables for speed (the replay runs millions of messages): a struct format
# per message (type byte, then the fixed fields) and the checks of each field.
_INTEGER_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
# Keyed by the message's name (unique over both directions): hashing a spec is slow.
_STRUCTS: dict[str, struct.Struct] = {}
_CHECKS: dict[str, tuple[tuple[str, bool, int, int], ...]] = {}
for _spec in (*INBOUND_SPECS.values(), *OUTBOUND_SPECS.values()):
    _STRUCTS[_spec.name] = struct.Struct(">c" + "".join(
        f"{f.size}s" if f.kind is FieldKind.ALPHA else _INTEGER_CODES[f.size]
        for f in _spec.fields))
    _CHECKS[_spec.name] = tuple((f.name, f.kind is FieldKind.ALPHA, f.size, 1 << (8 * f.size))
                           for f in _spec.fields)
    if _STRUCTS[_spec.name].size != _spec.fixed_length:
        raise AssertionError(f"OUCH {_spec.type!r}: struct of the wrong size")
del _spec

# ------------------------------------------------------------------------------------------------
# Code values of one-character fields (the values the core and the exchange model use).


class SideCode(StrEnum):
    """Side (2.1)."""

    BUY = "B"
    SELL = "S"
    SELL_SHORT = "T"
    SELL_SHORT_EXEMPT = "E"


class TimeInForce(StrEnum):
    """Time in force (2.1)."""

    DAY = "0"
    IOC = "3"
    GTX = "5"
    GTT = "6"
    AFTER_HOURS = "E"


class Display(StrEnum):
    """Display (2.1)."""

    VISIBLE = "Y"
    HIDDEN = "N"
    ATTRIBUTABLE = "A"


class Capacity(StrEnum):
    """Capacity (2.1)."""

    AGENCY = "A"
    PRINCIPAL = "P"
    RISKLESS = "R"
    OTHER = "O"


class CrossType(StrEnum):
    """Cross type (2.1); the core only trades the continuous market."""

    CONTINUOUS = "N"


class OrderState(StrEnum):
    """Order state of Accepted and Replaced (3.2)."""

    LIVE = "L"
    #: Accepted and canceled in the same instant (e.g. a post-only order that would cross).
    DEAD = "D"


class EventCode(StrEnum):
    """System event codes (3.1)."""

    START_OF_DAY = "S"
    END_OF_DAY = "E"


class CancelReason(StrEnum):
    """Order canceled reasons (Appendix B), those the exchange model sends."""

    USER_REQUESTED = "U"
    IMMEDIATE_OR_CANCEL = "I"
    SYSTEM = "Z"


class LiquidityFlag(StrEnum):
    """Liquidity flags (Appendix D), those the exchange model sends."""

    ADDED = "A"
    REMOVED = "R"


class RejectReason(IntEnum):
    """Reject reasons (Appendix C), those the exchange model sends."""

    OTHER = 0x000F
    INVALID_QUANTITY = 0x0013
    INVALID_SYMBOL = 0x0017
    INVALID_PRICE = 0x001D


class OptionTag(IntEnum):
    """OptionTag values of the TagValue elements (Appendix A)."""

    SECONDARY_ORD_REF_NUM = 1
    FIRM = 2
    MIN_QTY = 3
    CUSTOMER_TYPE = 4
    MAX_FLOOR = 5
    PRICE_TYPE = 6
    PEG_OFFSET = 7
    DISCRETION_PRICE = 9
    DISCRETION_PRICE_TYPE = 10
    DISCRETION_PEG_OFFSET = 11
    #: 1 byte: ``P`` post only, ``N`` not.
    POST_ONLY = 12
    RANDOM_RESERVES = 13
    ROUTE = 14
    EXPIRE_TIME = 15
    TRADE_NOW = 16
    HANDLE_INST = 17
    BBO_WEIGHT_INDICATOR = 18
    DISPLAY_QUANTITY = 22
    DISPLAY_PRICE = 23
    GROUP_ID = 24
    SHARES_LOCATED = 25
    LOCATE_BROKER = 26
    SIDE = 27
    USER_REF_IDX = 28


@dataclass(frozen=True, slots=True)
class Option:
    """One TagValue element: the tag and the value's bytes (Appendix A).

    On the wire: ``len(value) + 1`` (one byte), the tag (one byte), the value.
    """

    tag: int
    value: bytes

    def __post_init__(self):
        if not 0 <= self.tag <= 0xFF:
            raise ValueError(f"OUCH option tag {self.tag} is not a byte")
        if len(self.value) > 0xFE:
            raise ValueError(f"OUCH option {self.tag}: a value holds at most 254 bytes")

    @classmethod
    def post_only(cls) -> Option:
        """The element that makes an order post-only."""
        return cls(OptionTag.POST_ONLY, b"P")


# ------------------------------------------------------------------------------------------------
# Messages


class Message:
    """Base of the message classes: ``SPEC`` is the layout, ``options`` the appendage.

    Alpha fields take a ``str`` no longer than the field and are stored padded with spaces, so a
    decoded message equals the one that was encoded. ``options`` is a tuple of :class:`Option`;
    ``None`` (only for an ``OPTIONAL`` appendage) means the Appendage Length is absent.
    """

    __slots__ = ()
    SPEC: ClassVar[MessageSpec]

    def _normalize(self) -> None:
        title = self.SPEC.title
        for name, alpha, size, limit in _CHECKS[self.SPEC.name]:
            value = getattr(self, name)
            if alpha:
                if isinstance(value, bytes | bytearray):
                    value = bytes(value).decode("latin-1")
                if not isinstance(value, str):
                    raise TypeError(f"{title}.{name} is an alpha field, got {value!r}")
                if len(value) != size:
                    if len(value) > size:
                        raise ValueError(f"{title}.{name} holds {size} characters, "
                                         f"got {value!r}")
                    object.__setattr__(self, name, value.ljust(size))
                elif type(value) is not str:
                    object.__setattr__(self, name, str(value))  # a StrEnum member: its text
            else:
                if type(value) is not int and (isinstance(value, bool)
                                               or not isinstance(value, int)):
                    raise TypeError(f"{title}.{name} is an integer field, got {value!r}")
                if not 0 <= value < limit:
                    raise ValueError(f"{title}.{name} ({size} bytes) cannot hold {value}")
        options = self.options
        if options is None:
            if self.SPEC.appendage is not Appendage.OPTIONAL:
                raise ValueError(f"{title}: the appendage can only be absent on a message "
                                 "whose Appendage Length is optional")
        else:
            if type(options) is not tuple:
                options = tuple(options)
                object.__setattr__(self, "options", options)
            if options and self.SPEC.appendage is Appendage.NONE:
                raise ValueError(f"{title} has no appendage")

    def __post_init__(self):
        self._normalize()

    @property
    def wire_length(self) -> int:
        """Bytes of the message (not framed)."""
        if self.options is None or self.SPEC.appendage is Appendage.NONE:
            return self.SPEC.fixed_length
        return (self.SPEC.fixed_length + APPENDAGE_LENGTH_BYTES
                + sum(2 + len(option.value) for option in self.options))


@dataclass(frozen=True, slots=True)
class EnterOrder(Message):
    """Enter Order (2.1): a new order; ``user_ref_num`` must exceed every one used before."""

    SPEC: ClassVar[MessageSpec] = INBOUND_SPECS["O"]
    user_ref_num: int
    side: str
    quantity: int
    symbol: str
    price: int
    time_in_force: str
    display: str
    capacity: str
    intermarket_sweep: str
    cross_type: str
    cl_ord_id: str
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class ReplaceOrder(Message):
    """Replace Order Request (2.2).

    ``user_ref_num`` is the replacement's new, increasing number. ``quantity`` is the order's
    new total size over its replace chain, shares already executed included: the replacement
    rests with ``quantity`` less those shares, and is dead if none are left.
    """

    SPEC: ClassVar[MessageSpec] = INBOUND_SPECS["U"]
    orig_user_ref_num: int
    user_ref_num: int
    quantity: int
    price: int
    time_in_force: str
    display: str
    intermarket_sweep: str
    cl_ord_id: str
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class CancelOrder(Message):
    """Cancel Order Request (2.3): ``quantity`` is the new intended size (0 cancels all)."""

    SPEC: ClassVar[MessageSpec] = INBOUND_SPECS["X"]
    user_ref_num: int
    quantity: int
    options: tuple[Option, ...] | None = None


@dataclass(frozen=True, slots=True)
class SystemEvent(Message):
    """System Event (3.1)."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["S"]
    timestamp: int
    event_code: str
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class Accepted(Message):
    """Order Accepted (3.2); ``quantity`` is the shares accepted."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["A"]
    timestamp: int
    user_ref_num: int
    side: str
    quantity: int
    symbol: str
    price: int
    time_in_force: str
    display: str
    order_reference_number: int
    capacity: str
    intermarket_sweep: str
    cross_type: str
    order_state: str
    cl_ord_id: str
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class Replaced(Message):
    """Order Replaced (3.3); ``quantity`` is the shares open on the replacement."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["U"]
    timestamp: int
    orig_user_ref_num: int
    user_ref_num: int
    side: str
    quantity: int
    symbol: str
    price: int
    time_in_force: str
    display: str
    order_reference_number: int
    capacity: str
    intermarket_sweep: str
    cross_type: str
    order_state: str
    cl_ord_id: str
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class Canceled(Message):
    """Order Canceled (3.4); ``quantity`` is the shares just taken off (incremental)."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["C"]
    timestamp: int
    user_ref_num: int
    quantity: int
    reason: str
    options: tuple[Option, ...] | None = None


@dataclass(frozen=True, slots=True)
class Executed(Message):
    """Order Executed (3.6); ``quantity`` is the shares just executed (incremental)."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["E"]
    timestamp: int
    user_ref_num: int
    quantity: int
    price: int
    liquidity_flag: str
    match_number: int
    options: tuple[Option, ...] | None = ()


@dataclass(frozen=True, slots=True)
class Rejected(Message):
    """Rejected (3.8): an Enter Order or Replace Order was refused (``reason``: Appendix C)."""

    SPEC: ClassVar[MessageSpec] = OUTBOUND_SPECS["J"]
    timestamp: int
    user_ref_num: int
    reason: int
    cl_ord_id: str
    options: tuple[Option, ...] | None = None


_CLASSES: dict[Direction, dict[str, type[Message]]] = {d: {} for d in Direction}
for _cls in (EnterOrder, ReplaceOrder, CancelOrder, SystemEvent, Accepted, Replaced, Canceled,
             Executed, Rejected):
    # The dataclass fields must be the table's, in order: the table stays the one declaration.
    _names = tuple(f.name for f in fields(_cls))
    if _names != (*(f.name for f in _cls.SPEC.fields), "options"):
        raise AssertionError(f"{_cls.__name__} fields {_names} do not match {_cls.SPEC.title}")
    _CLASSES[_cls.SPEC.direction][_cls.SPEC.type] = _cls
del _cls, _names

# ------------------------------------------------------------------------------------------------
# Codec


def _appendage_bytes(options: tuple[Option, ...]) -> bytes:
    body = b"".join(bytes((len(option.value) + 1, option.tag)) + option.value
                    for option in options)
    if len(body) >= 1 << (8 * APPENDAGE_LENGTH_BYTES):
        raise ValueError(f"an OUCH appendage holds at most 65535 bytes, got {len(body)}")
    return len(body).to_bytes(APPENDAGE_LENGTH_BYTES, "big") + body


def encode(message: Message) -> bytes:
    """The wire bytes of one message (type byte first, not framed)."""
    spec = message.SPEC
    values = [getattr(message, name).encode("latin-1") if alpha else getattr(message, name)
              for name, alpha, _, _ in _CHECKS[spec.name]]
    raw = _STRUCTS[spec.name].pack(spec.type.encode(), *values)
    if spec.appendage is not Appendage.NONE and message.options is not None:
        raw += _appendage_bytes(message.options)
    return raw


def _options(raw: bytes, where: str) -> tuple[Option, ...]:
    options, pos = [], 0
    while pos < len(raw):
        length = raw[pos]
        if length == 0 or pos + 1 + length > len(raw):
            raise ValueError(f"{where}: TagValue element at appendage byte {pos} has length "
                             f"{length}, {len(raw) - pos - 1} bytes are left")
        options.append(Option(raw[pos + 1], bytes(raw[pos + 2:pos + 1 + length])))
        pos += 1 + length
    return tuple(options)


def decode(raw: bytes, direction: Direction) -> Message:
    """Decode one message (type byte first, not framed) sent in ``direction``.

    Raises
    ------
    ValueError
        Empty input, a type the direction does not define, a length that does not match the
        fixed fields and the Appendage Length, or a TagValue element running past the end.
    """
    if not raw:
        raise ValueError("empty OUCH message")
    msg_type = chr(raw[0])
    spec = _SPECS[direction].get(msg_type)
    if spec is None:
        raise ValueError(f"no {direction.value} OUCH 5.0 message of type 0x{raw[0]:02x}")
    fixed = spec.fixed_length
    if len(raw) < fixed:
        raise ValueError(f"OUCH {msg_type!r} ({spec.title}) needs {fixed} bytes, "
                         f"got {len(raw)}")
    unpacked = _STRUCTS[spec.name].unpack_from(raw)
    message = object.__new__(_CLASSES[direction][msg_type])
    # The values come from bytes of the right sizes: set them without the constructor's checks.
    for (name, alpha, _, _), value in zip(_CHECKS[spec.name], unpacked[1:], strict=True):
        object.__setattr__(message, name, value.decode("latin-1") if alpha else value)
    options: tuple[Option, ...] | None = ()
    rest = raw[fixed:]
    if spec.appendage is Appendage.NONE or (spec.appendage is Appendage.OPTIONAL and not rest):
        if rest:
            raise ValueError(f"OUCH {msg_type!r} ({spec.title}) is {fixed} bytes, "
                             f"got {len(raw)}")
        options = None if spec.appendage is Appendage.OPTIONAL else ()
    else:
        if len(rest) < APPENDAGE_LENGTH_BYTES:
            raise ValueError(f"OUCH {msg_type!r} ({spec.title}) ends inside its Appendage "
                             "Length")
        length = int.from_bytes(rest[:APPENDAGE_LENGTH_BYTES], "big")
        if len(rest) != APPENDAGE_LENGTH_BYTES + length:
            raise ValueError(f"OUCH {msg_type!r} ({spec.title}): Appendage Length {length}, "
                             f"{len(rest) - APPENDAGE_LENGTH_BYTES} appendage bytes follow")
        options = _options(rest[APPENDAGE_LENGTH_BYTES:], spec.title)
    object.__setattr__(message, "options", options)
    return message


def frame(message: Message) -> bytes:
    """The message in its SoupBinTCP packet: unsequenced data inbound, sequenced outbound."""
    packet_type = (UNSEQUENCED_DATA if message.SPEC.direction is Direction.INBOUND
                   else SEQUENCED_DATA)
    return encode_packet(packet_type, encode(message))


def _decode_stream(stream: bytes, direction: Direction, packet_type: int) -> list[Message]:
    out = []
    for packet in split_packets(stream):
        if packet.type != packet_type:
            raise ValueError(f"expected SoupBinTCP packets of type {chr(packet_type)!r} for "
                             f"{direction.value} OUCH, got {chr(packet.type)!r}")
        out.append(decode(packet.payload, direction))
    return out


def decode_inbound_stream(stream: bytes) -> list[Message]:
    """Every inbound message of a stream of unsequenced data packets (the core's output)."""
    return _decode_stream(stream, Direction.INBOUND, UNSEQUENCED_DATA)


def decode_outbound_stream(stream: bytes) -> list[Message]:
    """Every outbound message of a stream of sequenced data packets (the exchange's answers)."""
    return _decode_stream(stream, Direction.OUTBOUND, SEQUENCED_DATA)
