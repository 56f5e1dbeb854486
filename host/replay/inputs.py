"""What a replay reads: a capture (pcap, pcapng or raw ITCH BinaryFILE) and the feed in it."""

from dataclasses import dataclass
from pathlib import Path

from sim.capture import CaptureError, detect_format, read_binaryfile, read_frames, udp_datagrams
from sim.feed_framer import frame_messages
from sim.wire.net import TEST_FEED, FeedEndpoint, ip_from_str, ip_to_str, multicast_mac

__all__ = ["ReplayInput", "load_capture"]


@dataclass
class ReplayInput:
    """Frames to replay and the feed endpoint the gateware is configured for.

    Attributes
    ----------
    path : Path
    format : str
        ``pcap``, ``pcapng`` or ``itch`` (a BinaryFILE, framed into MoldUDP64 packets by
        ``sim.feed_framer`` and sent to ``TEST_FEED``).
    frames : list[bytes]
        Every Ethernet frame of the capture, in order (other traffic included: the gateware and
        the model both see it and count it as dropped).
    endpoint : FeedEndpoint
    vlan : int or None
        The feed's VLAN id as seen in the capture (informational: the gateware takes any tag).
    """

    path: Path
    format: str
    frames: list[bytes]
    endpoint: FeedEndpoint
    vlan: int | None

    def describe(self) -> str:
        tag = f" VLAN {self.vlan}" if self.vlan is not None else ""
        return (f"{self.path.name} ({self.format}, {len(self.frames)} frames, "
                f"feed {self.endpoint}{tag})")


def load_capture(path: str | Path, *, ip: str | None = None, port: int | None = None,
                 vlan: int | None = None, limit: int | None = None) -> ReplayInput:
    """Read ``path`` and find the feed to replay.

    Parameters
    ----------
    ip, port, vlan : optional
        Choose the feed among the capture's UDP flows; by default the flow with the most
        datagrams. For a BinaryFILE, ``vlan`` tags the generated frames.
    limit : int, optional
        Replay only the first ``limit`` frames (messages for a BinaryFILE).

    Raises
    ------
    CaptureError
        Unreadable file, or no UDP flow matching the options.
    """
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "itch":
        messages = []
        for message in read_binaryfile(path):
            if limit is not None and len(messages) >= limit:
                break
            messages.append(message)
        return ReplayInput(path, fmt, frame_messages(messages, vlan=vlan), TEST_FEED, vlan)

    frames = []
    for captured in read_frames(path):
        if limit is not None and len(frames) >= limit:
            break
        frames.append(captured.frame)
    flows = {}
    for index, datagram in enumerate(udp_datagrams(frames)):
        if ((ip is None or datagram.dst_ip == ip) and (port is None or datagram.dst_port == port)
                and (vlan is None or datagram.vlan == vlan)):
            count, first = flows.get(datagram.key, (0, index))
            flows[datagram.key] = (count + 1, first)
    if not flows:
        wanted = ", ".join(f"{name} {value}" for name, value in
                           (("ip", ip), ("port", port), ("vlan", vlan)) if value is not None)
        raise CaptureError(f"{path}: no IPv4/UDP flow{' with ' + wanted if wanted else ''}")
    key = max(flows, key=lambda k: (flows[k][0], -flows[k][1]))
    dst_ip = ip_from_str(key.dst_ip)
    mac = _destination_mac(frames, key, dst_ip)
    return ReplayInput(path, fmt, frames, FeedEndpoint(mac, dst_ip, key.dst_port), key.vlan)


def _destination_mac(frames: list[bytes], key, dst_ip: int) -> int:
    """The group MAC for a multicast feed, else the destination MAC the capture used."""
    if 224 <= dst_ip >> 24 <= 239:
        return multicast_mac(dst_ip)
    for frame in frames:
        if any(datagram.key == key for datagram in udp_datagrams([frame])):
            return int.from_bytes(frame[:6], "big")
    raise CaptureError(f"no frame to {ip_to_str(dst_ip)} found")
