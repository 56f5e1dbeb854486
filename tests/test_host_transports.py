"""The framed transport's handling of a lossy link, against a scripted byte port."""

from collections import deque

import pytest

from hdl.csr.protocol import (
    MAX_WORDS,
    Command,
    Status,
    decode_request,
    encode_reply,
)
from host.transports import LinkError, RegisterAccessError
from host.transports.framed import FramedTransport


class ScriptedPort:
    """Answers each request from ``memory``, unless ``script`` says otherwise for it.

    Script entries (one per request, in order): ``"ok"``, ``"not-executed"`` (a BAD_CRC
    reply), ``"stale"`` (a reply with another tag first), ``"garbled"`` (the reply's CRC
    broken), ``"silent"`` (no reply), or a :class:`Status` to stop the burst at its first word.
    """

    def __init__(self, script=()):
        self.script = deque(script)
        self.memory = {}
        self.requests = []
        self.pending = b""

    def write(self, data):
        request = decode_request(data)
        self.requests.append(request)
        action = self.script.popleft() if self.script else "ok"
        words, status = [], Status.OK
        done = 0
        if isinstance(action, Status):
            status = action
        else:
            for k in range(request.count):
                if request.cmd == Command.READ:
                    words.append(self.memory.get(request.addr + k, 0))
                else:
                    self.memory[request.addr + k] = request.data[k]
            done = request.count
        reply = encode_reply(request.cmd, request.tag, status, done, words)
        if action == "not-executed":
            for k in range(request.count):  # undo: the bridge executes nothing on a bad CRC
                self.memory.pop(request.addr + k, None)
            reply = encode_reply(request.cmd, request.tag, Status.BAD_CRC, 0)
        elif action == "stale":
            reply = encode_reply(request.cmd, request.tag ^ 0x80, Status.OK, done, words) + reply
        elif action == "garbled":
            reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
        elif action == "silent":
            reply = b""
        self.pending += reply

    def read(self, size):
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def discard_input(self):
        self.pending = b""

    def close(self):
        pass


def test_bursts_are_split_into_frames_of_at_most_max_words():
    port = ScriptedPort()
    transport = FramedTransport(port)
    transport.write(0x100, list(range(40)))
    assert transport.read(0x100, 40) == list(range(40))
    assert [r.count for r in port.requests] == [16, 16, 8, 16, 16, 8]
    assert [r.addr for r in port.requests[:3]] == [0x100, 0x100 + MAX_WORDS, 0x100 + 32]
    assert len({r.tag for r in port.requests}) == len(port.requests)


def test_requests_not_executed_are_retried_and_stale_replies_skipped():
    port = ScriptedPort(["not-executed", "ok", "stale", "garbled", "ok"])
    transport = FramedTransport(port)
    transport.write(5, [7])
    assert port.memory == {5: 7} and len(port.requests) == 2
    assert transport.read(5) == [7]         # after a stale reply
    assert transport.read(5) == [7]         # a read whose reply was garbled is repeated
    assert transport.errors == {"BAD_CRC": 1, "stale reply": 1, "bad reply": 1,
                                "no reply": 1}


def test_a_write_whose_reply_is_lost_is_not_repeated():
    port = ScriptedPort(["silent"])
    transport = FramedTransport(port)
    with pytest.raises(LinkError, match="may or may not have executed"):
        transport.write(3, [1])
    assert len(port.requests) == 1


def test_a_dead_link_gives_up_after_the_retries():
    port = ScriptedPort(["silent"] * 3)
    with pytest.raises(LinkError, match="no reply after 3 attempts"):
        FramedTransport(port, retries=2).read(0)


@pytest.mark.parametrize("status", [Status.UNMAPPED, Status.READ_ONLY, Status.RANGE])
def test_refused_words_raise_with_status_and_address(status):
    port = ScriptedPort(["ok", status])
    transport = FramedTransport(port)
    with pytest.raises(RegisterAccessError) as error:
        transport.write(0x40, list(range(20)))
    assert error.value.status is status
    assert error.value.address == 0x40 + MAX_WORDS


def test_a_reply_that_is_not_from_a_bridge_is_an_error():
    class Echo(ScriptedPort):
        def write(self, data):
            request = decode_request(data)
            self.pending += encode_reply(request.cmd, request.tag, Status.BAD_COMMAND, 0)

    with pytest.raises(LinkError, match="BAD_COMMAND"):
        FramedTransport(Echo()).read(0)
