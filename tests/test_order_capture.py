"""The orders as a pcap: one TCP connection, handshake then one segment per SoupBinTCP packet,
with lengths, sequence numbers and checksums a dissector accepts."""

import dpkt

from sim.capture import read_frames
from sim.order_capture import ORDER_PORT, write_orders_pcap
from sim.wire.ouch import CancelOrder, decode_inbound_stream, frame


def _ones_complement(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[k:k + 2], "big") for k in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_orders_pcap_is_one_tcp_connection(tmp_path):
    packets = [(1_000 + 100 * k, frame(CancelOrder(user_ref_num=k + 1, quantity=0)))
               for k in range(3)]
    path = tmp_path / "orders.pcap"
    assert write_orders_pcap(path, packets, clk_hz=156_250_000) == 6
    frames = list(read_frames(path))
    segments = []
    for captured in frames:
        ip = dpkt.ethernet.Ethernet(captured.frame).data
        tcp = ip.data
        # Both checksums verify: the sum over the header (IPv4), or over the pseudo-header and
        # segment (TCP), is all ones.
        assert _ones_complement(bytes(ip)[:20]) == 0xFFFF
        pseudo = ip.src + ip.dst + bytes([0, 6]) + len(bytes(tcp)).to_bytes(2, "big")
        assert _ones_complement(pseudo + bytes(tcp)) == 0xFFFF
        segments.append(tcp)
    syn, syn_ack, ack = segments[:3]
    assert syn.flags == dpkt.tcp.TH_SYN and syn.dport == ORDER_PORT.server_port
    assert syn_ack.flags == dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK and syn_ack.ack == syn.seq + 1
    assert ack.seq == syn.seq + 1
    seq = ack.seq
    for (cycle, packet), tcp, captured in zip(packets, segments[3:], frames[3:], strict=True):
        assert tcp.seq == seq and tcp.data == packet
        assert captured.timestamp_ns == cycle * 1_000_000_000 // 156_250_000
        seq += len(packet)
    stream = b"".join(tcp.data for tcp in segments[3:])
    assert [m.user_ref_num for m in decode_inbound_stream(stream)] == [1, 2, 3]
    assert [f.timestamp_ns for f in frames] == sorted(f.timestamp_ns for f in frames)
