"""The UART bridge on a serial device (pyserial): a board's USB UART, or a pseudo-terminal."""

from host.transports.framed import FramedTransport

__all__ = ["DEFAULT_BAUD", "SerialPort", "SerialTransport"]

DEFAULT_BAUD = 115_200


class SerialPort:
    """A :class:`~host.transports.framed.BytePort` on a serial device.

    ``timeout`` (seconds) bounds each read that finds no byte.
    """

    def __init__(self, device: str, baud: int = DEFAULT_BAUD, timeout: float = 0.5):
        import serial  # pyserial; imported here so the rest of the host runs without it

        self.serial = serial.Serial(device, baud, timeout=timeout, inter_byte_timeout=timeout)

    def write(self, data: bytes) -> None:
        self.serial.write(data)
        self.serial.flush()

    def read(self, size: int) -> bytes:
        return self.serial.read(size)

    def discard_input(self) -> None:
        self.serial.reset_input_buffer()

    def close(self) -> None:
        self.serial.close()


class SerialTransport(FramedTransport):
    """Register access over a serial device: ``SerialTransport("/dev/ttyUSB0")``."""

    def __init__(self, device: str, baud: int = DEFAULT_BAUD, *, timeout: float = 0.5,
                 retries: int = 2):
        super().__init__(SerialPort(device, baud, timeout), retries=retries)
