"""The register map as the host sees it, derived from the gateware's declaration.

Nothing here lists a register: :data:`REGMAP` *is* :data:`hdl.csr.map.REGISTER_MAP`. This module
adds what a person at a terminal needs on top: selecting registers by name or pattern, reading
values typed as text (``02:00:00:00:00:01``, ``AAPL``, ``MICROPRICE``, ``0x10``) and showing
values with their unit.
"""

import difflib
import ipaddress
import re

from hdl.csr.map import MAGIC, MAP_VERSION, N_INSTRUMENTS, REGISTER_MAP
from hdl.csr.reg import Access, Fmt, Location, RangeError, RegisterMap, to_python, to_raw

__all__ = [
    "MAGIC",
    "MAP_VERSION",
    "N_INSTRUMENTS",
    "REGMAP",
    "Access",
    "Location",
    "RangeError",
    "format_value",
    "lookup",
    "parse_value",
    "select",
    "writable",
]

REGMAP: RegisterMap = REGISTER_MAP


def lookup(path: str, regmap: RegisterMap = REGMAP) -> Location:
    """The register ``path`` (``block.reg`` or ``block[i].reg``).

    Raises
    ------
    KeyError
        No such register; the message suggests near names.
    """
    if path in regmap:
        return regmap[path]
    near = difflib.get_close_matches(path, [loc.path for loc in regmap], n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise KeyError(f"no register {path!r}{hint}")


def select(pattern: str, regmap: RegisterMap = REGMAP) -> list[Location]:
    """Registers matching ``pattern``, in address order.

    ``pattern`` is a register path, a block or block element (``ctrl``, ``quote[1]``: all of its
    registers), or a shell-style pattern (``*_stats.*``, ``quote[*].size``).

    Raises
    ------
    KeyError
        Nothing matches.
    """
    if pattern in regmap:
        return [regmap[pattern]]
    prefix = pattern + "."
    found = [loc for loc in regmap
             if loc.path.startswith(prefix) or (loc.index is not None
                                                 and loc.block.name == pattern)]
    if not found:
        # Shell-style: ``*`` and ``?`` are wildcards, brackets are literal (``quote[*]``).
        regex = re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))
        found = [loc for loc in regmap if regex.fullmatch(loc.path)]
    if not found:
        lookup(pattern, regmap)  # raises with suggestions
    return found


def parse_value(loc: Location, text) -> int:
    """The register integer for ``text`` (or a TOML value: int, bool, str), range-checked.

    Raises
    ------
    RangeError
        Unreadable or out of range; the message names the register, the value and the range.
    """
    return to_raw(loc.reg, text, loc.path)


def format_value(loc: Location, raw: int, *, unit: bool = True) -> str:
    """``raw`` shown in the register's format, with its unit."""
    reg = loc.reg
    fmt = reg.fmt
    if fmt is Fmt.HEX:
        text = f"0x{raw:0{(reg.width + 3) // 4}X}"
    elif fmt is Fmt.BOOL:
        text = "yes" if raw else "no"
    elif fmt is Fmt.ENUM:
        value = to_python(reg, raw)
        text = value.name if hasattr(value, "name") else f"{raw} (invalid)"
    elif fmt is Fmt.SYMBOL:
        text = repr(to_python(reg, raw)) if raw else "(unused)"
    elif fmt is Fmt.MAC:
        text = ":".join(f"{b:02x}" for b in raw.to_bytes(6, "big"))
    elif fmt is Fmt.IPV4:
        text = str(ipaddress.IPv4Address(raw))
    elif fmt is Fmt.TEXT:
        text = repr(raw.to_bytes(reg.width // 8, "big").decode("ascii", "replace"))
    else:
        text = str(raw)
    if unit and reg.unit and fmt in (Fmt.INT, Fmt.HEX):
        text += f" {reg.unit}"
    return text


def writable(loc: Location) -> bool:
    """The host may write the register (RW or W1P)."""
    return loc.reg.access is not Access.RO
