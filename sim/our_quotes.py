"""Our quotes over a run: after each order we send, the best price of our live orders on each
side of its instrument, the shares resting there and how many orders we have per side.

"Live" is as sent: an Enter or Replace moves a quote when it leaves our order port, a Cancel
takes it away (or, with a quantity, cuts it to that size). A fill does not: the quoter moves a
filled quote on the exchange's answer, with an order of its own. Prices in ITCH units (1e-4 $);
an empty side reads price 0 and 0 shares, as in the top-of-book table.

Used by :func:`sim.frames.quotes` (the model's run) and by the replay's tables and plot (both
runs).
"""

from __future__ import annotations

__all__ = ["QUOTE_COLUMNS", "quote_rows"]

#: The fields of one quote row (``run``: model or gateware; ``order``: the index of the order
#: after which the quotes stand; ``time``: its cycle).
QUOTE_COLUMNS = ("run", "order", "time", "slot", "symbol", "bid_price", "bid_shares",
                 "bid_orders", "ask_price", "ask_shares", "ask_orders")


def quote_rows(run: str, orders: list[dict]) -> list[dict]:
    """One row per order in ``orders``, dicts with the keys ``index``, ``time``, ``kind``
    (``enter``, ``replace`` or ``cancel``), ``slot``, ``symbol``, ``user_ref``, ``orig_ref``
    (a Replace's original UserRefNum), ``side`` (``B`` or ``S``, on an Enter), ``quantity``
    and ``price`` (the replay's order rows are such dicts): our quotes on that order's
    instrument once it is sent, :data:`QUOTE_COLUMNS` with ``run`` set to ``run``."""
    # Per instrument slot: UserRefNum -> (side, price, shares) of the orders live as sent.
    live: dict[int, dict[int, tuple[str, int, int]]] = {}
    out = []
    for row in orders:
        mine = live.setdefault(row["slot"], {})
        if row["kind"] == "enter":
            mine[row["user_ref"]] = (row["side"], row["price"], row["quantity"])
        elif row["kind"] == "replace":
            side = mine.pop(row["orig_ref"], (None,))[0]
            if side is not None and row["quantity"] > 0:
                mine[row["user_ref"]] = (side, row["price"], row["quantity"])
        elif row["user_ref"] in mine and row["quantity"] > 0:    # a Cancel down to a size
            side, price, _ = mine[row["user_ref"]]
            mine[row["user_ref"]] = (side, price, row["quantity"])
        else:
            mine.pop(row["user_ref"], None)
        sides = {}
        for side, best in (("B", max), ("S", min)):
            prices = [price for s, price, _ in mine.values() if s == side]
            top = best(prices) if prices else 0
            shares = sum(q for s, price, q in mine.values() if s == side and price == top)
            sides[side] = (top, shares, len(prices))
        out.append({"run": run, "order": row["index"], "time": row["time"],
                    "slot": row["slot"], "symbol": row["symbol"],
                    "bid_price": sides["B"][0], "bid_shares": sides["B"][1],
                    "bid_orders": sides["B"][2], "ask_price": sides["S"][0],
                    "ask_shares": sides["S"][1], "ask_orders": sides["S"][2]})
    return out
