"""Boards: one module per board, each with a platform top and a ``build(core, build_dir, ...)``.

:data:`BOARDS` maps the name ``tickgate synth --board`` takes to the module that builds for it;
a board module is imported only when it is used, so the synthesis tools and board definitions are
not loaded by unrelated commands.
"""

__all__ = ["BOARDS", "ROUTERS"]

#: Board name -> module providing ``build(core, build_dir, *, seed, router, pack_only,
#: core_mhz) -> SynthReport`` and ``DEFAULT_CORE_MHZ``.
BOARDS: dict[str, str] = {
    "ulx3s": "boards.ulx3s",
}

#: nextpnr's routers, for ``build(..., router=...)``. ``router1`` is nextpnr's default;
#: ``router2`` gets much further with the book and the quoter, where ``router1`` stalls with
#: tens of thousands of wires overused.
ROUTERS = ("router1", "router2")
