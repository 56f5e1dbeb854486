"""Position and profit and loss per instrument, from our fills, in integers.

Units: shares for positions (long positive); *money* is price units times shares, i.e. 1e-4 $
(a fill of 100 shares at 1_850_000, $185.00, moves 185_000_000 money units, $18,500). Nothing
here uses floating point: the report divides by 10_000 only to print dollars.

Rules
-----
- Position: a buy fill adds its shares, a sell fill subtracts them. The gateware keeps this
  number (the ``position.position`` register); the rest is for the replay's report.
- Realized PnL, first in first out: a fill first closes open lots of the opposite direction,
  oldest first, realizing ``(exit - entry) * shares`` for longs and ``(entry - exit) * shares``
  for shorts; what is left opens a new lot at the fill's price.
- Unrealized PnL at a mark price: the same difference for every open lot, taken at the mark. The
  mark is the book's mid, ``(bid + ask) >> 1``, whenever both sides are present; otherwise the
  last one stands (0 before any).
- Fees: each fill earns ``maker_rebate`` per share when its liquidity flag says it added
  liquidity (``A``) and pays ``taker_fee`` per share when it removed liquidity (``R``); rates
  are in price units per share (20 is $0.0020 a share). Other flags cost and earn nothing.
- Net PnL = realized + unrealized + rebates - fees. It always equals
  ``cash + position * mark + rebates - fees``, where cash is what sells brought in less what
  buys cost (checked by the tests).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from sim.itch_event import Side
from sim.orders import Fill
from sim.wire.ouch import LiquidityFlag

__all__ = ["FeeSchedule", "Position", "PositionBook"]


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """Exchange fee rates, in price units (1e-4 $) per share.

    The defaults are round numbers of the usual size (a $0.0020 rebate for adding liquidity,
    a $0.0030 fee for taking it); pass the venue's tier.
    """

    maker_rebate: int = 20
    taker_fee: int = 30


@dataclass(slots=True)
class Position:
    """One instrument's position, lots and money."""

    shares: int = 0
    realized: int = 0
    cash: int = 0
    rebates: int = 0
    fees: int = 0
    bought: int = 0
    sold: int = 0
    mark: int = 0
    # Open lots, oldest first: (entry price, shares); all long or all short, as ``shares`` says.
    lots: deque[tuple[int, int]] = field(default_factory=deque)

    def apply(self, fill: Fill, fees: FeeSchedule) -> None:
        sign = 1 if fill.side == Side.BUY else -1
        left = fill.quantity
        while left and self.lots and (self.shares > 0) != (sign > 0):
            entry, lot = self.lots[0]
            taken = min(left, lot)
            # Closing a long sells at the fill price; closing a short buys at it.
            self.realized += (fill.price - entry) * taken * (1 if self.shares > 0 else -1)
            self.shares += sign * taken
            left -= taken
            if taken == lot:
                self.lots.popleft()
            else:
                self.lots[0] = (entry, lot - taken)
        if left:
            self.lots.append((fill.price, left))
            self.shares += sign * left
        self.cash -= sign * fill.price * fill.quantity
        if sign > 0:
            self.bought += fill.quantity
        else:
            self.sold += fill.quantity
        if fill.liquidity == LiquidityFlag.ADDED:
            self.rebates += fees.maker_rebate * fill.quantity
        elif fill.liquidity == LiquidityFlag.REMOVED:
            self.fees += fees.taker_fee * fill.quantity

    def unrealized(self, mark: int | None = None) -> int:
        mark = self.mark if mark is None else mark
        direction = 1 if self.shares > 0 else -1
        return sum((mark - entry) * lot * direction for entry, lot in self.lots)

    def net(self, mark: int | None = None) -> int:
        return self.realized + self.unrealized(mark) + self.rebates - self.fees


class PositionBook:
    """Positions of every instrument slot, fed with fills and marks.

    Parameters
    ----------
    slots : int
    fees : FeeSchedule
    """

    def __init__(self, slots: int, fees: FeeSchedule | None = None):
        self.fees = fees or FeeSchedule()
        self.positions = [Position() for _ in range(slots)]

    def __getitem__(self, slot: int) -> Position:
        return self.positions[slot]

    def shares(self, slot: int) -> int:
        return self.positions[slot].shares

    def apply(self, fill: Fill) -> Position:
        position = self.positions[fill.slot]
        position.apply(fill, self.fees)
        return position

    def set_mark(self, slot: int, mid: int | None) -> None:
        if mid is not None:
            self.positions[slot].mark = mid
