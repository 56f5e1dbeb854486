"""The packet beat: the one stream payload every packet-carrying stage uses.

Byte order: byte lane ``k`` of ``data`` (bits ``8k+7..8k``) carries the ``k``-th byte of the beat
in wire order, as in AXI-Stream, so the first byte on the wire is in bits 7..0 of the first beat.
"""

from amaranth.lib import data, stream

__all__ = ["BEAT_BYTES", "Beat", "BeatStream"]

BEAT_BYTES = 8


class Beat(data.Struct):
    """One 64-bit beat of a packet.

    Fields
    ------
    data : 64 bits
        Eight byte lanes, lane 0 first on the wire.
    keep : 8 bits
        Lane ``k`` holds a byte of the packet. Contiguous; a stage may clear leading lanes of its
        first beat (bytes it consumed, e.g. headers) and trailing lanes of its last beat.
    first : 1 bit
        First beat of the packet.
    last : 1 bit
        Last beat of the packet.
    error : 1 bit
        Valid with ``last``: the packet is damaged (bad FCS from the MAC, truncated, ...) and the
        bytes already passed on must not be trusted beyond what the receiving stage documents.
    """

    data: 8 * BEAT_BYTES
    keep: BEAT_BYTES
    first: 1
    last: 1
    error: 1


def BeatStream():
    """Stream signature carrying :class:`Beat` payloads."""
    return stream.Signature(Beat)
