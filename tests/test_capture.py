"""Captures: pcap/pcapng/BinaryFILE round trips, format detection, the real Nasdaq files, damage."""

import struct
from collections import Counter

import dpkt
import pytest

from sim.capture import (
    CapturedFrame,
    CaptureError,
    FeedKey,
    detect_format,
    read_binaryfile,
    read_frames,
    udp_datagrams,
    udp_endpoints,
    write_binaryfile,
    write_pcap,
    write_pcapng,
)
from sim.wire import mold
from sim.wire.itch import MESSAGE_SPECS, decode, encode
from sim.wire.net import NASDAQ_TOTALVIEW, FeedEndpoint, feed_frame, ip_to_str

# A time late in 2023 with every nanosecond digit distinct: float seconds cannot hold it, so a
# reader or writer that goes through floats fails the round trip.
T0 = 1_692_711_038_952_561_782


def _frames(count: int = 5, vlan: int | None = 141) -> list[CapturedFrame]:
    out = []
    for k in range(count):
        message = encode("D", stock_locate=13, timestamp=1000 + k, order_ref=k + 1)
        payload = mold.encode_packet(b"TESTSESS01", k + 1, [message])
        frame = feed_frame(payload, vlan=vlan, ident=k)
        out.append(CapturedFrame(T0 + k * 1_000_003 + k * k, frame))
    return out


# --------------------------------------------------------------------------------------------
# Round trips


def test_pcap_nanosecond_round_trip(tmp_path):
    frames = _frames()
    path = tmp_path / "ns.pcap"
    assert write_pcap(path, frames, nanosecond=True) == len(frames)
    assert detect_format(path) == "pcap"
    assert list(read_frames(path)) == frames
    # An independent reader agrees on the header and the frames.
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        assert [bytes(buf) for _, buf in reader] == [f.frame for f in frames]


def test_pcap_microsecond_round_trip_truncates_to_us(tmp_path):
    frames = _frames()
    path = tmp_path / "us.pcap"
    write_pcap(path, frames, nanosecond=False)
    with open(path, "rb") as f:
        assert struct.unpack("<I", f.read(4))[0] == dpkt.pcap.TCPDUMP_MAGIC
    back = list(read_frames(path))
    assert [f.frame for f in back] == [f.frame for f in frames]
    assert [f.timestamp_ns for f in back] == [f.timestamp_ns // 1000 * 1000 for f in frames]
    assert any(f.timestamp_ns % 1000 for f in frames)  # the truncation was actually exercised


def test_pcap_big_endian_is_read(tmp_path):
    frames = _frames(3)
    path = tmp_path / "be.pcap"
    with open(path, "wb") as f:
        f.write(bytes(dpkt.pcap.FileHdr(magic=dpkt.pcap.TCPDUMP_MAGIC_NANO, snaplen=65535)))
        for item in frames:
            sec, ns = divmod(item.timestamp_ns, 1_000_000_000)
            hdr = dpkt.pcap.PktHdr(tv_sec=sec, tv_usec=ns, caplen=len(item.frame),
                                   len=len(item.frame))
            f.write(bytes(hdr) + item.frame)
    assert list(read_frames(path)) == frames


def test_pcapng_round_trip(tmp_path):
    frames = _frames()
    path = tmp_path / "cap.pcapng"
    assert write_pcapng(path, frames) == len(frames)
    assert detect_format(path) == "pcapng"
    assert list(read_frames(path)) == frames
    with open(path, "rb") as f:
        assert [bytes(buf) for _, buf in dpkt.pcapng.Reader(f)] == [f.frame for f in frames]


def test_pcapng_from_dpkt_writer_microseconds(tmp_path):
    # dpkt writes pcapng with the default (microsecond) resolution and no if_tsresol option.
    path = tmp_path / "dpkt.pcapng"
    frames = _frames(3)
    with open(path, "wb") as f:
        writer = dpkt.pcapng.Writer(f)
        for k, item in enumerate(frames):
            writer.writepkt(item.frame, ts=1_700_000_000 + k * 0.5)
    back = list(read_frames(path))
    assert [f.frame for f in back] == [f.frame for f in frames]
    assert [f.timestamp_ns for f in back] == [
        1_700_000_000_000_000_000 + k * 500_000_000 for k in range(3)
    ]


def test_bare_frames_get_ordered_timestamps(tmp_path):
    raw = [f.frame for f in _frames(3)]
    path = tmp_path / "bare.pcap"
    write_pcap(path, raw)
    assert [(f.timestamp_ns, f.frame) for f in read_frames(path)] == [
        (k * 1000, frame) for k, frame in enumerate(raw)
    ]


def test_binaryfile_round_trip(tmp_path):
    messages = [
        encode("A", stock_locate=1, timestamp=5, order_ref=7, buy_sell="B", shares=100,
               stock="AAPL", price=1_850_000),
        encode("D", stock_locate=1, timestamp=6, order_ref=7),
        encode("S", timestamp=7, event_code="C"),
    ]
    path = tmp_path / "session.itch"
    assert write_binaryfile(path, messages) == 3
    assert path.stat().st_size == sum(2 + len(m) for m in messages)
    assert detect_format(path) == "itch"
    assert list(read_binaryfile(path)) == messages


def test_binaryfile_writer_refuses_unframeable(tmp_path):
    with pytest.raises(CaptureError, match="message 1"):
        write_binaryfile(tmp_path / "x.itch", [b"S" * 12, b""])
    with pytest.raises(CaptureError, match="65536"):
        write_binaryfile(tmp_path / "y.itch", [b"A" * 65536])


# --------------------------------------------------------------------------------------------
# Detection and damage


def test_detect_rejects_other_files(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="empty"):
        detect_format(empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a capture\n")
    with pytest.raises(CaptureError, match="not a pcap, pcapng or ITCH"):
        detect_format(text)
    # Right length prefix, wrong type byte: not taken for ITCH.
    bogus = tmp_path / "bogus.itch"
    bogus.write_bytes(struct.pack(">H", 12) + b"Z" * 12)
    with pytest.raises(CaptureError):
        detect_format(bogus)
    # A known type with the wrong length for it.
    wrong = tmp_path / "wrong.itch"
    wrong.write_bytes(struct.pack(">H", 13) + b"S" * 13)
    with pytest.raises(CaptureError):
        detect_format(wrong)


def test_read_frames_refuses_binaryfile(tmp_path):
    path = tmp_path / "s.itch"
    write_binaryfile(path, [encode("S", event_code="O")])
    with pytest.raises(CaptureError, match="read_binaryfile"):
        list(read_frames(path))


def test_truncated_binaryfile_names_offset(tmp_path):
    messages = [encode("D", order_ref=k) for k in range(3)]
    path = tmp_path / "t.itch"
    write_binaryfile(path, messages)
    whole = path.read_bytes()
    record = 2 + len(messages[0])
    path.write_bytes(whole[:-5])
    with pytest.raises(CaptureError, match=f"truncated message at byte offset {2 * record}"):
        list(read_binaryfile(path))
    path.write_bytes(whole + b"\x00")
    with pytest.raises(CaptureError, match=f"truncated length field at byte offset {3 * record}"):
        list(read_binaryfile(path))
    path.write_bytes(whole[:record] + b"\x00\x00" + whole[record:])
    with pytest.raises(CaptureError, match=f"zero message length at byte offset {record}"):
        list(read_binaryfile(path))


def test_truncated_binaryfile_across_read_chunks(tmp_path, monkeypatch):
    # Offsets must stay right when a record straddles the reader's buffer refills.
    import sim.capture as capture

    monkeypatch.setattr(capture, "_READ_CHUNK", 7)
    messages = [encode("D", order_ref=k) for k in range(50)]
    path = tmp_path / "c.itch"
    write_binaryfile(path, messages)
    assert list(read_binaryfile(path)) == messages
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CaptureError, match=f"byte offset {49 * (2 + len(messages[0]))}"):
        list(read_binaryfile(path))


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_truncated_capture_names_offset(tmp_path, writer):
    path = tmp_path / "cut.cap"
    writer(path, _frames(3))
    whole = path.read_bytes()
    # Cut inside the last frame's data: the first two frames come out, then a clear error.
    path.write_bytes(whole[:-8])
    reader = read_frames(path)
    assert len([next(reader), next(reader)]) == 2
    with pytest.raises(CaptureError, match=r"truncated .*byte offset \d+"):
        next(reader)


def test_pcap_snapped_frame_is_an_error(tmp_path):
    item = _frames(1)[0]
    path = tmp_path / "snap.pcap"
    with open(path, "wb") as f:
        f.write(bytes(dpkt.pcap.LEFileHdr(magic=dpkt.pcap.TCPDUMP_MAGIC, snaplen=40)))
        f.write(bytes(dpkt.pcap.LEPktHdr(tv_sec=1, tv_usec=0, caplen=40, len=len(item.frame))))
        f.write(item.frame[:40])
    with pytest.raises(CaptureError, match=f"snap length \\(40 of {len(item.frame)} bytes"):
        list(read_frames(path))


def test_non_ethernet_link_type_is_an_error(tmp_path):
    path = tmp_path / "sll.pcap"
    with open(path, "wb") as f:
        f.write(bytes(dpkt.pcap.LEFileHdr(linktype=dpkt.pcap.DLT_LINUX_SLL)))
    with pytest.raises(CaptureError, match="not Ethernet"):
        list(read_frames(path))
    path = tmp_path / "sll.pcapng"
    with open(path, "wb") as f:
        dpkt.pcapng.Writer(f, linktype=dpkt.pcap.DLT_LINUX_SLL)
    with pytest.raises(CaptureError, match="not Ethernet"):
        list(read_frames(path))


# --------------------------------------------------------------------------------------------
# Finding the feed


def test_udp_endpoints_picks_the_feed():
    feed = _frames(4, vlan=141)
    other = FeedEndpoint.multicast("239.1.2.3", 5000)
    noise = [
        CapturedFrame(T0, feed_frame(b"x" * 20, dst=other)),
        CapturedFrame(T0, b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)),  # ARP
        CapturedFrame(T0, b"\x01\x02"),  # runt
    ]
    counts = udp_endpoints(noise[:1] + feed + noise[1:])
    assert counts.most_common(1)[0] == (FeedKey(141, "239.192.43.7", 26400), 4)
    assert counts[FeedKey(None, "239.1.2.3", 5000)] == 1
    assert sum(counts.values()) == 5
    # A short datagram in a frame padded to the Ethernet minimum comes back without the padding.
    padded = feed_frame(b"ab")
    assert len(padded) == 60
    assert [d.payload for d in udp_datagrams([padded])] == [b"ab"]


# --------------------------------------------------------------------------------------------
# The real Nasdaq files


def _mold_messages(payload: bytes) -> tuple[bytes, int, list[bytes]]:
    """Session, sequence number and message blocks of one MoldUDP64 packet."""
    header = mold.decode_header(payload)
    blocks, offset = [], mold.HEADER_LENGTH
    while offset < len(payload):
        length = int.from_bytes(payload[offset:offset + mold.LENGTH_PREFIX], "big")
        offset += mold.LENGTH_PREFIX
        blocks.append(payload[offset:offset + length])
        offset += length
    assert offset == len(payload) and len(blocks) == header.count
    return header.session, header.seq, blocks


def test_real_totalview_pcaps(itch_data):
    paths = sorted((itch_data / "nasdaq-pcap").glob("*.pcap"))
    assert len(paths) == 8
    totals = Counter()
    for path in paths:
        assert detect_format(path) == "pcap"
        frames = list(read_frames(path))
        assert udp_endpoints(frames) == Counter(
            {FeedKey(141, ip_to_str(NASDAQ_TOTALVIEW.ip), NASDAQ_TOTALVIEW.port): len(frames)}
        )
        for datagram in udp_datagrams(frames):
            assert (datagram.src_ip, datagram.src_port) == ("206.200.127.138", 49653)
            session, _, messages = _mold_messages(datagram.payload)
            assert session == b"000010059B"
            for raw in messages:
                assert decode(raw).type == chr(raw[0])
                totals[path.name, chr(raw[0])] += 1
        # Every timestamp is on 2023-08-22 around 09:30 ET (13:30 UTC), in whole nanoseconds.
        for frame in frames:
            assert 1_692_711_000 <= frame.timestamp_ns // 1_000_000_000 < 1_692_712_000
    single = {
        "AddOrderNoMpidAttributionMessage.pcap": "A", "MarketParticipantPositionMessage.pcap": "L",
        "NetOrderImbalanceIndicatorMessage.pcap": "I", "OrderDeleteMessage.pcap": "D",
        "OrderExecutedMessage.pcap": "E", "OrderReplaceMessage.pcap": "U",
        "StockTradingActionMessage.pcap": "H",
    }
    for name, kind in single.items():
        assert {k: v for (n, k), v in totals.items() if n == name} == {kind: 1}


def test_real_multiple_packets(itch_data):
    path = itch_data / "nasdaq-pcap" / "Multiple.Packets.pcap"
    frames = list(read_frames(path))
    assert len(frames) == 2
    assert [f.timestamp_ns for f in frames] == [
        1_692_711_000_007_661_955, 1_692_711_038_952_561_782
    ]
    datagrams = list(udp_datagrams(frames))
    assert all(d.vlan == 141 for d in datagrams)
    assert len(datagrams[1].payload) == 1472
    first = _mold_messages(datagrams[0].payload)
    second = _mold_messages(datagrams[1].payload)
    assert len(second[2]) == 38
    assert second[1] > first[1] + len(first[2])  # an excerpt: the sequence jumps
    kinds = Counter(chr(m[0]) for m in first[2] + second[2])
    assert kinds == Counter({"A": 36, "F": 2, "D": 1})


def test_real_bx_pcaps(itch_data):
    paths = sorted((itch_data / "bx-pcap").glob("*.pcap"))
    assert len(paths) == 3
    kinds = []
    for path in paths:
        frames = list(read_frames(path))
        ((key, count),) = udp_endpoints(frames).items()
        assert key.dst_port == 25475 and count == len(frames) == 1
        for datagram in udp_datagrams(frames):
            session, _, messages = _mold_messages(datagram.payload)
            assert session == b"000010059D"
            kinds += [chr(m[0]) for m in messages]
    assert sorted(kinds) == ["A", "D", "U"]


def test_real_aapl_binaryfile(itch_data, tmp_path):
    path = itch_data / "aapl-20200130-premarket-10k.itch"
    assert detect_format(path) == "itch"
    messages = list(read_binaryfile(path))
    assert len(messages) == 10_000
    kinds = Counter(chr(m[0]) for m in messages)
    assert kinds == Counter({"A": 4758, "D": 4083, "E": 849, "P": 240, "L": 52, "U": 7, "X": 6,
                             "F": 2, "R": 1, "H": 1, "Y": 1})
    for raw in messages:
        assert len(raw) == MESSAGE_SPECS[chr(raw[0])].length
        assert decode(raw)["stock_locate"] == 13
    # Writing them back gives the same file, byte for byte.
    copy = tmp_path / "copy.itch"
    write_binaryfile(copy, messages)
    assert copy.read_bytes() == path.read_bytes()


def test_real_aapl_binaryfile_truncated(itch_data, tmp_path):
    whole = (itch_data / "aapl-20200130-premarket-10k.itch").read_bytes()
    # Walk the lengths to the offset of the last record, then cut it short.
    offset = 0
    while offset + 2 + int.from_bytes(whole[offset:offset + 2], "big") < len(whole):
        offset += 2 + int.from_bytes(whole[offset:offset + 2], "big")
    cut = tmp_path / "cut.itch"
    cut.write_bytes(whole[:-3])
    with pytest.raises(CaptureError, match=f"truncated message at byte offset {offset}"):
        list(read_binaryfile(cut))
