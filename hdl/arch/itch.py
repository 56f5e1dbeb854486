"""ITCH 5.0 message fields for the gateware, derived from the table in :mod:`sim.wire.itch`.

# Ref: Nasdaq TotalView-ITCH 5.0 specification, section 4 "Message Formats"

Byte order: integer and price fields are big-endian on the wire (most significant byte at the
lowest offset), so :func:`wire_field` reverses the bytes to build the integer; alpha fields keep
wire order, first character in bits 7..0, matching ``sim.itch_event.symbol_int``.

A message is handled in gateware as a sequence of byte values indexed by message offset (the type
byte is offset 0), which is how the decoder stores it; these helpers pick fields out of such a
sequence, so that no offset or type code is typed into a stage's ``elaborate``.
"""

from collections.abc import Mapping, Sequence

from amaranth.hdl import Cat, Value

from sim.wire.itch import MESSAGE_SPECS, Field, FieldKind, MessageSpec

__all__ = ["field_offsets", "spec_of", "wire_field"]


def spec_of(msg_type: str) -> MessageSpec:
    """The :class:`~sim.wire.itch.MessageSpec` of a type character."""
    return MESSAGE_SPECS[msg_type]


def field_offsets(field: Field) -> range:
    """The message offsets a field occupies."""
    return range(field.offset, field.end)


def wire_field(message: Sequence[Value] | Mapping[int, Value], field: Field) -> Value:
    """The value of ``field`` read from ``message`` (an 8-bit value per message offset, as a list
    or as a dict holding at least the field's offsets).

    Integer and price fields become unsigned integers (byte-swapped from the wire's big-endian
    order); alpha fields are concatenated in wire order, first character least significant.
    """
    chunk = [message[offset] for offset in field_offsets(field)]
    if field.kind is FieldKind.ALPHA:
        return Cat(*chunk)
    return Cat(*reversed(chunk))
