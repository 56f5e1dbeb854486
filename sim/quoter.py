"""Reference model of the quoter: one instrument's book and position in, desired quotes and the
order actions that move the resting quotes to them out.

The quoter prices; it does not decide whether an order may go out. Every action it returns goes
through the risk gate (:mod:`sim.risk`), which sees the orders, not the quoter's internals.

Inputs are the instrument's top-of-book updates (:meth:`Quoter.on_book`), its position, the
resting quotes (what :class:`~sim.orders.OrderTable` knows) and the time, an integer cycle
count passed in by the caller. Parameters are the host's :class:`~hdl.csr.params.QuoteParams`
and, for the size reduction, the instrument's :class:`~hdl.csr.params.RiskLimits`.

Rules (integers only; ``>>`` is an arithmetic shift, rounding toward minus infinity, and ``//``
rounds toward minus infinity too; the gateware computes exactly these values)
-----------------------------------------------------------------------------------------------
Let ``tick = tick_size``, ``floor_tick(x) = (x // tick) * tick`` and
``ceil_tick(x) = -((-x) // tick) * tick``.

1. Volatility. ``vol`` is an EWMA of absolute mid changes with :data:`VOL_FRAC_BITS` fraction
   bits. Every top-of-book update with both sides present, after one that had both sides too,
   is a sample ``d = |mid - previous mid|`` (``mid = (bid + ask) >> 1``, 0 included):
   ``vol += ((d << VOL_FRAC_BITS) - vol) >> vol_ewma_shift``. An update missing a side takes
   no sample and forgets the previous mid; ``vol`` starts at 0.
2. Fair value ``fv`` by ``fair_value_mode`` (:mod:`sim.fair_value`). None: no quotes.
3. Half spread ``half = base_half_spread * tick + ((vol * vol_multiplier) >> (VOL_FRAC_BITS +
   8))`` (``vol_multiplier`` is in 1/256).
4. Skew ``skew = (position * skew_ticks_per_unit * tick) >> 16`` (1/65536 tick per share);
   centre ``c = fv - skew``: a long position lowers both quotes, a short one raises them.
5. Level 0: ``bid = floor_tick(c - half)``, ``ask = ceil_tick(c + half)``; if they are equal the
   ask moves up one tick (we never quote a locked market against ourselves).
6. Post-only: with an ask in the book, ``bid = min(bid, floor_tick(best_ask - 1))``; with a bid,
   ``ask = max(ask, ceil_tick(best_bid + 1))``: a quote never locks or crosses the current book.
7. Level ``k`` (0-based, ``k < levels``): ``bid - k * level_spacing * tick`` and
   ``ask + k * level_spacing * tick``.
8. A level priced below ``max(price_floor, 1)`` or above ``min(price_ceiling,
   MAX_LIMIT_PRICE)`` is not quoted (never clamped: clamped levels would pile onto one price).
9. Sizes. Buying adds to a long position, so bids share ``room = max_long - position`` shares
   and asks ``room = max_short + position`` (0 when negative): level ``k`` gets
   ``min(size, room - shares given to levels 0..k-1)``; a level left with 0 shares is not
   quoted. Near a limit the deeper levels shrink first, and all the bids filling together
   cannot take the position past ``max_long`` (asks: ``max_short``).
10. ``enable = 0``: no quotes.

Python integers do not wrap; neither may the gateware's. With register values in range:
``vol < 2**40``, ``vol * vol_multiplier < 2**56``, ``half < 2**42``; the skew product
``position * skew_ticks_per_unit * tick`` needs 81 bits signed and the skew 65, so the price
expressions of rules 4 to 7 need 67 bits signed (only levels inside rule 8's band, at most 31
bits, reach an order).

Moving the resting quotes (per order slot: side, then level 0 to 2; BUY before SELL)
------------------------------------------------------------------------------------
- A slot whose order is busy (a request in flight) is left alone until the answer arrives.
- Desired none, order resting: cancel. Desired, nothing resting: new order.
- Both: replace when the resting order locks or crosses the current book, or when its price
  differs from the desired one by at least ``requote_threshold`` ticks (and differs at all) or
  its total quantity differs from the desired size, and it has rested at least
  ``min_quote_life`` cycles since its last Accepted or Replaced. Otherwise leave it.
- The quoter is evaluated when the caller asks (the core model: on every top-of-book update of
  the instrument, on every answer about its orders, on host actions); a quote held back by
  ``min_quote_life`` moves at the first evaluation after its life has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from hdl.csr.params import QuoteParams, RiskLimits
from sim.book import EMPTY_PRICE, Top, TopUpdate
from sim.fair_value import fair_value, mid_price
from sim.itch_event import Side
from sim.orders import MAX_LEVELS, ActionKind, LiveOrder, OrderAction, Origin
from sim.wire.ouch import MAX_LIMIT_PRICE, TimeInForce

__all__ = [
    "SKEW_FRAC_BITS",
    "VOL_FRAC_BITS",
    "VOL_MULTIPLIER_FRAC_BITS",
    "Quote",
    "QuoteSet",
    "Quoter",
    "QuoterStat",
    "RequoteStat",
    "ceil_tick",
    "floor_tick",
]

#: Fraction bits of the volatility EWMA.
VOL_FRAC_BITS = 8
#: ``vol_multiplier`` is in 1/256.
VOL_MULTIPLIER_FRAC_BITS = 8
#: ``skew_ticks_per_unit`` is in 1/65536 tick per share.
SKEW_FRAC_BITS = 16


class QuoterStat(IntEnum):
    """What the gateware quoter counts (one 48-bit counter each).

    The model evaluates every update; the gateware evaluates one slot at a time and, for a slot
    updated again before its turn, prices only the newest top (the volatility EWMA still takes
    every update): ``UPDATES + REPRICES == SUPERSEDED + QUOTE_SETS + BAD_SLOT`` once it is
    idle.
    """

    UPDATES = 0      # top-of-book updates taken
    SUPERSEDED = 1   # updates replaced by a newer top of the same slot before being priced
    QUOTE_SETS = 2   # quote sets emitted
    BAD_SLOT = 3     # updates of a slot number the quoter does not have (dropped)
    REPRICES = 4     # slots made to wait for pricing by a reprice request, without a new top


class RequoteStat(IntEnum):
    """What the gateware's requote stage counts (one 48-bit counter each): the quote sets it
    evaluated and the actions it sent, by kind, as the lengths of the lists that
    :meth:`Quoter.actions` and :meth:`sim.hedger.Hedger.action` return.

    ``NEW``, ``REPLACE`` and ``CANCEL`` count the quoter's actions, ``HEDGES`` the hedger's.
    """

    QUOTE_SETS = 0   # quote sets evaluated
    NEW = 1          # new orders
    REPLACE = 2      # replacements
    CANCEL = 3       # cancels
    HEDGES = 4       # hedge orders
    BAD_SLOT = 5     # quote sets of a slot number the stage does not have (dropped)


def floor_tick(price: int, tick: int) -> int:
    """The largest multiple of ``tick`` at or below ``price``."""
    return (price // tick) * tick


def ceil_tick(price: int, tick: int) -> int:
    """The smallest multiple of ``tick`` at or above ``price``."""
    return -((-price) // tick) * tick


@dataclass(frozen=True, slots=True)
class Quote:
    side: Side
    level: int
    price: int
    quantity: int


@dataclass(frozen=True, slots=True)
class QuoteSet:
    """The desired quotes, one entry per level (``None``: not quoted), and how they came about.

    ``fair_value`` is None when there is none (then nothing is quoted).
    """

    bids: tuple[Quote | None, ...]
    asks: tuple[Quote | None, ...]
    fair_value: int | None = None
    center: int | None = None
    half_spread: int = 0
    skew: int = 0

    def side(self, side: Side) -> tuple[Quote | None, ...]:
        return self.bids if side == Side.BUY else self.asks

    @property
    def quotes(self) -> list[Quote]:
        return [q for q in (*self.bids, *self.asks) if q is not None]


_NONE = (None,) * MAX_LEVELS


class Quoter:
    """The quoter of one instrument slot.

    Parameters
    ----------
    slot : int
    params : QuoteParams
    limits : RiskLimits
        Read for ``max_long``/``max_short`` (the size reduction near a limit).

    Attributes
    ----------
    vol : int
        The EWMA of absolute mid changes, in price units << :data:`VOL_FRAC_BITS`.
    top : TopUpdate or None
        The last top of book seen.
    """

    def __init__(self, slot: int, params: QuoteParams, limits: RiskLimits):
        self.slot = slot
        self.params = params
        self.limits = limits
        self.vol = 0
        self._last_mid: int | None = None
        self.top: TopUpdate | Top | None = None

    def on_book(self, update: TopUpdate | Top, now: int) -> None:
        """Take a top-of-book update of this instrument (rule 1)."""
        self.top = update
        mid = mid_price(update)
        if mid is not None and self._last_mid is not None:
            sample = abs(mid - self._last_mid) << VOL_FRAC_BITS
            self.vol += (sample - self.vol) >> self.params.vol_ewma_shift
        self._last_mid = mid

    def quotes(self, position: int) -> QuoteSet:
        """The desired quotes for ``position`` (rules 2 to 10)."""
        p = self.params
        top = self.top
        if not p.enable or top is None:
            return QuoteSet(_NONE, _NONE)
        fv = fair_value(top, p)
        if fv is None:
            return QuoteSet(_NONE, _NONE)
        tick = p.tick_size
        half = p.base_half_spread * tick + (
            (self.vol * p.vol_multiplier) >> (VOL_FRAC_BITS + VOL_MULTIPLIER_FRAC_BITS))
        skew = (position * p.skew_ticks_per_unit * tick) >> SKEW_FRAC_BITS
        center = fv - skew
        bid = floor_tick(center - half, tick)
        ask = ceil_tick(center + half, tick)
        if ask == bid:
            ask += tick
        if top.ask_price != EMPTY_PRICE:
            bid = min(bid, floor_tick(top.ask_price - 1, tick))
        if top.bid_price != EMPTY_PRICE:
            ask = max(ask, ceil_tick(top.bid_price + 1, tick))
        low = max(p.price_floor, 1)
        high = min(p.price_ceiling, MAX_LIMIT_PRICE)
        step = p.level_spacing * tick
        rooms = {Side.BUY: max(self.limits.max_long - position, 0),
                 Side.SELL: max(self.limits.max_short + position, 0)}
        sides = {}
        for side, base, direction in ((Side.BUY, bid, -1), (Side.SELL, ask, 1)):
            room = rooms[side]
            levels: list[Quote | None] = []
            for k in range(MAX_LEVELS):
                price = base + direction * k * step
                size = min(p.size, room)
                if k >= p.levels or size <= 0 or not low <= price <= high:
                    levels.append(None)
                    continue
                room -= size
                levels.append(Quote(side, k, price, size))
            sides[side] = tuple(levels)
        return QuoteSet(sides[Side.BUY], sides[Side.SELL], fv, center, half, skew)

    def actions(self, quotes: QuoteSet, resting: Callable[[Side, int], LiveOrder | None],
                now: int) -> list[OrderAction]:
        """The actions that move the resting quotes to ``quotes``.

        ``resting(side, level)`` is the order in that order slot, if any (e.g.
        ``lambda side, level: table.at(slot, side, level)``).
        """
        p = self.params
        top = self.top
        out: list[OrderAction] = []
        for side in (Side.BUY, Side.SELL):
            for level, want in enumerate(quotes.side(side)):
                order = resting(side, level)
                if order is not None and order.busy:
                    continue
                if want is None:
                    if order is not None:
                        out.append(OrderAction(ActionKind.CANCEL, self.slot, side, level,
                                               ref=order.ref, origin=Origin.QUOTER))
                    continue
                if order is None:
                    out.append(OrderAction(ActionKind.NEW, self.slot, side, level, want.price,
                                           want.quantity, TimeInForce.DAY,
                                           origin=Origin.QUOTER))
                    continue
                moved = (want.price != order.price
                         and abs(want.price - order.price) >= p.requote_threshold * p.tick_size)
                resized = want.quantity != order.quantity
                aged = now - order.since >= p.min_quote_life
                if _through(order, top) or ((moved or resized) and aged):
                    out.append(OrderAction(ActionKind.REPLACE, self.slot, side, level,
                                           want.price, want.quantity, TimeInForce.DAY,
                                           ref=order.ref, origin=Origin.QUOTER))
        return out


def _through(order: LiveOrder, top: TopUpdate | Top | None) -> bool:
    """The resting order locks or crosses the current book."""
    if top is None:
        return False
    if order.side == Side.BUY:
        return top.ask_price != EMPTY_PRICE and order.price >= top.ask_price
    return top.bid_price != EMPTY_PRICE and order.price <= top.bid_price
