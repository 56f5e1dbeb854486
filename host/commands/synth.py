"""``tickgate synth``: place and route a core on a board and print Fmax, utilisation and logic
levels."""

import argparse
import importlib
import json
import sys
from pathlib import Path

__all__ = ["EXIT_TIMING_FAILED", "register"]

#: Exit status of ``tickgate synth --check`` when the core clock misses its target.
EXIT_TIMING_FAILED = 3


def register(subparsers) -> None:
    from boards import BOARDS, ROUTERS

    parser = subparsers.add_parser(
        "synth",
        help="synthesize a core for a board and report Fmax and utilisation",
        description="Build a registered core (tickgate verilog --list) inside a board top that "
                    "keeps all of its logic (inputs from a shift register, outputs folded into "
                    "an LED), and report the core clock's post-route Fmax, the resources "
                    "used and the levels of logic between registers. The figures include the "
                    "harness; its flip-flop count is printed.",
    )
    parser.add_argument("--core", default="ingress", help="registered core (default: ingress)")
    parser.add_argument("--board", default="ulx3s", choices=sorted(BOARDS),
                        help="target board (default: ulx3s)")
    parser.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    parser.add_argument("--router", default="router1", choices=ROUTERS,
                        help="nextpnr router (default: router1; router2 gets much further "
                             "with the book and the quoter)")
    parser.add_argument("--pack-only", action="store_true",
                        help="stop after nextpnr's packing: the utilisation and the levels "
                             "of logic in minutes, no placement, routing, Fmax or bitstream "
                             "(for cores that take hours to route)")
    parser.add_argument("--freq", type=float, default=None, metavar="MHZ",
                        help="core clock target (default: the board's, 156.25 on ulx3s)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the figures as JSON")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="build directory (default: build/synth/<board>-<core>)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit with status {EXIT_TIMING_FAILED} if the core clock misses "
                             f"its target")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from boards import BOARDS
    from boards.toolchain import BuildError
    from hdl.export import build_core

    if args.check and args.pack_only:
        raise SystemExit("tickgate synth: --check needs a routed build, not --pack-only")
    board = importlib.import_module(BOARDS[args.board])
    try:
        core = build_core(args.core)
    except KeyError as error:
        raise SystemExit(f"tickgate synth: {error.args[0]}") from None
    build_dir = args.build_dir or Path("build") / "synth" / f"{args.board}-{args.core}"
    core_mhz = board.DEFAULT_CORE_MHZ if args.freq is None else args.freq
    how = "packing only" if args.pack_only else f"seed {args.seed}, {args.router}"
    print(f"building {args.core} for {args.board} at {core_mhz:g} MHz in {build_dir} "
          f"({how}); this takes a few minutes", file=sys.stderr)
    try:
        report = board.build(core, build_dir, seed=args.seed, router=args.router,
                             pack_only=args.pack_only, core_mhz=core_mhz)
    except (BuildError, LookupError, ValueError) as error:
        raise SystemExit(f"tickgate synth: {error}") from None
    stage = {"stage": "packed"} if args.pack_only else {"seed": args.seed, "router": args.router}
    report.notes = {"board": args.board, "core": args.core, **stage, **report.notes}
    print(report.format_table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if args.check and not report.clocks[report.core_clock].met:
        return EXIT_TIMING_FAILED
    return 0
