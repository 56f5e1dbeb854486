"""The feed ingress model: Ethernet frames in, ITCH events out (twin of ``hdl/feed/ingress.py``).

It chains the three stage models exactly as the gateware chains the three components, so its
events, gap reports and counters are what the gateware must produce, bit for bit.
"""

from dataclasses import dataclass, field

from sim.itch_decode import ItchDecode
from sim.itch_event import ItchEvent
from sim.mold_rx import MoldRx
from sim.udp_rx import UdpRx, UdpRxConfig
from sim.wire.net import has_vlan, payload_offset

__all__ = ["Ingress", "IngressOutput"]


@dataclass
class IngressOutput:
    """What one frame produced."""

    events: list[ItchEvent] = field(default_factory=list)
    # Frame offset of the last byte of each event's message (where its latency is counted from).
    event_ends: list[int] = field(default_factory=list)
    # Position of each event's message among the messages this frame delivered (every type).
    event_messages: list[int] = field(default_factory=list)
    delivered_messages: int = 0


class Ingress:
    """Ethernet/IPv4/UDP -> MoldUDP64 -> ITCH 5.0 decode, as plain Python.

    Parameters
    ----------
    config : UdpRxConfig
        The feed's destination MAC, IP and UDP port.
    """

    def __init__(self, config: UdpRxConfig):
        self.udp_rx = UdpRx(config)
        self.mold_rx = MoldRx()
        self.itch_decode = ItchDecode()

    def push(self, frame: bytes, error: bool = False) -> IngressOutput:
        """Feed one Ethernet frame (no FCS); ``error`` is the MAC's bad-frame flag."""
        out = IngressOutput()
        payload = self.udp_rx.push(frame, error)
        if payload is None:
            return out
        start = payload_offset(has_vlan(frame))
        for message in self.mold_rx.push(payload.data, payload.error):
            event = self.itch_decode.push(message.data, message.seq)
            if event is not None:
                out.events.append(event)
                out.event_ends.append(start + message.end)
                out.event_messages.append(out.delivered_messages)
            out.delivered_messages += 1
        return out

    @property
    def gaps(self):
        return self.mold_rx.gaps

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        """Counters by stage and name, named as the gateware's ``stats`` port fields."""
        return {stage: {member.name.lower(): value for member, value in model.stats.items()}
                for stage, model in (("udp_rx", self.udp_rx), ("mold_rx", self.mold_rx),
                                     ("itch_decode", self.itch_decode))}
