"""Levels of logic between registers in a synthesized ECP5 netlist (Yosys's ``top.json``).

Place and route tells the truth about timing, but the book and the quoter take hours to place
and route, and until they route there is no Fmax at all. How deep their logic is, though, is
known as soon as Yosys has mapped it to LUTs: a design whose cones are 17 LUTs deep will not run
at 125 MHz whatever the router does, and a change that removes three levels from the deepest
cone shows in a minute. ``tickgate synth`` prints these figures beside nextpnr's, including with
``--pack-only``.

Counting rule
-------------
A path starts where a value leaves a register or a pin (a flip-flop's ``Q``, a block RAM's or a
multiplier's outputs: anything that is not combinational logic) and ends at a register's input
(a flip-flop's ``DI``, ``CE`` or ``LSR``; any input of a block RAM or multiplier; a distributed
RAM's write data, address or enable). On the way:

- a ``LUT4`` counts one level, and so does a distributed RAM's read (``TRELLIS_DPR16X4`` from
  ``RAD`` to ``DO``, a LUT reading its contents);
- ``PFUMX`` and ``L6MUX21`` count nothing: they join LUT4s into one LUT5, LUT6 or LUT7;
- a carry cell (``CCU2C``, two bits of an adder or comparison) counts one level where the path
  enters it through a LUT input and :data:`CARRY_STEP` for each cell the carry ripples
  through, so that a 64-bit adder's carry (32 cells) weighs about as much as four LUTs.

The weights are a ranking, not a delay model: routing, which is often half of a path, is not in
the netlist.
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CARRY_STEP", "DeepRegister", "LogicDepth", "read_json"]

#: Levels counted for each carry cell a carry ripples through.
CARRY_STEP = 0.125

# cell type -> (input ports, output ports, levels) of its combinational arcs.
_COMBINATIONAL = {
    "LUT4": (("A", "B", "C", "D"), ("Z",), 1.0),
    "PFUMX": (("ALUT", "BLUT", "C0"), ("Z",), 0.0),
    "L6MUX21": (("D0", "D1", "SD"), ("Z",), 0.0),
    "TRELLIS_DPR16X4": (("RAD",), ("DO",), 1.0),
}
_CARRY_LUT_INPUTS = (("A0", "B0", "C0", "D0"), ("A1", "B1", "C1", "D1"))
# Inputs of these cell types end a path (their clocks aside).
_ENDPOINT_PORTS = {
    "TRELLIS_FF": ("DI", "CE", "LSR"),
    "TRELLIS_DPR16X4": ("DI", "WAD", "WRE"),
}
_SEQUENTIAL_BLOCKS = ("DP16KD", "MULT18X18D", "ALU54B")
_CLOCK_PORT = re.compile(r"^(CLK|WCK)")
# Names Yosys and ABC derive from a cell's ports; the signal's own name is the one without.
_DERIVED = re.compile(r"_(TRELLIS_FF|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|DPR16X4)_|\$|port\$")
_INDEX = re.compile(r"\[\d+\]$")


@dataclass(frozen=True)
class DeepRegister:
    """A register (all bits of one signal, and one kind of input) and its deepest input cone."""

    name: str
    port: str
    levels: float
    bits: int


@dataclass
class LogicDepth:
    """Levels of logic in front of every register input of a netlist.

    ``histogram`` maps whole levels (``floor``) to the number of register input bits whose cone
    is that deep; ``deepest`` lists the registers with the deepest cones, deepest first.
    """

    worst: float
    histogram: dict[int, int]
    deepest: list[DeepRegister] = field(default_factory=list)

    @classmethod
    def from_netlist(cls, netlist: dict, *, top: str = "top", prefix: str = "",
                     show: int = 12) -> "LogicDepth":
        """Analyse a decoded Yosys JSON netlist (module ``top``, flattened, mapped to ECP5).

        ``prefix`` is dropped from register names (the harness's path to the core); ``show``
        registers are listed.

        Raises
        ------
        ValueError
            ``netlist`` has no module ``top``, or it holds no register.
        """
        try:
            module = netlist["modules"][top]
        except (KeyError, TypeError):
            raise ValueError(f"not a Yosys netlist with a module {top!r}") from None
        cells = module.get("cells", {})
        names = _signal_names(module.get("netnames", {}), prefix)

        # bit -> (levels added by the driving cell for each of its inputs)
        drivers: dict[int, list[tuple[int, float]]] = {}
        for cell in cells.values():
            kind, conn = cell["type"], cell["connections"]
            if kind in _COMBINATIONAL:
                ins, outs, weight = _COMBINATIONAL[kind]
                arcs = [(b, weight) for p in ins for b in conn.get(p, []) if isinstance(b, int)]
                for p in outs:
                    for b in conn.get(p, []):
                        if isinstance(b, int):
                            drivers[b] = arcs
            elif kind == "CCU2C":
                lut0 = [(b, 1.0) for p in _CARRY_LUT_INPUTS[0] for b in conn[p]
                        if isinstance(b, int)]
                lut1 = [(b, 1.0) for p in _CARRY_LUT_INPUTS[1] for b in conn[p]
                        if isinstance(b, int)]
                cin = [b for b in conn["CIN"] if isinstance(b, int)]
                for b in conn["S0"]:
                    if isinstance(b, int):
                        drivers[b] = lut0 + [(c, 0.0) for c in cin]
                for b in conn["S1"]:
                    if isinstance(b, int):
                        drivers[b] = lut0 + lut1 + [(c, 0.0) for c in cin]
                for b in conn["COUT"]:
                    if isinstance(b, int):
                        drivers[b] = lut0 + lut1 + [(c, CARRY_STEP) for c in cin]
        depth = _depths(drivers)

        per_register: dict[tuple[str, str], list[float]] = defaultdict(list)
        histogram: dict[int, int] = defaultdict(int)
        for cell_name, cell in cells.items():
            kind, conn = cell["type"], cell["connections"]
            if kind in _ENDPOINT_PORTS:
                ports = _ENDPOINT_PORTS[kind]
            elif kind in _SEQUENTIAL_BLOCKS:
                ports = [p for p, d in cell["port_directions"].items()
                         if d == "input" and not _CLOCK_PORT.match(p)]
            else:
                continue
            if kind == "TRELLIS_FF":
                q = conn["Q"][0]
                owner = names.get(q, cell_name)
            else:
                owner = _INDEX.sub("", cell_name).removeprefix(prefix)
            for port in ports:
                for b in conn.get(port, []):
                    if not isinstance(b, int):
                        continue
                    levels = depth.get(b, 0.0)
                    histogram[int(levels)] += 1
                    per_register[(owner, port)].append(levels)
        if not per_register:
            raise ValueError("the netlist holds no register")
        deepest = sorted((DeepRegister(name, port, max(v), len(v))
                          for (name, port), v in per_register.items()),
                         key=lambda r: (-r.levels, r.name, r.port))
        return cls(worst=deepest[0].levels, histogram=dict(sorted(histogram.items())),
                   deepest=deepest[:show])

    @classmethod
    def from_file(cls, path: Path | str, **kwargs) -> "LogicDepth":
        """Analyse the netlist Yosys wrote to ``path`` (``write_json``)."""
        return cls.from_netlist(read_json(path), **kwargs)

    def to_json(self) -> dict:
        return {
            "worst_levels": round(self.worst, 3),
            "carry_step": CARRY_STEP,
            "histogram": {str(k): v for k, v in self.histogram.items()},
            "deepest": [{"register": r.name, "port": r.port, "levels": round(r.levels, 3),
                         "bits": r.bits} for r in self.deepest],
        }

    def format_table(self) -> str:
        lines = [f"logic levels, register to register (a LUT 1, a rippled carry cell "
                 f"{CARRY_STEP:g}): worst {self.worst:.1f}",
                 "levels   register input bits"]
        lines.extend(f"{k:6}   {v:10}" for k, v in sorted(self.histogram.items(), reverse=True)
                     if k > 0)
        lines.append("deepest input cones:")
        lines.extend(f"  {r.levels:5.1f}  {r.name}.{r.port} ({r.bits} bits)"
                     for r in self.deepest)
        return "\n".join(lines)


def read_json(path: Path | str):
    """The JSON a tool wrote to ``path``; ``ValueError`` if it is not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None


def _signal_names(netnames: dict, prefix: str) -> dict[int, str]:
    """bit -> the name of the signal it belongs to: the shortest underived name, one inside
    ``prefix`` first (a core's register rather than the harness's alias of its port), with
    ``prefix`` removed."""
    best: dict[int, tuple] = {}
    for name, net in netnames.items():
        rank = (bool(_DERIVED.search(name)), not name.startswith(prefix), len(name))
        for b in net.get("bits", []):
            if isinstance(b, int) and (b not in best or rank < best[b][0]):
                best[b] = (rank, name)
    return {b: name.removeprefix(prefix) for b, (_, name) in best.items()}


def _depths(drivers: dict[int, list[tuple[int, float]]]) -> dict[int, float]:
    """The deepest path into every driven bit (iterative: carry chains are thousands deep)."""
    depth: dict[int, float] = {}
    visiting: set[int] = set()
    for root in drivers:
        stack = [(root, False)]
        while stack:
            bit, ready = stack.pop()
            if bit in depth:
                continue
            arcs = drivers.get(bit)
            if arcs is None:
                depth[bit] = 0.0
            elif ready:
                visiting.discard(bit)
                # An input still being visited closes a combinational loop: it counts 0.
                depth[bit] = max((depth.get(b, 0.0) + w for b, w in arcs), default=0.0)
            elif bit not in visiting:
                visiting.add(bit)
                stack.append((bit, True))
                stack.extend((b, False) for b, _ in arcs if b not in depth and b not in visiting)
    return depth
