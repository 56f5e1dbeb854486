"""Gateware layouts of the order book stage; what the fields mean is in ``sim/book.py``.

Prices are ITCH ``Price(4)`` values (unsigned 32-bit, 4 implied decimals), shares are unsigned;
an empty side is price 0, shares 0. Nothing here is a wire format: these are the book's own
stream payloads and table entries, and bit order inside them is Amaranth's (first field in the
least significant bits).
"""

from amaranth.lib import data, enum, stream

from sim.book import LEVEL_SHARES_BITS
from sim.book_mirror import PRICE_BITS, REF_BITS

__all__ = [
    "BookOpKind",
    "LevelLayout",
    "SlotConfigLayout",
    "book_op_layout",
    "book_op_stream",
    "depth_query_layout",
    "level_entry_layout",
    "order_entry_layout",
    "slot_status_layout",
    "top_update_layout",
    "top_update_stream",
]

LOCATE_BITS = 16
SEQ_BITS = 64
TIMESTAMP_BITS = 48
SHARES_BITS = 32
SYMBOL_BITS = 64


class BookOpKind(enum.Enum, shape=3):
    """What the instrument filter hands to the book's pipeline (one per tracked event)."""

    ADD = 0        # A, F
    EXECUTE = 1    # E, C (C's price is a trade price and is not carried)
    CANCEL = 2     # X
    DELETE = 3     # D
    REPLACE = 4    # U: delete order_ref, then add new_ref (an internal second op)
    HALT = 5       # H: ``halt`` is the new halted flag
    CLEAR = 6      # S with a clearing event code: every book is emptied
    FLAGS = 7      # internal: a slot's flags changed outside the event stream


def book_op_layout(slot_bits: int) -> data.StructLayout:
    return data.StructLayout({
        "kind": BookOpKind,
        "slot": slot_bits,
        "order_ref": REF_BITS,
        "new_ref": REF_BITS,
        "side": 1,
        "shares": SHARES_BITS,
        "price": PRICE_BITS,
        "halt": 1,
        "seq": SEQ_BITS,
        "timestamp": TIMESTAMP_BITS,
    })


def book_op_stream(slot_bits: int) -> stream.Signature:
    return stream.Signature(book_op_layout(slot_bits))


# One price level: the cache's entries and the host's depth read-out.
LevelLayout = data.StructLayout({"price": PRICE_BITS, "shares": LEVEL_SHARES_BITS})


def top_update_layout(slot_bits: int) -> data.StructLayout:
    """A top-of-book update; field names and values are those of ``sim.book.TopUpdate``."""
    return data.StructLayout({
        "slot": slot_bits,
        "locate": LOCATE_BITS,
        "bid_price": PRICE_BITS,
        "bid_shares": LEVEL_SHARES_BITS,
        "ask_price": PRICE_BITS,
        "ask_shares": LEVEL_SHARES_BITS,
        "seq": SEQ_BITS,
        "timestamp": TIMESTAMP_BITS,
        "halted": 1,
        "degraded": 1,
    })


def top_update_stream(slot_bits: int) -> stream.Signature:
    return stream.Signature(top_update_layout(slot_bits))


# Host configuration of one slot: track stock locate ``locate``, or (``by_symbol``) whatever
# locate the stock directory message for ``symbol`` (``sim.itch_event.symbol_int``) announces.
SlotConfigLayout = data.StructLayout({
    "enable": 1,
    "by_symbol": 1,
    "locate": LOCATE_BITS,
    "symbol": SYMBOL_BITS,
})


def slot_status_layout() -> data.StructLayout:
    """What the host reads of one slot: its binding, flags and top of book."""
    return data.StructLayout({
        "bound": 1,
        "locate": LOCATE_BITS,
        "halted": 1,
        "degraded": 1,
        "bid_price": PRICE_BITS,
        "bid_shares": LEVEL_SHARES_BITS,
        "ask_price": PRICE_BITS,
        "ask_shares": LEVEL_SHARES_BITS,
    })


def depth_query_layout(slot_bits: int, level_bits: int) -> data.StructLayout:
    return data.StructLayout({"slot": slot_bits, "side": 1, "level": level_bits})


def order_entry_layout(tag_bits: int, slot_bits: int, lset_bits: int) -> data.StructLayout:
    """An order-table entry; ``tag`` is ``order_ref >> order_set_bits`` (see sim.book_mirror),
    ``lset`` the level-table set of its price (kept so that finding the level needs no hash)."""
    return data.StructLayout({
        "valid": 1,
        "tag": tag_bits,
        "slot": slot_bits,
        "side": 1,
        "price": PRICE_BITS,
        "shares": SHARES_BITS,
        "lset": lset_bits,
    })


def level_entry_layout() -> data.StructLayout:
    """A level-table entry (the slot and side are the region it lives in)."""
    return data.StructLayout({
        "valid": 1,
        "price": PRICE_BITS,
        "shares": LEVEL_SHARES_BITS,
    })
