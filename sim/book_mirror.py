"""The gateware book's storage geometry, as plain Python, for a model that fails where it fails.

The gateware (``hdl/book/``) keeps orders and price levels in hashed, set-associative tables of
fixed size and the best levels of every book side in a small sorted cache. None of that changes
what a correct book looks like, but it decides *when* the book runs out of room, and how long the
search for the next best level takes. :class:`Books` in ``sim.book`` takes a :class:`BookGeometry`
to mirror exactly that:

- **Order table**: ``order_sets`` sets of ``order_ways`` entries; an order reference goes to set
  :func:`fold_hash` ``(ref, order_set_bits)``. An add whose set already holds ``order_ways`` live
  orders is refused (``TABLE_FULL``) and marks its instrument degraded.
- **Level table**: one region of ``level_sets`` sets of ``level_ways`` entries per tracked slot
  and side; a price goes to set :func:`level_hash` ``(price, level_set_bits)`` of its region. An add
  that would open a new level in a full set is refused (``LEVEL_FULL``, degraded). Because refused
  adds leave no trace, the tables always hold exactly the book's orders and levels.
- **Level cache**: the best ``cache_levels`` levels of every side, kept sorted; see
  :class:`CacheMirror` for its rules. It only decides when a *refill* (a scan of the side's level
  region for the next best levels) happens, which the ``REFILLS`` counter reports.

Hashes. Orders: :func:`fold_hash` XORs the reference's ``bits``-wide chunks together, so index
bit ``i`` is the XOR of reference bits ``i``, ``i + bits``, ``i + 2 bits``... (:func:`fold_taps`
lists them for the gateware); order references are handed out in sequence, which this spreads
evenly. The tag kept beside the entry is ``ref >> order_set_bits``; with the index it gives the
reference back, so no two live orders can be confused. Levels: :func:`level_hash` is the price
modulo ``2**bits - 1``. The prices of one book lie on a tick grid (multiples of 100, or of 1
below $1), and an XOR fold piles such progressions into a few sets; a modulus prime to the tick
sends consecutive ticks to consecutive sets (63 and 127 are prime to 100; the top set of each
region is never used).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["BookGeometry", "CacheMirror", "TableMirror", "fold_hash", "fold_taps", "level_hash"]

REF_BITS = 64
PRICE_BITS = 32


def fold_taps(width: int, bits: int) -> list[list[int]]:
    """For each of ``bits`` index bits, the bits of a ``width``-bit value XORed into it."""
    return [list(range(i, width, bits)) for i in range(bits)]


def fold_hash(value: int, bits: int) -> int:
    """XOR of the ``bits``-wide chunks of ``value`` (a non-negative integer)."""
    mask = (1 << bits) - 1
    index = 0
    while value:
        index ^= value & mask
        value >>= bits
    return index


def level_hash(price: int, bits: int) -> int:
    """The level-table set of ``price`` in a region of ``2**bits`` sets."""
    return price % ((1 << bits) - 1)


def _log2(n: int, what: str) -> int:
    if n < 1 or n & (n - 1):
        raise ValueError(f"{what} must be a power of two, got {n}")
    return n.bit_length() - 1


@dataclass(frozen=True)
class BookGeometry:
    """Sizes of the gateware book's tables (the defaults fit an ECP5-85F).

    Attributes
    ----------
    slots : int
        Tracked instruments.
    order_sets, order_ways : int
        Order table: ``order_sets * order_ways`` live orders at most (default 16,384).
    level_sets, level_ways : int
        Level table, per slot and side: ``(level_sets - 1) * level_ways`` price levels at most
        (default 504 per side; 8,064 in all for 8 slots).
    cache_levels : int
        Levels of each side kept sorted in the cache (``L``).
    depth : int
        Levels of each side published to the host (``K``); the cache is refilled when it holds
        fewer than ``max(depth, 2)`` levels while the side has more.
    """

    slots: int = 8
    order_sets: int = 4096
    order_ways: int = 4
    level_sets: int = 64
    level_ways: int = 8
    cache_levels: int = 16
    depth: int = 5

    def __post_init__(self):
        _log2(self.order_sets, "order_sets")
        _log2(self.level_sets, "level_sets")
        _log2(self.slots, "slots")
        if self.order_sets < 2 or self.level_sets < 4:
            raise ValueError("order_sets must be at least 2 and level_sets at least 4")
        for name in ("order_ways", "level_ways", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.cache_levels <= self.refill_below:
            raise ValueError(
                f"cache_levels ({self.cache_levels}) must exceed the refill threshold "
                f"max(depth, 2) = {self.refill_below}")

    @property
    def order_set_bits(self) -> int:
        return _log2(self.order_sets, "order_sets")

    @property
    def level_set_bits(self) -> int:
        return _log2(self.level_sets, "level_sets")

    @property
    def slot_bits(self) -> int:
        return max(1, _log2(self.slots, "slots"))

    @property
    def refill_below(self) -> int:
        """A side's cache is refilled when a removal leaves it with fewer levels than this."""
        return max(self.depth, 2)

    @property
    def order_capacity(self) -> int:
        return self.order_sets * self.order_ways

    def order_set(self, ref: int) -> int:
        return fold_hash(ref, self.order_set_bits)

    def level_set(self, price: int) -> int:
        return level_hash(price, self.level_set_bits)


class TableMirror:
    """Occupancy of the order and level tables: which adds the gateware has room for."""

    def __init__(self, geometry: BookGeometry):
        self.geometry = geometry
        self._order_sets: dict[int, int] = {}
        self._level_sets: dict[tuple[int, int, int], int] = {}

    def order_set_full(self, ref: int) -> bool:
        return self._order_sets.get(self.geometry.order_set(ref), 0) >= self.geometry.order_ways

    def level_set_full(self, slot: int, side: int, price: int) -> bool:
        key = (slot, side, self.geometry.level_set(price))
        return self._level_sets.get(key, 0) >= self.geometry.level_ways

    def order_added(self, ref: int) -> None:
        index = self.geometry.order_set(ref)
        self._order_sets[index] = self._order_sets.get(index, 0) + 1

    def order_removed(self, ref: int) -> None:
        index = self.geometry.order_set(ref)
        self._order_sets[index] -= 1

    def level_added(self, slot: int, side: int, price: int) -> None:
        key = (slot, side, self.geometry.level_set(price))
        self._level_sets[key] = self._level_sets.get(key, 0) + 1

    def level_removed(self, slot: int, side: int, price: int) -> None:
        key = (slot, side, self.geometry.level_set(price))
        self._level_sets[key] -= 1

    def clear_slot(self, slot: int, refs) -> None:
        """Forget the levels of ``slot`` and the orders ``refs`` (all of that slot's)."""
        for ref in refs:
            self.order_removed(ref)
        for key in [k for k in self._level_sets if k[0] == slot]:
            del self._level_sets[key]


class CacheMirror:
    """The sorted cache of one book side, as far as it decides when a refill happens.

    The cache holds the best ``c <= L`` prices of the side, always exactly (no better level is
    ever missing from it), and a flag ``uncached`` that is set when a level may exist outside it.
    The rules, applied after the book itself has changed:

    - a new or grown level already cached: nothing; one better than the worst cached level, or any
      level when the cache is empty: inserted in order, and if that makes ``L + 1`` the worst
      drops out (``uncached`` set); one worse than every cached level: appended when ``c < L`` and
      ``uncached`` is clear, else it stays outside (``uncached`` set);
    - a cached level that empties is removed; if that leaves ``c < max(K, 2)`` while ``uncached``
      is set, the cache is **refilled**: the levels worse than its worst are scanned and the best
      ``L - c`` of them appended; ``uncached`` is then set only if some were left over. (The flag
      is not cleared when the last uncached level empties, since the cache never sees those
      levels, so a refill may find nothing; that costs time, never correctness.)

    ``prices`` is kept best first (for a bid, the highest price first).
    """

    def __init__(self, side: int, geometry: BookGeometry):
        self.side = side
        self.size = geometry.cache_levels
        self.refill_below = geometry.refill_below
        # Stored ascending in "badness": bids negated so that index 0 is the best.
        self._keys: list[int] = []
        self.uncached = False

    def _key(self, price: int) -> int:
        return -price if self.side == 0 else price

    @property
    def prices(self) -> list[int]:
        return [abs(k) for k in self._keys]

    def clear(self) -> None:
        self._keys.clear()
        self.uncached = False

    def level_added(self, price: int) -> None:
        """``price`` gained shares (a new level or an existing one)."""
        key = self._key(price)
        keys = self._keys
        pos = bisect_left(keys, key)
        if pos < len(keys) and keys[pos] == key:
            return
        if pos < len(keys):
            keys.insert(pos, key)
            if len(keys) > self.size:
                keys.pop()
                self.uncached = True
        elif len(keys) < self.size and not self.uncached:
            keys.append(key)
        else:
            self.uncached = True

    def level_emptied(self, price: int, remaining_prices) -> bool:
        """``price`` lost its last share; returns True when this triggers a refill.

        ``remaining_prices`` (an iterable of every price left on the side) is read only for a
        refill.
        """
        key = self._key(price)
        keys = self._keys
        pos = bisect_left(keys, key)
        if pos == len(keys) or keys[pos] != key:
            return False
        del keys[pos]
        if len(keys) >= self.refill_below or not self.uncached:
            return False
        worst = keys[-1] if keys else None
        candidates = sorted(k for k in map(self._key, remaining_prices)
                            if worst is None or k > worst)
        room = self.size - len(keys)
        keys.extend(candidates[:room])
        self.uncached = len(candidates) > room
        return True

    def check(self, sorted_prices: list[int]) -> None:
        """Assert the cache invariant against the side's prices, best first (for tests)."""
        n = len(self._keys)
        if self.prices != sorted_prices[:n]:
            raise AssertionError(f"cache {self.prices} is not the best of {sorted_prices[:n + 2]}")
        if not self.uncached and len(sorted_prices) != n:
            raise AssertionError("levels outside the cache while its flag is clear")
        if n < self.refill_below and len(sorted_prices) > n:
            raise AssertionError(f"cache of {n} levels left short with more on the side")

