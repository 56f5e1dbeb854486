"""The UART bridge's request/reply frames over any byte port (a serial device, a simulated UART).

See :mod:`hdl.csr.protocol` for the frame format. Each request carries a fresh tag; a reply with
another tag (left over from an earlier, abandoned request) is discarded.

Retries: a request the bridge reports as not executed (``BAD_CRC``, ``TIMEOUT``) is sent again, as
is a read whose reply is lost or corrupted. A write whose reply is lost is *not* repeated, because
it may have executed (a repeated write-1-to-pulse register would pulse twice): that raises
:class:`~host.transports.LinkError` and leaves the decision to the caller.
"""

from typing import Protocol

from hdl.csr.protocol import (
    MAX_WORDS,
    REPLY_HEADER,
    REPLY_SYNC,
    Command,
    FrameError,
    Reply,
    Status,
    decode_reply,
    encode_request,
    reply_length,
)
from host.transports import LinkError, RegisterAccessError

__all__ = ["BytePort", "FramedTransport"]

_NOT_EXECUTED = (Status.BAD_CRC, Status.TIMEOUT)
_BUS_ERRORS = (Status.UNMAPPED, Status.READ_ONLY, Status.RANGE)


class BytePort(Protocol):
    """A byte link: ``read`` returns up to ``size`` bytes, fewer if its timeout expires."""

    def write(self, data: bytes) -> None: ...

    def read(self, size: int) -> bytes: ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


class FramedTransport:
    """Register access through the UART bridge's frames.

    Parameters
    ----------
    port : BytePort
    retries : int
        Extra attempts for a request that was not executed or a read whose reply was lost.
    """

    def __init__(self, port: BytePort, *, retries: int = 2):
        self.port = port
        self.retries = retries
        self._tag = 0
        #: Reply statuses and lost replies seen, for a link-quality report.
        self.errors: dict[str, int] = {}

    def _note(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def _receive(self, tag: int) -> Reply | None:
        """The reply carrying ``tag``, or ``None`` when none arrives before the port times out."""
        while True:
            byte = self.port.read(1)
            if not byte:
                return None
            if byte[0] != REPLY_SYNC:
                self._note("junk")
                continue
            header = byte + self.port.read(REPLY_HEADER - 1)
            if len(header) < REPLY_HEADER:
                return None
            rest = self.port.read(reply_length(header) - REPLY_HEADER)
            try:
                reply = decode_reply(header + rest)
            except FrameError:
                self._note("bad reply")
                return None
            if reply.tag == tag:
                return reply
            self._note("stale reply")

    def _transact(self, cmd: Command, address: int, count: int, data=()) -> Reply:
        for _attempt in range(self.retries + 1):
            self._tag = (self._tag + 1) & 0xFF
            self.port.discard_input()
            self.port.write(encode_request(cmd, self._tag, address, count, data))
            reply = self._receive(self._tag)
            if reply is None:
                self._note("no reply")
                if cmd == Command.WRITE:
                    raise LinkError(f"no valid reply to a write at 0x{address:04x}; it may or "
                                    f"may not have executed")
                continue
            if reply.status in _NOT_EXECUTED:
                self._note(reply.status.name)
                continue
            if reply.status not in (Status.OK, *_BUS_ERRORS) or reply.cmd != cmd:
                raise LinkError(f"bridge answered {reply.status.name} to a well-formed request "
                                f"(command 0x{reply.cmd:02x}); is this a tickgate bridge?")
            return reply
        raise LinkError(f"no reply after {self.retries + 1} attempts "
                        f"(address 0x{address:04x}); errors so far: {self.errors}")

    def read(self, address: int, count: int = 1) -> list[int]:
        words: list[int] = []
        while len(words) < count:
            chunk = min(MAX_WORDS, count - len(words))
            reply = self._transact(Command.READ, address + len(words), chunk)
            words.extend(reply.data)
            if reply.status is not Status.OK:
                raise RegisterAccessError(reply.status, address + len(words))
        return words

    def write(self, address: int, words: list[int]) -> None:
        done = 0
        while done < len(words):
            chunk = list(words[done:done + MAX_WORDS])
            reply = self._transact(Command.WRITE, address + done, len(chunk), chunk)
            done += reply.count
            if reply.status is not Status.OK:
                raise RegisterAccessError(reply.status, address + done)

    def close(self) -> None:
        self.port.close()
