"""Packet captures (pcap, pcapng) and raw ITCH BinaryFILEs: reading, writing, finding the feed.

Three file formats carry market data into and out of tickgate:

* classic pcap (libpcap), with microsecond or nanosecond timestamps, either byte order;
* pcapng, any number of sections and interfaces, any ``if_tsresol``;
* NASDAQ's BinaryFILE: each ITCH message preceded by its length as a big-endian u16, no header.

Pcap and pcapng are packed and unpacked with dpkt's header and block classes; this module only
walks the records, so that timestamps stay exact integers (dpkt's readers return float seconds,
which cannot hold nanoseconds since 1970) and a damaged file is reported with its byte offset
instead of yielding a short frame. Only Ethernet link types are accepted: the gateware receives
Ethernet frames, so anything else is an error, not something to guess at.

Every reader is a generator over the file, so a full-day capture is never loaded at once.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from typing import BinaryIO, Literal, NamedTuple

import dpkt
from dpkt import pcap, pcapng

from sim.wire.itch import MESSAGE_SPECS

__all__ = [
    "CaptureError",
    "CapturedFrame",
    "FeedKey",
    "UdpDatagram",
    "detect_format",
    "iter_binaryfile",
    "read_binaryfile",
    "read_frames",
    "udp_datagrams",
    "udp_endpoints",
    "write_binaryfile",
    "write_pcap",
    "write_pcapng",
]

Format = Literal["pcap", "pcapng", "itch"]
StrPath = str | PathLike[str]

# Ref: libpcap file format (draft-ietf-opsawg-pcap), section 4: the magic is written in the
# writer's byte order; 0xA1B23C4D marks nanosecond timestamps. dpkt names all six variants.
_PCAP_MAGIC_BE = {
    pcap.TCPDUMP_MAGIC: False,
    pcap.TCPDUMP_MAGIC_NANO: True,
    pcap.MODPCAP_MAGIC: False,
}
_PCAP_MAGIC_LE = {
    pcap.PMUDPCT_MAGIC: False,
    pcap.PMUDPCT_MAGIC_NANO: True,
    pcap.PACPDOM_MAGIC: False,
}
_PCAP_MODIFIED = {pcap.MODPCAP_MAGIC, pcap.PACPDOM_MAGIC}
# Ref: pcapng (draft-ietf-opsawg-pcapng), section 4.1: a section starts with this block type,
# a palindrome, so it reads the same in either byte order.
_PCAPNG_SHB = struct.pack(">I", pcapng.PCAPNG_BT_SHB)
# Ref: pcapng, section 4.6 (Simple Packet Block): no interface timestamp, so no replay time.
_PCAPNG_BT_SPB = pcapng.PCAPNG_BT_SPB

# Ref: NASDAQ "BinaryFILE" framing as used for TotalView-ITCH 5.0 files: u16 big-endian length.
_BINARYFILE_LENGTH = struct.Struct(">H")
# Bytes of a file inspected by detect_format when looking for length-prefixed ITCH messages.
_ITCH_PROBE_BYTES = 64 * 1024
_READ_CHUNK = 1 << 20

_NS_PER_S = 1_000_000_000


class CaptureError(ValueError):
    """A capture file that cannot be read as asked: unknown format, wrong link type, truncation."""


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One Ethernet frame from a capture.

    Attributes
    ----------
    timestamp_ns : int
        Capture time in nanoseconds since the Unix epoch (exact, whatever the file's resolution).
    frame : bytes
        The frame from the destination MAC up to, not including, the FCS.
    """

    timestamp_ns: int
    frame: bytes


class FeedKey(NamedTuple):
    """Identifies a multicast feed in a capture: outer 802.1Q VLAN id (None if untagged), the
    destination IPv4 address in dotted form, and the destination UDP port."""

    vlan: int | None
    dst_ip: str
    dst_port: int


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """A UDP datagram found in a captured frame (IPv4, unfragmented)."""

    timestamp_ns: int
    vlan: int | None
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload: bytes

    @property
    def key(self) -> FeedKey:
        return FeedKey(self.vlan, self.dst_ip, self.dst_port)


# --------------------------------------------------------------------------------------------
# Format detection


def detect_format(path: StrPath) -> Format:
    """Tell a capture's format from its first bytes.

    Pcap and pcapng are recognised by their magic numbers. A BinaryFILE has none, so a file is
    called ``"itch"`` when its first 64 KiB walk cleanly as length-prefixed ITCH 5.0 messages:
    every complete message has a known type and exactly that type's length.

    Raises
    ------
    CaptureError
        If the file is empty or matches none of the three formats.
    """
    with open(path, "rb") as f:
        head = f.read(_ITCH_PROBE_BYTES)
    if not head:
        raise CaptureError(f"{path}: empty file")
    if len(head) >= 4:
        if head[:4] == _PCAPNG_SHB:
            return "pcapng"
        magic = struct.unpack(">I", head[:4])[0]
        if magic in _PCAP_MAGIC_BE or magic in _PCAP_MAGIC_LE:
            return "pcap"
    if _looks_like_binaryfile(head):
        return "itch"
    raise CaptureError(
        f"{path}: not a pcap, pcapng or ITCH BinaryFILE (first bytes {head[:8].hex()})"
    )


def _looks_like_binaryfile(head: bytes) -> bool:
    offset = complete = 0
    while offset + _BINARYFILE_LENGTH.size < len(head):
        (length,) = _BINARYFILE_LENGTH.unpack_from(head, offset)
        body = offset + _BINARYFILE_LENGTH.size
        spec = MESSAGE_SPECS.get(chr(head[body]))
        if spec is None or spec.length != length:
            return False
        if body + length > len(head):
            break  # cut by the probe window, not necessarily by the file
        complete += 1
        offset = body + length
    return complete > 0


# --------------------------------------------------------------------------------------------
# Reading pcap and pcapng


def read_frames(path: StrPath) -> Iterator[CapturedFrame]:
    """Yield every frame of a pcap or pcapng capture in file order.

    Parameters
    ----------
    path : path-like
        A classic pcap (microsecond or nanosecond, either byte order, or the "modified" variant)
        or a pcapng file.

    Raises
    ------
    CaptureError
        If the file is neither format, a link type is not Ethernet, a frame was cut by the
        capture's snap length, a pcapng file has Simple Packet Blocks (no timestamp), or the file
        ends inside a record (the message names the byte offset of that record).
    """
    kind = detect_format(path)
    if kind == "itch":
        raise CaptureError(f"{path}: a raw ITCH BinaryFILE holds no frames; use read_binaryfile")
    with open(path, "rb") as f:
        if kind == "pcap":
            yield from _read_pcap(f, str(path))
        else:
            yield from _read_pcapng(f, str(path))


def _read_exact(f: BinaryIO, n: int, path: str, what: str) -> bytes:
    offset = f.tell()
    buf = f.read(n)
    if len(buf) != n:
        raise CaptureError(
            f"{path}: truncated {what} at byte offset {offset} "
            f"(needs {n} bytes, file has {len(buf)})"
        )
    return buf


def _check_ethernet(linktype: int, path: str) -> None:
    if linktype != pcap.DLT_EN10MB:
        raise CaptureError(
            f"{path}: link type {linktype} is not Ethernet (1); only Ethernet captures are "
            "supported"
        )


def _read_pcap(f: BinaryIO, path: str) -> Iterator[CapturedFrame]:
    raw = _read_exact(f, pcap.FileHdr.__hdr_len__, path, "pcap file header")
    magic = pcap.FileHdr(raw).magic
    if magic in _PCAP_MAGIC_LE:
        header, nano = pcap.LEFileHdr(raw), _PCAP_MAGIC_LE[magic]
        record_cls = pcap.LEPktModHdr if magic in _PCAP_MODIFIED else pcap.LEPktHdr
    else:
        header, nano = pcap.FileHdr(raw), _PCAP_MAGIC_BE[magic]
        record_cls = pcap.PktModHdr if magic in _PCAP_MODIFIED else pcap.PktHdr
    _check_ethernet(header.linktype, path)
    fraction_ns = 1 if nano else 1000
    index = 0
    while True:
        offset = f.tell()
        raw = f.read(record_cls.__hdr_len__)
        if not raw:
            return
        if len(raw) != record_cls.__hdr_len__:
            raise CaptureError(
                f"{path}: truncated record header of frame {index} at byte offset {offset}"
            )
        record = record_cls(raw)
        data = _read_exact(f, record.caplen, path, f"frame {index} (record at offset {offset})")
        if record.caplen < record.len:
            raise CaptureError(
                f"{path}: frame {index} at byte offset {offset} was cut by the snap length "
                f"({record.caplen} of {record.len} bytes captured)"
            )
        yield CapturedFrame(record.tv_sec * _NS_PER_S + record.tv_usec * fraction_ns, data)
        index += 1


@dataclass(slots=True)
class _Interface:
    units_per_s: int  # timestamp ticks per second, a power of 10 or of 2
    offset_s: int


def _interface(idb: pcapng.InterfaceDescriptionBlock, little: bool, path: str) -> _Interface:
    _check_ethernet(idb.linktype, path)
    units, offset_s = 1_000_000, 0  # pcapng's default resolution is microseconds
    for opt in idb.opts:
        if opt.code == pcapng.PCAPNG_OPT_IF_TSRESOL:
            exponent = opt.data[0] & 0x7F
            units = (2 if opt.data[0] & 0x80 else 10) ** exponent
        elif opt.code == pcapng.PCAPNG_OPT_IF_TSOFFSET:
            offset_s = struct.unpack("<q" if little else ">q", opt.data[:8])[0]
    return _Interface(units, offset_s)


def _read_pcapng(f: BinaryIO, path: str) -> Iterator[CapturedFrame]:
    little = True
    interfaces: list[_Interface] = []
    index = 0
    while True:
        offset = f.tell()
        head = f.read(12)
        if not head:
            return
        if len(head) < 12:
            raise CaptureError(f"{path}: truncated pcapng block header at byte offset {offset}")
        if head[:4] == _PCAPNG_SHB:
            # Each section sets its own byte order and starts a fresh list of interfaces.
            bom = struct.unpack("<I", head[8:12])[0]
            if bom == pcapng.BYTE_ORDER_MAGIC:
                little = True
            elif bom == pcapng.BYTE_ORDER_MAGIC_LE:
                little = False
            else:
                raise CaptureError(f"{path}: bad pcapng byte-order magic at byte offset {offset}")
            interfaces = []
        block_type, length = struct.unpack("<II" if little else ">II", head[:8])
        if length < 12 or length % 4:
            raise CaptureError(
                f"{path}: pcapng block at byte offset {offset} has invalid length {length}"
            )
        block = head + _read_exact(f, length - 12, path, f"pcapng block (at offset {offset})")
        try:
            if block_type == pcapng.PCAPNG_BT_SHB:
                shb_cls = pcapng.SectionHeaderBlockLE if little else pcapng.SectionHeaderBlock
                shb = shb_cls(block)
                if shb.v_major != pcapng.PCAPNG_VERSION_MAJOR:
                    raise CaptureError(f"{path}: unsupported pcapng version {shb.v_major}")
            elif block_type == pcapng.PCAPNG_BT_IDB:
                idb_cls = (
                    pcapng.InterfaceDescriptionBlockLE if little
                    else pcapng.InterfaceDescriptionBlock
                )
                interfaces.append(_interface(idb_cls(block), little, path))
            elif block_type in (pcapng.PCAPNG_BT_EPB, pcapng.PCAPNG_BT_PB):
                if block_type == pcapng.PCAPNG_BT_EPB:
                    cls = pcapng.EnhancedPacketBlockLE if little else pcapng.EnhancedPacketBlock
                else:
                    cls = pcapng.PacketBlockLE if little else pcapng.PacketBlock
                packet = cls(block)
                if packet.iface_id >= len(interfaces):
                    raise CaptureError(
                        f"{path}: packet at byte offset {offset} names interface "
                        f"{packet.iface_id}, which has no description block"
                    )
                iface = interfaces[packet.iface_id]
                if packet.caplen < packet.pkt_len:
                    raise CaptureError(
                        f"{path}: frame {index} at byte offset {offset} was cut by the snap "
                        f"length ({packet.caplen} of {packet.pkt_len} bytes captured)"
                    )
                ticks = (packet.ts_high << 32) | packet.ts_low
                ns = ticks * _NS_PER_S // iface.units_per_s + iface.offset_s * _NS_PER_S
                yield CapturedFrame(ns, bytes(packet.pkt_data))
                index += 1
            elif block_type == _PCAPNG_BT_SPB:
                raise CaptureError(
                    f"{path}: simple packet block at byte offset {offset} carries no timestamp; "
                    "re-save the capture with enhanced packet blocks"
                )
            # Name resolution, statistics and custom blocks say nothing about the frames.
        except dpkt.UnpackError as exc:
            raise CaptureError(f"{path}: malformed pcapng block at byte offset {offset}") from exc


# --------------------------------------------------------------------------------------------
# Writing pcap and pcapng


def _frames_with_times(frames: Iterable[CapturedFrame | bytes]) -> Iterator[CapturedFrame]:
    # Bare frames get 1 us spacing from the epoch, enough to keep their order in any viewer.
    for i, item in enumerate(frames):
        yield item if isinstance(item, CapturedFrame) else CapturedFrame(i * 1000, bytes(item))


def write_pcap(
    path: StrPath, frames: Iterable[CapturedFrame | bytes], nanosecond: bool = True
) -> int:
    """Write frames to a little-endian classic pcap file with Ethernet link type.

    Parameters
    ----------
    frames : iterable of CapturedFrame or bytes
        Bare ``bytes`` are given timestamps 0, 1 us, 2 us, ... so that they keep their order.
    nanosecond : bool
        Write nanosecond timestamps (magic 0xA1B23C4D); otherwise microseconds, truncating.

    Returns
    -------
    int
        The number of frames written.
    """
    fraction_ns = 1 if nanosecond else 1000
    magic = pcap.TCPDUMP_MAGIC_NANO if nanosecond else pcap.TCPDUMP_MAGIC
    count = 0
    with open(path, "wb") as f:
        f.write(bytes(pcap.LEFileHdr(magic=magic, snaplen=65535, linktype=pcap.DLT_EN10MB)))
        for item in _frames_with_times(frames):
            seconds, rest = divmod(item.timestamp_ns, _NS_PER_S)
            record = pcap.LEPktHdr(
                tv_sec=seconds,
                tv_usec=rest // fraction_ns,
                caplen=len(item.frame),
                len=len(item.frame),
            )
            f.write(bytes(record) + item.frame)
            count += 1
    return count


def write_pcapng(path: StrPath, frames: Iterable[CapturedFrame | bytes]) -> int:
    """Write frames to a little-endian pcapng file: one section, one Ethernet interface with
    nanosecond resolution (``if_tsresol`` = 9), one Enhanced Packet Block per frame.

    Bare ``bytes`` get timestamps as in :func:`write_pcap`. Returns the number of frames written.
    """
    count = 0
    tsresol = pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09")
    end = pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT)
    idb = pcapng.InterfaceDescriptionBlockLE(
        linktype=pcap.DLT_EN10MB, snaplen=65535, opts=[tsresol, end]
    )
    with open(path, "wb") as f:
        f.write(bytes(pcapng.SectionHeaderBlockLE()))
        f.write(bytes(idb))
        for item in _frames_with_times(frames):
            block = pcapng.EnhancedPacketBlockLE(
                iface_id=0,
                ts_high=item.timestamp_ns >> 32,
                ts_low=item.timestamp_ns & 0xFFFF_FFFF,
                pkt_data=item.frame,
                opts=[],
            )
            f.write(bytes(block))
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# BinaryFILE


def read_binaryfile(path: StrPath) -> Iterator[bytes]:
    """Yield each message of an ITCH BinaryFILE (u16 big-endian length, then the message).

    Messages are returned whole (type byte first) and unchecked: decoding is the caller's
    business, which keeps this usable for files holding message types newer than the decoder.

    Raises
    ------
    CaptureError
        On a zero length field or a file ending inside a length field or a message; the message
        names the byte offset of the broken record.
    """
    with open(path, "rb") as f:
        yield from iter_binaryfile(f, str(path))


def iter_binaryfile(f: BinaryIO, name: str = "<stream>") -> Iterator[bytes]:
    """:func:`read_binaryfile` over an open binary stream (a socket file, a gzip stream, ...)."""
    buf = b""
    pos = 0  # read position within buf
    base = 0  # file offset of buf[0]
    unpack_from = _BINARYFILE_LENGTH.unpack_from
    while True:
        chunk = f.read(_READ_CHUNK)
        if not chunk:
            break
        buf = buf[pos:] + chunk
        base += pos
        pos = 0
        end = len(buf)
        while pos + 2 <= end:
            (length,) = unpack_from(buf, pos)
            if length == 0:
                raise CaptureError(f"{name}: zero message length at byte offset {base + pos}")
            if pos + 2 + length > end:
                break
            yield buf[pos + 2 : pos + 2 + length]
            pos += 2 + length
    if pos != len(buf):
        offset = base + pos
        if len(buf) - pos < 2:
            raise CaptureError(f"{name}: truncated length field at byte offset {offset}")
        (length,) = unpack_from(buf, pos)
        raise CaptureError(
            f"{name}: truncated message at byte offset {offset}: length says {length} bytes, "
            f"{len(buf) - pos - 2} remain"
        )


def write_binaryfile(path: StrPath, messages: Iterable[bytes]) -> int:
    """Write messages as an ITCH BinaryFILE. Returns the number written.

    Raises
    ------
    CaptureError
        If a message is empty or longer than 65,535 bytes (the u16 length cannot say so).
    """
    count = 0
    with open(path, "wb") as f:
        for message in messages:
            if not 0 < len(message) <= 0xFFFF:
                raise CaptureError(
                    f"{path}: message {count} is {len(message)} bytes; BinaryFILE holds 1..65535"
                )
            f.write(_BINARYFILE_LENGTH.pack(len(message)))
            f.write(message)
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# Finding the feed


def udp_datagrams(frames: Iterable[CapturedFrame | bytes]) -> Iterator[UdpDatagram]:
    """Yield the unfragmented IPv4/UDP datagrams in ``frames`` (dpkt parses the headers).

    Frames that are not IPv4/UDP, IP fragments and frames too short for their headers are
    skipped: a capture of a feed routinely carries ARP, IGMP and other traffic. Bare ``bytes``
    get timestamp 0.
    """
    for item in frames:
        ts, raw = (item.timestamp_ns, item.frame) if isinstance(item, CapturedFrame) else (0, item)
        try:
            eth = dpkt.ethernet.Ethernet(raw)
        except dpkt.UnpackError:
            continue
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP) or ip.offset != 0 or ip.mf:
            continue
        udp = ip.data
        if not isinstance(udp, dpkt.udp.UDP):
            continue
        tags = getattr(eth, "vlan_tags", None)
        yield UdpDatagram(
            timestamp_ns=ts,
            vlan=tags[0].id if tags else None,
            src_ip=_dotted(ip.src),
            src_port=udp.sport,
            dst_ip=_dotted(ip.dst),
            dst_port=udp.dport,
            payload=bytes(udp.data),
        )


def udp_endpoints(frames: Iterable[CapturedFrame | bytes]) -> Counter[FeedKey]:
    """Count UDP datagrams per (VLAN, destination IP, destination port).

    The most common key is normally the market-data feed: ``udp_endpoints(fr).most_common(1)``.
    """
    return Counter(d.key for d in udp_datagrams(frames))


def _dotted(address: bytes) -> str:
    return ".".join(str(b) for b in address)
