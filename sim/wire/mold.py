"""MoldUDP64 downstream packets: the one declaration of their layout, with a builder and a parser.

# Ref: Nasdaq MoldUDP64 Protocol Specification v1.00, "Downstream Packets", "Message Blocks",
# "Heartbeats" and "End of Session"

Byte order: the sequence number, the message count and every message length are unsigned
big-endian integers (most significant byte first on the wire). The session is 10 bytes of ASCII,
kept here as ``bytes`` in wire order.

A downstream packet is a 20-byte header (session, sequence number of the first message, message
count) followed by ``count`` message blocks, each a 2-byte length and that many message bytes.
A count of 0 is a heartbeat and a count of 0xFFFF announces the end of the session; both carry
the sequence number of the next message and no blocks.

The gateware does not parse this module at run time; ``hdl/arch/mold.py`` turns the table into
constants, so an offset is written down only here.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.wire.net import MAX_UDP_PAYLOAD

__all__ = [
    "END_OF_SESSION_COUNT",
    "HEADER",
    "HEADER_LENGTH",
    "HEARTBEAT_COUNT",
    "LENGTH_PREFIX",
    "MAX_PAYLOAD",
    "MAX_SEQ",
    "SESSION_LENGTH",
    "Field",
    "MoldHeader",
    "decode_header",
    "encode_packet",
    "packetize",
]


@dataclass(frozen=True, slots=True)
class Field:
    """``size`` bytes at ``offset`` from the start of the packet."""

    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        """Offset of the byte just after the field."""
        return self.offset + self.size


def _fields(table: tuple[tuple[str, int], ...]) -> tuple[Field, ...]:
    # Offsets are accumulated from the sizes, so the table cannot have gaps or overlaps.
    fields, offset = [], 0
    for name, size in table:
        fields.append(Field(name, offset, size))
        offset += size
    return tuple(fields)


# Ref: MoldUDP64 v1.00 "Downstream Packets": Session (alpha), Sequence Number, Message Count.
HEADER = {field.name: field for field in _fields((("session", 10), ("seq", 8), ("count", 2)))}
HEADER_LENGTH = max(field.end for field in HEADER.values())
SESSION_LENGTH = HEADER["session"].size
# Ref: MoldUDP64 v1.00 "Message Blocks": a 2-byte Message Length, then the message data.
LENGTH_PREFIX = 2
# Ref: MoldUDP64 v1.00 "Heartbeats" and "End of Session".
HEARTBEAT_COUNT = 0
END_OF_SESSION_COUNT = 0xFFFF
# The UDP payload of a 1500-byte MTU (1472 bytes): the default packet size of the builder.
MAX_PAYLOAD = MAX_UDP_PAYLOAD
MAX_SEQ = (1 << (8 * HEADER["seq"].size)) - 1


@dataclass(frozen=True, slots=True)
class MoldHeader:
    """The decoded downstream packet header."""

    session: bytes
    seq: int
    count: int

    @property
    def heartbeat(self) -> bool:
        return self.count == HEARTBEAT_COUNT

    @property
    def end_of_session(self) -> bool:
        return self.count == END_OF_SESSION_COUNT


def _field_bytes(payload: bytes, name: str) -> bytes:
    field = HEADER[name]
    return payload[field.offset:field.end]


def decode_header(payload: bytes) -> MoldHeader:
    """The header of a downstream packet; ``ValueError`` if it is shorter than the header."""
    if len(payload) < HEADER_LENGTH:
        raise ValueError(f"a MoldUDP64 packet of {len(payload)} bytes ends inside its "
                         f"{HEADER_LENGTH}-byte header")
    return MoldHeader(session=_field_bytes(payload, "session"),
                      seq=int.from_bytes(_field_bytes(payload, "seq"), "big"),
                      count=int.from_bytes(_field_bytes(payload, "count"), "big"))


def _check_session(session: bytes) -> None:
    if len(session) != SESSION_LENGTH:
        raise ValueError(f"a MoldUDP64 session is {SESSION_LENGTH} bytes, got {len(session)}")


def encode_packet(session: bytes, seq: int, messages: Sequence[bytes],
                  count: int | None = None) -> bytes:
    """A downstream packet carrying ``messages`` from sequence number ``seq``.

    ``count`` defaults to ``len(messages)``; give it to build heartbeats (``HEARTBEAT_COUNT``),
    end-of-session packets (``END_OF_SESSION_COUNT``) or deliberately inconsistent packets for
    tests. Each message is written behind its 2-byte big-endian length.
    """
    _check_session(session)
    if count is None:
        count = len(messages)
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number {seq} does not fit in {HEADER['seq'].size} bytes")
    if not 0 <= count <= END_OF_SESSION_COUNT:
        raise ValueError(f"message count {count} does not fit in {HEADER['count'].size} bytes")
    out = bytearray(session)
    out += seq.to_bytes(HEADER["seq"].size, "big")
    out += count.to_bytes(HEADER["count"].size, "big")
    for message in messages:
        if len(message) >= 1 << (8 * LENGTH_PREFIX):
            raise ValueError(f"a message of {len(message)} bytes does not fit a block")
        out += len(message).to_bytes(LENGTH_PREFIX, "big") + message
    return bytes(out)


def packetize(messages: Iterable[bytes], *, session: bytes, first_seq: int = 1,
              max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """Pack ``messages`` into downstream packets of at most ``max_payload`` bytes, in order.

    Each packet takes as many of the following messages as fit; sequence numbers run on from
    ``first_seq``. ``ValueError`` if a message does not fit in a packet on its own.
    """
    _check_session(session)
    packets: list[bytes] = []
    pending: list[bytes] = []
    size = HEADER_LENGTH
    seq = first_seq
    for message in messages:
        block = LENGTH_PREFIX + len(message)
        if HEADER_LENGTH + block > max_payload:
            raise ValueError(f"a message of {len(message)} bytes does not fit in a packet of "
                             f"{max_payload} bytes")
        if size + block > max_payload or len(pending) == END_OF_SESSION_COUNT - 1:
            packets.append(encode_packet(session, seq, pending))
            seq += len(pending)
            pending, size = [], HEADER_LENGTH
        pending.append(message)
        size += block
    if pending:
        packets.append(encode_packet(session, seq, pending))
    return packets
