"""cocotb drivers and monitors for Amaranth streams and AXI-Stream ports.

Transfers follow the stream rules: a source raises ``valid`` and holds its payload until the
cycle ``ready`` is seen high; a sink decides ``ready`` a cycle ahead, independently of ``valid``.
Idle cycles and backpressure come from seeded random generators so a failing run can be
reproduced from its seed. Every transfer is logged with its clock cycle, for latency figures.
"""

import random
from collections import deque

import cocotb
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = [
    "AxisSink",
    "AxisSource",
    "StreamSink",
    "StreamSource",
    "TBBase",
    "frame_beats",
    "pack",
    "start_clock",
    "unpack",
]

BEAT_BYTES = 8


def _layout(shape):
    if isinstance(shape, data.Layout):
        return shape
    cast = shape.as_shape() if hasattr(shape, "as_shape") else None
    return cast if isinstance(cast, data.Layout) else None


def pack(layout, value) -> int:
    """Pack a (nested) dict into the integer of an Amaranth layout; ints and enums pass through."""
    sub = _layout(layout)
    if sub is None:
        width = Shape.cast(layout).width
        return int(value) & ((1 << width) - 1)
    if not isinstance(value, dict):
        return int(value) & ((1 << sub.size) - 1)
    unknown = set(value) - {name for name, _ in sub}
    if unknown:
        raise KeyError(f"fields {sorted(unknown)} are not in the layout")
    result = 0
    for name, field in sub:
        if name in value:
            result |= pack(field.shape, value[name]) << field.offset
    return result


def unpack(layout, raw: int):
    """Unpack an integer into a (nested) dict of ints following an Amaranth layout."""
    sub = _layout(layout)
    if sub is None:
        return raw
    return {name: unpack(field.shape, (raw >> field.offset) & ((1 << field.width) - 1))
            for name, field in sub}


def start_clock(clk, period_ns: int = 10) -> None:
    """Start a free-running clock on ``clk``, low first: its first rising edge comes half a
    period in, once the inputs set at time 0 have been applied."""
    # Toggled by the simulator interface itself (cocotb's GPI clock), not by a Python task: two
    # Python wake-ups fewer per cycle. The bench's own writes are unchanged: in Icarus cocotb
    # still applies them once the events of the edge have run, so the design samples, at every
    # edge, the values driven after the edge before.
    Clock(clk, period_ns, unit="ns", impl="gpi").start(start_high=False)


class TBBase:
    """Clock, reset and the clocked loop shared by every testbench's ``TB`` class.

    All drivers and monitors of a testbench run in one coroutine, woken once per rising edge:
    first every agent samples (the values before the edge), then every agent drives the next
    cycle. One wake-up per cycle instead of one per agent is what keeps Python from being the
    bottleneck of a simulation, and sampling before driving keeps agents independent of order
    even when writes take effect at once (``COCOTB_TRUST_INERTIAL_WRITES``).
    """

    period_ns = 10

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self._agents = []
        cocotb.start_soon(self._clocked_loop())

    def attach(self, agent) -> None:
        """Run ``agent.sample()`` and then ``agent.drive()`` after every rising edge."""
        self._agents.append(agent)

    async def start(self, reset_cycles: int = 4):
        start_clock(self.dut.clk, self.period_ns)
        await self.reset(reset_cycles)

    async def reset(self, cycles: int = 4):
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def _clocked_loop(self):
        edge = RisingEdge(self.dut.clk)
        while True:
            await edge
            self.cycle += 1
            for agent in self._agents:
                agent.sample()
            for agent in self._agents:
                agent.drive()

    async def cycles(self, n: int):
        for _ in range(n):
            await RisingEdge(self.dut.clk)


class _Pauser:
    """Seeded Bernoulli generator: True means 'pause this cycle'."""

    def __init__(self):
        self.ratio = 0.0
        self.rng = random.Random(0)

    def set(self, ratio: float, seed: int):
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"pause ratio {ratio} must be in [0, 1)")
        self.ratio = ratio
        self.rng = random.Random(seed)

    def __call__(self) -> bool:
        return self.ratio > 0 and self.rng.random() < self.ratio


def _as_tb(tb_or_dut) -> TBBase:
    """Drivers take the testbench (for its cycle count) or, for quick use, the bare DUT."""
    return tb_or_dut if isinstance(tb_or_dut, TBBase) else TBBase(tb_or_dut)


class _Source:
    def __init__(self, tb: TBBase, valid, ready):
        self.tb, self.valid, self.ready = tb, valid, ready
        self.queue = deque()
        self.transfers = []  # (cycle, item) of each completed transfer
        self._idle = _Pauser()
        self._current = None
        self._valid_now = 0
        self.valid.value = 0
        tb.attach(self)

    def set_idle(self, ratio: float, seed: int = 0):
        """Insert a random idle cycle before a transfer with probability ``ratio``."""
        self._idle.set(ratio, seed)

    def send(self, item):
        self.queue.append(item)

    def idle(self) -> bool:
        return not self.queue and self._current is None

    async def wait_idle(self):
        while not self.idle():
            await RisingEdge(self.tb.dut.clk)

    def sample(self):
        if self._current is not None and (self.ready is None or int(self.ready.value)):
            self.transfers.append((self.tb.cycle, self._current))
            self._current = None

    def drive(self):
        if self._current is None and self.queue and not self._idle():
            self._current = self.queue.popleft()
            self._drive(self._current)
        valid = int(self._current is not None)
        if valid != self._valid_now:
            self.valid.value = self._valid_now = valid

    def _drive(self, item):
        raise NotImplementedError


class _Sink:
    def __init__(self, tb: TBBase, valid, ready):
        self.tb, self.valid, self.ready = tb, valid, ready
        self.queue = deque()
        self.transfers = []
        self._backpressure = _Pauser()
        self._ready_now = True
        if self.ready is not None:
            self.ready.value = 1
        tb.attach(self)

    def set_backpressure(self, ratio: float, seed: int = 0):
        """Hold ``ready`` low on a random cycle with probability ``ratio``."""
        self._backpressure.set(ratio, seed)

    def empty(self) -> bool:
        return not self.queue

    async def recv(self, timeout_cycles: int = 100_000):
        for _ in range(timeout_cycles):
            if self.queue:
                return self.queue.popleft()
            await RisingEdge(self.tb.dut.clk)
        raise TimeoutError(f"nothing received within {timeout_cycles} cycles")

    def sample(self):
        if self._ready_now and int(self.valid.value):
            item = self._sample()
            if item is not None:
                self.queue.append(item)
                self.transfers.append((self.tb.cycle, item))

    def drive(self):
        ready = not self._backpressure()
        if self.ready is not None and ready != self._ready_now:
            self.ready.value = int(ready)
        self._ready_now = ready

    def _sample(self):
        raise NotImplementedError


def _port(dut, name, suffix, required=True):
    handle = getattr(dut, f"{name}__{suffix}", None)
    if handle is None and required:
        raise AttributeError(f"the design has no port {name}__{suffix}")
    return handle


class StreamSource(_Source):
    """Drives the Amaranth stream input port ``name``; items are dicts following ``layout``."""

    def __init__(self, tb: TBBase, name: str, layout):
        tb = _as_tb(tb)
        self.layout = layout
        self.payload = _port(tb.dut, name, "payload")
        super().__init__(tb, _port(tb.dut, name, "valid"), _port(tb.dut, name, "ready", False))

    def _drive(self, item):
        self.payload.value = pack(self.layout, item)


class StreamSink(_Sink):
    """Receives from the Amaranth stream output port ``name`` as dicts following ``layout``."""

    def __init__(self, tb: TBBase, name: str, layout):
        tb = _as_tb(tb)
        self.layout = layout
        self.payload = _port(tb.dut, name, "payload")
        super().__init__(tb, _port(tb.dut, name, "valid"), _port(tb.dut, name, "ready", False))

    def _sample(self):
        return unpack(self.layout, int(self.payload.value))


def frame_beats(frame: bytes, error: bool = False):
    """Split a frame into AXI-Stream beats: (tdata, tkeep, tlast, tuser) per beat."""
    if not frame:
        raise ValueError("an AXI-Stream frame needs at least one byte")
    beats = []
    for offset in range(0, len(frame), BEAT_BYTES):
        chunk = frame[offset:offset + BEAT_BYTES]
        last = offset + BEAT_BYTES >= len(frame)
        beats.append((int.from_bytes(chunk, "little"), (1 << len(chunk)) - 1, int(last),
                      int(last and error)))
    return beats


class AxisSource(_Source):
    """Drives AXI-Stream slave ports ``<prefix>_t*`` with whole frames (``send(frame, error)``)."""

    def __init__(self, tb: TBBase, prefix: str):
        tb = _as_tb(tb)
        dut = tb.dut
        self.tdata, self.tkeep = getattr(dut, f"{prefix}_tdata"), getattr(dut, f"{prefix}_tkeep")
        self.tlast, self.tuser = getattr(dut, f"{prefix}_tlast"), getattr(dut, f"{prefix}_tuser")
        self.frames_sent = 0
        super().__init__(tb, getattr(dut, f"{prefix}_tvalid"), getattr(dut, f"{prefix}_tready"))

    def send(self, frame: bytes, error: bool = False):
        for beat in frame_beats(frame, error):
            self.queue.append(beat)
        self.frames_sent += 1

    def _drive(self, item):
        tdata, tkeep, tlast, tuser = item
        self.tdata.value, self.tkeep.value = tdata, tkeep
        self.tlast.value, self.tuser.value = tlast, tuser


class AxisSink(_Sink):
    """Collects frames from AXI-Stream master ports ``<prefix>_t*`` as ``(bytes, error)``."""

    def __init__(self, tb: TBBase, prefix: str):
        tb = _as_tb(tb)
        dut = tb.dut
        self.tdata, self.tkeep = getattr(dut, f"{prefix}_tdata"), getattr(dut, f"{prefix}_tkeep")
        self.tlast = getattr(dut, f"{prefix}_tlast")
        self.tuser = getattr(dut, f"{prefix}_tuser", None)
        self._partial = bytearray()
        super().__init__(tb, getattr(dut, f"{prefix}_tvalid"), getattr(dut, f"{prefix}_tready"))

    def _sample(self):
        tdata, tkeep = int(self.tdata.value), int(self.tkeep.value)
        raw = tdata.to_bytes(BEAT_BYTES, "little")
        self._partial += bytes(raw[k] for k in range(BEAT_BYTES) if tkeep >> k & 1)
        if not int(self.tlast.value):
            return None
        frame, self._partial = bytes(self._partial), bytearray()
        return frame, bool(self.tuser is not None and int(self.tuser.value))
