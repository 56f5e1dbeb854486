"""How the driver reaches the register bank: a word-level read/write interface and its errors.

A transport moves 32-bit words to and from word addresses and reports refused accesses; it knows
nothing about register names (that is :mod:`host.regmap`). Implementations:

- :class:`~host.transports.framed.FramedTransport`: the UART bridge's frames over any byte port;
  :class:`~host.transports.serial.SerialTransport` is it on a serial device (pyserial).
- :class:`~host.transports.sim.SimTransport`: the gateware running in Amaranth's simulator,
  through its CSR bus directly or through the UART bridge.
"""

from typing import Protocol

from hdl.csr.protocol import Status

__all__ = ["LinkError", "RegisterAccessError", "Transport"]


class LinkError(RuntimeError):
    """The link failed: no reply, only corrupted replies, or a reply that makes no sense."""


class RegisterAccessError(RuntimeError):
    """The register bank refused an access.

    Attributes
    ----------
    status : Status
        ``UNMAPPED``, ``READ_ONLY`` or ``RANGE``.
    address : int
        Word address of the refused word (the words before it were accessed, none after it).
    """

    def __init__(self, status: Status, address: int, message: str | None = None):
        self.status = Status(status)
        self.address = address
        super().__init__(message or f"register bank refused the access at word 0x{address:04x}: "
                                    f"{self.status.name}")


class Transport(Protocol):
    """Word access to the register bank. Reads and writes of several words go to consecutive
    addresses, lowest first; an access stops at the first refused word and raises
    :class:`RegisterAccessError`."""

    def read(self, address: int, count: int = 1) -> list[int]: ...

    def write(self, address: int, words: list[int]) -> None: ...

    def close(self) -> None: ...
