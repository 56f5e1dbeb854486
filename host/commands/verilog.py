"""``tickgate verilog CORE -o FILE``: write a registered core as plain Verilog for vendor flows."""

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verilog",
        help="export a core as Verilog",
        description="Write a registered core (see --list) as one self-contained Verilog file. "
                    "The sync domain's clock and reset are the ports clk and rst (reset is "
                    "synchronous, active high); a stream port s becomes s__payload, s__valid "
                    "and s__ready; a struct port is one flat vector, first field in the low bits.",
    )
    parser.add_argument("core", nargs="?", help="registered core name")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output file (default: standard output)")
    parser.add_argument("--top", default=None,
                        help="Verilog module name (default: tickgate_<core>)")
    parser.add_argument("--src", action="store_true",
                        help="keep (* src *) attributes pointing at the Python source")
    parser.add_argument("--list", action="store_true", help="list the registered cores and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hdl.export import CORES, build_core, export_verilog, verilog_ports

    if args.list:
        for name in sorted(CORES):
            print(name)
        return 0
    if args.core is None:
        raise SystemExit("tickgate verilog: name a core (tickgate verilog --list shows them)")
    try:
        core = build_core(args.core)
    except KeyError as error:
        raise SystemExit(f"tickgate verilog: {error.args[0]}") from None
    top = args.top or f"tickgate_{args.core}"
    text = export_verilog(core, name=top, emit_src=args.src)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    ports = verilog_ports(text, top)
    in_bits = sum(p.width for p in ports if p.direction == "input")
    out_bits = sum(p.width for p in ports if p.direction == "output")
    print(f"wrote {args.output}: module {top}, {len(ports)} ports, {in_bits} input bits, "
          f"{out_bits} output bits", file=sys.stderr)
    escaped = [p.name for p in ports if p.name.startswith("\\")]
    if escaped:
        print(f"warning: {', '.join(escaped)}: escaped in the Verilog (the name is a Verilog "
              f"keyword); instances must write it escaped too", file=sys.stderr)
    return 0
