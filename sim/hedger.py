"""Reference model of the hedger: an immediate-or-cancel order that takes the position back
toward flat when it has grown past a threshold.

Rule (per instrument, evaluated with the quoter; integers only)
---------------------------------------------------------------
With ``hedge_enable``, ``hedge_size > 0``, ``|position| > hedge_threshold`` and no hedge order of
the instrument still open (entered and not ended): a long position sells at the best bid, a
short one buys at the best ask, ``min(hedge_size, |position|)`` shares (a hedge never turns the
position around), time in force IOC, no post-only flag (it is meant to take liquidity). Nothing
when the side to trade against is empty. The order occupies the instrument's
:data:`~sim.orders.HEDGE_LEVEL` order slot and, like every order, goes through the risk gate.
"""

from __future__ import annotations

from hdl.csr.params import RiskLimits
from sim.book import EMPTY_PRICE, Top, TopUpdate
from sim.itch_event import Side
from sim.orders import HEDGE_LEVEL, ActionKind, OrderAction, Origin
from sim.wire.ouch import TimeInForce

__all__ = ["Hedger"]


class Hedger:
    """The hedger of one instrument slot (reads ``hedge_*`` of its :class:`RiskLimits`)."""

    def __init__(self, slot: int, limits: RiskLimits):
        self.slot = slot
        self.limits = limits

    def action(self, top: TopUpdate | Top | None, position: int,
               hedge_open: bool) -> OrderAction | None:
        """The hedge order to send now, if any."""
        lim = self.limits
        if (not lim.hedge_enable or lim.hedge_size == 0 or hedge_open or top is None
                or abs(position) <= lim.hedge_threshold):
            return None
        if position > 0:
            side, price = Side.SELL, top.bid_price
        else:
            side, price = Side.BUY, top.ask_price
        if price == EMPTY_PRICE:
            return None
        return OrderAction(ActionKind.NEW, self.slot, side, HEDGE_LEVEL, price,
                           min(lim.hedge_size, abs(position)), TimeInForce.IOC,
                           origin=Origin.HEDGER)
