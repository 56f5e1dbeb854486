"""Generate the register map document and the C header from the one declaration.

``python -m hdl.csr.docgen`` rewrites ``docs/registers.md`` and
``host/include/tickgate_regs.h``; ``--check`` only reports (exit status 1) when either is out of
date, which is what the test suite does.
"""

import argparse
import sys
from pathlib import Path

from hdl.csr import protocol
from hdl.csr.map import MAGIC, MAP_VERSION, REGISTER_MAP
from hdl.csr.reg import BLOCK_ALIGN, Access, Block, Fmt, Location, Reg, RegisterMap

__all__ = ["HEADER_PATH", "MARKDOWN_PATH", "c_header", "main", "markdown"]

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN_PATH = ROOT / "docs" / "registers.md"
HEADER_PATH = ROOT / "host" / "include" / "tickgate_regs.h"
_COMMAND = "python -m hdl.csr.docgen"

_ACCESS_TEXT = {
    Access.RW: "RW",
    Access.RO: "RO",
    Access.W1P: "W1P",
}


def _access(reg: Reg) -> str:
    text = _ACCESS_TEXT[reg.access]
    return text + " staged" if reg.staged else text


def _range(reg: Reg) -> str:
    if reg.access is Access.RO:
        return ""
    if reg.access is Access.W1P:
        return "0..1"
    if reg.enum is not None:
        return ", ".join(f"{member.name}={int(member)}" for member in reg.enum)
    if reg.full_range:
        return "any"
    return f"{reg.min}..{reg.max}"


def _reset(reg: Reg) -> str:
    if reg.access is not Access.RW:
        return ""
    if reg.fmt is Fmt.HEX or reg.reset >= 1 << 16:
        return f"0x{reg.reset:X}"
    return str(reg.reset)


def _bits(reg: Reg) -> str:
    text = f"{reg.width}"
    if reg.signed:
        text += " signed"
    if reg.words > 1:
        text += f" ({reg.words} words)"
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(regmap: RegisterMap = REGISTER_MAP) -> str:
    """The register map document."""
    out = [
        "# tickgate register map",
        "",
        f"<!-- Generated from hdl/csr/map.py by `{_COMMAND}`; do not edit. -->",
        "",
        f"Map hash `0x{regmap.hash:08X}` (reported by `ctrl.map_hash`), conventions version "
        f"{MAP_VERSION}, {len(regmap)} registers in {len(regmap.blocks)} blocks.",
        "",
        "## Conventions",
        "",
        "- **Addresses** count 32-bit words (the CSR bus and the UART frames carry word "
        "addresses). Each block starts on a multiple of "
        f"0x{BLOCK_ALIGN:X} words. A per-instrument block repeats every *stride* words: "
        "instance *i* of a register is at its listed address + *i* x stride.",
        "- **Wide values** take consecutive words, least significant word first.",
        "- **RW**: written by the host, used by the gateware. Reads return the value in force. "
        "A value narrower than a word must be written with the unused upper bits clear "
        "(sign-extended for a signed register), or the write is refused with `RANGE`.",
        "- **RW staged**: writes wait in a shadow copy; a write of 1 to `ctrl.commit` applies "
        "every staged register in the same clock cycle, so the gateware never sees half an "
        "update. Reads return the applied value, not the pending one.",
        "- **RW** wider than a word (not staged): write the words lowest first; the write of "
        "the top word applies the whole value.",
        "- **RO**: driven by the gateware. A value wider than a word is read atomically: "
        "reading its word 0 captures the whole value and reading its other words returns the "
        "capture, so read word 0 first (the host driver reads a register in one burst).",
        "- **W1P** (write 1 to pulse): a write of 1 raises the gateware's strobe for one cycle; "
        "0 does nothing; reads return 0.",
        "- **Errors** (CSR bus `err`, UART reply status): a write to an address with no register "
        "is `UNMAPPED`, to an RO register `READ_ONLY`, of a value outside the range `RANGE`; "
        "each leaves every register unchanged. Reads of unmapped addresses return 0 with "
        "`UNMAPPED`.",
        "- **Timing**: every access is answered the cycle after it is presented; a write (and a "
        "commit) shows at the gateware ports the cycle after the access.",
        "- **Prices** are ITCH price units (1e-4 $); times are core clock cycles "
        "(`ctrl.clk_hz` per second).",
        "",
        "## Arm, kill and the heartbeat watchdog",
        "",
        "Counted from the cycle the bus write is presented (the UART bridge presents it a few "
        "cycles after the request's last byte): a write to `ctrl.arm` or `ctrl.kill` changes "
        "`ctrl.armed`/`ctrl.killed` and the control outputs one cycle later. While armed with "
        "`ctrl.heartbeat_timeout` = *T* > 0, `ctrl.heartbeat_lost` rises and `ctrl.armed` "
        "falls *T* + 2 cycles after the last write to `ctrl.heartbeat` (or `ctrl.arm`); the "
        "host must therefore write `ctrl.heartbeat` more often than every *T* cycles, counting "
        "the time its write spends on the line (a one-word write over the UART is 17 "
        "characters, 170 bit times). `killed` and `heartbeat_lost` stay set until the next "
        "arm.",
        "",
        "## UART link",
        "",
        "8N1 at the board's baud rate. A request is `A5 cmd tag addr_hi addr_lo count "
        "[data] crc`, a reply `5A cmd tag status count [data] crc`; `cmd` is 01 read or 02 "
        f"write, `count` 1..{protocol.MAX_WORDS} words at consecutive addresses, data words are "
        "big-endian, and `crc` is CRC-8 (polynomial 0x07, initial 0) of every byte before it. "
        "Every request gets one reply. Status codes:",
        "",
        "| Code | Status | Meaning |",
        "|---:|---|---|",
    ]
    meanings = {
        protocol.Status.OK: "done; `count` words read or written",
        protocol.Status.BAD_CRC: "request checksum wrong; nothing done",
        protocol.Status.BAD_COMMAND: "unknown command; nothing done",
        protocol.Status.BAD_LENGTH: f"count 0 or above {protocol.MAX_WORDS}; nothing done",
        protocol.Status.TIMEOUT: "request stopped arriving; nothing done",
        protocol.Status.UNMAPPED: "stopped at an address with no register after `count` words",
        protocol.Status.READ_ONLY: "stopped at a write to an RO register after `count` words",
        protocol.Status.RANGE: "stopped at a value out of range after `count` words",
    }
    out += [f"| {int(status)} | `{status.name}` | {meanings[status]} |"
            for status in protocol.Status]
    out += ["", "Link counters are in the `bridge_stats` block. The full format is specified "
            "in `hdl/csr/protocol.py`.", "", "## Blocks", "",
            "| Base | Block | Instances | Stride | Description |", "|---:|---|---:|---:|---|"]
    for block in regmap.blocks:
        count = block.count or 1
        stride = f"0x{block.stride:X}" if block.count else ""
        out.append(f"| 0x{regmap.bases[block.name]:04X} | [`{block.name}`](#{block.name}) | "
                   f"{count} | {stride} | {_cell(block.doc)} |")
    for block in regmap.blocks:
        out += ["", f"## {block.name}", "", block.doc, ""]
        if block.count:
            out += [f"{block.count} instances, stride 0x{block.stride:X} words; addresses are "
                    f"instance 0's.", ""]
        out += ["| Address | Register | Bits | Access | Reset | Range | Unit | Description |",
                "|---:|---|---|---|---|---|---|---|"]
        for loc in _first_instance(regmap, block):
            reg = loc.reg
            name = f"{block.name}[i].{reg.name}" if block.count else loc.path
            out.append(f"| 0x{loc.address:04X} | `{name}` | {_bits(reg)} | {_access(reg)} | "
                       f"{_reset(reg)} | {_cell(_range(reg))} | {reg.unit} | "
                       f"{_cell(reg.doc)} |")
    return "\n".join(out) + "\n"


def _first_instance(regmap: RegisterMap, block: Block) -> list[Location]:
    return regmap.element(block.name, 0 if block.count else None)


def _c_name(*parts: str) -> str:
    return "TG_" + "_".join(part.upper() for part in parts)


def c_header(regmap: RegisterMap = REGISTER_MAP) -> str:
    """A C header with every address, width, range and the link protocol constants."""
    out = [
        "/* tickgate register map. */",
        f"/* Generated from hdl/csr/map.py by `{_COMMAND}`; do not edit. */",
        "/* Addresses count 32-bit words; wide values take consecutive words, least */",
        "/* significant first. See docs/registers.md for the access rules. */",
        "#ifndef TICKGATE_REGS_H",
        "#define TICKGATE_REGS_H",
        "",
        f"#define TG_MAGIC 0x{MAGIC:08X}u",
        f"#define TG_MAP_VERSION {MAP_VERSION}u",
        f"#define TG_MAP_HASH 0x{regmap.hash:08X}u",
        "",
        "/* UART link (hdl/csr/protocol.py) */",
        f"#define TG_REQUEST_SYNC 0x{protocol.REQUEST_SYNC:02X}u",
        f"#define TG_REPLY_SYNC 0x{protocol.REPLY_SYNC:02X}u",
        f"#define TG_MAX_WORDS {protocol.MAX_WORDS}u",
        f"#define TG_CRC8_POLY 0x{protocol.CRC_POLY:02X}u",
    ]
    out += [f"#define TG_CMD_{cmd.name} 0x{int(cmd):02X}u" for cmd in protocol.Command]
    out += [f"#define TG_STATUS_{status.name} {int(status)}u" for status in protocol.Status]
    enums = {}
    for block in regmap.blocks:
        base = regmap.bases[block.name]
        out += ["", f"/* {block.name}: {block.doc} */",
                f"#define {_c_name(block.name, 'BASE')} 0x{base:04X}u"]
        if block.count:
            out += [f"#define {_c_name(block.name, 'COUNT')} {block.count}u",
                    f"#define {_c_name(block.name, 'STRIDE')} 0x{block.stride:X}u"]
        for loc in _first_instance(regmap, block):
            reg = loc.reg
            name = _c_name(block.name, reg.name)
            offset = loc.address - base
            if block.count:
                out.append(f"#define {name}(i) ({_c_name(block.name, 'BASE')} + (i) * "
                           f"{_c_name(block.name, 'STRIDE')} + 0x{offset:X}u)")
            else:
                out.append(f"#define {name} 0x{loc.address:04X}u")
            out.append(f"#define {name}_WIDTH {reg.width}u")
            if reg.access is Access.RW and not reg.full_range:
                suffix = "" if reg.signed else "u"
                out += [f"#define {name}_MIN {reg.min}{suffix}",
                        f"#define {name}_MAX {reg.max}{suffix}"]
            if reg.enum is not None:
                enums[reg.enum.__name__] = reg.enum
    for enum_name, enum in enums.items():
        out += ["", f"/* {enum_name} */"]
        out += [f"#define {_c_name(_snake(enum_name), member.name)} {int(member)}u"
                for member in enum]
    out += ["", "#endif /* TICKGATE_REGS_H */", ""]
    return "\n".join(out)


def _snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="report stale files (exit status 1) instead of writing them")
    args = parser.parse_args(argv)
    stale = []
    for path, text in ((MARKDOWN_PATH, markdown()), (HEADER_PATH, c_header())):
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{path.relative_to(ROOT)}: {'out of date' if args.check else 'written'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
