"""Gateware layout of the decoded ITCH event; fields and meaning are those of ``sim.itch_event``."""

from amaranth.lib import data, stream

from sim.itch_event import EVENT_FIELD_BITS, EventKind, Side

__all__ = ["ItchEventLayout", "ItchEventStream"]

ItchEventLayout = data.StructLayout(
    {name: (EventKind if name == "kind" else Side if name == "side" else width)
     for name, width in EVENT_FIELD_BITS.items()})


def ItchEventStream():
    """Stream signature carrying one :data:`ItchEventLayout` per transfer."""
    return stream.Signature(ItchEventLayout)
