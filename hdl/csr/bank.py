"""The register bank: the gateware built from a :class:`~hdl.csr.reg.RegisterMap`.

One port per block, named after it; an array block is an array of ports (``bank.quote[2]``).
Each port has one member per register, named after it: RW registers and W1P strobes are outputs
(host to gateware), RO registers are inputs (gateware to host)::

    bank.net.mac            # Out(48): the applied value
    bank.ctrl.arm           # Out(1): high during each write of 1
    bank.udp_rx_stats.ok    # In(48): read by the host
"""

from amaranth.hdl import Cat, Const, Module, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hdl.csr.bus import ERROR_BITS, CsrSignature
from hdl.csr.protocol import BusError
from hdl.csr.reg import WORD_BITS, Access, Block, Location, Reg, RegisterMap

__all__ = ["RegisterBank", "block_signature", "reg_shape"]


def reg_shape(reg: Reg):
    """The Amaranth shape of a register's value."""
    return signed(reg.width) if reg.signed else unsigned(reg.width)


def block_signature(block: Block) -> wiring.Signature:
    """The port of one block (one element, for an array block), from the bank's side."""
    members = {}
    for reg in block.regs:
        if reg.access is Access.RO:
            members[reg.name] = In(reg_shape(reg))
        else:
            members[reg.name] = Out(reg_shape(reg), init=reg.reset)
    return wiring.Signature(members)


def _in_range(reg: Reg, word):
    """Whether bus word ``word`` is an allowed value of single-word register ``reg``."""
    value = word.as_signed() if reg.signed else word
    word_lo, word_hi = ((-(1 << 31), (1 << 31) - 1) if reg.signed else (0, (1 << 32) - 1))
    ok = Const(1)
    if reg.min > word_lo:
        ok &= value >= reg.min
    if reg.max < word_hi:
        ok &= value <= reg.max
    return ok


class _Pool:
    """Registers of one kind packed into one wide signal; ``alloc`` reserves bits in it."""

    def __init__(self, name: str):
        self.name = name
        self.width = 0
        self.init = 0
        self.signal = None

    def alloc(self, width: int, init: int = 0):
        width = max(width, 0)
        offset = self.width
        self.width += width
        self.init |= (init & ((1 << width) - 1)) << offset
        return self, offset, width

    def build(self):
        if self.width:
            self.signal = Signal(self.width, init=self.init, name=self.name)


def _bits(slot):
    """The slice of its pool's signal that a slot from :meth:`_Pool.alloc` names."""
    pool, offset, width = slot
    return pool.signal[offset:offset + width] if width else None


class RegisterBank(wiring.Component):
    """Every register of a map behind one CSR bus, with staging, commit and atomic wide reads.

    Parameters
    ----------
    regmap : RegisterMap

    Ports
    -----
    bus : In(CsrSignature(regmap.addr_width))
        Register accesses; see :mod:`hdl.csr.bus` for the timing.
    <block> : Out(block_signature(block)) (an array of them for an array block)
        RW members: the value in force. W1P members: high during the cycle of a write of 1
        (decoded from the bus without a register), so what they trigger happens at the same
        clock edge as an RW write, and the next access already sees its effect.
        RO members (inputs): the values the host reads.

    Behaviour
    ---------
    - RW, not staged: a write takes effect at once (visible on the port the next cycle). A value
      wider than a word is written lowest word first; the lower words are held and the write of
      the top word applies the whole value, so the port never shows a half-written value.
    - RW, staged: writes go to a shadow copy. A write of 1 to the commit register copies every
      shadow to its port in the same clock edge, so consumers see all of a commit or none of it.
      Reads return the applied value, not the shadow.
    - RO wider than a word: a read of word 0 returns bits 31..0 and captures the rest of the value
      in a per-register latch; reads of the other words return the latch. Reading a counter
      lowest word first therefore gives one consistent value however fast it counts.
    - W1P: a write of 1 raises the port for the cycle of the access; reads return 0.

    Latency
    -------
    1 cycle from a strobe to ``r_data``/``err``, from a write to the port showing it, and from the
    commit write to every staged port showing its shadow. W1P ports: 0 cycles (combinational
    from the bus).

    Throughput
    ----------
    One access per cycle.

    Bad input
    ---------
    Each refused access is answered on ``err`` and changes nothing: ``UNMAPPED`` (no register
    there; reads return 0), ``READ_ONLY`` (write to an RO register), ``RANGE`` (write of a value
    outside the declared range, including a W1P write other than 0 or 1). The range of a
    register narrower than a word applies to the whole 32-bit word (sign-extended for a signed
    register), so stray upper bits are refused rather than dropped.
    """

    def __init__(self, regmap: RegisterMap):
        self.regmap = regmap
        members = {"bus": In(CsrSignature(regmap.addr_width))}
        for block in regmap.blocks:
            if block.name in members or hasattr(wiring.Component, block.name):
                raise ValueError(f"block name {block.name!r} clashes with a bank attribute")
            member = Out(block_signature(block))
            members[block.name] = member.array(block.count) if block.count else member
        super().__init__(members)

    def port(self, loc: Location):
        """The port member of register instance ``loc``."""
        iface = getattr(self, loc.block.name)
        if loc.index is not None:
            iface = iface[loc.index]
        return getattr(iface, loc.reg.name)

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        r_data = Signal(WORD_BITS)
        err = Signal(ERROR_BITS)
        m.d.comb += [bus.r_data.eq(r_data), bus.err.eq(err)]
        m.d.sync += [r_data.eq(0), err.eq(0)]

        # All storage of a kind is packed into one wide register. The hardware is the same
        # flip-flops, a commit is a single assignment, and Amaranth's simulator, which costs time
        # per signal per cycle, runs many times faster.
        pools = {kind: _Pool(kind) for kind in ("shadow", "live", "direct", "hold", "latch",
                                                 "pulse")}
        plan = []
        for loc in self.regmap:
            reg = loc.reg
            if reg.access is Access.RW and reg.staged:
                slots = (pools["shadow"].alloc(reg.width, reg.reset),
                         pools["live"].alloc(reg.width, reg.reset))
            elif reg.access is Access.RW:
                slots = (pools["direct"].alloc(reg.width, reg.reset),
                         pools["hold"].alloc(WORD_BITS * (reg.words - 1)))
            elif reg.access is Access.RO:
                slots = (pools["latch"].alloc(reg.width - WORD_BITS),)
            else:
                slots = (pools["pulse"].alloc(1),)
            plan.append((loc, slots))
        for pool in pools.values():
            pool.build()

        commit = Signal()
        reads = {}   # word address -> statements for a read
        writes = {}  # word address -> statements, or ("range"/"pulse", ...) for a write
        for loc, slots in plan:
            reg, port = loc.reg, self.port(loc)
            slots = tuple(_bits(slot) for slot in slots)
            addrs = [loc.address + k for k in range(reg.words)]
            if reg.access is Access.RW:
                target, live = slots if reg.staged else (slots[0], slots[0])
                m.d.comb += port.eq(live)
                if reg.words == 1:
                    reads[addrs[0]] = [r_data.eq(live.as_signed() if reg.signed else live)]
                    writes[addrs[0]] = ("range", reg, [target.eq(bus.w_data[:reg.width])])
                    continue
                for k, addr in enumerate(addrs):
                    reads[addr] = [r_data.eq(live[WORD_BITS * k:WORD_BITS * (k + 1)])]
                if reg.staged:
                    for k, addr in enumerate(addrs):
                        part = target[WORD_BITS * k:WORD_BITS * (k + 1)]
                        writes[addr] = [part.eq(bus.w_data[:len(part)])]
                else:
                    hold = slots[1]
                    for k, addr in enumerate(addrs[:-1]):
                        writes[addr] = [hold[WORD_BITS * k:WORD_BITS * (k + 1)].eq(bus.w_data)]
                    writes[addrs[-1]] = [live.eq(Cat(hold, bus.w_data))]
            elif reg.access is Access.RO:
                for addr in addrs:
                    writes[addr] = [err.eq(BusError.READ_ONLY)]
                bits = Value.cast(port)
                if reg.words == 1:
                    reads[addrs[0]] = [r_data.eq(port)]
                    continue
                latch = slots[0]
                reads[addrs[0]] = [r_data.eq(bits[:WORD_BITS]), latch.eq(bits[WORD_BITS:])]
                for k, addr in enumerate(addrs[1:]):
                    reads[addr] = [r_data.eq(latch[WORD_BITS * k:WORD_BITS * (k + 1)])]
            else:  # W1P
                pulse = slots[0]
                m.d.comb += port.eq(pulse)
                reads[addrs[0]] = []
                writes[addrs[0]] = ("pulse", pulse, loc.path == self.regmap.commit)

        with m.If(bus.r_stb):
            with m.Switch(bus.addr):
                for addr, stmts in reads.items():
                    with m.Case(addr):
                        m.d.sync += stmts
                with m.Default():
                    m.d.sync += err.eq(BusError.UNMAPPED)
        with m.Elif(bus.w_stb):
            with m.Switch(bus.addr):
                for addr, action in writes.items():
                    with m.Case(addr):
                        self._write(m, action, bus.w_data, err, commit)
                with m.Default():
                    m.d.sync += err.eq(BusError.UNMAPPED)

        if pools["live"].signal is not None:
            with m.If(commit):
                m.d.sync += pools["live"].signal.eq(pools["shadow"].signal)
        return m

    @staticmethod
    def _write(m, action, w_data, err, commit):
        if isinstance(action, list):
            m.d.sync += action
            return
        kind, subject, extra = action
        if kind == "range":
            with m.If(_in_range(subject, w_data)):
                m.d.sync += extra
            with m.Else():
                m.d.sync += err.eq(BusError.RANGE)
        else:  # pulse
            with m.If(w_data == 1):
                m.d.comb += subject.eq(1)
                if extra:
                    m.d.comb += commit.eq(1)
            with m.Elif(w_data != 0):
                m.d.sync += err.eq(BusError.RANGE)
