"""A board-independent harness that lets any core be placed and routed with only two pins.

A core such as the feed ingress has hundreds of port bits and a board has a few dozen free pins,
and a port left unconnected is a port the synthesizer may delete together with the logic behind
it. :class:`SynthHarness` therefore drives every input bit of the core from a shift register fed
by one pin, and folds every output bit into one pin through registers and a pipelined XOR tree.
Every output bit changes the folded bit, so no logic that reaches an output can be removed; every
input bit comes from its own flip-flop, so no input can be treated as a constant.

Both ends are registered so the paths measured are the core's own: input flip-flop -> core ->
output flip-flop. The XOR tree uses four-input groups (one LUT4 on ECP5) with a register after
each level, so it is never the critical path. What the harness adds to the utilisation is given
exactly by :attr:`SynthHarness.overhead_ffs` (plus about ``out_width / 3`` LUT4 for the tree).
"""

from amaranth.hdl import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["SynthHarness"]

# A LUT4 XORs four bits, so each tree level divides the width by four.
_FOLD_ARITY = 4


class SynthHarness(wiring.Component):
    """Keep every port of ``core`` alive behind a serial input pin and a one-bit output pin.

    Parameters
    ----------
    core : wiring.Component
        Any component whose logic runs in the ``sync`` domain. Ports may be flat, structs, arrays
        or nested interfaces such as streams; only the flow (In/Out) of each leaf matters.

    Ports
    -----
    sdi : In(1)
        Serial data in, asynchronous (e.g. a button): synchronized, then shifted into the
        register that drives all of the core's inputs, one bit per cycle.
    fold : Out(1)
        XOR of all of the core's output bits, ``fold_latency`` cycles after they were produced.

    Latency
    -------
    Input bit ``k`` of the core holds the value ``sdi`` had at the clock edge ``2 + k`` cycles
    earlier (two synchronizer stages, then ``k`` shift positions). ``fold`` follows the core's
    outputs after :attr:`fold_latency` cycles.

    Raises
    ------
    ValueError
        ``core`` has no output bits: there would be nothing to measure.
    """

    def __init__(self, core: wiring.Component):
        self._core = core
        self._inputs = []
        self._outputs = []
        for _path, member, value in core.signature.flatten(core):
            value = Value.cast(value)
            if member.flow == In and isinstance(value, Const):
                # The constant ``ready`` of an always-ready output stream: nothing drives it.
                continue
            (self._inputs if member.flow == In else self._outputs).append(value)
        self.in_width = sum(len(v) for v in self._inputs)
        self.out_width = sum(len(v) for v in self._outputs)
        if self.out_width == 0:
            raise ValueError(f"{type(core).__name__} has no output ports; nothing would survive "
                             f"synthesis")
        self._levels = []
        width = self.out_width
        while width > 1:
            width = -(-width // _FOLD_ARITY)
            self._levels.append(width)
        super().__init__({"sdi": In(1), "fold": Out(1)})

    @property
    def fold_latency(self) -> int:
        """Cycles from the core's outputs to ``fold``: the capture register plus one per level."""
        return 1 + len(self._levels)

    @property
    def overhead_ffs(self) -> int:
        """Flip-flops the harness adds: synchronizer, input shift register, output capture, tree.

        An upper bound: the synthesizer drops the flip-flops behind output bits that the core ties
        to a constant.
        """
        return 2 + self.in_width + self.out_width + sum(self._levels)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self._core

        sdi = Signal()
        m.submodules.sdi_sync = FFSynchronizer(self.sdi, sdi)

        if self.in_width:
            shift = Signal(self.in_width)
            m.d.sync += shift.eq(Cat(sdi, shift[:-1]))
            offset = 0
            for port in self._inputs:
                m.d.comb += port.eq(shift[offset:offset + len(port)])
                offset += len(port)

        level = Signal(self.out_width)
        m.d.sync += level.eq(Cat(*self._outputs))
        for width in self._levels:
            folded = Signal(width)
            for k in range(width):
                m.d.sync += folded[k].eq(level[_FOLD_ARITY * k:_FOLD_ARITY * (k + 1)].xor())
            level = folded
        m.d.comb += self.fold.eq(level)
        return m
