"""The ``tickgate`` command line: one subcommand per module in :mod:`host.commands`.

Exit status: 0 on success, 1 for an error reported by a command, 2 for a usage error, 130 when
interrupted; a command may document others.
"""

import argparse
import sys
from importlib.metadata import PackageNotFoundError, version

from host.commands import COMMANDS

__all__ = ["build_parser", "main"]


def _version() -> str:
    try:
        return version("tickgate")
    except PackageNotFoundError:
        return "unknown (not installed; run `pip install -e .`)"


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="tickgate",
        description="FPGA market-data feed handler and quoter: build, simulate and drive it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``tickgate`` with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    Commands report errors by raising ``SystemExit`` with a message, which is printed to stderr
    and turned into status 1.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return int(args.func(args) or 0)
    except SystemExit as exit_:
        if exit_.code is None:
            return 0
        if isinstance(exit_.code, int):
            return exit_.code
        print(exit_.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
