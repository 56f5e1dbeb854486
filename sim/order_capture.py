"""Our OUCH order messages as a capture a user opens in Wireshark.

The order port speaks SoupBinTCP over one TCP connection to the exchange. The gateware and the
model produce the SoupBinTCP packets only (Unsequenced Data, one OUCH message each); this module
puts each packet in its own TCP segment of one established connection, client (our order port)
to server (the exchange's OUCH port), sequence numbers counting the bytes sent, so Wireshark's
SoupBinTCP and OUCH dissectors decode them (Decode As... SoupBinTCP on the server port, if the
port is not one it knows). The handshake is written too, so the stream opens as a whole
connection. Headers are packed by dpkt; timestamps are the cycles of the first beat at the
core clock, from the given epoch.

Ref: RFC 9293 section 3.1 (TCP header), SoupBinTCP 4.1 (Unsequenced Data Packet).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import dpkt

from sim.capture import CapturedFrame, StrPath, write_pcap
from sim.wire.net import ip_from_str

__all__ = ["ORDER_PORT", "OrderPort", "order_frames", "write_orders_pcap"]


@dataclass(frozen=True)
class OrderPort:
    """The two ends of the order connection (MACs as 48-bit integers, IPv4 as dotted text)."""

    client_mac: int = 0x02_54_47_00_00_02
    server_mac: int = 0x02_54_47_00_00_03
    client_ip: str = "10.43.0.2"
    server_ip: str = "10.43.0.3"
    client_port: int = 49700
    server_port: int = 15000


ORDER_PORT = OrderPort()
# Initial sequence numbers of the two sides: any value; fixed so the same run gives the same file.
_CLIENT_ISN = 0x1000_0000
_SERVER_ISN = 0x2000_0000


def _frame(port: OrderPort, *, to_server: bool, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:
    tcp = dpkt.tcp.TCP(sport=port.client_port if to_server else port.server_port,
                       dport=port.server_port if to_server else port.client_port,
                       seq=seq & 0xFFFF_FFFF, ack=ack & 0xFFFF_FFFF, flags=flags,
                       win=0xFFFF, data=payload)
    src, dst = (port.client_ip, port.server_ip) if to_server else (port.server_ip,
                                                                   port.client_ip)
    ip = dpkt.ip.IP(src=ip_from_str(src).to_bytes(4, "big"),
                    dst=ip_from_str(dst).to_bytes(4, "big"), p=dpkt.ip.IP_PROTO_TCP, ttl=64,
                    data=tcp)
    ip.len = len(ip)     # dpkt fills the lengths and the IPv4 and TCP checksums on packing
    macs = (port.client_mac, port.server_mac) if to_server else (port.server_mac,
                                                                 port.client_mac)
    eth = dpkt.ethernet.Ethernet(src=macs[0].to_bytes(6, "big"), dst=macs[1].to_bytes(6, "big"),
                                 type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    return bytes(eth)


def order_frames(packets: Iterable[tuple[int, bytes]], *, clk_hz: int,
                 epoch_ns: int = 0, port: OrderPort = ORDER_PORT) -> list[CapturedFrame]:
    """``packets``: (cycle of the first beat, SoupBinTCP packet) in order. Returns the
    connection's frames: the handshake a microsecond before the first packet (or at 0), then
    one segment per packet at its cycle's time (``epoch_ns`` plus the cycle at ``clk_hz``)."""
    packets = list(packets)
    first = packets[0][0] if packets else 0
    t0 = max(epoch_ns + first * 1_000_000_000 // clk_hz - 1_000, 0)
    syn, ack_flag = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK
    client, server = _CLIENT_ISN, _SERVER_ISN
    frames = [
        CapturedFrame(t0, _frame(port, to_server=True, seq=client, ack=0, flags=syn)),
        CapturedFrame(t0 + 1, _frame(port, to_server=False, seq=server, ack=client + 1,
                                     flags=syn | ack_flag)),
        CapturedFrame(t0 + 2, _frame(port, to_server=True, seq=client + 1, ack=server + 1,
                                     flags=ack_flag)),
    ]
    seq = client + 1
    for cycle, packet in packets:
        time_ns = max(epoch_ns + cycle * 1_000_000_000 // clk_hz, frames[-1].timestamp_ns)
        frames.append(CapturedFrame(time_ns, _frame(
            port, to_server=True, seq=seq, ack=server + 1, flags=ack_flag | dpkt.tcp.TH_PUSH,
            payload=packet)))
        seq += len(packet)
    return frames


def write_orders_pcap(path: StrPath, packets: Iterable[tuple[int, bytes]], *, clk_hz: int,
                      epoch_ns: int = 0, port: OrderPort = ORDER_PORT) -> int:
    """Write :func:`order_frames` to a nanosecond pcap; returns the number of frames."""
    return write_pcap(path, order_frames(packets, clk_hz=clk_hz, epoch_ns=epoch_ns, port=port))
