"""Gateware layout of an order action: what the quoter and hedger ask, the risk gate passes and
the order entry sends. Fields and meaning are those of :class:`sim.orders.OrderAction`."""

from amaranth.lib import data, stream

from hdl.arch.ouch import ACTION_PRICE_BITS, QUANTITY_BITS, USER_REF_BITS, TimeInForceCode
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, Origin

__all__ = ["SLOT_BITS", "OrderActionLayout", "OrderActionStream"]

#: Instrument slot numbers carry 8 bits; a stage knows how many of them are configured.
SLOT_BITS = 8

#: ``ref`` is the UserRefNum of the order replaced or canceled (0 for a new order); ``price``
#: (ITCH units, 4 implied decimals) and ``quantity`` (total size) are unused by a cancel.
OrderActionLayout = data.StructLayout({
    "kind": ActionKind,
    "slot": SLOT_BITS,
    "side": Side,
    "level": HEDGE_LEVEL.bit_length(),
    "price": ACTION_PRICE_BITS,
    "quantity": QUANTITY_BITS,
    "tif": TimeInForceCode,
    "ref": USER_REF_BITS,
    "origin": Origin,
})


def OrderActionStream():
    """Stream signature carrying one :data:`OrderActionLayout` per transfer."""
    return stream.Signature(OrderActionLayout)
