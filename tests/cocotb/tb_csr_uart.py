"""The host driver, unchanged, drives the control plane's UART pins in a Verilog simulator.

The driver and its framed transport are blocking code; they run in a cocotb bridge thread and
reach the simulation through a byte port whose reads and writes are cocotb coroutines that
toggle ``rx`` and sample ``tx`` bit by bit. Every register of the design's map is written (each
RW one with a random allowed value), committed, read back, and checked on the gateware's own
ports; the RO registers read what random values on the input ports say they must.
"""

import os
import random
from collections import deque

import cocotb
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge
from streams import TBBase

from hdl.csr.map import REGISTER_MAP
from hdl.csr.plane import INTERNAL_BLOCKS
from hdl.csr.protocol import Status
from hdl.csr.reg import Access
from host.driver import Driver
from host.transports import RegisterAccessError
from host.transports.framed import FramedTransport

DIVISOR = int(os.environ.get("CSR_DIVISOR", "4"))


def port_of(loc):
    """The Verilog port carrying register ``loc`` and the register's bit offset in it."""
    block = loc.block
    if block.layout is not None:
        return block.name, block.layout[loc.reg.name].offset
    if block.count:
        return f"{block.name}__{loc.index}__{loc.reg.name}", 0
    return f"{block.name}__{loc.reg.name}", 0


class UartPins:
    """A byte port on ``rx``/``tx`` for :class:`FramedTransport`, usable from a bridge thread."""

    def __init__(self, tb: TBBase, timeout_cycles: int):
        self.tb, self.dut = tb, tb.dut
        self.timeout_cycles = timeout_cycles
        self.received = deque()
        self.dut.rx.value = 1
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        tx = self.dut.tx
        while True:
            await FallingEdge(tx)
            await ClockCycles(self.dut.clk, DIVISOR // 2)
            if int(tx.value):
                continue
            byte = 0
            for bit in range(8):
                await ClockCycles(self.dut.clk, DIVISOR)
                byte |= int(tx.value) << bit
            await ClockCycles(self.dut.clk, DIVISOR)
            assert int(tx.value) == 1, "bad stop bit from the bridge"
            self.received.append(byte)

    async def _send(self, data: bytes):
        for byte in data:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.dut.rx.value = bit
                await ClockCycles(self.dut.clk, DIVISOR)

    async def _receive(self, size: int) -> bytes:
        # Like a serial port's read timeout, the wait restarts with every byte that arrives.
        waited, have = 0, len(self.received)
        while len(self.received) < size and waited < self.timeout_cycles:
            await ClockCycles(self.dut.clk, DIVISOR)
            waited = 0 if len(self.received) > have else waited + DIVISOR
            have = len(self.received)
        return bytes(self.received.popleft() for _ in range(min(size, len(self.received))))

    def write(self, data: bytes) -> None:
        resume(self._send)(data)

    def read(self, size: int) -> bytes:
        return resume(self._receive)(size)

    def discard_input(self) -> None:
        self.received.clear()

    def close(self) -> None:
        pass


def drive_inputs(dut, rng):
    """Random values on every input port that feeds an RO register; the registers' values."""
    vectors = {}
    expected = {}
    for loc in REGISTER_MAP:
        if loc.reg.access is not Access.RO or loc.block.name in INTERNAL_BLOCKS:
            continue
        name, offset = port_of(loc)
        value = rng.getrandbits(loc.reg.width)
        vectors[name] = vectors.get(name, 0) | value << offset
        expected[loc.path] = loc.reg.from_words(loc.reg.to_words(value))  # signed if need be
    for name, value in vectors.items():
        getattr(dut, name).value = value
    dut.i_gap__valid.value = 0
    dut.i_gap__payload.value = 0
    dut.o_expected__ready.value = 0
    return expected


def port_value(dut, loc):
    name, offset = port_of(loc)
    raw = (int(getattr(dut, name).value) >> offset) & ((1 << loc.reg.width) - 1)
    if loc.reg.signed and raw >> (loc.reg.width - 1):
        raw -= 1 << loc.reg.width
    return raw


@cocotb.test()
async def every_register_through_the_uart(dut):
    seed = int(os.environ.get("TB_SEED", "1"))
    rng = random.Random(seed)
    tb = TBBase(dut)
    dut.rx.value = 1
    await tb.start()
    inputs = drive_inputs(dut, rng)
    pins = UartPins(tb, timeout_cycles=100 * DIVISOR)
    writable = {loc.path: rng.choice([loc.reg.min, loc.reg.max,
                                      rng.randint(loc.reg.min, loc.reg.max)])
                for loc in REGISTER_MAP if loc.reg.access is Access.RW}

    def host():
        transport = FramedTransport(pins)
        driver = Driver(transport)
        driver.apply(writable)  # writes, commits, reads back and verifies
        values = driver.read_many([loc.path for loc in REGISTER_MAP])
        # The bank's errors come back through the frames.
        statuses = []
        for address, words in ((REGISTER_MAP.words, None),
                               (REGISTER_MAP["ctrl.cycles"].address, [1]),
                               (REGISTER_MAP["quote[1].levels"].address, [0])):
            try:
                if words is None:
                    transport.read(address)
                else:
                    transport.write(address, words)
            except RegisterAccessError as error:
                statuses.append(error.status)
        return values, statuses, transport.errors

    values, statuses, link_errors = await bridge(host)()
    for loc in REGISTER_MAP:
        if loc.reg.access is Access.RW:
            assert values[loc.path] == writable[loc.path], loc.path
            if loc.block.name not in INTERNAL_BLOCKS:
                assert port_value(dut, loc) == writable[loc.path], f"{loc.path} on its port"
        elif loc.reg.access is Access.W1P:
            assert values[loc.path] == 0, loc.path
        elif loc.path in inputs:
            assert values[loc.path] == inputs[loc.path], loc.path
    assert statuses == [Status.UNMAPPED, Status.READ_ONLY, Status.RANGE]
    assert values["quote[1].levels"] == writable["quote[1].levels"]
    assert link_errors == {}
    dut._log.info("every register through the UART in %d cycles", tb.cycle)
