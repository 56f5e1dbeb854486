"""A simulated board: the control plane in Amaranth's simulator, stepped as requests arrive.

:class:`SimBoard` owns the simulation. Time advances only when something waits on the design
(a bus access, a UART byte), so an idle board costs nothing. :class:`SimTransport` is the
:class:`~host.transports.Transport` on top of it, either straight onto the CSR bus (``direct``,
one access per cycle) or through the UART bridge (``uart``: bits on the ``rx``/``tx`` lines, the
same frames a serial device would carry).

By default the board is the control plane alone, and the register inputs a real design would
drive (counters, book, position, Mold status) are left to the caller: :meth:`SimBoard.poke` sets
them, e.g. to check that the host reads what it should. Given a whole core (``design``, e.g.
:class:`~hdl.top.TickgateCore`), the board runs that instead, and a background testbench
(:meth:`SimBoard.add_testbench`) feeds its data ports.
"""

import re
from collections import deque

from amaranth.hdl import Value
from amaranth.sim import Simulator

from hdl.csr.map import REGISTER_MAP
from hdl.csr.plane import INTERNAL_BLOCKS, ControlPlane
from hdl.csr.protocol import BusError, status_of_bus_error
from hdl.csr.reg import Access, RegisterMap
from host.transports import RegisterAccessError
from host.transports.framed import FramedTransport

__all__ = ["CLOCK_PERIOD", "BusTransport", "SimBoard", "SimTransport", "SimUartPort",
           "bus_access"]

#: Simulated clock period in seconds; only the cycle count matters.
CLOCK_PERIOD = 1e-8
_PATH = re.compile(r"^(\w+)(?:\[(\d+)\])?\.(\w+)$")


async def bus_access(ctx, bus, address: int, write: int | None = None) -> tuple[int, BusError]:
    """One access on a CSR bus from an Amaranth testbench (a read when ``write`` is ``None``).

    Presents the access for one cycle and returns ``(r_data, err)`` as the target answers in
    the next cycle (see :mod:`hdl.csr.bus`).
    """
    ctx.set(bus.addr, address)
    if write is None:
        ctx.set(bus.r_stb, 1)
    else:
        ctx.set(bus.w_data, write)
        ctx.set(bus.w_stb, 1)
    await ctx.tick()
    ctx.set(bus.r_stb, 0)
    ctx.set(bus.w_stb, 0)
    return ctx.get(bus.r_data), BusError(ctx.get(bus.err))


class _Job:
    __slots__ = ("coroutine", "done", "error", "result")

    def __init__(self, coroutine):
        self.coroutine = coroutine
        self.done = False
        self.result = None
        self.error = None


class SimBoard:
    """The control plane running in the Amaranth simulator.

    Parameters
    ----------
    regmap : RegisterMap
    uart : bool
        Build the plane with its UART bridge (``rx``/``tx``) instead of the direct bus.
    divisor : int
        UART clock cycles per bit (small, to keep simulations short).
    link_timeout : int
        Bridge timeout in cycles.
    build_id : int
        Reported in ``ctrl.build_id``.
    design : Component, optional
        The design to run instead of a bare control plane: one with the plane's host link
        (``bus``, or ``rx``/``tx`` built with ``divisor``) and a ``link_timeout`` attribute, whose
        map is ``regmap``. Its other ports are for the caller's testbenches.
    """

    def __init__(self, regmap: RegisterMap = REGISTER_MAP, *, uart: bool = False,
                 divisor: int = 4, link_timeout: int = 2000, build_id: int = 0,
                 clk_hz: int = 156_250_000, design=None):
        self.regmap = regmap
        self.uart = uart
        self.divisor = divisor
        if design is None:
            design = ControlPlane(regmap, uart_divisor=divisor if uart else None,
                                  clk_hz=clk_hz, build_id=build_id, link_timeout=link_timeout)
        elif ("rx" in design.signature.members) != uart:
            raise ValueError(f"the design's host link is {'not ' if uart else ''}a UART")
        #: The simulated design; the host link is its ``bus`` or ``rx``/``tx``.
        self.design = design
        #: The bare control plane whose register inputs :meth:`poke` sets (None for a core).
        self.plane = design if isinstance(design, ControlPlane) else None
        self.sim = Simulator(design)
        self.sim.add_clock(CLOCK_PERIOD)
        self.cycle = 0
        self._jobs: deque[_Job] = deque()
        self._tx_bytes: deque[int] = deque()
        self.received = bytearray()
        self.framing_errors = 0
        self._sending = False
        self.sim.add_testbench(self._run_jobs, background=True)
        if uart:
            self.sim.add_testbench(self._drive_rx, background=True)
            self.sim.add_testbench(self._monitor_tx, background=True)

    def add_testbench(self, testbench) -> None:
        """Add a background ``async def testbench(ctx)`` (e.g. a model of a stage feeding the
        plane); only before the board first runs."""
        self.sim.add_testbench(testbench, background=True)

    # -- stepping -------------------------------------------------------------------------------

    def step(self, cycles: int = 1) -> None:
        """Advance the design by ``cycles`` clock cycles."""
        self.cycle += cycles
        self.sim.run_until(self.cycle * CLOCK_PERIOD)

    def run(self, job, *, max_cycles: int = 1_000_000):
        """Run ``job`` (an ``async def job(ctx)``) inside the simulation; return its result.

        Raises
        ------
        TimeoutError
            The job did not finish within ``max_cycles``.
        """
        item = _Job(job)
        self._jobs.append(item)
        start = self.cycle
        while not item.done:
            if self.cycle - start >= max_cycles:
                raise TimeoutError(f"simulation job still running after {max_cycles} cycles")
            self.step()
        if item.error is not None:
            raise item.error
        return item.result

    async def _run_jobs(self, ctx):
        # Waking up every cycle to look for work is most of a UART board's simulation time;
        # there, a job may as well wait for the next bit time.
        while True:
            if not self._jobs:
                if self.uart:
                    await ctx.delay(self.divisor * CLOCK_PERIOD)
                else:
                    await ctx.tick()
                continue
            item = self._jobs.popleft()
            try:
                item.result = await item.coroutine(ctx)
            except Exception as error:  # handed to the caller of run()
                item.error = error
            item.done = True

    # -- the design's other inputs --------------------------------------------------------------

    def port(self, path: str) -> Value:
        """The plane's port signal of register ``path`` (``block.reg`` or ``block[i].reg``)."""
        if self.plane is None:
            raise RuntimeError("this board runs a whole core: its stages drive the registers")
        match = _PATH.match(path)
        if not match or match[1] in INTERNAL_BLOCKS:
            raise KeyError(f"{path!r} is not a register on a control plane port")
        block, index, reg = match[1], match[2], match[3]
        iface = getattr(self.plane, block)
        if index is not None:
            iface = iface[int(index)]
        if self.regmap.block(block).layout is not None:
            return iface[reg]
        return getattr(iface, reg)

    def poke(self, path: str, value: int) -> None:
        """Set the input feeding RO register ``path`` (takes effect at once)."""
        if self.regmap[path].reg.access is not Access.RO:
            raise KeyError(f"{path} is not read-only: the host writes it")
        signal = self.port(path)

        async def job(ctx):
            ctx.set(signal, value)
        self.run(job)

    def peek(self, path_or_value) -> int:
        """The current value of a port (by register path) or of any signal of the design."""
        value = self.port(path_or_value) if isinstance(path_or_value, str) else path_or_value

        async def job(ctx):
            return ctx.get(value)
        return self.run(job)

    # -- direct bus -----------------------------------------------------------------------------

    def bus_access(self, address: int, write: int | None = None) -> tuple[int, BusError]:
        """One CSR bus access (a read when ``write`` is ``None``); returns (data, error)."""
        if self.uart:
            raise RuntimeError("this board's bus is behind its UART bridge")
        bus = self.design.bus

        async def job(ctx):
            return await bus_access(ctx, bus, address, write)
        return self.run(job)

    # -- UART lines -----------------------------------------------------------------------------

    def uart_write(self, data: bytes) -> None:
        """Queue bytes to be sent to the bridge's ``rx`` line."""
        if not self.uart:
            raise RuntimeError("this board has no UART")
        self._tx_bytes.extend(data)

    def uart_busy(self) -> bool:
        """Bytes are still waiting to be sent to the bridge."""
        return bool(self._tx_bytes) or self._sending

    async def _drive_rx(self, ctx):
        bit_time = self.divisor * CLOCK_PERIOD
        while True:
            if not self._tx_bytes:
                await ctx.delay(bit_time)
                continue
            self._sending = True
            byte = self._tx_bytes.popleft()
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                ctx.set(self.design.rx, bit)
                await ctx.delay(bit_time)
            self._sending = bool(self._tx_bytes)

    async def _monitor_tx(self, ctx):
        tx = self.design.tx
        bit_time = self.divisor * CLOCK_PERIOD
        while True:
            await ctx.negedge(tx)
            # Sample each bit in its middle, as a receiver would; tx only changes on clock edges.
            await ctx.delay(bit_time / 2)
            if ctx.get(tx):
                continue  # a glitch, not a start bit
            byte = 0
            for k in range(8):
                await ctx.delay(bit_time)
                byte |= ctx.get(tx) << k
            await ctx.delay(bit_time)
            if ctx.get(tx):
                self.received.append(byte)
            else:
                self.framing_errors += 1

    def uart_read(self, size: int, timeout_cycles: int) -> bytes:
        """Run until ``size`` bytes came out of ``tx`` and take them; give up after
        ``timeout_cycles`` without a new byte (as a serial port's read timeout)."""
        idle, have = 0, len(self.received)
        while len(self.received) < size and idle < timeout_cycles:
            self.step(self.divisor)
            idle = 0 if len(self.received) > have else idle + self.divisor
            have = len(self.received)
        data = bytes(self.received[:size])
        del self.received[:size]
        return data


class SimUartPort:
    """A :class:`~host.transports.framed.BytePort` on a :class:`SimBoard`'s UART lines.

    ``read`` gives up after ``timeout_cycles`` of simulated time without a new byte, counted
    from when the bytes written before it have left.
    """

    def __init__(self, board: SimBoard, *, timeout_cycles: int | None = None):
        self.board = board
        # Room for the bridge's own timeout reply to a request it found cut short.
        self.timeout_cycles = timeout_cycles or 20 * 10 * board.divisor + \
            board.design.link_timeout

    def write(self, data: bytes) -> None:
        self.board.uart_write(data)

    def read(self, size: int) -> bytes:
        while self.board.uart_busy():
            self.board.step(self.board.divisor)
        return self.board.uart_read(size, self.timeout_cycles)

    def discard_input(self) -> None:
        self.board.received.clear()

    def close(self) -> None:
        pass


class BusTransport:
    """A :class:`~host.transports.Transport` straight onto a CSR bus: ``board`` is anything
    with ``bus_access(address, write=None) -> (data, BusError)``, one access at a time (a
    :class:`SimBoard`, or a bench's bus under cocotb)."""

    def __init__(self, board):
        self.board = board

    def read(self, address: int, count: int = 1) -> list[int]:
        words = []
        for k in range(count):
            data, error = self.board.bus_access(address + k)
            if error:
                raise RegisterAccessError(status_of_bus_error(error), address + k)
            words.append(data)
        return words

    def write(self, address: int, words: list[int]) -> None:
        for k, word in enumerate(words):
            _, error = self.board.bus_access(address + k, word)
            if error:
                raise RegisterAccessError(status_of_bus_error(error), address + k)

    def close(self) -> None:
        pass


class SimTransport:
    """The :class:`~host.transports.Transport` of a :class:`SimBoard`.

    Parameters
    ----------
    board : SimBoard, optional
        A new one (of ``mode``) if not given.
    mode : str
        ``"direct"``: accesses go straight onto the CSR bus, one cycle each. ``"uart"``: they go
        as frames through the UART bridge, bit by bit.
    """

    def __init__(self, board: SimBoard | None = None, *, mode: str = "direct", **board_args):
        if mode not in ("direct", "uart"):
            raise ValueError(f"mode must be 'direct' or 'uart', not {mode!r}")
        self.board = board or SimBoard(uart=mode == "uart", **board_args)
        if self.board.uart != (mode == "uart"):
            raise ValueError(f"board built {'with' if self.board.uart else 'without'} a UART")
        self.mode = mode
        self._inner = (FramedTransport(SimUartPort(self.board)) if mode == "uart"
                       else BusTransport(self.board))

    def read(self, address: int, count: int = 1) -> list[int]:
        return self._inner.read(address, count)

    def write(self, address: int, words: list[int]) -> None:
        self._inner.write(address, words)

    def close(self) -> None:
        self._inner.close()
