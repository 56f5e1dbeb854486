"""Ethernet/802.1Q/IPv4/UDP header positions for the gateware, derived from :mod:`sim.wire.net`.

# Ref: IEEE 802.3-2018 clause 3.2, IEEE 802.1Q-2018 clause 9.6, RFC 791 section 3.1, RFC 768

Byte order: header fields are big-endian on the wire (most significant byte at the lowest frame
offset), while a beat carries the frame's bytes in lane order (lane 0, bits 7..0, first; see
:mod:`hdl.arch.beat`). So a field's bytes are found in the lanes of one or more beats and
:func:`be_value` reverses them to build the integer. MAC addresses, IPv4 addresses and ports
compare directly with the integers of ``sim.wire.net`` (first wire byte most significant).

A receiver sees a header one beat at a time; :class:`FramePos` says in which beat and lane each
byte of a field arrives, with or without an 802.1Q tag, so no offset is typed into a stage.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from amaranth.hdl import Cat, Value

from hdl.arch.beat import BEAT_BYTES
from sim.wire.net import (
    ETHERNET,
    ETHERTYPE_IPV4,
    ETHERTYPE_VLAN,
    IPPROTO_UDP,
    IPV4,
    IPV4_FLAG_MF,
    IPV4_FRAGMENT_OFFSET_MASK,
    IPV4_IHL,
    IPV4_IHL_MASK,
    IPV4_VERSION,
    IPV4_VERSION_SHIFT,
    UDP,
    VLAN_TAG,
    Header,
    frame_offset,
    payload_offset,
)

__all__ = [
    "ETHERNET",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_VLAN",
    "IPPROTO_UDP",
    "IPV4",
    "IPV4_FLAG_MF",
    "IPV4_FRAGMENT_OFFSET_MASK",
    "IPV4_IHL",
    "IPV4_IHL_MASK",
    "IPV4_VERSION",
    "IPV4_VERSION_SHIFT",
    "UDP",
    "VLAN_TAG",
    "BytePos",
    "FramePos",
    "be_value",
    "field_pos",
    "header_pos",
    "payload_pos",
]


class BytePos(NamedTuple):
    """Where a frame byte arrives: beat index from the frame's first beat, and byte lane."""

    beat: int
    lane: int

    @classmethod
    def of(cls, offset: int) -> "BytePos":
        return cls(offset // BEAT_BYTES, offset % BEAT_BYTES)


@dataclass(frozen=True, slots=True)
class FramePos:
    """``size`` bytes from frame offset ``offset``."""

    offset: int
    size: int

    @property
    def bytes(self) -> tuple[BytePos, ...]:
        """Position of each byte, in wire order."""
        return tuple(BytePos.of(offset) for offset in range(self.offset, self.offset + self.size))

    @property
    def first_beat(self) -> int:
        return self.offset // BEAT_BYTES

    @property
    def last_beat(self) -> int:
        """The beat that completes the field: the earliest beat it can be checked in."""
        return (self.offset + self.size - 1) // BEAT_BYTES


def field_pos(header: Header, name: str, vlan: bool) -> FramePos:
    """Position of field ``name`` of ``header`` in a frame with or without an 802.1Q tag."""
    return FramePos(frame_offset(header, name, vlan), header[name].size)


def header_pos(header: Header, vlan: bool) -> FramePos:
    """Position of a whole header (IPv4, UDP or the tag: the tag splits the Ethernet header)."""
    return FramePos(frame_offset(header, header.fields[0].name, vlan), header.size)


def payload_pos(vlan: bool) -> BytePos:
    """Where the first UDP payload byte arrives."""
    return BytePos.of(payload_offset(vlan))


def be_value(pos: FramePos, byte_at: Callable[[BytePos], Value]) -> Value:
    """The big-endian integer of the field at ``pos``; ``byte_at`` gives each byte's 8-bit value."""
    chunk: Sequence[Value] = [byte_at(where) for where in pos.bytes]
    return Cat(*reversed(chunk))
