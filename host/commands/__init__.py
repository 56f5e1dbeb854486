"""Subcommands of ``tickgate``, one module each.

Each module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed arguments and returning the exit status. Add a new command by writing
its module and listing it in :data:`COMMANDS` (the order is the order of ``tickgate --help``).
Modules import their heavy dependencies inside ``func`` so ``tickgate --help`` stays fast.
"""

from host.commands import bench, demo, generate, host, replay, synth, verilog

__all__ = ["COMMANDS"]

COMMANDS = [demo, replay, generate, bench, host, verilog, synth]
