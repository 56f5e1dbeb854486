"""The UART-to-register bridge: request frames in, CSR bus accesses, one reply frame out.

The frame format, status codes and counters are declared in :mod:`hdl.csr.protocol`.
:class:`FrameEngine` works on byte streams (so a test can drive it without a UART);
:class:`UartBridge` puts a :class:`~hdl.csr.uart.UartRx`/:class:`~hdl.csr.uart.UartTx` pair
around it for a board.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from hdl.csr.bus import CsrSignature
from hdl.csr.protocol import (
    CRC_POLY,
    MAX_WORDS,
    REPLY_HEADER,
    REPLY_SYNC,
    REQUEST_SYNC,
    BridgeStat,
    BusError,
    Command,
    Status,
    crc8,
)
from hdl.csr.reg import WORD_BITS
from hdl.csr.uart import UartRx, UartTx
from hdl.stats import count, stats_layout

__all__ = ["FrameEngine", "UartBridge"]

assert CRC_POLY == 0x07


def _crc8_next(crc, byte):
    """CRC-8 after one more byte, as XORs: the CRC of ``crc ^ byte`` is linear in its bits."""
    mixed = crc ^ byte
    out = []
    for bit in range(8):
        taps = [k for k in range(8) if (crc8(bytes([1 << k])) >> bit) & 1]
        term = Const(0, 1)
        for k in taps:
            term = term ^ mixed[k]
        out.append(term)
    return Cat(*out)


class FrameEngine(wiring.Component):
    """Executes request frames on the CSR bus and answers each with a reply frame.

    Parameters
    ----------
    addr_width : int
        Word address bits of the bus (the frame's address field is 16 bits).
    timeout : int
        Cycles without a byte, in the middle of a request, after which the request is answered
        with ``TIMEOUT``. Choose it longer than any gap a host's serial adapter may leave inside
        a frame (USB adapters deliver in 1 ms packets): the board tops use 50 ms.

    Ports
    -----
    i : In(stream.Signature(8))
        Request bytes. ``ready`` is high except while a request executes or its reply is sent.
    o : Out(stream.Signature(8))
        Reply bytes.
    bus : Out(CsrSignature(addr_width))
        One access every other cycle while a request executes.
    uart_framing, uart_overrun : In(1)
        Pulses from the UART, counted here so every link counter is in one place.
    stats : Out(stats_layout(BridgeStat))

    Latency
    -------
    A reply's first byte is offered ``2 * n`` cycles after the clock edge that takes the
    request's CRC byte, ``n`` being the words accessed (two cycles each: the bank answers the
    cycle after each access, and the next access waits for that answer so that nothing is
    accessed after a refused word). A reply to a bad command, length or CRC is offered the cycle
    after the byte that shows the error; a timeout reply ``timeout`` cycles after the last byte.

    Throughput
    ----------
    Limited by the line: a byte per cycle on ``i`` and ``o`` when the other side keeps up.

    Bad input
    ---------
    Every request gets one reply; see :mod:`hdl.csr.protocol` for the status codes. A request
    with a bad CRC, command or length executes nothing; a burst stops at the first word the bank
    refuses. Each case is counted in ``stats``.
    """

    def __init__(self, *, addr_width: int = 16, timeout: int = 1_000_000):
        if addr_width > 16:
            raise ValueError("the frame's address field is 16 bits")
        if timeout < 2:
            raise ValueError("timeout must be at least 2 cycles")
        self.timeout = timeout
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "bus": Out(CsrSignature(addr_width)),
            "uart_framing": In(1),
            "uart_overrun": In(1),
            "stats": Out(stats_layout(BridgeStat)),
        })

    def elaborate(self, platform):
        m = Module()
        i, o, bus, stats = self.i, self.o, self.bus, self.stats

        m.submodules.buffer = buffer = memory.Memory(shape=WORD_BITS, depth=MAX_WORDS, init=[])
        buf_w = buffer.write_port()
        buf_r = buffer.read_port(domain="comb")

        cmd = Signal(8)
        tag = Signal(8)
        addr = Signal(16)
        words = Signal(range(MAX_WORDS + 1))    # requested word count
        done = Signal(range(MAX_WORDS + 1))     # words accessed without error
        status = Signal(8)
        crc = Signal(8)
        word = Signal(WORD_BITS)                # write data being assembled
        byte_index = Signal(range(REPLY_HEADER + 4 * MAX_WORDS + 1))
        idle = Signal(range(self.timeout + 1))  # cycles since the last request byte

        got = i.valid & i.ready
        crc_next = _crc8_next(crc, i.payload)
        count(m, stats.uart_framing, self.uart_framing)
        count(m, stats.uart_overrun, self.uart_overrun)

        def error_reply(code, stat):
            m.d.sync += [status.eq(code), done.eq(0), byte_index.eq(0), crc.eq(0)]
            count(m, getattr(stats, stat.name.lower()), 1)
            m.next = "REPLY"

        def receive(next_state, *stmts):
            """Take a request byte into the CRC; time out if none comes."""
            with m.If(got):
                m.d.sync += [crc.eq(crc_next), idle.eq(0), *stmts]
                if next_state:
                    m.next = next_state
            with m.Elif(idle == self.timeout - 1):
                error_reply(Status.TIMEOUT, BridgeStat.TIMEOUT)
            with m.Else():
                m.d.sync += idle.eq(idle + 1)

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got):
                    with m.If(i.payload == REQUEST_SYNC):
                        m.d.sync += [crc.eq(crc8(bytes([REQUEST_SYNC]))), idle.eq(0),
                                     cmd.eq(0), tag.eq(0)]
                        m.next = "CMD"
                    with m.Else():
                        count(m, stats.junk, 1)
            with m.State("CMD"):
                receive("TAG", cmd.eq(i.payload))
            with m.State("TAG"):
                receive("ADDR_HI", tag.eq(i.payload))
            with m.State("ADDR_HI"):
                receive("ADDR_LO", addr[8:].eq(i.payload))
            with m.State("ADDR_LO"):
                receive("COUNT", addr[:8].eq(i.payload))
            with m.State("COUNT"):
                receive(None, words.eq(i.payload), byte_index.eq(0))
                with m.If(got):
                    with m.If((cmd != Command.READ) & (cmd != Command.WRITE)):
                        error_reply(Status.BAD_COMMAND, BridgeStat.BAD_COMMAND)
                    with m.Elif((i.payload == 0) | (i.payload > MAX_WORDS)):
                        error_reply(Status.BAD_LENGTH, BridgeStat.BAD_LENGTH)
                    with m.Elif(cmd == Command.WRITE):
                        m.next = "DATA"
                    with m.Else():
                        m.next = "CRC"
            with m.State("DATA"):
                receive(None, word.eq(Cat(i.payload, word[:24])), byte_index.eq(byte_index + 1))
                with m.If(got):
                    with m.If(byte_index[:2] == 3):
                        m.d.comb += [buf_w.addr.eq(byte_index[2:]), buf_w.en.eq(1),
                                     buf_w.data.eq(Cat(i.payload, word[:24]))]
                    with m.If(byte_index + 1 == Cat(Const(0, 2), words)):
                        m.next = "CRC"
            with m.State("CRC"):
                receive(None)
                with m.If(got):
                    with m.If(i.payload == crc):
                        m.d.sync += [done.eq(0), status.eq(Status.OK)]
                        count(m, stats.requests, 1)
                        m.next = "ISSUE"
                    with m.Else():
                        error_reply(Status.BAD_CRC, BridgeStat.BAD_CRC)

            with m.State("ISSUE"):
                m.d.comb += [
                    bus.addr.eq(addr + done),
                    bus.r_stb.eq(cmd == Command.READ),
                    bus.w_stb.eq(cmd == Command.WRITE),
                    buf_r.addr.eq(done),
                    bus.w_data.eq(buf_r.data),
                ]
                m.next = "RESPONSE"
            with m.State("RESPONSE"):
                m.d.sync += [byte_index.eq(0), crc.eq(0)]
                with m.If(bus.err != BusError.OK):
                    m.d.sync += status.eq(int(Status.TIMEOUT) + bus.err)
                    count(m, stats.bus_error, 1)
                    m.next = "REPLY"
                with m.Else():
                    with m.If(cmd == Command.READ):
                        m.d.comb += [buf_w.addr.eq(done), buf_w.en.eq(1),
                                     buf_w.data.eq(bus.r_data)]
                    m.d.sync += done.eq(done + 1)
                    with m.If(done + 1 == words):
                        m.next = "REPLY"
                    with m.Else():
                        m.next = "ISSUE"

            with m.State("REPLY"):
                # Header, then the words read (most significant byte first), then the CRC.
                data_bytes = Signal(range(4 * MAX_WORDS + 1))
                m.d.comb += data_bytes.eq(Mux(cmd == Command.READ, Cat(Const(0, 2), done), 0))
                data_index = Signal(range(4 * MAX_WORDS + 1))
                m.d.comb += [data_index.eq(byte_index - REPLY_HEADER),
                             buf_r.addr.eq(data_index[2:])]
                byte = Signal(8)
                with m.Switch(byte_index):
                    with m.Case(0):
                        m.d.comb += byte.eq(REPLY_SYNC)
                    with m.Case(1):
                        m.d.comb += byte.eq(cmd)
                    with m.Case(2):
                        m.d.comb += byte.eq(tag)
                    with m.Case(3):
                        m.d.comb += byte.eq(status)
                    with m.Case(4):
                        m.d.comb += byte.eq(done)
                    with m.Default():
                        with m.Switch(data_index[:2]):
                            for k in range(4):
                                with m.Case(k):
                                    m.d.comb += byte.eq(buf_r.data.word_select(3 - k, 8))
                last = byte_index == REPLY_HEADER + data_bytes
                m.d.comb += [o.valid.eq(1), o.payload.eq(Mux(last, crc, byte))]
                with m.If(o.ready):
                    m.d.sync += [crc.eq(_crc8_next(crc, byte)), byte_index.eq(byte_index + 1)]
                    with m.If(last):
                        m.next = "HUNT"

        # Decoded from the state outside the FSM, as a continuous assignment: a Verilog
        # ``always @*`` that depends on the state alone would not run before the state first
        # changes (Icarus leaves ``ready`` undefined and nothing ever arrives).
        m.d.comb += i.ready.eq(fsm.ongoing("HUNT") | fsm.ongoing("CMD") | fsm.ongoing("TAG")
                               | fsm.ongoing("ADDR_HI") | fsm.ongoing("ADDR_LO")
                               | fsm.ongoing("COUNT") | fsm.ongoing("DATA")
                               | fsm.ongoing("CRC"))
        return m


class UartBridge(wiring.Component):
    """:class:`FrameEngine` behind an 8N1 UART: the register bank's link to a host.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (``clk_hz // baud``, at least 4).
    addr_width : int
    timeout : int
        See :class:`FrameEngine`.

    Ports
    -----
    rx : In(1)
        Line from the host (idle high).
    tx : Out(1)
        Line to the host.
    bus : Out(CsrSignature(addr_width))
    stats : Out(stats_layout(BridgeStat))

    Latency
    -------
    A request and its reply of ``n`` words take ``13 + 4n`` characters (10 bit times each) on
    the line, read or write, plus about ``2n + 4`` cycles: at 115200 baud a one-word access
    takes 1.5 ms, a 16-word burst 6.7 ms.

    Bad input
    ---------
    As :class:`FrameEngine`; bad stop bits and overruns are counted (``uart_framing``,
    ``uart_overrun``).
    """

    def __init__(self, *, divisor: int, addr_width: int = 16, timeout: int = 1_000_000):
        self._rx = UartRx(divisor)
        self._tx = UartTx(divisor)
        self._engine = FrameEngine(addr_width=addr_width, timeout=timeout)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(CsrSignature(addr_width)),
            "stats": Out(stats_layout(BridgeStat)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self._rx
        m.submodules.tx = tx = self._tx
        m.submodules.engine = engine = self._engine
        wiring.connect(m, rx.o, engine.i)
        wiring.connect(m, engine.o, tx.i)
        wiring.connect(m, engine.bus, wiring.flipped(self.bus))
        m.d.comb += [
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            engine.uart_framing.eq(rx.framing_error),
            engine.uart_overrun.eq(rx.overrun),
            self.stats.eq(engine.stats),
        ]
        return m
