"""Where the gateware and the model disagree: events in order, gap reports and every counter."""

from dataclasses import dataclass, field

from host.replay.runs import FeedRun

__all__ = ["Comparison", "compare"]


@dataclass
class Comparison:
    """The differences between a model run and a gateware run of the same capture.

    ``mismatches`` counts event positions that differ (a missing or extra event counts once),
    gap reports that differ, and counters that differ; 0 means bit-exact agreement.
    """

    event_diffs: list[int] = field(default_factory=list)
    event_count: tuple[int, int] = (0, 0)
    gap_diffs: int = 0
    stat_diffs: list[tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return len(self.event_diffs) + self.gap_diffs + len(self.stat_diffs)

    def first_differences(self, model: FeedRun, gateware: FeedRun, limit: int = 3,
                          context: int = 2) -> list[dict]:
        """The first ``limit`` differing events with ``context`` events around each."""
        out = []
        for index in self.event_diffs[:limit]:
            lo = max(0, index - context)
            out.append({
                "index": index,
                "model": model.events[lo:index + context + 1],
                "gateware": gateware.events[lo:index + context + 1],
                "context_start": lo,
            })
        return out

    def as_json(self, model: FeedRun, gateware: FeedRun) -> dict:
        return {
            "events": {"model": self.event_count[0], "gateware": self.event_count[1],
                       "differing_positions": len(self.event_diffs),
                       "first": self.first_differences(model, gateware)},
            "gaps": self.gap_diffs,
            "counters": [{"stage": s, "counter": c, "model": m, "gateware": g}
                         for s, c, m, g in self.stat_diffs],
        }


def compare(model: FeedRun, gateware: FeedRun) -> Comparison:
    result = Comparison(event_count=(len(model.events), len(gateware.events)))
    longest = max(len(model.events), len(gateware.events))
    for index in range(longest):
        ours = model.events[index] if index < len(model.events) else None
        theirs = gateware.events[index] if index < len(gateware.events) else None
        if ours != theirs:
            result.event_diffs.append(index)
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
