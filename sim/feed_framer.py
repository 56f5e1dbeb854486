"""ITCH messages to complete feed frames: MoldUDP64 packets in Ethernet/IPv4/UDP.

This is how a raw BinaryFILE or a generated session becomes the byte stream the gateware
receives: messages are packed in order into MoldUDP64 downstream packets filled up to
``max_payload`` bytes (``sim.wire.mold.packetize``), each packet is wrapped in one UDP datagram
to the feed's multicast group (``sim.wire.net.feed_frame``), optionally with one 802.1Q tag,
heartbeats between packets and an end-of-session packet at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sim.wire import mold
from sim.wire.itch import HEADER_FIELDS
from sim.wire.net import DEFAULT_SOURCE, TEST_FEED, FeedEndpoint, feed_frame

__all__ = ["DEFAULT_SESSION", "FeedFrame", "frame_messages", "frame_packets", "itch_timestamp"]

DEFAULT_SESSION = b"TICKGATE01"

_TIMESTAMP = next(f for f in HEADER_FIELDS if f.name == "timestamp")


def itch_timestamp(message: bytes) -> int:
    """The ITCH timestamp (ns since midnight) of one message, whatever its type."""
    return int.from_bytes(message[_TIMESTAMP.offset : _TIMESTAMP.end], "big")


@dataclass(frozen=True, slots=True)
class FeedFrame:
    """One framed MoldUDP64 packet.

    Attributes
    ----------
    frame : bytes
        The Ethernet frame, destination MAC first, no FCS.
    seq : int
        MoldUDP64 sequence number in the header: of the first message, or for a heartbeat or an
        end-of-session packet the next message expected.
    count : int
        Message count in the header: messages carried, ``mold.HEARTBEAT_COUNT`` or
        ``mold.END_OF_SESSION_COUNT``.
    itch_time : int
        ITCH timestamp of the last message carried (the earliest the packet could have been
        sent); a heartbeat or end-of-session packet repeats that of the packet before it.
    """

    frame: bytes
    seq: int
    count: int
    itch_time: int

    @property
    def messages(self) -> int:
        """Messages carried (0 for heartbeat and end-of-session packets)."""
        return 0 if self.count in (mold.HEARTBEAT_COUNT, mold.END_OF_SESSION_COUNT) else self.count


def frame_packets(
    messages: Sequence[bytes] | Iterable[bytes],
    *,
    endpoint: FeedEndpoint = TEST_FEED,
    source: FeedEndpoint = DEFAULT_SOURCE,
    session: bytes = DEFAULT_SESSION,
    first_seq: int = 1,
    vlan: int | None = None,
    max_payload: int = mold.MAX_PAYLOAD,
    heartbeat_every: int | None = None,
    end_of_session: bool = False,
) -> list[FeedFrame]:
    """Frame ``messages`` (ITCH, type byte first) as a MoldUDP64 feed.

    Parameters
    ----------
    endpoint, source : FeedEndpoint
        Destination (the feed's multicast group) and sender of every datagram.
    session : bytes
        The 10-byte MoldUDP64 session.
    first_seq : int
        Sequence number of the first message.
    vlan : int or None
        VLAN id of an 802.1Q tag on every frame, or untagged.
    max_payload : int
        Largest UDP payload (MoldUDP64 packet); 1472 fills a 1500-byte MTU.
    heartbeat_every : int or None
        Send a heartbeat (count 0, next expected sequence number) after every this many
        message-carrying packets.
    end_of_session : bool
        End with an end-of-session packet (count 0xFFFF, next expected sequence number).

    Returns
    -------
    list of FeedFrame
        In send order. Sequence numbers are contiguous: each packet's ``seq`` is the previous
        packet's ``seq`` plus its message count.

    Raises
    ------
    ValueError
        From the wire modules: a bad session length, a message too large for ``max_payload``, a
        VLAN id out of range.
    """
    if heartbeat_every is not None and heartbeat_every <= 0:
        raise ValueError(f"heartbeat_every must be positive, got {heartbeat_every}")
    messages = list(messages)
    packets = mold.packetize(messages, session=session, first_seq=first_seq,
                             max_payload=max_payload)
    frames: list[FeedFrame] = []
    next_seq, last_time, taken = first_seq, 0, 0

    def control(count: int) -> None:
        payload = mold.encode_packet(session, next_seq, [], count=count)
        frames.append(FeedFrame(feed_frame(payload, dst=endpoint, src=source, vlan=vlan),
                                next_seq, count, last_time))

    for k, payload in enumerate(packets):
        header = mold.decode_header(payload)
        taken += header.count
        last_time = itch_timestamp(messages[taken - 1])
        frames.append(FeedFrame(feed_frame(payload, dst=endpoint, src=source, vlan=vlan),
                                header.seq, header.count, last_time))
        next_seq = header.seq + header.count
        if heartbeat_every is not None and (k + 1) % heartbeat_every == 0:
            control(mold.HEARTBEAT_COUNT)
    if end_of_session:
        control(mold.END_OF_SESSION_COUNT)
    return frames


def frame_messages(
    messages: Iterable[bytes],
    *,
    endpoint: FeedEndpoint = TEST_FEED,
    source: FeedEndpoint = DEFAULT_SOURCE,
    session: bytes = DEFAULT_SESSION,
    first_seq: int = 1,
    vlan: int | None = None,
    max_payload: int = mold.MAX_PAYLOAD,
    heartbeat_every: int | None = None,
    end_of_session: bool = False,
) -> list[bytes]:
    """The Ethernet frames of :func:`frame_packets` (same parameters), without the metadata."""
    framed = frame_packets(
        messages, endpoint=endpoint, source=source, session=session, first_seq=first_seq,
        vlan=vlan, max_payload=max_payload, heartbeat_every=heartbeat_every,
        end_of_session=end_of_session,
    )
    return [f.frame for f in framed]
