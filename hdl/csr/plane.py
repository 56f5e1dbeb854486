"""The control plane: register bank, control block and host link, as the core instantiates it."""

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.arch.mold import SEQ_BITS
from hdl.csr.bank import RegisterBank, block_signature
from hdl.csr.bridge import UartBridge
from hdl.csr.bus import CsrSignature
from hdl.csr.control import Control
from hdl.csr.map import MAGIC, MAP_VERSION, REGISTER_MAP
from hdl.csr.reg import Access, Block, RegisterMap
from hdl.feed.mold_rx import GapLayout

__all__ = ["INTERNAL_BLOCKS", "ControlPlane", "ControlSignature"]

#: Blocks the control plane drives itself; every other block of the map is a port.
INTERNAL_BLOCKS = ("ctrl", "bridge_stats", "mold_recovery")

_CONTROL_STATE = ("armed", "killed", "heartbeat_lost")


def ControlSignature():
    """What the risk gate obeys: ``armed`` (orders allowed) and why it is not."""
    return wiring.Signature({name: Out(1) for name in _CONTROL_STATE})


def _port_member(block: Block):
    if block.layout is not None:
        accesses = {reg.access for reg in block.regs}
        if accesses == {Access.RO}:
            return In(block.layout)
        if accesses == {Access.RW}:
            return Out(block.layout)
        raise ValueError(f"block {block.name}: a layout port must be all RO or all RW")
    member = Out(block_signature(block))
    return member.array(block.count) if block.count else member


class _Wiring(Elaboratable):
    """A module of nothing but combinational connections."""

    def __init__(self):
        self.comb = []

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.comb
        return m


class ControlPlane(wiring.Component):
    """Every register of the map, reachable from a host over a UART or a direct CSR bus.

    Parameters
    ----------
    regmap : RegisterMap
        Defaults to the design's :data:`~hdl.csr.map.REGISTER_MAP`.
    uart_divisor : int, optional
        With a divisor (``clk_hz // baud``), the host link is a UART (``rx``/``tx`` ports, see
        :class:`~hdl.csr.bridge.UartBridge`); without, the bank's bus is the ``bus`` port, for
        simulation and for designs with another bus master.
    clk_hz : int
        Core clock, reported in ``ctrl.clk_hz`` (the host turns cycles into seconds with it).
    build_id : int
        Reported in ``ctrl.build_id`` (32 bits, e.g. the source revision).
    link_timeout : int, optional
        Cycles of silence that end a half-received request; defaults to 50 ms of ``clk_hz``.

    Ports
    -----
    bus : In(CsrSignature) (without UART)
    rx : In(1), tx : Out(1) (with UART)
    control : Out(ControlSignature())
        ``armed``, ``killed``, ``heartbeat_lost`` (see :class:`~hdl.csr.control.Control`).
    arm : Out(1)
        The ``ctrl.arm`` write strobe itself, for the risk gate (an arm clears its
        market-maker protection trips).
    i_gap : In(stream.Signature(GapLayout))
        MoldRx's ``o_gap``: the head gap is shown in ``mold_recovery.gap_*`` and taken when the
        host writes ``gap_pop``.
    o_expected : Out(stream.Signature(64))
        To MoldRx's ``i_expected``: a write to ``mold_recovery.set_expected`` offers
        ``next_expected`` (latched) until MoldRx takes it.
    <block> : one port per block not in :data:`INTERNAL_BLOCKS`, named after it
        A block mirroring a stage's port (``net``, the ``*_stats`` counters) is one struct port
        of that stage's layout, to connect with one ``.eq``: ``Out`` for configuration, ``In``
        for status and counters. Any other block is the bank's interface for it (one member per
        register, an array of them for per-instrument blocks), see
        :class:`~hdl.csr.bank.RegisterBank`.

    Latency
    -------
    Registers: as :class:`~hdl.csr.bank.RegisterBank` (1 cycle from a bus access). The control
    outputs: as :class:`~hdl.csr.control.Control`, counted from the cycle the bus write is
    presented: ``armed``/``killed`` change 1 cycle after a write to ``ctrl.arm``/``ctrl.kill``,
    and ``heartbeat_lost`` rises ``heartbeat_timeout + 2`` cycles after the last write to
    ``ctrl.heartbeat``.
    """

    def __init__(self, regmap: RegisterMap = REGISTER_MAP, *, uart_divisor: int | None = None,
                 clk_hz: int = 156_250_000, build_id: int = 0,
                 link_timeout: int | None = None):
        self.regmap = regmap
        self.clk_hz = clk_hz
        self.build_id = build_id
        self.uart_divisor = uart_divisor
        self.link_timeout = link_timeout if link_timeout is not None else clk_hz // 20
        members = {}
        if uart_divisor is None:
            members["bus"] = In(CsrSignature(regmap.addr_width))
        else:
            members["rx"] = In(1, init=1)
            members["tx"] = Out(1, init=1)
        members["control"] = Out(ControlSignature())
        members["arm"] = Out(1)
        members["i_gap"] = In(stream.Signature(GapLayout))
        members["o_expected"] = Out(stream.Signature(SEQ_BITS))
        for block in regmap.blocks:
            if block.name not in INTERNAL_BLOCKS:
                members[block.name] = _port_member(block)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.bank = bank = RegisterBank(self.regmap)
        m.submodules.control = control = Control()

        if self.uart_divisor is None:
            wiring.connect(m, wiring.flipped(self.bus), bank.bus)
        else:
            m.submodules.bridge = bridge = UartBridge(
                divisor=self.uart_divisor, addr_width=self.regmap.addr_width,
                timeout=self.link_timeout)
            wiring.connect(m, bridge.bus, bank.bus)
            m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]
            for name, _ in bridge.stats.shape():
                m.d.comb += getattr(bank.bridge_stats, name).eq(bridge.stats[name])

        # The cycle counter and heartbeat age change every cycle: their wiring gets its own
        # module, so that Amaranth's simulator does not re-evaluate every other connection of
        # the plane each cycle (it evaluates a module's combinational logic as one unit).
        ctrl = bank.ctrl
        m.submodules.ctrl_wiring = ctrl_wiring = _Wiring()
        ctrl_wiring.comb += [
            ctrl.magic.eq(MAGIC),
            ctrl.map_version.eq(MAP_VERSION),
            ctrl.map_hash.eq(self.regmap.hash),
            ctrl.build_id.eq(self.build_id),
            ctrl.clk_hz.eq(self.clk_hz),
            control.arm.eq(ctrl.arm),
            self.arm.eq(ctrl.arm),
            control.kill.eq(ctrl.kill),
            control.heartbeat.eq(ctrl.heartbeat),
            control.commit.eq(ctrl.commit),
            control.heartbeat_timeout.eq(ctrl.heartbeat_timeout),
            ctrl.cycles.eq(control.cycles),
            ctrl.commit_count.eq(control.commit_count),
            ctrl.heartbeat_age.eq(control.heartbeat_age),
        ]
        for name in _CONTROL_STATE:
            ctrl_wiring.comb += [getattr(ctrl, name).eq(getattr(control, name)),
                         getattr(self.control, name).eq(getattr(control, name))]

        rec, gap, expected = bank.mold_recovery, self.i_gap, self.o_expected
        m.d.comb += [
            rec.gap_pending.eq(gap.valid),
            rec.gap_first.eq(gap.payload.first),
            rec.gap_count.eq(gap.payload.count),
            gap.ready.eq(rec.gap_pop),
            rec.set_pending.eq(expected.valid),
        ]
        with m.If(expected.ready):
            m.d.sync += expected.valid.eq(0)
        with m.If(rec.set_expected):
            m.d.sync += [expected.valid.eq(1), expected.payload.eq(rec.next_expected)]

        for block in self.regmap.blocks:
            if block.name in INTERNAL_BLOCKS:
                continue
            outer, inner = getattr(self, block.name), getattr(bank, block.name)
            if block.layout is not None:
                for reg in block.regs:
                    if reg.access is Access.RO:
                        m.d.comb += getattr(inner, reg.name).eq(outer[reg.name])
                    else:
                        m.d.comb += outer[reg.name].eq(getattr(inner, reg.name))
            elif block.count:
                for index in range(block.count):
                    wiring.connect(m, inner[index], wiring.flipped(outer[index]))
            else:
                wiring.connect(m, inner, wiring.flipped(outer))
        return m
