"""Reference model of the order port's receiver: SoupBinTCP packets in, the exchange's answers out.

The exchange's side of the OUCH session arrives one SoupBinTCP packet per frame (the session
layer delimits them). Sequenced data packets carry one OUCH outbound message each; the answers
the :class:`~sim.orders.OrderTable` consumes (Accepted, Replaced, Canceled, Executed, Rejected)
are delivered, everything else is counted and dropped. Each frame is counted under exactly one
:class:`OuchRxStat` reason, the first that applies, in this order:

1. ``FRAME_ERROR``: the frame arrived damaged (``error``).
2. ``TRUNCATED``: fewer than the 3 bytes of a packet header, a length of 0 (no type byte), or
   fewer bytes than the length announces.
3. ``TRAILING_BYTES``: more bytes than the length announces.
4. ``OTHER_PACKETS``: a packet type other than sequenced data (heartbeats, login, logout and
   debug packets belong to the session layer).
5. ``OVERSIZED``: a frame longer than ``max_packet`` bytes, the receiver's buffer.
6. ``UNKNOWN_TYPE``: a type byte that names no outbound OUCH 5.0 message.
7. ``BAD_MESSAGE``: an empty payload, or one that :func:`sim.wire.ouch.decode` refuses (length
   not matching the fixed fields and the Appendage Length, TagValue element past the end).
8. ``SKIPPED``: a well-formed message the order table has no use for (System Event).
9. ``ANSWERS``: delivered.
"""

from __future__ import annotations

from enum import IntEnum

from sim.wire.ouch import (
    OUTBOUND_SPECS,
    Accepted,
    Canceled,
    Direction,
    Executed,
    Message,
    Rejected,
    Replaced,
    SystemEvent,
    decode,
)
from sim.wire.soupbin import LENGTH_BYTES, SEQUENCED_DATA

__all__ = [
    "ANSWER_FIELDS",
    "ANSWER_MESSAGES",
    "DEFAULT_MAX_PACKET",
    "SKIPPED_MESSAGES",
    "OuchRx",
    "OuchRxStat",
    "answer_values",
]

#: The exchange's answers the order table consumes.
ANSWER_MESSAGES = (Accepted, Replaced, Canceled, Executed, Rejected)
#: Well-formed outbound messages that are counted and dropped.
SKIPPED_MESSAGES = (SystemEvent,)
#: 16 beats of 8 bytes: the longest answer (Order Replaced, 71 bytes framed with an empty
#: appendage) with 57 bytes of TagValue elements to spare.
DEFAULT_MAX_PACKET = 128

if {cls.SPEC.type for cls in ANSWER_MESSAGES + SKIPPED_MESSAGES} != set(OUTBOUND_SPECS):
    raise AssertionError("every outbound OUCH message must be either an answer or skipped")


class OuchRxStat(IntEnum):
    """What the receiver counts; the gateware has one 48-bit counter per member."""

    ANSWERS = 0
    SKIPPED = 1
    OTHER_PACKETS = 2
    UNKNOWN_TYPE = 3
    BAD_MESSAGE = 4
    TRUNCATED = 5
    TRAILING_BYTES = 6
    OVERSIZED = 7
    FRAME_ERROR = 8


def _answer_fields() -> dict[str, int]:
    # The union of the answers' fields, each as wide as its widest version, less what only
    # echoes the order (the order table knows its side, symbol, ClOrdID, ...).
    echoed = {"side", "symbol", "time_in_force", "display", "capacity", "intermarket_sweep",
              "cross_type", "cl_ord_id", "order_reference_number"}
    widths: dict[str, int] = {}
    for cls in ANSWER_MESSAGES:
        for field in cls.SPEC.fields:
            if field.name not in echoed:
                widths[field.name] = max(widths.get(field.name, 0), 8 * field.size)
    return widths


#: Field -> bits of a delivered answer: what ``OrderTable.on_message`` and the position need.
#: A one-character field holds its character code, Rejected's 2-byte reason its value, and a
#: field the message does not have is 0.
ANSWER_FIELDS = _answer_fields()


def answer_values(message: Message) -> dict[str, int]:
    """The answer fields of ``message`` as the receiver reports them."""
    values = {}
    for name in ANSWER_FIELDS:
        value = getattr(message, name, 0)
        values[name] = ord(value) if isinstance(value, str) else value
    return values


class OuchRx:
    """Classifies frames and decodes the answers, counting every frame once.

    Parameters
    ----------
    max_packet : int
        Longest frame (bytes, length field included) whose message is decoded.
    """

    def __init__(self, max_packet: int = DEFAULT_MAX_PACKET):
        self.max_packet = max_packet
        self.stats = {stat: 0 for stat in OuchRxStat}

    def classify(self, frame: bytes, error: bool = False) -> tuple[OuchRxStat, Message | None]:
        """The reason ``frame`` is counted under and, for an answer or a skipped message, the
        decoded message. Counts nothing."""
        if error:
            return OuchRxStat.FRAME_ERROR, None
        header = LENGTH_BYTES + 1
        length = int.from_bytes(frame[:LENGTH_BYTES], "big")
        if len(frame) < header or length == 0 or len(frame) < LENGTH_BYTES + length:
            return OuchRxStat.TRUNCATED, None
        if len(frame) > LENGTH_BYTES + length:
            return OuchRxStat.TRAILING_BYTES, None
        if frame[LENGTH_BYTES] != SEQUENCED_DATA:
            return OuchRxStat.OTHER_PACKETS, None
        if len(frame) > self.max_packet:
            return OuchRxStat.OVERSIZED, None
        payload = frame[header:]
        if payload and chr(payload[0]) not in OUTBOUND_SPECS:
            return OuchRxStat.UNKNOWN_TYPE, None
        try:
            message = decode(payload, Direction.OUTBOUND)
        except ValueError:
            return OuchRxStat.BAD_MESSAGE, None
        if isinstance(message, ANSWER_MESSAGES):
            return OuchRxStat.ANSWERS, message
        return OuchRxStat.SKIPPED, message

    def push(self, frame: bytes, error: bool = False) -> Message | None:
        """Count ``frame`` and return the answer it delivers, if any."""
        stat, message = self.classify(frame, error)
        self.stats[stat] += 1
        return message if stat is OuchRxStat.ANSWERS else None
