"""OUCH 5.0 and SoupBinTCP codecs (``sim/wire/ouch.py``, ``sim/wire/soupbin.py``).

Every message type is checked against bytes assembled by hand from the specification's tables
(offsets commented), then round-tripped, then fed malformed variants.
"""

import random

import pytest

from sim.wire import soupbin
from sim.wire.ouch import (
    INBOUND_SPECS,
    OUTBOUND_SPECS,
    Accepted,
    Appendage,
    Canceled,
    CancelOrder,
    Direction,
    EnterOrder,
    Executed,
    Option,
    OptionTag,
    Rejected,
    RejectReason,
    Replaced,
    ReplaceOrder,
    SystemEvent,
    decode,
    decode_inbound_stream,
    decode_outbound_stream,
    encode,
    frame,
)

IN, OUT = Direction.INBOUND, Direction.OUTBOUND
TS = "00 00 1f 1a ce d9 f0 7b"          # 34,200,000,000,123 ns: 09:30:00.000000123
PRICE_12345 = "00 00 00 00 00 12 d6 44"  # 1,234,500: $123.4500
PRICE_12346 = "00 00 00 00 00 12 d6 a8"  # 1,234,600
CLORDID_1 = "54 4b 47 30 30 30 30 30 30 30 31 20 20 20"  # "TKG00000001   "
CLORDID_2 = "54 4b 47 30 30 30 30 30 30 30 32 20 20 20"  # "TKG00000002   "
AAPL = "41 41 50 4c 20 20 20 20"  # "AAPL    "
POST_ONLY = "00 03 02 0c 50"  # Appendage Length 3; TagValue: length 2, tag 12, "P"


def hexbytes(*parts: str) -> bytes:
    return bytes.fromhex(" ".join(parts))


ENTER = EnterOrder(1, "B", 100, "AAPL", 1_234_500, "0", "Y", "P", "N", "N", "TKG00000001",
                   (Option.post_only(),))
ENTER_BYTES = hexbytes(
    "4f",                   # 0  type 'O'
    "00 00 00 01",          # 1  UserRefNum 1
    "42",                   # 5  side 'B'
    "00 00 00 64",          # 6  quantity 100
    AAPL,                   # 10 symbol
    PRICE_12345,            # 18 price (8 bytes, 4 decimals)
    "30 59 50 4e 4e",       # 26 time in force '0', display 'Y', capacity 'P', ISE 'N', cross 'N'
    CLORDID_1,              # 31 ClOrdID (14)
    POST_ONLY,              # 45 Appendage Length, 47 TagValue
)

REPLACE = ReplaceOrder(1, 2, 200, 1_234_600, "0", "Y", "N", "TKG00000002",
                       (Option.post_only(),))
REPLACE_BYTES = hexbytes(
    "55",                   # 0  type 'U'
    "00 00 00 01",          # 1  original UserRefNum
    "00 00 00 02",          # 5  new UserRefNum
    "00 00 00 c8",          # 9  quantity 200
    PRICE_12346,            # 13 price
    "30 59 4e",             # 21 time in force, display, ISE
    CLORDID_2,              # 24 ClOrdID
    POST_ONLY,              # 38 Appendage Length
)

CANCEL = CancelOrder(2, 0)
CANCEL_BYTES = hexbytes("58", "00 00 00 02", "00 00 00 00")  # 'X', UserRefNum, quantity 0

SYSTEM = SystemEvent(34_200_000_000_123, "S")
SYSTEM_BYTES = hexbytes("53", TS, "53")  # 'S', timestamp, event code 'S'

ACCEPTED = Accepted(34_200_000_000_123, 1, "B", 100, "AAPL", 1_234_500, "0", "Y", 987_654_321,
                    "P", "N", "N", "L", "TKG00000001")
ACCEPTED_BYTES = hexbytes(
    "41",                       # 0  type 'A'
    TS,                         # 1  timestamp
    "00 00 00 01",              # 9  UserRefNum
    "42",                       # 13 side
    "00 00 00 64",              # 14 quantity
    AAPL,                       # 18 symbol
    PRICE_12345,                # 26 price
    "30 59",                    # 34 time in force, display
    "00 00 00 00 3a de 68 b1",  # 36 order reference number 987,654,321
    "50 4e 4e 4c",              # 44 capacity, ISE, cross type, order state 'L'
    CLORDID_1,                  # 48 ClOrdID
    "00 00",                    # 62 Appendage Length 0
)

REPLACED = Replaced(34_200_000_000_123, 1, 2, "B", 160, "AAPL", 1_234_600, "0", "Y",
                    987_654_321, "P", "N", "N", "L", "TKG00000002")
REPLACED_BYTES = hexbytes(
    "55", TS,                   # 0  type 'U', 1 timestamp
    "00 00 00 01",              # 9  original UserRefNum
    "00 00 00 02",              # 13 UserRefNum
    "42",                       # 17 side
    "00 00 00 a0",              # 18 quantity 160 (open on the replacement)
    AAPL,                       # 22 symbol
    PRICE_12346,                # 30 price
    "30 59",                    # 38 time in force, display
    "00 00 00 00 3a de 68 b1",  # 40 order reference number
    "50 4e 4e 4c",              # 48 capacity, ISE, cross type, order state
    CLORDID_2,                  # 52 ClOrdID
    "00 00",                    # 66 Appendage Length
)

CANCELED = Canceled(34_200_000_000_123, 2, 160, "U")
CANCELED_BYTES = hexbytes("43", TS, "00 00 00 02", "00 00 00 a0", "55")  # reason 'U' at 17

EXECUTED = Executed(34_200_000_000_123, 2, 40, 1_234_600, "A", 77)
EXECUTED_BYTES = hexbytes(
    "45", TS,                   # 0 type 'E', 1 timestamp
    "00 00 00 02",              # 9  UserRefNum
    "00 00 00 28",              # 13 quantity 40
    PRICE_12346,                # 17 price
    "41",                       # 25 liquidity flag 'A'
    "00 00 00 00 00 00 00 4d",  # 26 match number 77
    "00 00",                    # 34 Appendage Length
)

REJECTED = Rejected(34_200_000_000_123, 3, RejectReason.INVALID_QUANTITY, "TKG00000001")
REJECTED_BYTES = hexbytes("4a", TS, "00 00 00 03", "00 13", CLORDID_1)  # reason at 13 (2 bytes)

KNOWN = [
    (ENTER, ENTER_BYTES, IN), (REPLACE, REPLACE_BYTES, IN), (CANCEL, CANCEL_BYTES, IN),
    (SYSTEM, SYSTEM_BYTES, OUT), (ACCEPTED, ACCEPTED_BYTES, OUT),
    (REPLACED, REPLACED_BYTES, OUT), (CANCELED, CANCELED_BYTES, OUT),
    (EXECUTED, EXECUTED_BYTES, OUT), (REJECTED, REJECTED_BYTES, OUT),
]
IDS = [type(m).__name__ for m, _, _ in KNOWN]


@pytest.mark.parametrize(("message", "raw", "direction"), KNOWN, ids=IDS)
def test_known_bytes(message, raw, direction):
    assert encode(message) == raw
    assert decode(raw, direction) == message
    assert message.wire_length == len(raw)


def test_spec_lengths():
    # Bytes before the Appendage Length (type byte included), per the specification's tables.
    assert {t: s.fixed_length for t, s in INBOUND_SPECS.items()} == {"O": 45, "U": 38, "X": 9}
    assert {t: s.fixed_length for t, s in OUTBOUND_SPECS.items()} == {
        "S": 10, "A": 62, "U": 66, "C": 18, "E": 34, "J": 29}
    assert INBOUND_SPECS["X"].appendage is Appendage.OPTIONAL
    assert OUTBOUND_SPECS["E"].appendage is Appendage.REQUIRED
    assert OUTBOUND_SPECS["S"].appendage is Appendage.NONE
    assert INBOUND_SPECS["O"].field("price").offset == 18
    assert OUTBOUND_SPECS["A"].field("order_reference_number").offset == 36


def test_optional_appendage_both_forms():
    with_length = CANCEL_BYTES + b"\x00\x00"
    assert decode(with_length, IN) == CancelOrder(2, 0, ())
    assert encode(CancelOrder(2, 0, ())) == with_length
    tagged = CANCELED_BYTES + hexbytes("00 03 02 1c 05")  # UserRefIdx 5
    canceled = decode(tagged, OUT)
    assert canceled.options == (Option(OptionTag.USER_REF_IDX, b"\x05"),)
    assert encode(canceled) == tagged
    assert decode(REJECTED_BYTES + b"\x00\x00", OUT).options == ()


def test_soupbin_framing():
    packet = frame(ENTER)
    assert packet[:3] == bytes((0, len(ENTER_BYTES) + 1, ord("U")))  # length counts the type
    assert packet[3:] == ENTER_BYTES
    assert frame(EXECUTED)[2] == ord("S")
    stream = b"".join(frame(m) for m in (ENTER, REPLACE, CANCEL))
    assert decode_inbound_stream(stream) == [ENTER, REPLACE, CANCEL]
    answers = [SYSTEM, ACCEPTED, REPLACED, EXECUTED, CANCELED, REJECTED]
    assert decode_outbound_stream(b"".join(frame(m) for m in answers)) == answers
    assert soupbin.split_packets(soupbin.encode_packet(ord("H"), b"")) == [
        soupbin.Packet(ord("H"), b"")]


def test_soupbin_bad_streams():
    good = frame(CANCEL)
    with pytest.raises(ValueError, match="needs"):
        soupbin.split_packets(good[:-1])
    with pytest.raises(ValueError, match="length field"):
        soupbin.split_packets(good + b"\x00")
    with pytest.raises(ValueError, match="length 0"):
        soupbin.split_packets(b"\x00\x00")
    with pytest.raises(ValueError, match="type 'U' for inbound OUCH, got 'S'"):
        decode_inbound_stream(frame(EXECUTED))
    with pytest.raises(ValueError):
        soupbin.encode_packet(ord("U"), bytes(soupbin.MAX_PAYLOAD + 1))


@pytest.mark.parametrize(("raw", "direction", "match"), [
    (b"", IN, "empty"),
    (b"Z", IN, "no inbound"),
    (b"A" + bytes(70), IN, "no inbound"),          # Accepted is outbound only
    (ENTER_BYTES[:40], IN, "needs 45"),
    (ENTER_BYTES[:45], IN, "inside its Appendage Length"),
    (ENTER_BYTES[:-1], IN, "Appendage Length 3"),
    (ENTER_BYTES + b"\x00", IN, "Appendage Length 3"),
    (CANCEL_BYTES + b"\x00", IN, "inside its Appendage Length"),
    (SYSTEM_BYTES + b"\x00", OUT, "is 10 bytes"),
    (ENTER_BYTES[:45] + hexbytes("00 02 05 0c"), IN, "TagValue"),
    (ENTER_BYTES[:45] + hexbytes("00 02 00 0c"), IN, "TagValue"),
])
def test_malformed_messages(raw, direction, match):
    with pytest.raises(ValueError, match=match):
        decode(raw, direction)


def test_field_checks():
    with pytest.raises(ValueError, match="holds 8"):
        EnterOrder(1, "B", 1, "TOOLONGSYM", 1, "0", "Y", "P", "N", "N", "")
    with pytest.raises(ValueError, match="cannot hold"):
        CancelOrder(1 << 32, 0)
    with pytest.raises(TypeError, match="integer"):
        CancelOrder("1", 0)
    with pytest.raises(TypeError, match="alpha"):
        Canceled(0, 1, 1, 5)
    with pytest.raises(ValueError, match="absent"):
        EnterOrder(1, "B", 1, "A", 1, "0", "Y", "P", "N", "N", "", None)
    with pytest.raises(ValueError, match="no appendage"):
        SystemEvent(0, "S", (Option.post_only(),))


def _random_message(rng: random.Random):
    def alpha(n):
        return "".join(rng.choice("ABCXYZ019 ") for _ in range(rng.randint(0, n)))

    def u(n):
        return rng.randrange(1 << (8 * n))

    def options(optional):
        if optional and rng.random() < 0.3:
            return None
        return tuple(Option(rng.randrange(256), rng.randbytes(rng.randint(0, 6)))
                     for _ in range(rng.randint(0, 3)))

    kind = rng.randrange(9)
    if kind == 0:
        return EnterOrder(u(4), alpha(1), u(4), alpha(8), u(8), alpha(1), alpha(1), alpha(1),
                          alpha(1), alpha(1), alpha(14), options(False)), IN
    if kind == 1:
        return ReplaceOrder(u(4), u(4), u(4), u(8), alpha(1), alpha(1), alpha(1), alpha(14),
                            options(False)), IN
    if kind == 2:
        return CancelOrder(u(4), u(4), options(True)), IN
    if kind == 3:
        return SystemEvent(u(8), alpha(1)), OUT
    if kind == 4:
        return Accepted(u(8), u(4), alpha(1), u(4), alpha(8), u(8), alpha(1), alpha(1), u(8),
                        alpha(1), alpha(1), alpha(1), alpha(1), alpha(14), options(False)), OUT
    if kind == 5:
        return Replaced(u(8), u(4), u(4), alpha(1), u(4), alpha(8), u(8), alpha(1), alpha(1),
                        u(8), alpha(1), alpha(1), alpha(1), alpha(1), alpha(14),
                        options(False)), OUT
    if kind == 6:
        return Canceled(u(8), u(4), u(4), alpha(1), options(True)), OUT
    if kind == 7:
        return Executed(u(8), u(4), u(4), u(8), alpha(1), u(8), options(False)), OUT
    return Rejected(u(8), u(4), u(2), alpha(14), options(True)), OUT


def test_round_trip_random():
    rng = random.Random(5)
    for _ in range(2000):
        message, direction = _random_message(rng)
        raw = encode(message)
        assert len(raw) == message.wire_length
        assert decode(raw, direction) == message
        stream_decoder = decode_outbound_stream if direction is OUT else decode_inbound_stream
        assert stream_decoder(frame(message)) == [message]
