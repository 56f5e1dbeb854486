"""Ethernet/IPv4/UDP receive: the model of ``hdl/net/udp_rx.py``, frame in, UDP payload out.

A frame is checked against the configured destination (MAC, IPv4 address, UDP port) and the
structure the feed uses (IPv4 without options, unfragmented, UDP); a frame that passes has its UDP
payload passed on, anything else is dropped and counted. The gateware is cut-through, so a frame
whose damage shows only at its end (bad FCS from the MAC, ends before its IPv4 total length) has
already passed its payload on by then; the model returns that payload with ``error`` set, as the
gateware sets ``error`` on the last beat.

Verdict priority (:data:`PRIORITY`): a frame is counted under the first of these that applies.

1. ``FRAME_ERROR``: the MAC flagged the frame. A frame with a bad FCS has untrustworthy headers,
   so it is counted here whatever they say (and passed on, flagged, only if they pass).
2. ``RUNT``: the frame ends before the end of the UDP header; nothing else can be judged.
3. ``MAC``: not addressed to us at layer 2, so its contents are none of our business.
4. ``NOT_IPV4``, ``IP_OPTIONS``, ``FRAGMENT``, ``NOT_UDP``, ``IP_CHECKSUM``, ``LENGTH``: the bytes
   are not a well-formed, unfragmented IPv4/UDP datagram. Checked before the addresses so that a
   damaged header is never reported as "not for us".
5. ``DST_IP``, ``DST_PORT``: a good datagram for another group or port.
6. ``TRUNCATED``: every header check passed but the frame ends before the IPv4 total length.

A frame none of these applies to is ``ACCEPTED``. Every frame also counts in ``FRAMES``.

The UDP checksum is not verified: it is optional over IPv4 (feeds often send 0) and the payload is
already covered by the Ethernet FCS. The VLAN ID and priority are not checked (VLAN membership is
the switch's and the MAC's business). Ethernet padding after the IPv4 total length is not payload.
"""

from dataclasses import dataclass
from enum import IntEnum

from sim.wire.net import (
    ETHERNET,
    ETHERTYPE_IPV4,
    IPPROTO_UDP,
    IPV4,
    IPV4_FLAG_MF,
    IPV4_FRAGMENT_OFFSET_MASK,
    IPV4_IHL,
    IPV4_IHL_MASK,
    IPV4_VERSION,
    IPV4_VERSION_SHIFT,
    UDP,
    eth_header_length,
    field_value,
    frame_offset,
    has_vlan,
    ipv4_checksum,
    payload_offset,
)

__all__ = ["HEADER_DROPS", "PRIORITY", "Payload", "UdpRx", "UdpRxConfig", "UdpRxStat"]

BEAT_BYTES = 8


class UdpRxStat(IntEnum):
    """What the UDP receive stage counts (one 48-bit counter each in gateware)."""

    FRAMES = 0
    ACCEPTED = 1
    FRAME_ERROR = 2
    RUNT = 3
    MAC = 4
    NOT_IPV4 = 5
    IP_OPTIONS = 6
    FRAGMENT = 7
    NOT_UDP = 8
    IP_CHECKSUM = 9
    LENGTH = 10
    DST_IP = 11
    DST_PORT = 12
    TRUNCATED = 13


# Highest priority first (see the module docstring); ACCEPTED when none applies.
PRIORITY = (
    UdpRxStat.FRAME_ERROR,
    UdpRxStat.RUNT,
    UdpRxStat.MAC,
    UdpRxStat.NOT_IPV4,
    UdpRxStat.IP_OPTIONS,
    UdpRxStat.FRAGMENT,
    UdpRxStat.NOT_UDP,
    UdpRxStat.IP_CHECKSUM,
    UdpRxStat.LENGTH,
    UdpRxStat.DST_IP,
    UdpRxStat.DST_PORT,
    UdpRxStat.TRUNCATED,
)
# The reasons decided from the headers, before any payload byte: these frames are not passed on.
HEADER_DROPS = PRIORITY[PRIORITY.index(UdpRxStat.RUNT):PRIORITY.index(UdpRxStat.TRUNCATED)]


@dataclass(frozen=True, slots=True)
class UdpRxConfig:
    """The feed's destination: MAC (48 bits, first wire byte most significant), IPv4, UDP port."""

    mac: int
    ip: int
    port: int


@dataclass(frozen=True, slots=True)
class Payload:
    """The UDP payload passed on for one frame.

    ``data`` runs to the UDP length, or to the frame's end if the frame is truncated. ``error`` is
    the flag on the last beat (frame error from the MAC, or truncated). ``lane`` is the byte lane
    of the first payload byte in the gateware's beats (payload bytes keep their frame positions).
    """

    data: bytes
    error: bool = False
    lane: int = 0

    def beats(self) -> list[dict]:
        """The beats the gateware emits for this payload, as ``hdl.arch.beat.Beat`` field dicts.

        Lanes outside ``keep`` are 0 here; the gateware leaves frame bytes there.
        """
        beats = []
        lane, position = self.lane, 0
        while position < len(self.data):
            chunk = self.data[position:position + BEAT_BYTES - lane]
            position += len(chunk)
            last = position >= len(self.data)
            beats.append({
                "data": int.from_bytes(bytes(lane) + chunk, "little"),
                "keep": ((1 << len(chunk)) - 1) << lane,
                "first": int(not beats),
                "last": int(last),
                "error": int(last and self.error),
            })
            lane = 0
        return beats


class UdpRx:
    """The receive stage as plain Python.

    Parameters
    ----------
    config : UdpRxConfig
        Destination MAC, IPv4 address and UDP port of the feed.

    Attributes
    ----------
    stats : dict[UdpRxStat, int]
        Counters, as the gateware's ``stats`` port.
    """

    def __init__(self, config: UdpRxConfig):
        self.config = config
        self.stats = {member: 0 for member in UdpRxStat}

    def push(self, frame: bytes, error: bool = False) -> Payload | None:
        """Receive one frame (no FCS); ``error`` is the MAC's bad-frame flag on its last beat.

        Returns what the gateware passes on, or ``None`` when it passes nothing on: a dropped
        frame, or a datagram with no payload bytes (an empty payload, or a frame truncated right
        after the UDP header), since a packet on the beat stream cannot be empty.
        """
        self.stats[UdpRxStat.FRAMES] += 1
        drop = self._header_drop(frame)
        if drop is not None:
            self.stats[UdpRxStat.FRAME_ERROR if error else drop] += 1
            return None

        vlan = has_vlan(frame)
        end = eth_header_length(vlan) + field_value(frame, IPV4, "total_length", vlan)
        truncated = len(frame) < end
        if error:
            self.stats[UdpRxStat.FRAME_ERROR] += 1
        elif truncated:
            self.stats[UdpRxStat.TRUNCATED] += 1
        else:
            self.stats[UdpRxStat.ACCEPTED] += 1
        start = payload_offset(vlan)
        data = frame[start:end]
        if not data:
            return None
        return Payload(data, error or truncated, start % BEAT_BYTES)

    def _header_drop(self, frame: bytes) -> UdpRxStat | None:
        """The highest-priority header reason to drop ``frame``, or ``None`` if it passes."""
        if len(frame) < frame_offset(ETHERNET, "ethertype", False) + ETHERNET["ethertype"].size:
            return UdpRxStat.RUNT
        vlan = has_vlan(frame)
        if len(frame) < payload_offset(vlan):
            return UdpRxStat.RUNT

        def get(header, name):
            return field_value(frame, header, name, vlan)

        version_ihl = get(IPV4, "version_ihl")
        total_length = get(IPV4, "total_length")
        ip_start = frame_offset(IPV4, "version_ihl", vlan)
        failed = {
            UdpRxStat.MAC: get(ETHERNET, "dst") != self.config.mac,
            UdpRxStat.NOT_IPV4: (get(ETHERNET, "ethertype") != ETHERTYPE_IPV4
                                 or version_ihl >> IPV4_VERSION_SHIFT != IPV4_VERSION),
            UdpRxStat.IP_OPTIONS: version_ihl & IPV4_IHL_MASK != IPV4_IHL,
            UdpRxStat.FRAGMENT: bool(get(IPV4, "flags_fragment")
                                     & (IPV4_FLAG_MF | IPV4_FRAGMENT_OFFSET_MASK)),
            UdpRxStat.NOT_UDP: get(IPV4, "protocol") != IPPROTO_UDP,
            UdpRxStat.IP_CHECKSUM: ipv4_checksum(frame[ip_start:ip_start + IPV4.size]) != 0,
            UdpRxStat.LENGTH: (total_length < IPV4.size + UDP.size
                               or get(UDP, "length") != total_length - IPV4.size),
            UdpRxStat.DST_IP: get(IPV4, "dst") != self.config.ip,
            UdpRxStat.DST_PORT: get(UDP, "dst_port") != self.config.port,
        }
        return next((reason for reason in HEADER_DROPS if failed.get(reason)), None)
