"""Feed traffic for the ingress tests: message mixes, damaged frames and random frames.

Everything is built with our own encoders (``sim.wire``) from a seed, so a failing case can be
rebuilt exactly.
"""

import random
import string

from sim.feed_framer import DEFAULT_SESSION, frame_messages
from sim.generator import SessionConfig, default_instruments, generate_messages
from sim.wire import mold
from sim.wire.itch import MESSAGE_SPECS, FieldKind, encode
from sim.wire.net import (
    IPV4,
    TEST_FEED,
    feed_frame,
    field_value,
    frame_offset,
    ipv4_checksum,
    with_field,
)

__all__ = ["MIXES", "good_packet", "ip_with_options", "mix_frames", "random_frames",
           "random_message"]


def random_message(rng: random.Random, msg_type: str) -> bytes:
    """A message of ``msg_type`` with every field random (alpha fields random capitals)."""
    spec = MESSAGE_SPECS[msg_type]
    fields = {}
    for field in spec.fields:
        if field.kind is FieldKind.ALPHA:
            fields[field.name] = "".join(rng.choice(string.ascii_uppercase + " ")
                                         for _ in range(field.size))
        else:
            fields[field.name] = rng.getrandbits(8 * field.size)
    return encode(msg_type, **fields)


def _session_mix(rng: random.Random, count: int) -> list[bytes]:
    config = SessionConfig(seed=rng.getrandbits(32), messages=count,
                           instruments=default_instruments(8))
    return generate_messages(config)


def _all_types_mix(rng: random.Random, count: int) -> list[bytes]:
    types = sorted(MESSAGE_SPECS)
    return [random_message(rng, rng.choice(types)) for _ in range(count)]


def _extremes_mix(rng: random.Random, count: int) -> list[bytes]:
    # The shortest and longest messages, so block boundaries sweep every byte lane.
    by_length = sorted(MESSAGE_SPECS.values(), key=lambda spec: spec.length)
    short, long_ = by_length[0].type, by_length[-1].type
    return [random_message(rng, rng.choice((short, long_, "A", "D"))) for _ in range(count)]


MIXES = {"session": _session_mix, "all_types": _all_types_mix, "extremes": _extremes_mix}


def mix_frames(mix: str, *, seed: int, count: int, vlan: int | None) -> list[bytes]:
    """Frames of ``count`` messages of ``mix``, packets of random size with heartbeats between."""
    rng = random.Random(seed)
    messages = MIXES[mix](rng, count)
    frames, seq, index = [], 1, 0
    while index < len(messages):
        take = rng.randint(1, 40)
        chunk = messages[index:index + take]
        frames += frame_messages(chunk, first_seq=seq, vlan=vlan,
                                 max_payload=rng.choice((200, 600, mold.MAX_PAYLOAD)),
                                 heartbeat_every=None)
        seq += len(chunk)
        index += take
        if rng.random() < 0.2:
            frames.append(good_packet(seq, [], vlan=vlan))  # heartbeat
    return frames


def good_packet(seq: int, messages: list[bytes], *, vlan: int | None = None,
                session: bytes = DEFAULT_SESSION, count: int | None = None) -> bytes:
    """One frame holding one Mold packet (``messages`` may be empty: a heartbeat)."""
    payload = mold.encode_packet(session, seq, messages, count=count)
    return feed_frame(payload, dst=TEST_FEED, vlan=vlan)


def ip_with_options(frame: bytes) -> bytes:
    """The untagged ``frame`` with 4 bytes of IPv4 options (IHL 6), its total length and
    checksum kept consistent, so IP_OPTIONS is the frame's only fault."""
    ip = frame_offset(IPV4, "version_ihl", False)
    total = field_value(frame, IPV4, "total_length", vlan=False)
    end = ip + IPV4.size
    widened = frame[:end] + b"\x01\x01\x01\x00" + frame[end:]
    widened = with_field(widened, IPV4, "total_length", total + 4, fix_checksum=False)
    widened = with_field(widened, IPV4, "version_ihl", 0x46, fix_checksum=False)
    checksum = frame_offset(IPV4, "checksum", False)
    header = bytearray(widened[ip:end + 4])
    header[checksum - ip:checksum - ip + 2] = bytes(2)
    header[checksum - ip:checksum - ip + 2] = ipv4_checksum(bytes(header)).to_bytes(2, "big")
    return widened[:ip] + bytes(header) + widened[end + 4:]


def random_frames(rng: random.Random, count: int, *, seq: int) -> list[bytes]:
    """Random frames in three flavours: random bytes, random UDP payload to the feed, and Mold
    packets of our session with random blocks (so each stage sees garbage it must survive)."""
    frames = []
    for _ in range(count):
        flavour = rng.randrange(3)
        if flavour == 0:
            frames.append(rng.randbytes(rng.randint(1, 200)))
        elif flavour == 1:
            frames.append(feed_frame(rng.randbytes(rng.randint(0, 160)), dst=TEST_FEED))
        else:
            blocks = b"".join(len(b).to_bytes(2, "big") + b for b in
                              (rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(0, 4))))
            header = DEFAULT_SESSION + rng.randint(max(1, seq - 5), seq + 5).to_bytes(8, "big") \
                + rng.randint(0, 6).to_bytes(2, "big")
            frames.append(feed_frame(header + blocks, dst=TEST_FEED))
    return frames

