"""Register declaration primitives and the builder that assigns addresses.

Plain Python (no Amaranth import): the host, the document generator and the reference model read
the same declaration as the gateware bank, so nothing about a register is ever typed twice.

A register holds one typed value (:class:`Reg`): a name, a width, an access mode, a reset value,
an allowed range, a unit and a description. Registers are grouped in blocks (:class:`Block`); a
block may be an array of identical elements (one per instrument). :func:`build_map` lays the blocks
out in declaration order and returns a :class:`RegisterMap`, the one table every product uses.

Addressing
----------
Addresses count 32-bit words. A value wider than 32 bits takes consecutive words, least
significant word first (word 0 holds bits 31..0). Each block starts on a multiple of
:data:`BLOCK_ALIGN` words; each element of an array block occupies a power-of-two number of words
(at least the block's ``reserve``), so instrument ``i``'s copy of a register is at
``base + i * stride + offset``.
"""

import re
import typing
import zlib
from dataclasses import dataclass, field
from enum import Enum, IntEnum

__all__ = [
    "BLOCK_ALIGN",
    "WORD_BITS",
    "Access",
    "Block",
    "Fmt",
    "Location",
    "Param",
    "RangeError",
    "Reg",
    "RegisterMap",
    "build_map",
    "dataclass_values",
    "from_values",
    "parameters",
    "to_python",
    "to_raw",
]

WORD_BITS = 32
#: Every block starts on a multiple of this many words, so adding a register to one block moves
#: no other block's addresses (as long as the block still fits).
BLOCK_ALIGN = 0x100

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Access(Enum):
    """How the host and the gateware share a register.

    RW
        The host writes, the gateware uses the value. Reads return the value in force (for a
        staged register: the value applied by the last commit, not the pending one).
    RO
        The gateware drives the value, the host reads it. A value wider than one word is read
        atomically: reading word 0 captures the whole value, the other words return the capture.
    W1P
        Write 1 to pulse: a write of 1 raises the gateware's strobe for one cycle, the cycle of
        the write, so its effect lands at the same clock edge as an RW write's; a write of 0
        does nothing. Reads return 0.
    """

    RW = "rw"
    RO = "ro"
    W1P = "w1p"


class Fmt(Enum):
    """How the host shows and parses a value; the register itself is always an integer."""

    INT = "int"
    HEX = "hex"
    BOOL = "bool"
    ENUM = "enum"
    #: 8-character ITCH stock symbol, first character in bits 7..0, space padded.
    SYMBOL = "symbol"
    #: Ethernet MAC address, first byte on the wire in bits 47..40 (``02:00:00:00:00:01``).
    MAC = "mac"
    #: IPv4 address, first byte on the wire in bits 31..24 (``192.168.0.1``).
    IPV4 = "ipv4"
    #: ASCII text, first character in the most significant byte (MoldUDP64 session).
    TEXT = "text"


class RangeError(ValueError):
    """A value outside a register's allowed range; the message names field, value and range."""


@dataclass(frozen=True)
class Reg:
    """One register: a typed value of up to 128 bits.

    Parameters
    ----------
    name : str
        Lower-case identifier, unique within its block.
    width : int
        Bits, 1..128. More than 32 bits take several words, least significant first.
    access : Access
    doc : str
        One sentence on what the value means (and what 0 means where that matters).
    reset : int
        Value after reset (and the Python default of a parameter dataclass field).
    min, max : int, optional
        Allowed range, inclusive; defaults to everything the width holds. The host refuses values
        outside it before writing, and the bank refuses them with a ``RANGE`` error. Registers
        wider than a word must allow their whole width (their words are written one at a time).
    signed : bool
        Two's complement; a register narrower than a word reads sign-extended.
    unit : str
        Unit of the integer, e.g. ``"ticks"``, ``"cycles"``, ``"shares"``, ``"price (1e-4 $)"``.
    enum : IntEnum subclass, optional
        The value names, for ``Fmt.ENUM``.
    fmt : Fmt
        Presentation on the host. Defaults to ``ENUM`` when ``enum`` is given, else ``INT``.
    staged : bool
        RW only: writes go to a shadow copy, and every staged register is applied in the same
        cycle by a write to the map's commit register.
    """

    name: str
    width: int
    access: Access
    doc: str
    reset: int = 0
    min: int | None = None
    max: int | None = None
    signed: bool = False
    unit: str = ""
    enum: type[IntEnum] | None = None
    fmt: Fmt | None = None
    staged: bool = False

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError(f"register name {self.name!r} must match {_NAME.pattern}")
        if not 1 <= self.width <= 128:
            raise ValueError(f"register {self.name}: width {self.width} not in 1..128")
        if self.fmt is None:
            object.__setattr__(self, "fmt", Fmt.ENUM if self.enum is not None else Fmt.INT)
        if self.access is Access.W1P and (self.width != 1 or self.signed):
            raise ValueError(f"register {self.name}: a W1P strobe is one unsigned bit")
        if self.staged and self.access is not Access.RW:
            raise ValueError(f"register {self.name}: only RW registers can be staged")
        for name in ("reset", "min", "max"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))
        full_lo, full_hi = self._full_range()
        if self.min is None:
            object.__setattr__(self, "min", full_lo)
        if self.max is None:
            object.__setattr__(self, "max", full_hi)
        if not full_lo <= self.min <= self.max <= full_hi:
            raise ValueError(f"register {self.name}: range [{self.min}, {self.max}] does not fit "
                             f"{self.width} {'signed' if self.signed else 'unsigned'} bits")
        if self.words > 1 and (self.min, self.max) != (full_lo, full_hi):
            raise ValueError(f"register {self.name}: a register wider than a word must allow "
                             f"its whole width (its words are written one at a time)")
        if not self.min <= self.reset <= self.max:
            raise ValueError(f"register {self.name}: reset {self.reset} outside "
                             f"[{self.min}, {self.max}]")
        if self.enum is not None:
            values = [int(member) for member in self.enum]
            if min(values) < self.min or max(values) > self.max:
                raise ValueError(f"register {self.name}: {self.enum.__name__} does not fit")

    def _full_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1
        return 0, (1 << self.width) - 1

    @property
    def words(self) -> int:
        """Number of 32-bit words the register occupies."""
        return (self.width + WORD_BITS - 1) // WORD_BITS

    @property
    def full_range(self) -> bool:
        """True when every value the width holds is allowed (the bank needs no range check)."""
        return (self.min, self.max) == self._full_range()

    def check(self, value: int, where: str | None = None) -> int:
        """Return ``value`` as an int if allowed, else raise :class:`RangeError`.

        The message names the register (``where``, defaulting to its name), the value, the
        allowed range and the unit.
        """
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"{where or self.name}: expected an integer, got {value!r}")
        if not self.min <= value <= self.max:
            unit = f" {self.unit}" if self.unit else ""
            raise RangeError(f"{where or self.name}: value {value} is outside the allowed range "
                             f"[{self.min}, {self.max}]{unit}")
        return int(value)

    def to_words(self, value: int) -> list[int]:
        """The bus words of an (already checked) value, least significant first.

        A signed register narrower than a word is sign-extended to 32 bits, which is what the
        bank's range check expects.
        """
        raw = value & ((1 << (self.words * WORD_BITS)) - 1)
        return [(raw >> (WORD_BITS * k)) & 0xFFFF_FFFF for k in range(self.words)]

    def from_words(self, words: list[int]) -> int:
        """The value of the bus words read from the register (sign applied)."""
        if len(words) != self.words:
            raise ValueError(f"{self.name}: expected {self.words} words, got {len(words)}")
        raw = 0
        for k, word in enumerate(words):
            raw |= (word & 0xFFFF_FFFF) << (WORD_BITS * k)
        raw &= (1 << self.width) - 1
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw


@dataclass(frozen=True)
class Param:
    """The register behind a field of a parameter class: ``Annotated[int, Param(...)]``.

    Takes the arguments of :class:`Reg` except ``name`` (the field's), ``access`` (RW) and
    ``staged`` (always).
    """

    width: int
    reset: int = 0
    doc: str = ""
    min: int | None = None
    max: int | None = None
    unit: str = ""
    signed: bool = False
    enum: type[IntEnum] | None = None
    fmt: Fmt | None = None

    def reg(self, name: str) -> Reg:
        return Reg(name, self.width, Access.RW, self.doc, self.reset, self.min, self.max,
                   self.signed, self.unit, self.enum, self.fmt, staged=True)


def parameters(cls):
    """Class decorator: a dataclass whose ``Annotated[..., Param(...)]`` fields are registers.

    Each field's default is its register's reset value (as a Python value, see
    :func:`to_python`); :meth:`Block.from_dataclass` turns the class into a block of staged
    registers named after the fields, in field order.
    """
    regs = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        specs = [arg for arg in typing.get_args(hint)[1:] if isinstance(arg, Param)]
        if typing.get_origin(hint) is not typing.Annotated or len(specs) != 1:
            raise TypeError(f"{cls.__name__}.{name}: annotate as Annotated[type, Param(...)]")
        regs[name] = specs[0].reg(name)
        setattr(cls, name, to_python(regs[name], regs[name].reset))
    cls = dataclass(cls)
    cls.__registers__ = regs
    return cls


def to_python(reg: Reg, raw: int):
    """The Python value of register value ``raw``: ``bool`` for ``Fmt.BOOL``, the enum member for
    ``Fmt.ENUM``, the symbol ``str`` for ``Fmt.SYMBOL``, else the integer."""
    if reg.fmt is Fmt.BOOL:
        return bool(raw)
    if reg.fmt is Fmt.ENUM:
        try:
            return reg.enum(raw)
        except ValueError:
            return raw
    if reg.fmt is Fmt.SYMBOL:
        return raw.to_bytes(8, "little").decode("ascii", "replace").rstrip(" \0")
    return raw


def _text_to_int(reg: Reg, text: str, where: str) -> int:
    fmt = reg.fmt
    try:
        if fmt is Fmt.SYMBOL:
            if len(text) > 8 or not text.isascii():
                raise ValueError("at most 8 ASCII characters")
            return int.from_bytes(text.encode().ljust(8, b" "), "little") if text else 0
        if fmt is Fmt.TEXT:
            size = reg.width // 8
            if len(text) > size or not text.isascii():
                raise ValueError(f"at most {size} ASCII characters")
            return int.from_bytes(text.encode().ljust(size, b" "), "big")
        if fmt is Fmt.MAC:
            parts = re.split(r"[:-]", text)
            if len(parts) != 6:
                raise ValueError("expected six bytes like 02:00:00:00:00:01")
            return int.from_bytes(bytes(int(part, 16) for part in parts), "big")
        if fmt is Fmt.IPV4:
            parts = text.split(".")
            if len(parts) != 4:
                raise ValueError("expected a dotted quad like 192.168.0.1")
            return int.from_bytes(bytes(int(part) for part in parts), "big")
        if fmt is Fmt.BOOL and text.lower() in _BOOL_WORDS:
            return _BOOL_WORDS[text.lower()]
        if fmt is Fmt.ENUM and text.upper() in reg.enum.__members__:
            return int(reg.enum[text.upper()])
        return int(text.replace("_", ""), 0)
    except ValueError as error:
        names = ""
        if fmt is Fmt.ENUM:
            names = f" (one of {', '.join(reg.enum.__members__)})"
        raise RangeError(f"{where}: cannot read {text!r} as a {fmt.value}{names}: {error}") \
            from None


_BOOL_WORDS = {"true": 1, "false": 0, "yes": 1, "no": 0, "on": 1, "off": 0}


def to_raw(reg: Reg, value, where: str | None = None) -> int:
    """The register integer for ``value`` (int, bool, enum member, or text in the register's
    format: symbol, MAC, dotted IPv4, enum name...), checked against the range.

    Raises
    ------
    RangeError
        The value cannot be read or is out of range; the message names ``where``, the value and
        the allowed range.
    """
    where = where or reg.name
    if isinstance(value, str):
        value = _text_to_int(reg, value.strip(), where)
    return reg.check(value, where)


@dataclass(frozen=True)
class Block:
    """A group of registers with one base address, optionally an array of identical elements.

    Parameters
    ----------
    name : str
        Lower-case identifier; register paths are ``block.reg`` or ``block[i].reg``.
    doc : str
    regs : tuple of Reg
        In address order.
    count : int, optional
        Number of elements of an array block (e.g. instruments); ``None`` for a single block.
    reserve : int
        Words to set aside per element, so that registers added later move nothing.
    params : type, optional
        The parameter dataclass the block was made from (see :meth:`from_dataclass`).
    layout : optional
        The gateware struct layout the block was derived from (e.g. a stage's ``stats`` layout),
        when the block mirrors one port of a stage field for field; the control plane then
        offers the block as one port of that layout.
    """

    name: str
    doc: str
    regs: tuple[Reg, ...]
    count: int | None = None
    reserve: int = 0
    params: type | None = None
    layout: object = None

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError(f"block name {self.name!r} must match {_NAME.pattern}")
        names = [reg.name for reg in self.regs]
        if len(set(names)) != len(names):
            raise ValueError(f"block {self.name}: duplicate register names")
        if self.count is not None and self.count < 1:
            raise ValueError(f"block {self.name}: count must be at least 1")

    @classmethod
    def from_dataclass(cls, name: str, params: type, doc: str, *, count: int | None = None,
                       reserve: int = 0) -> "Block":
        """A block of staged RW registers, one per field of a :func:`parameters` class."""
        if not hasattr(params, "__registers__"):
            raise TypeError(f"{params.__name__} is not a @parameters class")
        return cls(name, doc, tuple(params.__registers__.values()), count, reserve, params)

    @property
    def words(self) -> int:
        """Words used by one element."""
        return sum(reg.words for reg in self.regs)

    @property
    def stride(self) -> int:
        """Words from one element to the next (a power of two)."""
        span = max(self.words, self.reserve, 1)
        return 1 << (span - 1).bit_length()

    @property
    def span(self) -> int:
        """Words taken by the whole block."""
        return self.stride * (self.count or 1)

    def reg(self, name: str) -> Reg:
        for reg in self.regs:
            if reg.name == name:
                return reg
        raise KeyError(f"block {self.name} has no register {name!r}")


def dataclass_values(block: Block, obj, prefix: str | None = None) -> dict[str, int]:
    """Register values (name -> int) of a parameter class instance, each range-checked.

    Raises
    ------
    RangeError
        A field is out of range; the message names it as ``<prefix>.<field>`` (``prefix``
        defaults to the block name, e.g. pass ``quote[2]``), with the value and the range.
    """
    if block.params is None or not isinstance(obj, block.params):
        raise TypeError(f"block {block.name} takes a {getattr(block.params, '__name__', None)}")
    prefix = prefix or block.name
    return {reg.name: to_raw(reg, getattr(obj, reg.name), f"{prefix}.{reg.name}")
            for reg in block.regs}


def from_values(block: Block, values: dict[str, int]):
    """The parameter class instance for register values (inverse of :func:`dataclass_values`)."""
    return block.params(**{reg.name: to_python(reg, values[reg.name]) for reg in block.regs})


@dataclass(frozen=True)
class Location:
    """A register instance at its address: ``path`` is ``block.reg`` or ``block[i].reg``."""

    path: str
    block: Block
    index: int | None
    reg: Reg
    address: int

    @property
    def words(self) -> int:
        return self.reg.words


@dataclass
class RegisterMap:
    """The laid-out register map: every register instance with its word address.

    Look registers up by path (``regmap["quote[2].size"]``) or by word address
    (:meth:`at`). ``hash`` is a CRC-32 of the layout (paths, addresses, widths, access modes)
    that the gateware reports, so the host can refuse to drive a bitstream built from another
    declaration.
    """

    blocks: tuple[Block, ...]
    commit: str
    addr_width: int
    bases: dict[str, int]
    locations: list[Location] = field(default_factory=list)
    _by_path: dict[str, Location] = field(default_factory=dict, repr=False)
    _by_address: dict[int, tuple[Location, int]] = field(default_factory=dict, repr=False)

    def __getitem__(self, path: str) -> Location:
        try:
            return self._by_path[path]
        except KeyError:
            raise KeyError(f"no register {path!r} in the register map") from None

    def __contains__(self, path: str) -> bool:
        return path in self._by_path

    def __iter__(self):
        return iter(self.locations)

    def __len__(self) -> int:
        return len(self.locations)

    def at(self, address: int) -> tuple[Location, int] | None:
        """The register covering word ``address`` and the word's index in it, or ``None``."""
        return self._by_address.get(address)

    def block(self, name: str) -> Block:
        for block in self.blocks:
            if block.name == name:
                return block
        raise KeyError(f"no block {name!r} in the register map")

    def path(self, block: str, reg: str, index: int | None = None) -> str:
        return f"{block}.{reg}" if index is None else f"{block}[{index}].{reg}"

    def element(self, block: str, index: int | None = None) -> list[Location]:
        """The locations of one block (or one element of an array block), in address order."""
        blk = self.block(block)
        if (blk.count is None) != (index is None):
            raise KeyError(f"block {block} {'needs' if blk.count else 'takes no'} an index")
        if index is not None and not 0 <= index < blk.count:
            raise KeyError(f"block {block}: index {index} not in 0..{blk.count - 1}")
        return [self[self.path(block, reg.name, index)] for reg in blk.regs]

    @property
    def words(self) -> int:
        """One past the highest address in use."""
        return max(loc.address + loc.words for loc in self.locations)

    @property
    def hash(self) -> int:
        text = "".join(
            f"{loc.path} {loc.address} {loc.reg.width} {loc.reg.access.value} "
            f"{int(loc.reg.signed)} {int(loc.reg.staged)}\n" for loc in self.locations)
        return zlib.crc32(text.encode())


def build_map(blocks: list[Block], *, commit: str, addr_width: int = 16) -> RegisterMap:
    """Assign addresses to ``blocks`` in order and return the :class:`RegisterMap`.

    Parameters
    ----------
    blocks : list of Block
    commit : str
        Path of the W1P register whose pulse applies every staged register.
    addr_width : int
        Bits of word address on the bus; the map must fit.
    """
    names = [block.name for block in blocks]
    if len(set(names)) != len(names):
        raise ValueError("duplicate block names")
    regmap = RegisterMap(tuple(blocks), commit, addr_width, {})
    base = 0
    for block in blocks:
        base = -(-base // BLOCK_ALIGN) * BLOCK_ALIGN
        regmap.bases[block.name] = base
        for index in range(block.count) if block.count is not None else (None,):
            address = base + (index or 0) * block.stride
            for reg in block.regs:
                loc = Location(regmap.path(block.name, reg.name, index), block, index, reg,
                               address)
                regmap.locations.append(loc)
                regmap._by_path[loc.path] = loc
                for word in range(reg.words):
                    regmap._by_address[address + word] = (loc, word)
                address += reg.words
        base += block.span
    if base > 1 << addr_width:
        raise ValueError(f"register map needs {base} words, more than {addr_width} address bits")
    commit_loc = regmap[commit]
    if commit_loc.reg.access is not Access.W1P or commit_loc.index is not None:
        raise ValueError(f"commit register {commit} must be a single W1P register")
    return regmap
