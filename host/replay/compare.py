"""Where the gateware and the model disagree: events (or top-of-book updates) in order, gap
reports, every counter and, through the book, the final books."""

from dataclasses import dataclass, field

from host.replay.book import BOOK_FIELDS
from host.replay.runs import FeedRun

__all__ = ["Comparison", "compare"]


@dataclass
class Comparison:
    """The differences between a model run and a gateware run of the same capture.

    ``mismatches`` counts event positions that differ (a missing or extra event counts once),
    and likewise top-of-book update positions, gap reports, counters, final books (one per
    slot) that differ, and the book's hazard flag if raised; 0 means bit-exact agreement.
    Through the book the gateware's events are not observed: its updates and counters are.
    """

    event_diffs: list[int] = field(default_factory=list)
    # (model, gateware); the gateware's is None when its events were not observed.
    event_count: tuple[int, int | None] = (0, 0)
    gap_diffs: int = 0
    stat_diffs: list[tuple[str, str, int, int]] = field(default_factory=list)
    update_diffs: list[int] = field(default_factory=list)
    update_count: tuple[int, int] = (0, 0)
    book_diffs: list[tuple[dict, dict | None]] = field(default_factory=list)
    hazard: bool = False

    @property
    def mismatches(self) -> int:
        return (len(self.event_diffs) + self.gap_diffs + len(self.stat_diffs) +
                len(self.update_diffs) + len(self.book_diffs) + int(self.hazard))

    def first_differences(self, model: FeedRun, gateware: FeedRun, limit: int = 3,
                          context: int = 2) -> list[dict]:
        """The first ``limit`` differing events or updates with ``context`` around each."""
        if gateware.book is not None:
            what, diffs = "update", self.update_diffs
            ours, theirs = model.book.updates, gateware.book.updates
        else:
            what, diffs, ours, theirs = "event", self.event_diffs, model.events, gateware.events
        out = []
        for index in diffs[:limit]:
            lo = max(0, index - context)
            out.append({
                "what": what,
                "index": index,
                "model": ours[lo:index + context + 1],
                "gateware": theirs[lo:index + context + 1],
                "context_start": lo,
            })
        return out

    def as_json(self, model: FeedRun, gateware: FeedRun) -> dict:
        out = {
            "events": {"model": self.event_count[0], "gateware": self.event_count[1],
                       "differing_positions": len(self.event_diffs)},
            "gaps": self.gap_diffs,
            "counters": [{"stage": s, "counter": c, "model": m, "gateware": g}
                         for s, c, m, g in self.stat_diffs],
        }
        first = self.first_differences(model, gateware)
        if gateware.book is None:
            out["events"]["first"] = first
        else:
            out["top_of_book_updates"] = {
                "model": self.update_count[0], "gateware": self.update_count[1],
                "differing_positions": len(self.update_diffs), "first": first}
            out["final_books"] = [{"model": ours, "gateware": theirs}
                                  for ours, theirs in self.book_diffs]
            out["hazard"] = self.hazard
        return out


def _positions(ours: list[dict], theirs: list[dict]) -> list[int]:
    """Positions where two streams differ (past the shorter one, every position differs)."""
    return [index for index in range(max(len(ours), len(theirs)))
            if (ours[index] if index < len(ours) else None)
            != (theirs[index] if index < len(theirs) else None)]


def compare(model: FeedRun, gateware: FeedRun) -> Comparison:
    result = Comparison()
    if gateware.book is None:
        result.event_count = (len(model.events), len(gateware.events))
        result.event_diffs = _positions(model.events, gateware.events)
    else:
        result.event_count = (len(model.events), None)
        ours, theirs = model.book, gateware.book
        result.update_count = (len(ours.updates), len(theirs.updates))
        result.update_diffs = _positions(ours.updates, theirs.updates)
        for index, book in enumerate(ours.books):
            other = theirs.books[index] if index < len(theirs.books) else None
            if other is None or any(book[name] != other[name] for name in BOOK_FIELDS):
                result.book_diffs.append((book, other))
        result.hazard = theirs.hazard
    gaps = max(len(model.gaps), len(gateware.gaps))
    result.gap_diffs = sum(
        1 for i in range(gaps)
        if (model.gaps[i] if i < len(model.gaps) else None)
        != (gateware.gaps[i] if i < len(gateware.gaps) else None))
    for stage, counters in model.stats.items():
        for name, value in counters.items():
            other = gateware.stats.get(stage, {}).get(name)
            if other != value:
                result.stat_diffs.append((stage, name, value, other))
    return result
