"""MoldUDP64 downstream packet positions for the gateware, derived from :mod:`sim.wire.mold`.

# Ref: Nasdaq MoldUDP64 Protocol Specification v1.00, "Downstream Packets", "Message Blocks"

Byte order: the sequence number, the message count and the block lengths are big-endian on the
wire (most significant byte at the lowest offset), while a beat carries the bytes in lane order
(lane 0, bits 7..0, first; see :mod:`hdl.arch.beat`). A header held as a list of byte values
indexed by packet offset is turned into integers by :func:`header_field`, which reverses the bytes.
The session is read the same way, so its first character ends up in the most significant byte
(``int.from_bytes(session, "big")``), the host's text format.
"""

from collections.abc import Sequence

from amaranth.hdl import Cat, Value

from sim.wire.itch import MIN_MESSAGE_LENGTH
from sim.wire.mold import (
    END_OF_SESSION_COUNT,
    HEADER,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_PREFIX,
    Field,
)

__all__ = [
    "COUNT_BITS",
    "END_OF_SESSION_COUNT",
    "FIRST_TYPE_OFFSET",
    "HEADER",
    "HEADER_LENGTH",
    "HEARTBEAT_COUNT",
    "LENGTH_BITS",
    "LENGTH_PREFIX",
    "MIN_MESSAGE_LENGTH",
    "SEQ_BITS",
    "SESSION_BITS",
    "field_offsets",
    "header_field",
]

SESSION_BITS = 8 * HEADER["session"].size
SEQ_BITS = 8 * HEADER["seq"].size
COUNT_BITS = 8 * HEADER["count"].size
LENGTH_BITS = 8 * LENGTH_PREFIX

#: Packet offset of the first block's type byte: the earliest byte a message start can mark.
FIRST_TYPE_OFFSET = HEADER_LENGTH + LENGTH_PREFIX

def field_offsets(name: str) -> range:
    """The packet offsets of header field ``name``."""
    field: Field = HEADER[name]
    return range(field.offset, field.end)


def header_field(header: Sequence[Value], name: str, offsets: range | None = None) -> Value:
    """The big-endian integer of header field ``name`` (or of its bytes at ``offsets``).

    ``header`` holds one 8-bit value per packet offset. ``offsets`` selects a run of the field's
    bytes, which gives the matching slice of the integer: the receiver compares the sequence
    number in two parts that arrive at different times.
    """
    span = field_offsets(name) if offsets is None else offsets
    if not set(span) <= set(field_offsets(name)):
        raise ValueError(f"offsets {span} are not all inside header field {name!r}")
    return Cat(*reversed([header[offset] for offset in span]))
