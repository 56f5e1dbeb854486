"""The ITCH 5.0 declaration and codec: layouts, round trips, errors, and a real capture."""

import random
from collections import Counter

import pytest

from sim.wire.itch import (
    HEADER_FIELDS,
    HEADER_LENGTH,
    MAX_MESSAGE_LENGTH,
    MESSAGE_LENGTHS,
    MESSAGE_SPECS,
    MIN_MESSAGE_LENGTH,
    FieldKind,
    decode,
    encode,
)

# Total lengths from the specification's message tables, typed in independently of the field
# lists so that a wrong field size shows up as a mismatch.
SPEC_LENGTHS = {"S": 12, "R": 39, "H": 25, "Y": 20, "L": 26, "V": 35, "W": 12, "K": 28, "J": 35,
                "h": 21, "A": 36, "F": 40, "E": 31, "C": 36, "X": 23, "D": 19, "U": 35, "P": 44,
                "Q": 40, "B": 19, "I": 50, "N": 20, "O": 48}

AAPL_COUNTS = {"A": 4758, "D": 4083, "E": 849, "P": 240, "L": 52, "U": 7, "X": 6, "F": 2,
               "R": 1, "H": 1, "Y": 1}


def random_fields(rng: random.Random, msg_type: str) -> dict:
    values = {}
    for field in MESSAGE_SPECS[msg_type].fields:
        if field.kind is FieldKind.ALPHA:
            values[field.name] = "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(field.size))
        else:
            values[field.name] = rng.getrandbits(8 * field.size)
    return values


def test_every_type_of_the_spec_is_declared_with_its_length():
    assert MESSAGE_LENGTHS == SPEC_LENGTHS
    assert MIN_MESSAGE_LENGTH == 12
    assert MAX_MESSAGE_LENGTH == 50


@pytest.mark.parametrize("msg_type", list(MESSAGE_SPECS))
def test_layout_is_contiguous_and_starts_with_the_header(msg_type):
    spec = MESSAGE_SPECS[msg_type]
    assert spec.fields[:len(HEADER_FIELDS)] == HEADER_FIELDS
    offset = 1
    for field in spec.fields:
        assert field.offset == offset
        offset = field.end
    assert offset == spec.length
    assert len(set(spec.field_names)) == len(spec.fields)
    for field in spec.fields:
        if field.kind is FieldKind.PRICE4:
            assert field.size == 4
        if field.kind is FieldKind.PRICE8:
            assert field.size == 8


def test_header_and_names():
    assert [(f.name, f.offset, f.size) for f in HEADER_FIELDS] == [
        ("stock_locate", 1, 2), ("tracking_number", 3, 2), ("timestamp", 5, 6)]
    assert HEADER_LENGTH == 11
    names = [spec.name for spec in MESSAGE_SPECS.values()]
    assert len(set(names)) == len(names)
    assert MESSAGE_SPECS["H"].name != MESSAGE_SPECS["h"].name


@pytest.mark.parametrize("msg_type", list(MESSAGE_SPECS))
def test_round_trip(msg_type):
    rng = random.Random(ord(msg_type))
    for _ in range(20):
        values = random_fields(rng, msg_type)
        raw = encode(msg_type, **values)
        assert len(raw) == SPEC_LENGTHS[msg_type]
        assert raw[0] == ord(msg_type)
        message = decode(raw)
        assert message.type == msg_type
        assert dict(message.fields) == values
        assert encode(message.type, **message.fields) == raw


def test_known_bytes_of_an_add_order():
    raw = encode("A", stock_locate=13, tracking_number=2, timestamp=0x0102030405,
                 order_ref=0x1122334455667788, buy_sell="S", shares=100, stock="AAPL",
                 price=3201400)
    assert raw == (b"A" + b"\x00\x0d" + b"\x00\x02" + b"\x00\x01\x02\x03\x04\x05"
                   + bytes.fromhex("1122334455667788") + b"S" + (100).to_bytes(4, "big")
                   + b"AAPL    " + (3201400).to_bytes(4, "big"))
    message = decode(raw)
    assert message["stock"] == "AAPL    "
    assert message["price"] == 3201400


def test_defaults_are_zero_and_spaces():
    message = decode(encode("H"))
    assert message["stock_locate"] == message["timestamp"] == 0
    assert message["stock"] == " " * 8
    assert message["reason"] == " " * 4


def test_encode_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown ITCH 5\.0 message type"):
        encode("Z")
    with pytest.raises(ValueError, match="no field"):
        encode("A", side="B")
    with pytest.raises(ValueError, match="cannot hold"):
        encode("A", shares=1 << 32)
    with pytest.raises(ValueError, match="cannot hold"):
        encode("S", timestamp=1 << 48)
    with pytest.raises(ValueError, match="holds 8 characters"):
        encode("A", stock="TOOLONGNAME")
    with pytest.raises(TypeError):
        encode("A", shares="100")
    with pytest.raises(TypeError):
        encode("A", stock=5)


def test_decode_rejects_bad_messages():
    with pytest.raises(ValueError, match="empty"):
        decode(b"")
    with pytest.raises(ValueError, match=r"unknown ITCH 5\.0 message type 0x5a"):
        decode(b"Z" + bytes(20))
    with pytest.raises(ValueError, match="is 36 bytes, got 35"):
        decode(encode("A")[:-1])
    with pytest.raises(ValueError, match="is 12 bytes, got 13"):
        decode(encode("S") + b" ")


def test_real_binary_file(itch_data):
    from sim.capture import read_binaryfile

    path = itch_data / "aapl-20200130-premarket-10k.itch"
    messages = [decode(raw) for raw in read_binaryfile(path)]
    assert len(messages) == 10_000
    assert Counter(m.type for m in messages) == AAPL_COUNTS
    directory = next(m for m in messages if m.type == "R")
    assert directory["stock"] == "AAPL    "
    assert {m["stock_locate"] for m in messages} == {directory["stock_locate"]}
    adds = [m for m in messages if m.type in "AF"]
    assert {m["buy_sell"] for m in adds} == {"B", "S"}
    assert all(m["stock"] == "AAPL    " for m in adds)
    timestamps = [m["timestamp"] for m in messages]
    assert timestamps == sorted(timestamps)
    # 03:07 to 07:59 ET, in nanoseconds since midnight.
    assert timestamps[0] >= 3 * 3600 * 10**9
    assert timestamps[-1] < 8 * 3600 * 10**9
