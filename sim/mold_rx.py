"""The MoldUDP64 sequencing stage as plain Python: UDP payloads in, sequenced messages out.

Twin of ``hdl/feed/mold_rx.py``; the gateware is verified against this model message by message
and counter by counter.

Semantics (the gateware's are identical)
----------------------------------------
Packets are taken in arrival order; ``expected`` (the next sequence number wanted) starts at 1.

- A payload shorter than the 20-byte header: ``SHORT_HEADER``, dropped.
- The first packet with a complete header latches its session (a duplicate or damaged packet
  included: the session belongs to the stream, not to the packet). A later packet with another
  session: ``SESSION_MISMATCH``, dropped. Only a reset clears the latch.
- Heartbeat (count 0) and end of session (count 0xFFFF): ``PACKETS`` and ``HEARTBEATS`` or
  ``END_OF_SESSION`` (which also sets :attr:`MoldRx.ended`). They carry no blocks.
- Any other packet, with sequence number ``S`` and count ``N``: if ``S + N <= expected`` every
  message is old: ``DUP_PACKETS``, dropped, nothing else counted. Otherwise ``PACKETS``, and block
  ``i`` (0-based) carries message ``S + i``. Blocks with ``S + i < expected`` are framed but
  skipped (``DUP_MESSAGES`` each); the others are delivered (``MESSAGES`` each).
- A block length below ``MIN_MESSAGE_LENGTH`` (no ITCH 5.0 message is that short, so it cannot be
  trusted to frame what follows): ``LENGTH_SHORT``, the rest of the packet is dropped. A block (or
  its length prefix) running past the end of the packet: ``LENGTH_PAST_END``, nothing more to
  read. A packet ending cleanly after fewer than ``N`` blocks: ``COUNT_SHORT``. Bytes after the
  ``N``-th block (after the header for a heartbeat or end of session): ``TRAILING_BYTES`` once,
  ignored.
- ``error`` (the frame was truncated or failed its FCS, signalled with its last byte): counted in
  ``FRAME_ERROR`` whatever else happens to the packet. Blocks that end inside the payload are
  delivered as usual (cut-through: the earlier ones are gone already); the block in progress at
  the end is abandoned, and the end-of-packet reasons (``SHORT_HEADER``, ``LENGTH_PAST_END``,
  ``COUNT_SHORT``) are not counted, the early end being the error's doing.
- After every packet that got past the header checks: if ``S > expected``, a gap
  ``(expected, S - expected)`` is reported (``GAPS`` += 1, ``GAP_MESSAGES`` += ``S - expected``);
  then ``expected = max(expected, S + j)``, ``j`` being the number of blocks framed completely
  (0 for heartbeats). A packet cut short thus shows up as a gap at the next packet, ready for a
  re-request.

Sequence numbers are 64-bit: a message's number and ``expected`` wrap modulo 2**64 (comparisons
do not), and counters wrap at 48 bits, as in the gateware. ``GAP_OVERFLOW`` counts gaps the
gateware's gap FIFO had no room for; the model keeps every gap, so it stays 0 here.
"""

from dataclasses import dataclass, field
from enum import IntEnum

from sim.wire.itch import MIN_MESSAGE_LENGTH
from sim.wire.mold import (
    END_OF_SESSION_COUNT,
    HEADER_LENGTH,
    HEARTBEAT_COUNT,
    LENGTH_PREFIX,
    MAX_SEQ,
    decode_header,
)

__all__ = ["COUNTER_MASK", "Gap", "Message", "MoldRx", "MoldRxStat"]

# The gateware's counters are 48 bits wide (hdl/stats.py); the model wraps the same way.
COUNTER_MASK = (1 << 48) - 1


class MoldRxStat(IntEnum):
    """What the Mold stage counts; the gateware has one 48-bit counter per member."""

    PACKETS = 0
    MESSAGES = 1
    HEARTBEATS = 2
    END_OF_SESSION = 3
    DUP_PACKETS = 4
    DUP_MESSAGES = 5
    GAPS = 6
    GAP_MESSAGES = 7
    GAP_OVERFLOW = 8
    SESSION_MISMATCH = 9
    SHORT_HEADER = 10
    LENGTH_SHORT = 11
    LENGTH_PAST_END = 12
    COUNT_SHORT = 13
    TRAILING_BYTES = 14
    FRAME_ERROR = 15


@dataclass(frozen=True, slots=True)
class Message:
    """A delivered message: its sequence number and its bytes (type byte first, no prefix).

    ``end`` is the payload offset of the message's last byte: the gateware acts on a message in
    the beat that carries it, so latency is measured from there. It is position, not content,
    and so takes no part in comparisons.
    """

    seq: int
    data: bytes
    end: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages ``first`` to ``first + count - 1`` were never seen: re-request them."""

    first: int
    count: int


class MoldRx:
    """MoldUDP64 receiver for one session; see the module docstring for the exact semantics.

    Attributes
    ----------
    stats : dict[MoldRxStat, int]
    expected : int
        The next sequence number wanted.
    session : bytes or None
        The latched session, ``None`` until a packet with a complete header arrives.
    ended : bool
        An end-of-session packet was seen.
    gaps : list[Gap]
        Every gap reported, in order.
    """

    def __init__(self):
        self.stats = {member: 0 for member in MoldRxStat}
        self.expected = 1
        self.session: bytes | None = None
        self.ended = False
        self.gaps: list[Gap] = []

    def _count(self, stat: MoldRxStat, by: int = 1) -> None:
        self.stats[stat] = (self.stats[stat] + by) & COUNTER_MASK

    def set_expected(self, seq: int) -> None:
        """Jump the expected sequence number (after a recovery done outside this stage)."""
        if not 0 <= seq <= MAX_SEQ:
            raise ValueError(f"sequence number {seq} does not fit in 64 bits")
        self.expected = seq

    def push(self, payload: bytes, error: bool = False) -> list[Message]:
        """Take one UDP payload; ``error`` is the frame's damage flag. Returns what it delivers."""
        if error:
            self._count(MoldRxStat.FRAME_ERROR)
        if len(payload) < HEADER_LENGTH:
            if not error:
                self._count(MoldRxStat.SHORT_HEADER)
            return []
        header = decode_header(payload)
        if self.session is None:
            self.session = header.session
        elif header.session != self.session:
            self._count(MoldRxStat.SESSION_MISMATCH)
            return []

        first, count = header.seq, header.count
        if count in (HEARTBEAT_COUNT, END_OF_SESSION_COUNT):
            self._count(MoldRxStat.PACKETS)
            if count == HEARTBEAT_COUNT:
                self._count(MoldRxStat.HEARTBEATS)
            else:
                self._count(MoldRxStat.END_OF_SESSION)
                self.ended = True
            if len(payload) > HEADER_LENGTH:
                self._count(MoldRxStat.TRAILING_BYTES)
            self._advance(first, 0)
            return []

        if first + count <= self.expected:
            self._count(MoldRxStat.DUP_PACKETS)
            return []
        self._count(MoldRxStat.PACKETS)
        delivered = []
        pos, framed = HEADER_LENGTH, 0
        while framed < count:
            rest = len(payload) - pos
            if rest == 0:
                if not error:
                    self._count(MoldRxStat.COUNT_SHORT)
                break
            if rest < LENGTH_PREFIX:
                if not error:
                    self._count(MoldRxStat.LENGTH_PAST_END)
                break
            length = int.from_bytes(payload[pos:pos + LENGTH_PREFIX], "big")
            if length < MIN_MESSAGE_LENGTH:
                self._count(MoldRxStat.LENGTH_SHORT)
                break
            if LENGTH_PREFIX + length > rest:
                if not error:
                    self._count(MoldRxStat.LENGTH_PAST_END)
                break
            seq = first + framed
            if seq < self.expected:
                self._count(MoldRxStat.DUP_MESSAGES)
            else:
                self._count(MoldRxStat.MESSAGES)
                body = pos + LENGTH_PREFIX
                delivered.append(Message(seq & MAX_SEQ, payload[body:body + length],
                                         end=body + length - 1))
            pos += LENGTH_PREFIX + length
            framed += 1
        else:
            if pos < len(payload):
                self._count(MoldRxStat.TRAILING_BYTES)
        self._advance(first, framed)
        return delivered

    def _advance(self, first: int, framed: int) -> None:
        if first > self.expected:
            gap = Gap(self.expected, first - self.expected)
            self.gaps.append(gap)
            self._count(MoldRxStat.GAPS)
            self._count(MoldRxStat.GAP_MESSAGES, gap.count)
        if first + framed > self.expected:
            self.expected = (first + framed) & MAX_SEQ
