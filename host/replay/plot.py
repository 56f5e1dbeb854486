"""The picture of a loop replay: per instrument, the book's best bid and ask, our quotes, our
fills, and the position, over the run's cycles (one PNG, one row of two panels per instrument).

Our quotes are the best price of our live orders on each side, as sent
(:mod:`sim.our_quotes`). When the gateware ran, its orders are drawn over the model's (they
coincide when ``mismatches`` is 0) and the first differing order is marked.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")     # files only: no display on a build machine

import matplotlib.pyplot as plt

from host.replay.loop import LoopReplay
from sim.frames import book as book_frame
from sim.our_quotes import quote_rows

__all__ = ["plot_loop"]

_DOLLARS = 1e-4     # ITCH price units


def _our_best(rows: list[dict], slot: int) -> tuple[list[int], list[float], list[float]]:
    """Step series of our best live bid and ask (NaN when none) after each order of ``slot``."""
    quotes = [q for q in quote_rows("", rows) if q["slot"] == slot]
    nan = float("nan")
    return ([q["time"] for q in quotes],
            [q["bid_price"] * _DOLLARS if q["bid_orders"] else nan for q in quotes],
            [q["ask_price"] * _DOLLARS if q["ask_orders"] else nan for q in quotes])


def plot_loop(replay: LoopReplay, path: str | Path) -> Path:
    """Draw ``replay`` into the PNG ``path``; returns the path."""
    path = Path(path)
    symbols = [inst.symbol for inst in replay.config.instruments]
    tops = book_frame(replay.feed, symbols)
    model = replay.summaries["model"]
    gateware = replay.summaries.get("gateware")
    fig, axes = plt.subplots(len(symbols), 2, figsize=(14, 3.6 * len(symbols)),
                             squeeze=False, gridspec_kw={"width_ratios": [3, 1]})
    for slot, symbol in enumerate(symbols):
        ax, pos_ax = axes[slot]
        top = tops[tops["slot"] == slot]
        bid = top["bid_price"].where(top["bid_price"] > 0) * _DOLLARS
        ask = top["ask_price"].where(top["ask_price"] > 0) * _DOLLARS
        ax.step(top["time"], bid, where="post", color="tab:green", lw=0.8, label="best bid")
        ax.step(top["time"], ask, where="post", color="tab:red", lw=0.8, label="best ask")
        times, ours_bid, ours_ask = _our_best(model.orders, slot)
        ax.step(times, ours_bid, where="post", color="darkgreen", lw=1.6, ls="--",
                label="our bid (model)")
        ax.step(times, ours_ask, where="post", color="darkred", lw=1.6, ls="--",
                label="our ask (model)")
        if gateware is not None:
            g_times, g_bid, g_ask = _our_best(gateware.orders, slot)
            ax.plot(g_times, g_bid, "x", color="darkgreen", ms=4, label="gateware orders")
            ax.plot(g_times, g_ask, "x", color="darkred", ms=4)
        fills = [f for f in replay.model.fills if f.slot == slot]
        for side, marker, color in (("B", "^", "tab:blue"), ("S", "v", "tab:orange")):
            mine = [f for f in fills if f.side.name[0] == side]
            ax.scatter([f.time for f in mine], [f.price * _DOLLARS for f in mine],
                       marker=marker, color=color, s=36, zorder=5,
                       label=f"fill ({'buy' if side == 'B' else 'sell'})")
        first = next((d for d in replay.differences if d["slot"] == slot), None)
        if first is not None:
            ax.axvline(first["time"], color="magenta", lw=1, label="first mismatch")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.set_title(f"{symbol}: book and quotes")
        ax.set_xlabel("cycle")
        ax.set_ylabel("price ($)")
        ax.legend(loc="upper left", fontsize=7, ncol=2)
        history = [r for r in replay.model.history if r.slot == slot]
        end = max([1, *(r.time for r in history)]
                  + ([replay.feed[-1][0]] if replay.feed else []))
        shares = [0] + [r.shares for r in history]
        pos_ax.step([0] + [r.time for r in history] + [end], [*shares, shares[-1]],
                    where="post", color="black")
        pos_ax.set_title(f"{symbol}: position")
        pos_ax.set_xlabel("cycle")
        pos_ax.set_ylabel("shares")
        pos_ax.set_xlim(0, end)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
