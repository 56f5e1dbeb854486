"""Ethernet II, 802.1Q, IPv4 and UDP headers: the one declaration of their layouts, with a builder.

Byte order: every multi-byte field is big-endian (network byte order), most significant byte at
the lowest offset. MAC addresses are handled as 48-bit integers whose most significant byte is
the first byte on the wire (``01:00:5e:..`` is ``0x01005E......``); IPv4 addresses as 32-bit
integers, first dotted byte most significant.

The tables give each field's byte offset from the start of its own header. :func:`frame_offset`
places a field in a whole frame, with or without one 802.1Q tag; the gateware
(``hdl/arch/net.py``) and the receive model (``sim/udp_rx.py``) both locate bytes through it, so an
offset is written down only here.

:func:`build_frame` makes the frames every test and the session generator send. It builds only
well-formed frames; tests craft bad ones from a good one with :func:`with_field` (which can keep
the IPv4 checksum right, so that a frame has exactly the one fault a test wants) or by slicing and
editing the bytes.
"""

import ipaddress
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SOURCE",
    "ETHERNET",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_VLAN",
    "ETH_MIN_FRAME",
    "ETH_MTU",
    "IPPROTO_UDP",
    "IPV4",
    "IPV4_FLAG_DF",
    "IPV4_FLAG_MF",
    "IPV4_FRAGMENT_OFFSET_MASK",
    "IPV4_IHL",
    "IPV4_IHL_MASK",
    "IPV4_VERSION",
    "IPV4_VERSION_SHIFT",
    "MAX_UDP_PAYLOAD",
    "NASDAQ_BX",
    "NASDAQ_TOTALVIEW",
    "TEST_FEED",
    "UDP",
    "VLAN_TAG",
    "VLAN_VID_MASK",
    "FeedEndpoint",
    "Field",
    "Header",
    "build_frame",
    "eth_header_length",
    "feed_frame",
    "field_value",
    "frame_offset",
    "has_vlan",
    "ip_from_str",
    "ip_to_str",
    "ipv4_checksum",
    "mac_from_str",
    "mac_to_str",
    "multicast_mac",
    "payload_offset",
    "with_field",
]


@dataclass(frozen=True, slots=True)
class Field:
    """``size`` bytes at ``offset`` from the start of the field's header."""

    name: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        """Offset of the byte just after the field."""
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Header:
    """A fixed-size header: its fields in wire order, contiguous from offset 0."""

    name: str
    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        return self.fields[-1].end

    def __getitem__(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.name} header has no field {name!r}")


def _header(name: str, table: tuple[tuple[str, int], ...]) -> Header:
    # Offsets are accumulated from the sizes, so the table cannot have gaps or overlaps.
    fields, offset = [], 0
    for field_name, size in table:
        fields.append(Field(field_name, offset, size))
        offset += size
    return Header(name, tuple(fields))


# Ref: IEEE 802.3-2018 clause 3.2 (MAC frame format) and the Ethernet II (DIX) type field.
# The preamble, SFD and FCS are the MAC's business; frames here start at the destination address.
ETHERNET = _header("ethernet", (("dst", 6), ("src", 6), ("ethertype", 2)))

# Ref: IEEE 802.1Q-2018 clause 9.6 (VLAN tag format). The tag sits where the Ethernet type field
# would be; the frame's real type field follows it.
VLAN_TAG = _header("vlan_tag", (("tpid", 2), ("tci", 2)))

# Ref: RFC 791 section 3.1 (Internet Header Format), without options.
IPV4 = _header("ipv4", (
    ("version_ihl", 1), ("tos", 1), ("total_length", 2), ("identification", 2),
    ("flags_fragment", 2), ("ttl", 1), ("protocol", 1), ("checksum", 2), ("src", 4), ("dst", 4),
))

# Ref: RFC 768 (User Datagram Protocol), "Format".
UDP = _header("udp", (("src_port", 2), ("dst_port", 2), ("length", 2), ("checksum", 2)))

# Ref: IEEE 802 numbers (IEEE Registration Authority EtherType list).
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = 0x8100
VLAN_VID_MASK = 0x0FFF
# Ref: IANA protocol numbers; RFC 768.
IPPROTO_UDP = 17
# Ref: RFC 791 section 3.1: version in the high nibble of the first byte, IHL (in 32-bit words)
# in the low nibble; a header without options has IHL 5.
IPV4_VERSION = 4
IPV4_VERSION_SHIFT = 4
IPV4_IHL_MASK = 0x0F
IPV4_IHL = IPV4.size // 4
IPV4_FLAG_DF = 0x4000
IPV4_FLAG_MF = 0x2000
IPV4_FRAGMENT_OFFSET_MASK = 0x1FFF
# Ref: IEEE 802.3-2018 clause 3.2.7: 64 bytes minimum including the 4-byte FCS.
ETH_MIN_FRAME = 60
ETH_MTU = 1500
MAX_UDP_PAYLOAD = ETH_MTU - IPV4.size - UDP.size


def eth_header_length(vlan: bool) -> int:
    """Bytes before the IPv4 header: 14, or 18 with an 802.1Q tag."""
    return ETHERNET.size + (VLAN_TAG.size if vlan else 0)


def payload_offset(vlan: bool) -> int:
    """Frame offset of the first UDP payload byte: 42, or 46 with an 802.1Q tag."""
    return eth_header_length(vlan) + IPV4.size + UDP.size


def frame_offset(header: Header, name: str, vlan: bool) -> int:
    """Frame offset of field ``name`` of ``header`` in a frame with or without an 802.1Q tag."""
    field = header[name]
    if header is ETHERNET:
        # The tag is inserted before the type field; the addresses do not move.
        moved = vlan and field.offset >= ETHERNET["ethertype"].offset
        return field.offset + (VLAN_TAG.size if moved else 0)
    if header is VLAN_TAG:
        if not vlan:
            raise ValueError("a frame without an 802.1Q tag has no tag fields")
        return ETHERNET["ethertype"].offset + field.offset
    if header is IPV4:
        return eth_header_length(vlan) + field.offset
    if header is UDP:
        return eth_header_length(vlan) + IPV4.size + field.offset
    raise ValueError(f"unknown header {header.name!r}")


def has_vlan(frame: bytes) -> bool:
    """The frame carries an 802.1Q tag (its first type field is 0x8100)."""
    return field_value(frame, ETHERNET, "ethertype", vlan=False) == ETHERTYPE_VLAN


def field_value(frame: bytes, header: Header, name: str, vlan: bool | None = None) -> int:
    """Read a field as an unsigned big-endian integer; ``vlan=None`` looks at the frame."""
    if vlan is None:
        vlan = has_vlan(frame)
    offset = frame_offset(header, name, vlan)
    chunk = frame[offset:offset + header[name].size]
    if len(chunk) != header[name].size:
        raise ValueError(f"frame of {len(frame)} bytes ends inside {header.name}.{name}")
    return int.from_bytes(chunk, "big")


def with_field(frame: bytes, header: Header, name: str, value: int, *,
               fix_checksum: bool = True) -> bytes:
    """A copy of ``frame`` with one field replaced; the IPv4 checksum is recomputed unless told.

    Recomputing the checksum lets a test give a frame exactly one fault (say, IHL 6) instead of
    two (IHL 6 and a bad checksum).
    """
    vlan = has_vlan(frame)
    offset = frame_offset(header, name, vlan)
    size = header[name].size
    if len(frame) < offset + size:
        raise ValueError(f"frame of {len(frame)} bytes ends inside {header.name}.{name}")
    out = bytearray(frame)
    out[offset:offset + size] = value.to_bytes(size, "big")
    if fix_checksum and not (header is IPV4 and name == "checksum"):
        ip = frame_offset(IPV4, "version_ihl", vlan)
        checksum = frame_offset(IPV4, "checksum", vlan)
        if len(out) >= ip + IPV4.size:
            out[checksum:checksum + 2] = bytes(2)
            out[checksum:checksum + 2] = ipv4_checksum(out[ip:ip + IPV4.size]).to_bytes(2, "big")
    return bytes(out)


def _ones_complement_sum(chunk: bytes) -> int:
    if len(chunk) % 2:
        chunk = bytes(chunk) + b"\x00"
    total = sum(int.from_bytes(chunk[k:k + 2], "big") for k in range(0, len(chunk), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv4_checksum(header: bytes) -> int:
    """The Internet checksum of ``header`` (RFC 791 section 3.1, RFC 1071).

    With the checksum field zeroed this is the value to put there; over a header whose checksum
    field is correct it is 0.
    """
    return ~_ones_complement_sum(header) & 0xFFFF


def _udp_checksum(src_ip: int, dst_ip: int, udp: bytes) -> int:
    # Ref: RFC 768 "Fields": the checksum covers a pseudo-header, the UDP header and the data;
    # a computed 0 is sent as 0xFFFF because 0 means "no checksum".
    pseudo = (src_ip.to_bytes(4, "big") + dst_ip.to_bytes(4, "big")
              + bytes((0, IPPROTO_UDP)) + len(udp).to_bytes(2, "big"))
    checksum = ~_ones_complement_sum(pseudo + udp) & 0xFFFF
    return checksum or 0xFFFF


def ip_from_str(text: str) -> int:
    """``"233.54.12.111"`` -> ``0xE9360C6F``."""
    return int(ipaddress.IPv4Address(text))


def ip_to_str(ip: int) -> str:
    return str(ipaddress.IPv4Address(ip))


def mac_from_str(text: str) -> int:
    """``"01:00:5e:36:0c:6f"`` (or with ``-``) -> ``0x01005E360C6F``."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return int("".join(parts), 16)


def mac_to_str(mac: int) -> str:
    return ":".join(f"{byte:02x}" for byte in mac.to_bytes(6, "big"))


def multicast_mac(ip: int) -> int:
    """The Ethernet group address of an IPv4 multicast group.

    Ref: RFC 1112 section 6.4: 01-00-5E-00-00-00 plus the low-order 23 bits of the group address.
    """
    if not ipaddress.IPv4Address(ip).is_multicast:
        raise ValueError(f"{ip_to_str(ip)} is not an IPv4 multicast group")
    return 0x01005E000000 | (ip & 0x7FFFFF)


@dataclass(frozen=True, slots=True)
class FeedEndpoint:
    """One end of a UDP feed: MAC, IPv4 address and UDP port (integers, see the module doc)."""

    mac: int
    ip: int
    port: int

    @classmethod
    def multicast(cls, group: str | int, port: int) -> "FeedEndpoint":
        """The endpoint of a multicast group, with its RFC 1112 MAC."""
        ip = ip_from_str(group) if isinstance(group, str) else group
        return cls(multicast_mac(ip), ip, port)

    def __str__(self) -> str:
        return f"{ip_to_str(self.ip)}:{self.port} ({mac_to_str(self.mac)})"


# The group our generated sessions are sent to: organisation-local scope (RFC 2365), so a test
# stream never collides with a real feed's group.
TEST_FEED = FeedEndpoint.multicast("239.192.43.7", 26400)
# The sender of generated sessions: a locally administered unicast MAC and a private address.
DEFAULT_SOURCE = FeedEndpoint(0x02_54_47_00_00_01, ip_from_str("10.43.0.1"), 49653)
# Where the real NASDAQ captures in the shared test data are sent: TotalView-ITCH on VLAN 141,
# BX TotalView-ITCH on VLAN 142.
NASDAQ_TOTALVIEW = FeedEndpoint.multicast("233.54.12.111", 26477)
NASDAQ_BX = FeedEndpoint.multicast("233.49.196.40", 25475)


def build_frame(payload: bytes, *, dst_mac: int, src_mac: int, src_ip: int, dst_ip: int,
                src_port: int, dst_port: int, vlan: int | None = None, ttl: int = 64,
                ident: int = 0, udp_checksum: bool = True) -> bytes:
    """An Ethernet II / IPv4 / UDP frame carrying ``payload``, without FCS.

    Parameters
    ----------
    vlan : int or None
        VLAN ID of a single 802.1Q tag (priority 0), or no tag.
    udp_checksum : bool
        Compute the UDP checksum; otherwise send 0 (allowed over IPv4, RFC 768).

    The IPv4 header has no options, DF and MF clear, fragment offset 0. The frame is zero-padded
    to the 60-byte Ethernet minimum; the padding is not counted in the IPv4 or UDP lengths.
    """
    if len(payload) > 0xFFFF - IPV4.size - UDP.size:
        raise ValueError(f"a UDP payload of {len(payload)} bytes does not fit an IPv4 datagram")
    if vlan is not None and not 0 <= vlan <= VLAN_VID_MASK:
        raise ValueError(f"VLAN ID {vlan} out of range")

    udp_length = UDP.size + len(payload)
    udp = bytearray(udp_length)
    _put(udp, UDP, "src_port", src_port)
    _put(udp, UDP, "dst_port", dst_port)
    _put(udp, UDP, "length", udp_length)
    udp[UDP.size:] = payload
    if udp_checksum:
        _put(udp, UDP, "checksum", _udp_checksum(src_ip, dst_ip, bytes(udp)))

    ip = bytearray(IPV4.size)
    _put(ip, IPV4, "version_ihl", IPV4_VERSION << IPV4_VERSION_SHIFT | IPV4_IHL)
    _put(ip, IPV4, "total_length", IPV4.size + udp_length)
    _put(ip, IPV4, "identification", ident)
    _put(ip, IPV4, "ttl", ttl)
    _put(ip, IPV4, "protocol", IPPROTO_UDP)
    _put(ip, IPV4, "src", src_ip)
    _put(ip, IPV4, "dst", dst_ip)
    _put(ip, IPV4, "checksum", ipv4_checksum(bytes(ip)))

    eth = bytearray(ETHERNET.size)
    _put(eth, ETHERNET, "dst", dst_mac)
    _put(eth, ETHERNET, "src", src_mac)
    _put(eth, ETHERNET, "ethertype", ETHERTYPE_IPV4)
    if vlan is not None:
        tag = bytearray(VLAN_TAG.size)
        _put(tag, VLAN_TAG, "tpid", ETHERTYPE_VLAN)
        _put(tag, VLAN_TAG, "tci", vlan)
        split = ETHERNET["ethertype"].offset
        eth[split:split] = tag

    frame = bytes(eth + ip + udp)
    return frame + bytes(max(0, ETH_MIN_FRAME - len(frame)))


def _put(buffer: bytearray, header: Header, name: str, value: int) -> None:
    field = header[name]
    buffer[field.offset:field.end] = value.to_bytes(field.size, "big")


def feed_frame(payload: bytes, *, dst: FeedEndpoint = TEST_FEED,
               src: FeedEndpoint = DEFAULT_SOURCE, **options) -> bytes:
    """:func:`build_frame` from ``src`` to ``dst``; ``options`` are its remaining keywords."""
    return build_frame(payload, dst_mac=dst.mac, src_mac=src.mac, src_ip=src.ip, dst_ip=dst.ip,
                       src_port=src.port, dst_port=dst.port, **options)
