"""A simulated board behind a pseudo-terminal: the serial path end to end, without hardware.

:class:`PtyBoard` runs a :class:`~host.transports.sim.SimBoard` with its UART bridge and copies
bytes between the master side of a pseudo-terminal and the bridge's ``rx``/``tx`` lines (as
UART characters, bit by bit). Any serial client opens the slave side, ``path``, as it would a
board's USB UART. The simulation advances only while there is traffic, and runs far slower than
a real line: give clients a generous read timeout.
"""

import os
import select
import threading
import tty

from host.transports.sim import SimBoard

__all__ = ["PtyBoard"]


class PtyBoard:
    """Serve ``board`` (built with ``uart=True``) on a new pseudo-terminal.

    Attributes
    ----------
    path : str
        The device a client opens (``/dev/pts/N``).
    """

    def __init__(self, board: SimBoard):
        if not board.uart:
            raise ValueError("the board needs its UART bridge (SimBoard(uart=True))")
        self.board = board
        self.master, self._slave = os.openpty()
        # Raw from the start: the line discipline must neither echo nor translate bytes.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        # After the last byte in or out, keep the design running long enough for the bridge to
        # answer a request cut short (its timeout) and to send the longest reply.
        self.quiet_cycles = board.design.link_timeout + 80 * 10 * board.divisor

    def _forward_out(self) -> bool:
        if not self.board.received:
            return False
        os.write(self.master, bytes(self.board.received))
        self.board.received.clear()
        return True

    def serve(self, stop: threading.Event | None = None, *, poll: float = 0.05) -> None:
        """Copy bytes and run the design until ``stop`` is set (forever without one)."""
        quiet = self.quiet_cycles
        while stop is None or not stop.is_set():
            busy = quiet < self.quiet_cycles or self.board.uart_busy()
            readable, _, _ = select.select([self.master], [], [], 0 if busy else poll)
            if readable:
                try:
                    data = os.read(self.master, 4096)
                except OSError:  # no client has the slave open; keep waiting for one
                    data = b""
                if data:
                    self.board.uart_write(data)
                    quiet = 0
            if quiet < self.quiet_cycles or self.board.uart_busy():
                self.board.step(10 * self.board.divisor)
                quiet += 10 * self.board.divisor
                if self._forward_out() or self.board.uart_busy():
                    quiet = 0

    def close(self) -> None:
        os.close(self.master)
        os.close(self._slave)
