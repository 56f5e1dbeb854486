"""OUCH 5.0 messages in SoupBinTCP packets for the gateware, derived from :mod:`sim.wire.ouch`.

# Ref: Nasdaq OUCH 5.0 Order Entry Specification (revision of October 2025), sections 2 and 3,
# Appendix A; Nasdaq SoupBinTCP Version 3.00, section 1.1 "SoupBinTCP Logical Packets"

Byte order: every integer and price field is big-endian on the wire (most significant byte at
the lowest offset), so :func:`message_bytes` and :func:`read_field` reverse the bytes of an
integer; alpha fields keep wire order, first character in bits 7..0, as ITCH symbols do
(``sim.itch_event.symbol_int``). The SoupBinTCP length in front of every packet is big-endian
too and counts the type byte and the payload.

A packet is handled in gateware as a sequence of 8-bit values indexed by packet offset: the
2-byte length, the packet type, then the OUCH message (its type byte at
:data:`MESSAGE_OFFSET`). The helpers place and pick fields in such a sequence from the model's
tables, so that no offset or type code is typed into a stage's ``elaborate``. One-character
codes become Amaranth enums of 8 bits whose values are the wire characters.
"""

from collections.abc import Mapping, Sequence
from enum import Enum as PyEnum

from amaranth.hdl import Cat, Const, Value
from amaranth.lib import enum

from sim.itch_event import EVENT_FIELD_BITS
from sim.ouch_rx import ANSWER_FIELDS, ANSWER_MESSAGES, SKIPPED_MESSAGES
from sim.wire.ouch import (
    APPENDAGE_LENGTH_BYTES,
    INBOUND_SPECS,
    OUTBOUND_SPECS,
    Appendage,
    CancelOrder,
    Field,
    FieldKind,
    MessageSpec,
    Option,
    OrderState,
    TimeInForce,
    encode,
)
from sim.wire.soupbin import LENGTH_BYTES, SEQUENCED_DATA, UNSEQUENCED_DATA

__all__ = [
    "ACTION_PRICE_BITS",
    "ANSWER_FIELDS",
    "ANSWER_MESSAGES",
    "APPENDAGE_LENGTH_BYTES",
    "INBOUND_SPECS",
    "LENGTH_BYTES",
    "MESSAGE_OFFSET",
    "OUTBOUND_SPECS",
    "PACKET_LENGTH",
    "PACKET_TYPE_OFFSET",
    "QUANTITY_BITS",
    "SEQUENCED_DATA",
    "SKIPPED_MESSAGES",
    "UNSEQUENCED_DATA",
    "USER_REF_BITS",
    "Appendage",
    "OrderStateCode",
    "OutboundType",
    "TimeInForceCode",
    "appendage_bytes",
    "byte_enum",
    "field_offsets",
    "message_bytes",
    "packet_bytes",
    "read_field",
]

#: The SoupBinTCP length as a field of the packet (read it with ``base=0``).
PACKET_LENGTH = Field("length", 0, LENGTH_BYTES, FieldKind.UINT)
#: Packet offset of the SoupBinTCP packet type.
PACKET_TYPE_OFFSET = LENGTH_BYTES
#: Packet offset of the OUCH message's type byte: after the length and the packet type.
MESSAGE_OFFSET = PACKET_TYPE_OFFSET + 1

USER_REF_BITS = 8 * INBOUND_SPECS["O"].field("user_ref_num").size
QUANTITY_BITS = 8 * INBOUND_SPECS["O"].field("quantity").size
#: Prices travel through the core in ITCH's 4-byte width; OUCH widens them to 8 bytes.
ACTION_PRICE_BITS = EVENT_FIELD_BITS["price"]


def byte_enum(name: str, members: Mapping[str, int]) -> enum.EnumType:
    """An Amaranth enum of shape 8 (one wire byte) with the given member values."""
    namespace = enum.EnumType.__prepare__(name, (enum.Enum,), shape=8)
    for member, value in members.items():
        namespace[member] = value
    return enum.EnumType(name, (enum.Enum,), namespace, shape=8)


def _char_enum(name: str, codes: type[PyEnum]) -> enum.EnumType:
    return byte_enum(name, {member.name: ord(member.value) for member in codes})


#: Time in force (2.1), valued by its wire character.
TimeInForceCode = _char_enum("TimeInForceCode", TimeInForce)
#: Order state of Accepted and Replaced (3.2), valued by its wire character.
OrderStateCode = _char_enum("OrderStateCode", OrderState)
#: Outbound message types (section 3), valued by their type byte.
OutboundType = byte_enum("OutboundType",
                         {spec.name: spec.code for spec in OUTBOUND_SPECS.values()})


def field_offsets(field: Field, base: int = 0) -> range:
    """The offsets a field occupies, counted from ``base`` (the message's type byte)."""
    return range(base + field.offset, base + field.end)


def read_field(packet: Sequence[Value] | Mapping[int, Value], field: Field,
               base: int = MESSAGE_OFFSET) -> Value:
    """The value of ``field`` read from ``packet`` (an 8-bit value per offset), the message's
    type byte being at ``base``. Integers and prices are byte-swapped from big-endian; alpha
    fields are concatenated in wire order, first character least significant."""
    chunk = [packet[offset] for offset in field_offsets(field, base)]
    if field.kind is FieldKind.ALPHA:
        return Cat(*chunk)
    return Cat(*reversed(chunk))


def appendage_bytes(options: Sequence[Option]) -> bytes:
    """The Appendage Length and TagValue elements carrying ``options``, as the model encodes
    them (taken from a Cancel Order, whose appendage is optional, so no field is typed here)."""
    probe = CancelOrder(0, 0, tuple(options))
    return encode(probe)[probe.SPEC.fixed_length:]


def message_bytes(spec: MessageSpec, values: Mapping[str, Value | int | str],
                  appendage: bytes = b"") -> list[Value]:
    """The bytes of one message of ``spec`` (type byte first), one 8-bit value each.

    ``values`` gives every fixed field: an ``int`` or a ``Value`` (at most the field's width;
    written big-endian, or in wire order for an alpha field) or, for an alpha field, a ``str``
    (space padded, like the model). ``appendage`` is appended as constant bytes.
    """
    missing = {field.name for field in spec.fields} - set(values)
    if missing:
        raise KeyError(f"OUCH {spec.title}: no value for {sorted(missing)}")
    out: list[Value] = [Const(spec.code, 8)]
    for field in spec.fields:
        value = values[field.name]
        if isinstance(value, str):
            if field.kind is not FieldKind.ALPHA or len(value) > field.size:
                raise ValueError(f"OUCH {spec.title}.{field.name} cannot hold {value!r}")
            value = Const(int.from_bytes(value.ljust(field.size).encode("ascii"), "little"),
                          8 * field.size)
        value = Value.cast(value)
        if len(value) > 8 * field.size:
            raise ValueError(f"OUCH {spec.title}.{field.name}: {len(value)} bits do not fit "
                             f"{field.size} bytes")
        chunk = [value.as_unsigned().word_select(k, 8) if 8 * k < len(value) else Const(0, 8)
                 for k in range(field.size)]
        out += chunk if field.kind is FieldKind.ALPHA else list(reversed(chunk))
    out += [Const(byte, 8) for byte in appendage]
    return out


def packet_bytes(packet_type: int, message: Sequence[Value]) -> list[Value]:
    """``message`` in its SoupBinTCP packet: the length (type byte + payload), the type."""
    length = (len(message) + 1).to_bytes(LENGTH_BYTES, "big")
    return [*(Const(byte, 8) for byte in length), Const(packet_type, 8), *message]
