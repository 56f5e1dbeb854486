"""The message beat: the MoldUDP64 stage's output, ITCH messages still in their original lanes.

MoldUDP64 message blocks sit at any byte alignment in the 64-bit beats. Rather than realigning
(which would cost a beat of latency whenever a message ends in the upper lanes), the Mold stage
passes each beat through unchanged and marks where messages start and end. Because the Mold stage
only passes on blocks of at least ``MIN_MESSAGE_LENGTH + 2`` bytes (14 > 8), a beat holds at most
one message end and at most one message start, and a message that starts in a beat never ends in
the same beat.

Byte order: as :mod:`hdl.arch.beat`, lane ``k`` is bits ``8k+7..8k``, lane 0 first on the wire.
"""

from amaranth.lib import data, stream

__all__ = ["MessageBeat", "MessageBeatStream"]


class MessageBeat(data.Struct):
    """One beat of the message stream.

    Fields
    ------
    data : 64 bits
        The packet's bytes in their original lanes.
    start : 1 bit
        A message (not skipped as a duplicate) starts in this beat: its type byte, the byte after
        the 2-byte length prefix, is in lane ``start_lane``.
    start_lane : 3 bits
    length : 16 bits
        Valid with ``start``: the message's length prefix (type byte included, prefix excluded).
    seq : 64 bits
        Valid with ``start``: the message's MoldUDP64 sequence number.
    end : 1 bit
        The message in progress ends in this beat; its last byte is in lane ``end_lane``.
    end_lane : 3 bits
    error : 1 bit
        Valid with ``end``: the message in progress is abandoned (packet ended early, frame
        error); the receiver drops it without an event. The Mold stage counts the reason.
    """

    data: 64
    start: 1
    start_lane: 3
    length: 16
    seq: 64
    end: 1
    end_lane: 3
    error: 1


def MessageBeatStream():
    """Stream signature carrying :class:`MessageBeat` payloads."""
    return stream.Signature(MessageBeat)
