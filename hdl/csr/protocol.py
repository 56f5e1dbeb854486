"""CSR bus error codes and the UART bridge's frame format, declared once for gateware and host.

Plain Python (no Amaranth import): the bridge (``hdl/csr/bridge.py``) takes its constants from
here and the host's framed transports encode and decode with the functions below.

# Ref: tickgate UART register bridge, frame format version 1 (this module is the specification)

Framing
-------
Bytes are sent as 8N1 UART characters. Multi-byte fields are big-endian (most significant byte
first). A request carries 1 to :data:`MAX_WORDS` 32-bit words at consecutive word addresses::

    request = REQUEST_SYNC cmd tag addr[2] count [data[4] x count if cmd == WRITE] crc
    reply   = REPLY_SYNC   cmd tag status count [data[4] x count if cmd == READ]   crc

- ``cmd``: :class:`Command`; the reply echoes it and the request's ``tag`` (any byte the host
  chooses, so it can match replies to requests and discard stale ones).
- ``addr``: word address of the first word; word ``k`` goes to ``addr + k``.
- ``status``: :class:`Status`. For a request that was executed, ``count`` is the number of words
  read or written before the first word the register bank refused (all of them when ``status``
  is ``OK``); the words after a refused one are not accessed. For a request that was not
  executed (bad checksum, command, length, or a timeout), ``count`` is 0 and nothing was accessed.
- ``crc``: CRC-8 (polynomial 0x07, initial value 0, no reflection, no final XOR; the SMBus CRC)
  of every byte of the frame before it, sync byte included.

Every request gets exactly one reply. Bytes that arrive outside a frame and are not
``REQUEST_SYNC`` are ignored (and counted). A frame with an unknown command or a count of 0 or
more than :data:`MAX_WORDS` is answered as soon as that byte arrives; the bridge then looks for
the next ``REQUEST_SYNC``, so the rest of the bad frame is ignored. A frame that stops arriving
(no byte for the bridge's timeout) is answered with ``TIMEOUT``. The host sends one request at a
time and waits for its reply: bytes that arrive while a reply is being sent are lost (counted as
overruns).
"""

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "MAX_WORDS",
    "REPLY_HEADER",
    "REPLY_SYNC",
    "REQUEST_HEADER",
    "REQUEST_SYNC",
    "BridgeStat",
    "BusError",
    "Command",
    "FrameError",
    "Reply",
    "Request",
    "Status",
    "crc8",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "reply_length",
    "status_of_bus_error",
]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
#: Largest number of words in one request.
MAX_WORDS = 16
#: Bytes before the data: sync, cmd, tag, addr (2), count.
REQUEST_HEADER = 6
#: Bytes before the data: sync, cmd, tag, status, count.
REPLY_HEADER = 5
CRC_POLY = 0x07


class BusError(IntEnum):
    """The register bank's answer to one bus access (2 bits on the CSR bus)."""

    OK = 0
    #: No register at the address.
    UNMAPPED = 1
    #: Write to a read-only register.
    READ_ONLY = 2
    #: Write of a value outside the register's declared range; nothing changes.
    RANGE = 3


class Command(IntEnum):
    READ = 0x01
    WRITE = 0x02


class Status(IntEnum):
    """The ``status`` byte of a reply."""

    OK = 0
    #: The request's CRC did not match; nothing was executed.
    BAD_CRC = 1
    #: Unknown command byte; nothing was executed.
    BAD_COMMAND = 2
    #: Word count of 0 or more than ``MAX_WORDS``; nothing was executed.
    BAD_LENGTH = 3
    #: The request stopped arriving before its last byte; nothing was executed.
    TIMEOUT = 4
    #: Executed up to a word at an address with no register (see ``count``).
    UNMAPPED = 5
    #: Executed up to a write to a read-only register (see ``count``).
    READ_ONLY = 6
    #: Executed up to a write of a value outside the register's range (see ``count``).
    RANGE = 7


def status_of_bus_error(error: BusError) -> Status:
    """The reply status that reports bus error ``error``."""
    return Status(Status.TIMEOUT + int(error)) if error else Status.OK


class BridgeStat(IntEnum):
    """What the UART bridge counts (its ``stats`` port and the ``bridge`` counter registers)."""

    #: Requests executed (good CRC), whatever the bus answered.
    REQUESTS = 0
    BAD_CRC = 1
    BAD_COMMAND = 2
    BAD_LENGTH = 3
    TIMEOUT = 4
    #: Executed requests stopped by a bus error.
    BUS_ERROR = 5
    #: UART characters with a bad stop bit (dropped).
    UART_FRAMING = 6
    #: UART characters lost because the bridge was sending a reply.
    UART_OVERRUN = 7
    #: Bytes ignored while looking for ``REQUEST_SYNC``.
    JUNK = 8


def crc8(data: bytes, crc: int = 0) -> int:
    """CRC-8/SMBus of ``data`` continuing from ``crc``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class FrameError(ValueError):
    """Bytes that are not a well-formed frame."""


@dataclass(frozen=True)
class Request:
    cmd: Command
    tag: int
    addr: int
    count: int
    data: tuple[int, ...] = ()


@dataclass(frozen=True)
class Reply:
    cmd: int
    tag: int
    status: Status
    count: int
    data: tuple[int, ...] = ()


def _words(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[k:k + 4], "big") for k in range(0, len(data), 4))


def _pack_words(words) -> bytes:
    return b"".join(int(w & 0xFFFF_FFFF).to_bytes(4, "big") for w in words)


def encode_request(cmd: Command, tag: int, addr: int, count: int, data=()) -> bytes:
    """The bytes of a request (``data``: the words of a write)."""
    if not 1 <= count <= MAX_WORDS:
        raise ValueError(f"word count {count} not in 1..{MAX_WORDS}")
    if cmd == Command.WRITE and len(data) != count:
        raise ValueError(f"a write of {count} words needs {count} data words")
    body = bytes([REQUEST_SYNC, int(cmd), tag & 0xFF, (addr >> 8) & 0xFF, addr & 0xFF, count])
    if cmd == Command.WRITE:
        body += _pack_words(data)
    return body + bytes([crc8(body)])


def decode_request(frame: bytes) -> Request:
    """Parse one complete request; raises :class:`FrameError` naming what is wrong."""
    if len(frame) < REQUEST_HEADER + 1 or frame[0] != REQUEST_SYNC:
        raise FrameError("not a request frame")
    if crc8(frame[:-1]) != frame[-1]:
        raise FrameError("bad CRC")
    try:
        cmd = Command(frame[1])
    except ValueError:
        raise FrameError(f"unknown command 0x{frame[1]:02x}") from None
    count = frame[5]
    data_len = 4 * count if cmd == Command.WRITE else 0
    if len(frame) != REQUEST_HEADER + data_len + 1:
        raise FrameError("bad length")
    return Request(cmd, frame[2], int.from_bytes(frame[3:5], "big"), count,
                   _words(frame[REQUEST_HEADER:-1]))


def encode_reply(cmd: int, tag: int, status: Status, count: int, data=()) -> bytes:
    """The bytes of a reply (``data``: the words of a read)."""
    body = bytes([REPLY_SYNC, cmd & 0xFF, tag & 0xFF, int(status), count]) + _pack_words(data)
    return body + bytes([crc8(body)])


def reply_length(header: bytes) -> int:
    """Total length of a reply whose first :data:`REPLY_HEADER` bytes are ``header``."""
    data_words = header[4] if header[1] == Command.READ else 0
    return REPLY_HEADER + 4 * data_words + 1


def decode_reply(frame: bytes) -> Reply:
    """Parse one complete reply; raises :class:`FrameError` naming what is wrong."""
    if len(frame) < REPLY_HEADER + 1 or frame[0] != REPLY_SYNC:
        raise FrameError("not a reply frame")
    if len(frame) != reply_length(frame):
        raise FrameError("bad reply length")
    if crc8(frame[:-1]) != frame[-1]:
        raise FrameError("bad reply CRC")
    try:
        status = Status(frame[3])
    except ValueError:
        raise FrameError(f"unknown status {frame[3]}") from None
    return Reply(frame[1], frame[2], status, frame[4], _words(frame[REPLY_HEADER:-1]))
