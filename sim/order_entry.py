"""Reference model of order entry: approved order actions in, OUCH 5.0 bytes out.

Each action the risk gate passed becomes one OUCH message in one SoupBinTCP unsequenced data
packet (:func:`sim.wire.ouch.frame`), and the :class:`~sim.orders.OrderTable` learns what was
sent. The byte stream of these packets is what the core's order port emits, byte for byte.

Message contents
----------------
- UserRefNum: one counter for the whole port, from ``first_user_ref`` (1 by default), taken by
  every Enter Order and by the replacement of every Replace Order: strictly increasing, as the
  specification requires. Cancels carry the UserRefNum of the order they cancel.
- New order -> Enter Order: side ``B``/``S``, the action's quantity and price, the slot's
  symbol (8 characters, space padded), time in force from the action (day ``0`` for quotes,
  IOC ``3`` for hedges), display ``Y``, capacity ``P`` (principal: a market maker trades for
  its own account), intermarket sweep ``N``, cross type ``N``. Day orders carry the PostOnly
  option (tag 12, ``P``), so the exchange never lets a quote take liquidity either.
- Replace -> Replace Order Request with the same constants and option, the action's total
  quantity and price.
- Cancel -> Cancel Order Request with quantity 0 (cancel all that is open), no appendage.
- ClOrdID: ``clordid_prefix`` followed by the UserRefNum as 8 upper-case hexadecimal digits,
  space padded to 14 characters (hexadecimal is what gateware writes cheaply).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from sim.itch_event import Side
from sim.orders import ActionKind, OrderAction, OrderTable
from sim.wire.ouch import (
    CancelOrder,
    Capacity,
    CrossType,
    Display,
    EnterOrder,
    Message,
    Option,
    ReplaceOrder,
    SideCode,
    TimeInForce,
    frame,
)

__all__ = ["DAY_OPTIONS", "MAX_USER_REF", "ORDER_POLICY", "SIDE_CODES", "OrderEntry", "OuchTxStat",
           "SentMessage"]

MAX_USER_REF = (1 << 32) - 1
#: The OUCH side code of each book side.
SIDE_CODES = {Side.BUY: SideCode.BUY, Side.SELL: SideCode.SELL}
#: The fields every Enter and Replace Order carries: visible, principal (a market maker trades
#: for its own account), no intermarket sweep, the continuous market.
ORDER_POLICY = {
    "display": Display.VISIBLE,
    "capacity": Capacity.PRINCIPAL,
    "intermarket_sweep": "N",
    "cross_type": CrossType.CONTINUOUS,
}
#: Day orders are post-only, so a quote never takes liquidity.
DAY_OPTIONS = (Option.post_only(),)


class OuchTxStat(IntEnum):
    """What the gateware encoder counts, one 48-bit counter per member.

    The model raises instead (its callers never hand it such actions); the gateware refuses
    the action, counts it and goes on. A refused action takes no UserRefNum.
    """

    #: Messages sent.
    MESSAGES = 0
    #: An action kind or a time in force outside their enums.
    BAD_ACTION = 1
    #: A new order for a slot beyond the symbol table or whose symbol is not set.
    UNKNOWN_SLOT = 2
    #: An Enter or Replace Order after UserRefNum ``MAX_USER_REF`` was used.
    REFS_EXHAUSTED = 3
    #: A request to set the next UserRefNum to 0 (ignored).
    BAD_NEXT_REF = 4


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the order port sent: when, why, and its framed bytes."""

    time: int
    action: OrderAction
    message: Message
    packet: bytes


class OrderEntry:
    """Turns approved actions into OUCH messages and records them in the order table.

    Parameters
    ----------
    symbols : sequence of str
        The symbol of each instrument slot (up to 8 ASCII characters).
    orders : OrderTable
    first_user_ref : int
        The first UserRefNum (e.g. the exchange's NextUserRefNum after a reconnection).
    clordid_prefix : str
        Up to 6 characters in front of the hexadecimal UserRefNum.
    """

    def __init__(self, symbols: Sequence[str], orders: OrderTable, first_user_ref: int = 1,
                 clordid_prefix: str = "TKG"):
        for symbol in symbols:
            if not (0 < len(symbol) <= 8 and symbol.isascii()):
                raise ValueError(f"symbol {symbol!r} must be 1 to 8 ASCII characters")
        if len(clordid_prefix) > 6 or not clordid_prefix.isascii():
            raise ValueError("the ClOrdID prefix holds at most 6 ASCII characters")
        if not 1 <= first_user_ref <= MAX_USER_REF:
            raise ValueError(f"the first UserRefNum must be in 1..{MAX_USER_REF}")
        self.symbols = list(symbols)
        self.orders = orders
        self.next_user_ref = first_user_ref
        self.prefix = clordid_prefix

    def _take_ref(self) -> int:
        ref = self.next_user_ref
        if ref > MAX_USER_REF:
            raise OverflowError("UserRefNums exhausted for this session")
        self.next_user_ref += 1
        return ref

    def cl_ord_id(self, ref: int) -> str:
        return f"{self.prefix}{ref:08X}"

    def send(self, action: OrderAction, now: int) -> SentMessage:
        """The message for an approved action; the order table records it."""
        orders = self.orders
        if action.kind is ActionKind.CANCEL:
            order = orders.get(action.ref)
            if order is None:
                raise ValueError(f"cancel of unknown order {action.ref}")
            orders.canceling(order)
            message: Message = CancelOrder(order.ref, 0)
        elif action.kind is ActionKind.NEW:
            ref = self._take_ref()
            message = EnterOrder(
                ref, SIDE_CODES[action.side], action.quantity, self.symbols[action.slot],
                action.price, action.tif, ORDER_POLICY["display"], ORDER_POLICY["capacity"],
                ORDER_POLICY["intermarket_sweep"], ORDER_POLICY["cross_type"],
                self.cl_ord_id(ref), _options(action.tif))
            orders.entered(ref, action, now)
        else:
            order = orders.get(action.ref)
            if order is None:
                raise ValueError(f"replace of unknown order {action.ref}")
            ref = self._take_ref()
            message = ReplaceOrder(
                order.ref, ref, action.quantity, action.price, action.tif,
                ORDER_POLICY["display"], ORDER_POLICY["intermarket_sweep"], self.cl_ord_id(ref),
                _options(action.tif))
            orders.replacing(order, ref, action.price, action.quantity, now)
        return SentMessage(now, action, message, frame(message))


def _options(tif: str) -> tuple[Option, ...]:
    return DAY_OPTIONS if tif == TimeInForce.DAY else ()
