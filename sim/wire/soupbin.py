"""SoupBinTCP logical packets: the framing OUCH rides on, with a builder and a stream parser.

# Ref: Nasdaq SoupBinTCP Version 3.00, section 1.1 "SoupBinTCP Logical Packets" and section 2
# "Packet Types" (Sequenced Data Packet 'S', Unsequenced Data Packet 'U')

Byte order: the packet length is a 2-byte unsigned big-endian integer. It counts the bytes that
follow it: the 1-byte packet type plus the payload, so a packet on the wire is ``2 + length`` bytes
long and an empty payload has length 1.

Only the two data packet types are used by the order path: the client sends its OUCH messages in
unsequenced data packets (``U``), the exchange answers in sequenced data packets (``S``), one
OUCH message per packet. Login, heartbeat and logout packets belong to the session layer (the host
side), not to the core; :func:`split_packets` still returns them so that a capture of a whole
session can be read.
"""

from dataclasses import dataclass

__all__ = [
    "LENGTH_BYTES",
    "MAX_PAYLOAD",
    "SEQUENCED_DATA",
    "UNSEQUENCED_DATA",
    "Packet",
    "encode_packet",
    "split_packets",
]

#: Size of the length field in front of every packet.
LENGTH_BYTES = 2
#: Packet type of server-to-client sequenced data (carries one outbound OUCH message).
SEQUENCED_DATA = ord("S")
#: Packet type of client-to-server unsequenced data (carries one inbound OUCH message).
UNSEQUENCED_DATA = ord("U")
#: The length field counts the type byte too, so this is the longest payload.
MAX_PAYLOAD = (1 << (8 * LENGTH_BYTES)) - 2


@dataclass(frozen=True, slots=True)
class Packet:
    """One logical packet: its type byte and payload."""

    type: int
    payload: bytes

    @property
    def wire_length(self) -> int:
        """Bytes on the wire, length field included."""
        return LENGTH_BYTES + 1 + len(self.payload)


def encode_packet(packet_type: int, payload: bytes) -> bytes:
    """The wire bytes of one packet: the length (type byte + payload), the type, the payload.

    Raises
    ------
    ValueError
        A type outside 0..255 or a payload longer than :data:`MAX_PAYLOAD`.
    """
    if not 0 <= packet_type <= 0xFF:
        raise ValueError(f"SoupBinTCP packet type {packet_type} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a SoupBinTCP payload holds at most {MAX_PAYLOAD} bytes, "
                         f"got {len(payload)}")
    return (len(payload) + 1).to_bytes(LENGTH_BYTES, "big") + bytes((packet_type,)) + payload


def split_packets(stream: bytes) -> list[Packet]:
    """Every packet of a byte stream holding whole packets back to back.

    Raises
    ------
    ValueError
        A length of 0 (no room for the type byte) or a stream ending inside a packet; the
        message gives the byte offset of the broken packet.
    """
    packets: list[Packet] = []
    pos = 0
    while pos < len(stream):
        if pos + LENGTH_BYTES > len(stream):
            raise ValueError(f"SoupBinTCP stream ends inside the length field at byte {pos}")
        length = int.from_bytes(stream[pos:pos + LENGTH_BYTES], "big")
        if length == 0:
            raise ValueError(f"SoupBinTCP packet at byte {pos} has length 0 (no type byte)")
        end = pos + LENGTH_BYTES + length
        if end > len(stream):
            raise ValueError(f"SoupBinTCP packet at byte {pos} needs {length} bytes after its "
                             f"length, {len(stream) - pos - LENGTH_BYTES} are left")
        body = pos + LENGTH_BYTES
        packets.append(Packet(stream[body], bytes(stream[body + 1:end])))
        pos = end
    return packets
