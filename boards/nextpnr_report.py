"""nextpnr's JSON report (``--report FILE``): Fmax per clock, utilisation, critical paths.

The report has three top-level keys: ``fmax`` maps a clock net to ``{"achieved", "constraint"}``
in MHz (post-route figures); ``utilization`` maps a bel type to ``{"used", "available"}``;
``critical_paths`` lists one path per clock pair, each a list of ``clk-to-q``/``source``,
``routing``, ``logic`` and ``setup`` segments with a ``delay`` in ns.

On ECP5 a ``TRELLIS_COMB`` is one LUT4 site (a CCU2C carry cell takes two), a ``TRELLIS_FF`` one
flip-flop, a ``TRELLIS_RAMW`` the write port of a distributed-RAM slice, a ``DP16KD`` one 18 kbit
block RAM.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from boards.logic_depth import LogicDepth, read_json

__all__ = ["ClockFmax", "CriticalPath", "Resource", "SynthReport"]

# nextpnr names promoted clock nets "$glbnet$<net>"; users know the net.
_GLOBAL_PREFIX = "$glbnet$"

# Shown first and always, in this order; other bel types are shown only when used.
_MAIN_RESOURCES = {
    "TRELLIS_COMB": "LUT4",
    "TRELLIS_FF": "FF",
    "TRELLIS_RAMW": "LUTRAM",
    "DP16KD": "BRAM 18k",
    "MULT18X18D": "DSP 18x18",
}


def _clock_name(net: str) -> str:
    return net.removeprefix(_GLOBAL_PREFIX)


@dataclass(frozen=True)
class ClockFmax:
    """Post-route maximum frequency of one clock, and the target it was placed for (MHz)."""

    name: str
    achieved_mhz: float
    constraint_mhz: float | None

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` for an unconstrained clock."""
        if self.constraint_mhz is None:
            return None
        return self.achieved_mhz >= self.constraint_mhz


@dataclass(frozen=True)
class Resource:
    """Usage of one bel type."""

    used: int
    available: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.available if self.available else 0.0


@dataclass(frozen=True)
class CriticalPath:
    """The worst path between two clock edges (``<async>`` for a pin).

    ``start``/``end`` are ``cell.port`` of the first and last segment, ``source_net`` the net
    leaving the start cell (usually the name of the launching signal); delays are in ns;
    ``logic_levels`` counts ``logic`` segments (a carry chain counts each of its cells).
    """

    launch: str
    capture: str
    start: str
    end: str
    source_net: str | None
    delay_ns: float
    logic_ns: float
    routing_ns: float
    logic_levels: int


def _expect(mapping, key, what, kind=dict):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"not a nextpnr report: no {what!r}")
    value = mapping[key]
    if not isinstance(value, kind):
        raise ValueError(f"not a nextpnr report: {what!r} is {type(value).__name__}")
    return value


def _number(entry, key, what) -> float:
    value = _expect(entry, key, what, kind=(int, float))
    if isinstance(value, bool):
        raise ValueError(f"not a nextpnr report: {what!r} is a bool")
    return float(value)


def _parse_path(entry) -> CriticalPath:
    segments = _expect(entry, "path", "critical_paths[].path", kind=list)
    if not segments:
        raise ValueError("not a nextpnr report: empty critical path")
    delays = {"logic": 0.0, "routing": 0.0}
    total = 0.0
    levels = 0
    for segment in segments:
        delay = _number(segment, "delay", "critical_paths[].path[].delay")
        kind = _expect(segment, "type", "critical_paths[].path[].type", kind=str)
        total += delay
        # clk-to-q, source and setup are cell delays: count them as logic.
        delays["routing" if kind == "routing" else "logic"] += delay
        levels += kind == "logic"
    first = _expect(segments[0], "from", "critical_paths[].path[].from")
    last = _expect(segments[-1], "to", "critical_paths[].path[].to")
    source_net = next((s.get("net") for s in segments if s.get("type") == "routing"), None)
    return CriticalPath(
        launch=_clock_name(str(entry.get("from", "?")).removeprefix("posedge ")),
        capture=_clock_name(str(entry.get("to", "?")).removeprefix("posedge ")),
        start=f"{first.get('cell', '?')}.{first.get('port', '?')}",
        end=f"{last.get('cell', '?')}.{last.get('port', '?')}",
        source_net=source_net,
        delay_ns=total,
        logic_ns=delays["logic"],
        routing_ns=delays["routing"],
        logic_levels=levels,
    )


@dataclass
class SynthReport:
    """What a place-and-route run achieved.

    ``core_clock`` names the clock in ``clocks`` that the build measured (set by the board build);
    ``notes`` carries board-specific facts shown with the figures (harness overhead, PLL);
    ``depth`` the levels of logic of Yosys's netlist (:mod:`boards.logic_depth`), when the build
    analysed it.
    """

    clocks: dict[str, ClockFmax]
    utilisation: dict[str, Resource]
    critical_paths: list[CriticalPath] = field(default_factory=list)
    core_clock: str | None = None
    notes: dict[str, object] = field(default_factory=dict)
    depth: LogicDepth | None = None

    @classmethod
    def from_json(cls, report: dict) -> "SynthReport":
        """Parse a decoded nextpnr report.

        Raises
        ------
        ValueError
            ``report`` lacks the ``fmax`` or ``utilization`` sections or has malformed entries.
        """
        clocks = {}
        for net, entry in _expect(report, "fmax", "fmax").items():
            constraint = entry.get("constraint") if isinstance(entry, dict) else None
            name = _clock_name(net)
            clocks[name] = ClockFmax(
                name=name,
                achieved_mhz=_number(entry, "achieved", f"fmax.{net}.achieved"),
                constraint_mhz=None if constraint is None else float(constraint),
            )
        utilisation = {
            bel: Resource(int(_number(entry, "used", f"utilization.{bel}.used")),
                          int(_number(entry, "available", f"utilization.{bel}.available")))
            for bel, entry in _expect(report, "utilization", "utilization").items()
        }
        paths = [_parse_path(p) for p in report.get("critical_paths", [])]
        return cls(clocks=clocks, utilisation=utilisation, critical_paths=paths)

    @classmethod
    def from_file(cls, path: Path | str) -> "SynthReport":
        """Parse the report nextpnr wrote to ``path``; ``ValueError`` if it is not one."""
        return cls.from_json(read_json(path))

    def find_clock(self, target_mhz: float) -> str:
        """The one clock constrained to ``target_mhz`` (0.1 % tolerance).

        nextpnr names a clock after whichever alias of the net survived synthesis, so the board
        build finds its core clock by the frequency the PLL was set to.

        Raises
        ------
        LookupError
            No clock, or more than one, has that constraint.
        """
        matches = [c.name for c in self.clocks.values()
                   if c.constraint_mhz is not None
                   and abs(c.constraint_mhz - target_mhz) <= 1e-3 * target_mhz]
        if len(matches) != 1:
            found = ", ".join(f"{c.name} @ {c.constraint_mhz}" for c in self.clocks.values())
            raise LookupError(f"expected one clock constrained to {target_mhz} MHz, "
                              f"found: {found or 'none'}")
        return matches[0]

    @property
    def fmax_mhz(self) -> float:
        """Post-route Fmax of the core clock."""
        if self.core_clock is None:
            raise LookupError("the build did not say which clock is the core clock")
        return self.clocks[self.core_clock].achieved_mhz

    def to_json(self) -> dict:
        """A plain-JSON summary: clocks, used resources, critical paths and notes."""
        return {
            "core_clock": self.core_clock,
            "fmax_mhz": self.fmax_mhz if self.core_clock is not None else None,
            "clocks": {name: {**asdict(c), "met": c.met} for name, c in self.clocks.items()},
            "utilisation": {bel: {**asdict(r), "percent": round(r.percent, 2)}
                            for bel, r in self.utilisation.items()
                            if r.used or bel in _MAIN_RESOURCES},
            "critical_paths": [asdict(p) for p in self.critical_paths],
            "logic_depth": None if self.depth is None else self.depth.to_json(),
            "notes": self.notes,
        }

    def format_table(self) -> str:
        """Fmax per clock, utilisation, the core clock's critical path and the levels of logic
        as plain text."""
        if self.clocks:
            lines = ["clock                          Fmax (MHz)  target (MHz)  result"]
        else:
            lines = ["clock: none timed (packed only, not placed or routed)"]
        for clock in self.clocks.values():
            marker = " *" if clock.name == self.core_clock else ""
            target = "-" if clock.constraint_mhz is None else f"{clock.constraint_mhz:.2f}"
            result = {True: "PASS", False: "FAIL", None: "-"}[clock.met]
            lines.append(f"{clock.name + marker:30} {clock.achieved_mhz:10.2f}  {target:>12}  "
                         f"{result}")
        lines.append("")
        lines.append("resource                 used   available      %")
        shown = [bel for bel in _MAIN_RESOURCES if bel in self.utilisation]
        shown += sorted(bel for bel, r in self.utilisation.items()
                        if r.used and bel not in _MAIN_RESOURCES)
        for bel in shown:
            res = self.utilisation[bel]
            label = f"{_MAIN_RESOURCES[bel]} ({bel})" if bel in _MAIN_RESOURCES else bel
            lines.append(f"{label:22} {res.used:6}  {res.available:10}  {res.percent:5.1f}")
        for path in self.critical_paths:
            if path.launch == path.capture == self.core_clock:
                lines.append("")
                lines.append(f"critical path: {path.delay_ns:.2f} ns ({path.logic_ns:.2f} logic, "
                             f"{path.routing_ns:.2f} routing, {path.logic_levels} logic "
                             f"segments)")
                lines.append(f"  from {path.source_net or path.start}")
                lines.append(f"  to   {path.end}")
        if self.depth is not None:
            lines.append("")
            lines.append(self.depth.format_table())
        if self.notes:
            lines.append("")
            lines.extend(f"{key}: {value}" for key, value in self.notes.items())
        return "\n".join(lines)
