"""An 8N1 UART receiver and transmitter with a fixed baud divisor.

Both sample and drive the line once per ``divisor`` cycles (``divisor = clk_hz // baud``, at least
4). The receiver centres its samples on the middle of each bit from the falling edge of the start
bit, which tolerates the usual few percent of baud-rate mismatch between the two ends.
"""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "UartRx", "UartTx"]

MIN_DIVISOR = 4


def _check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be an integer >= {MIN_DIVISOR}, not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver: line in, one byte per character out.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Ports
    -----
    rx : In(1)
        The line (idle high); asynchronous, synchronized by two flip-flops inside.
    o : Out(stream.Signature(8))
        Received bytes. A byte waits in a one-byte holding register until taken.
    framing_error : Out(1)
        One-cycle pulse for a character whose stop bit was low; the character is dropped and the
        receiver waits for the line to go high again (a break) before looking for a start bit.
    overrun : Out(1)
        One-cycle pulse for a character dropped because the previous one was still waiting.

    Latency
    -------
    A byte is valid at ``o`` about 9.5 bit times plus 3 cycles after the start bit's falling
    edge (the middle of its stop bit, plus the synchronizer).

    Throughput
    ----------
    Back-to-back characters at the full baud rate.

    Bad input
    ---------
    A start bit shorter than half a bit (a glitch) is ignored; bad stop bits and overruns are
    reported on their pulse outputs; nothing locks up.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(8))
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(self.divisor))
        bit = Signal(range(8))
        shift = Signal(8)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(self.divisor - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += self.framing_error.eq(1)
                    m.next = "BREAK"
                with m.Else():
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: one byte per character in, line out.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Ports
    -----
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The line, driven from a flip-flop; high when idle.

    Latency
    -------
    The start bit begins 1 cycle after the byte is taken.

    Throughput
    ----------
    One character per ``10 * divisor + 1`` cycles when bytes are offered back to back.
    """

    i: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(11))
        shift = Signal(10, init=1)

        m.d.comb += self.i.ready.eq(bits_left == 0)
        m.d.sync += self.tx.eq(shift[0])
        with m.If(bits_left == 0):
            with m.If(self.i.valid):
                # Start bit (0), the byte least significant bit first, stop bit (1).
                m.d.sync += [shift.eq(Cat(0, self.i.payload, 1)), bits_left.eq(10),
                             timer.eq(self.divisor - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shift.eq(Cat(shift[1:], 1)), bits_left.eq(bits_left - 1),
                         timer.eq(self.divisor - 1)]
        return m
