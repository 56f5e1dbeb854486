"""The session generator and the feed framer: determinism, validity, framing, the CLI."""

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from functools import cache
from itertools import accumulate, pairwise
from pathlib import Path

import pytest

from host.cli import main as cli_main
from sim.capture import (
    FeedKey,
    read_binaryfile,
    read_frames,
    udp_datagrams,
    udp_endpoints,
)
from sim.feed_framer import DEFAULT_SESSION, frame_messages, frame_packets, itch_timestamp
from sim.generator import (
    Instrument,
    SessionConfig,
    captured,
    default_instruments,
    generate_frames,
    generate_messages,
    generate_session,
)
from sim.wire import mold
from sim.wire.itch import MESSAGE_SPECS, FieldKind, decode, encode
from sim.wire.net import TEST_FEED, FeedEndpoint, ip_to_str

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ORDER_TYPES = set("AFECXDUP")
SKIPPED_TYPES = set("ILYNQB")  # types the generator sends that no book acts on


@cache
def _messages(seed: int, count: int, instruments: int = 4) -> tuple[bytes, ...]:
    config = SessionConfig(seed=seed, messages=count, instruments=default_instruments(instruments))
    return tuple(generate_messages(config))


def _mold_blocks(payload: bytes) -> tuple[mold.MoldHeader, list[bytes]]:
    """Header and message blocks of one MoldUDP64 packet, checking the blocks fill it exactly."""
    header = mold.decode_header(payload)
    blocks, offset = [], mold.HEADER_LENGTH
    while offset < len(payload):
        length = int.from_bytes(payload[offset:offset + mold.LENGTH_PREFIX], "big")
        offset += mold.LENGTH_PREFIX
        blocks.append(payload[offset:offset + length])
        offset += length
    assert offset == len(payload)
    return header, blocks


class BookCheck:
    """An independent order tracker: fails on anything a book could not apply cleanly."""

    def __init__(self, config: SessionConfig):
        self.tick = config.tick
        self.symbols = {i.locate: i.symbol.ljust(8) for i in config.instruments}
        self.orders: dict[int, list] = {}  # ref -> [locate, buy, price, shares]
        self.seen_refs: set[int] = set()
        self.matches: set[int] = set()
        # locate -> (bids, asks), each price -> shares
        self.levels = {loc: ({}, {}) for loc in self.symbols}

    def _price(self, price: int) -> None:
        assert price > 0 and price % self.tick == 0, price

    def _put(self, ref: int, locate: int, buy: bool, price: int, shares: int) -> None:
        assert ref not in self.seen_refs, f"order reference {ref} reused"
        assert shares > 0
        self._price(price)
        self.seen_refs.add(ref)
        self.orders[ref] = [locate, buy, price, shares]
        side = self.levels[locate][0 if buy else 1]
        side[price] = side.get(price, 0) + shares
        bids, asks = self.levels[locate]
        if bids and asks:
            assert max(bids) < min(asks), f"book of {locate} crossed or locked"

    def _take(self, ref: int, locate: int, shares: int) -> None:
        assert ref in self.orders, f"unknown order reference {ref}"
        order = self.orders[ref]
        assert order[0] == locate, "message names another stock than its order"
        assert 0 < shares <= order[3], f"takes {shares} of {order[3]} shares"
        order[3] -= shares
        side = self.levels[locate][0 if order[1] else 1]
        side[order[2]] -= shares
        if side[order[2]] == 0:
            del side[order[2]]
        if order[3] == 0:
            del self.orders[ref]

    def _match(self, number: int) -> None:
        assert number not in self.matches, f"match number {number} reused"
        self.matches.add(number)

    def apply(self, m) -> None:
        f, t, locate = m.fields, m.type, m["stock_locate"]
        if "stock" in f:
            assert f["stock"] == self.symbols[locate]
        if t in "AF":
            self._put(f["order_ref"], locate, f["buy_sell"] == "B", f["price"], f["shares"])
        elif t in "EC":
            self._take(f["order_ref"], locate, f["executed_shares"])
            self._match(f["match_number"])
            if t == "C":
                self._price(f["execution_price"])
        elif t == "X":
            assert f["cancelled_shares"] < self.orders[f["order_ref"]][3], "X cancels all"
            self._take(f["order_ref"], locate, f["cancelled_shares"])
        elif t == "D":
            assert f["order_ref"] in self.orders, f"delete of unknown {f['order_ref']}"
            self._take(f["order_ref"], locate, self.orders[f["order_ref"]][3])
        elif t == "U":
            old = self.orders.get(f["original_order_ref"])
            assert old is not None, f"replace of unknown {f['original_order_ref']}"
            buy = old[1]
            self._take(f["original_order_ref"], locate, old[3])
            self._put(f["new_order_ref"], locate, buy, f["price"], f["shares"])
        elif t == "P":
            assert f["order_ref"] == 0 and f["shares"] > 0
            self._price(f["price"])
            self._match(f["match_number"])
        elif t == "Q":
            self._price(f["cross_price"])
            self._match(f["match_number"])
        elif t == "B":
            assert f["match_number"] in self.matches
        elif t == "I":
            for name in ("far_price", "near_price", "current_reference_price"):
                self._price(f[name])


def _check_session(messages, config: SessionConfig) -> Counter:
    assert len(messages) == config.messages
    decoded = [decode(raw) for raw in messages]
    for raw, m in zip(messages, decoded, strict=True):
        # Byte-exact against the codec: also catches NUL-padded alpha fields.
        assert encode(m.type, **m.fields) == raw
        for spec_field in m.spec.fields:
            if spec_field.kind is FieldKind.ALPHA:
                assert m[spec_field.name].isprintable(), (m.type, spec_field.name)
        assert m["tracking_number"] == 0
    times = [m["timestamp"] for m in decoded]
    assert all(a < b for a, b in pairwise(times)), "timestamps must increase"
    assert times[-1] < 24 * 3600 * 10**9

    k = len(config.instruments)
    locates = [i.locate for i in config.instruments]
    system = [(m["event_code"], i) for i, m in enumerate(decoded) if m.type == "S"]
    assert [code for code, _ in system] == list("OSQMEC")
    assert [i for _, i in system[:3]] == [0, k + 1, 2 * k + 2]
    assert [i for _, i in system[3:]] == [len(decoded) - 3, len(decoded) - 2, len(decoded) - 1]
    assert [m["stock_locate"] for m in decoded[1:k + 1] if m.type == "R"] == locates
    assert [(m.type, m["trading_state"]) for m in decoded[k + 2:2 * k + 2]] == [("H", "T")] * k
    assert [m["stock_locate"] for m in decoded[k + 2:2 * k + 2]] == locates

    book = BookCheck(config)
    for m in decoded:
        book.apply(m)
    return Counter(m.type for m in decoded)


# --------------------------------------------------------------------------------------------
# The messages


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_session_is_valid(seed):
    config = SessionConfig(seed=seed, messages=30_000)
    kinds = _check_session(_messages(seed, 30_000), config)
    assert set("SRHAFECXDUP") <= set(kinds)
    assert set(kinds) >= SKIPPED_TYPES
    # A realistic mix: adds and deletes dominate, executions are a minority.
    assert kinds["A"] > kinds["D"] > kinds["E"] > kinds["C"]
    assert kinds["A"] + kinds["F"] > 0.35 * len(_messages(seed, 30_000))


def test_bounded_book_and_penny_stock():
    # Few live orders allowed (adds keep turning into deletes) and a stock priced at one tick,
    # where bids must still never reach zero.
    instruments = (Instrument("PENNY", 7, 100), Instrument("ZZZ", 9, 5_000_000))
    config = SessionConfig(seed=5, messages=20_000, instruments=instruments, max_live_orders=8,
                           move_probability=0.2)
    messages = generate_messages(config)
    kinds = _check_session(messages, config)
    assert kinds["D"] > kinds["A"] * 0.8
    live = Counter()
    for raw in messages:
        m = decode(raw)
        if m.type in "AF":
            live[m["stock_locate"]] += 1
    assert set(live) == {7, 9}


def test_depth_and_spread_are_realistic():
    config = SessionConfig(seed=3, messages=30_000)
    book = BookCheck(config)
    spreads = Counter()
    for raw in _messages(3, 30_000):
        m = decode(raw)
        book.apply(m)
        if m.type in ORDER_TYPES and m["stock_locate"] == 1:
            bids, asks = book.levels[1]
            if bids and asks:
                spreads[(min(asks) - max(bids)) // config.tick] += 1
    bids, asks = book.levels[1]
    assert len(bids) >= 5 and len(asks) >= 5
    # Mostly a one-tick spread, sometimes wider.
    assert spreads[1] > 0.6 * sum(spreads.values())
    assert any(s > 1 for s in spreads)


def test_same_seed_same_bytes_different_seed_different():
    config = SessionConfig(seed=11, messages=5_000)
    first = generate_messages(config)
    assert generate_messages(SessionConfig(seed=11, messages=5_000)) == first
    assert generate_messages(SessionConfig(seed=12, messages=5_000)) != first
    assert generate_session(config) == generate_session(config)
    assert generate_session(config) != generate_session(SessionConfig(seed=12, messages=5_000))


def _digest_in_subprocess(hash_seed: str) -> str:
    code = ("import hashlib; from sim.generator import SessionConfig, generate_session; "
            "print(hashlib.sha256(b''.join(generate_session("
            "SessionConfig(seed=4, messages=3000)))).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(PROJECT_ROOT))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True, cwd=PROJECT_ROOT)
    return result.stdout.strip()


def test_output_does_not_depend_on_hash_seed():
    here = hashlib.sha256(b"".join(generate_session(SessionConfig(seed=4, messages=3000))))
    assert _digest_in_subprocess("0") == _digest_in_subprocess("4242") == here.hexdigest()


def test_config_errors():
    with pytest.raises(ValueError, match="at least 14"):
        SessionConfig(messages=13)
    SessionConfig(messages=14)  # the smallest session: system events, R and H only
    with pytest.raises(ValueError, match="locates"):
        SessionConfig(instruments=(Instrument("AAA", 1, 100), Instrument("BBB", 1, 100)))
    with pytest.raises(ValueError, match="multiple of the tick"):
        SessionConfig(instruments=(Instrument("AAA", 1, 150),))
    with pytest.raises(ValueError, match="symbol"):
        SessionConfig(instruments=(Instrument("TOO-LONG-X", 1, 100),))
    with pytest.raises(ValueError, match="one trading day"):
        SessionConfig(messages=10_000_000, mean_gap_ns=10_000_000)
    with pytest.raises(ValueError, match="positive"):
        SessionConfig(tick=0)


def test_smallest_session():
    config = SessionConfig(messages=14)
    assert Counter(_check_session(generate_messages(config), config)) == Counter(
        {"S": 6, "R": 4, "H": 4}
    )


def test_default_instruments():
    names = [i.symbol for i in default_instruments(20)]
    assert names == sorted(names) and len(set(names)) == 20
    assert [i.locate for i in default_instruments(20)] == list(range(1, 21))
    assert {"AAPL", "MSFT", "NVDA", "AMZN"} == {i.symbol for i in default_instruments(4)}


# --------------------------------------------------------------------------------------------
# Framing


@pytest.mark.parametrize(("max_payload", "vlan", "heartbeat_every"),
                         [(1472, None, None), (300, 141, 3), (72, 7, 1)])
def test_frames_carry_the_session(max_payload, vlan, heartbeat_every):
    messages = list(_messages(1, 4_000))
    framed = frame_packets(messages, vlan=vlan, max_payload=max_payload,
                           heartbeat_every=heartbeat_every, end_of_session=True, first_seq=1)
    datagrams = list(udp_datagrams(f.frame for f in framed))
    assert len(datagrams) == len(framed)
    assert {d.key for d in datagrams} == {FeedKey(vlan, ip_to_str(TEST_FEED.ip), TEST_FEED.port)}

    carried, next_seq, since_heartbeat = [], 1, 0
    for info, datagram in zip(framed, datagrams, strict=True):
        assert len(datagram.payload) <= max_payload
        header, blocks = _mold_blocks(datagram.payload)
        assert (header.session, header.seq, header.count) == (DEFAULT_SESSION, info.seq, info.count)
        assert header.seq == next_seq  # contiguous, also across heartbeats
        if header.heartbeat:
            assert heartbeat_every is not None and since_heartbeat == heartbeat_every
            since_heartbeat = 0
        elif header.end_of_session:
            assert info is framed[-1]
        else:
            assert info.messages == len(blocks) == header.count > 0
            assert info.itch_time == itch_timestamp(blocks[-1])
            carried += blocks
            next_seq += header.count
            since_heartbeat += 1
        assert not blocks or not (header.heartbeat or header.end_of_session)
    assert carried == messages
    assert framed[-1].count == mold.END_OF_SESSION_COUNT and framed[-1].seq == len(messages) + 1
    # Packets are filled: a packet plus the next message would not fit.
    data = [d.payload for d, f in zip(datagrams, framed, strict=True) if f.messages]
    nexts = [_mold_blocks(p)[1][0] for p in data[1:]]
    assert all(len(p) + 2 + len(n) > max_payload for p, n in zip(data, nexts, strict=False))


def test_frame_messages_options():
    messages = list(_messages(2, 500))
    endpoint = FeedEndpoint.multicast("233.54.12.111", 26477)
    frames = frame_messages(messages, endpoint=endpoint, session=b"000010059B", first_seq=1000,
                            vlan=141)
    assert udp_endpoints(frames) == Counter({FeedKey(141, "233.54.12.111", 26477): len(frames)})
    first = _mold_blocks(next(udp_datagrams(frames[:1])).payload)[0]
    assert (first.session, first.seq) == (b"000010059B", 1000)
    with pytest.raises(ValueError):
        frame_messages(messages, session=b"SHORT")
    with pytest.raises(ValueError):
        frame_messages(messages, heartbeat_every=0)


def test_frame_real_binaryfile(itch_data):
    # Framing a real BinaryFILE for the gateware: every message arrives, in order, contiguous.
    messages = list(read_binaryfile(itch_data / "aapl-20200130-premarket-10k.itch"))
    framed = frame_packets(messages, vlan=141)
    assert sum(f.messages for f in framed) == 10_000
    assert [f.seq for f in framed] == list(accumulate([1] + [f.count for f in framed[:-1]]))
    datagrams = udp_datagrams(f.frame for f in framed)
    carried = [b for d in datagrams for b in _mold_blocks(d.payload)[1]]
    assert carried == messages
    assert max(len(f.frame) for f in framed) <= 1518


def test_generate_frames_timestamps():
    config = SessionConfig(seed=8, messages=2_000)
    framed = generate_frames(config, heartbeat_every=10)
    stamped = captured(config, framed)
    times = [c.timestamp_ns for c in stamped]
    assert times == sorted(times)
    assert times[0] == config.midnight_ns + framed[0].itch_time
    assert framed[-1].count == mold.END_OF_SESSION_COUNT


# --------------------------------------------------------------------------------------------
# Throughput


def test_generation_rate():
    # 200,000 messages generated, then framed. Generation must extrapolate to a million messages
    # in well under a minute even on a loaded machine; framing is dominated by the UDP checksum
    # of sim.wire.net and gets a looser bound.
    start = time.perf_counter()
    messages = generate_messages(SessionConfig(seed=6, messages=200_000))
    generated = time.perf_counter()
    frames = frame_messages(messages)
    done = time.perf_counter()
    gen_rate = len(messages) / (generated - start)
    frame_rate = len(messages) / (done - generated)
    print(f"\ngenerate: {gen_rate:,.0f} msg/s; frame: {frame_rate:,.0f} msg/s "
          f"({len(frames)} frames); both: {len(messages) / (done - start):,.0f} msg/s")
    assert gen_rate > 1_000_000 / 30
    assert frame_rate > 1_000_000 / 60


# --------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_cli_writes_capture(tmp_path, fmt, capsys):
    out = tmp_path / f"session.{fmt}"
    assert cli_main(["generate", str(out), "--messages", "3000", "--seed", "5",
                     "--instruments", "3", "--vlan", "141"]) == 0
    assert "3000 messages" in capsys.readouterr().err
    frames = list(read_frames(out))
    assert udp_endpoints(frames).most_common(1)[0][0] == FeedKey(
        141, ip_to_str(TEST_FEED.ip), TEST_FEED.port
    )
    carried = [b for d in udp_datagrams(frames) for b in _mold_blocks(d.payload)[1]]
    assert carried == list(_messages(5, 3000, 3))
    config = SessionConfig(seed=5, messages=3000, instruments=default_instruments(3))
    assert [f.timestamp_ns for f in frames] == [
        c.timestamp_ns for c in captured(config, generate_frames(config, vlan=141))
    ]


def test_cli_writes_binaryfile(tmp_path):
    out = tmp_path / "session.bin"
    assert cli_main(["generate", str(out), "--messages", "2500", "--format", "itch"]) == 0
    assert list(read_binaryfile(out)) == list(_messages(1, 2500))


def test_cli_errors(tmp_path, capsys):
    assert cli_main(["generate", str(tmp_path / "a.itch"), "--vlan", "5"]) == 1
    assert "--vlan" in capsys.readouterr().err
    assert cli_main(["generate", str(tmp_path / "b.pcap"), "--messages", "3"]) == 1
    assert "at least" in capsys.readouterr().err
    assert cli_main(["generate", str(tmp_path / "c.pcap"), "--vlan", "5000"]) == 1
    assert not any(tmp_path.iterdir())


def test_skip_types_are_all_known():
    assert set(MESSAGE_SPECS) >= SKIPPED_TYPES | ORDER_TYPES
