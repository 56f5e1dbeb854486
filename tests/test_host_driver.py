"""The host driver against the simulated gateware (CSR bus and UART bridge)."""

import random
from collections import deque

import pytest

from hdl.csr.map import MAGIC, build_register_map
from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from hdl.csr.plane import INTERNAL_BLOCKS
from hdl.csr.protocol import Status
from hdl.csr.reg import Access, RangeError
from host.driver import Driver, Gap, IdentityError, RiskStatus, VerifyError
from host.regmap import REGMAP
from host.transports import RegisterAccessError
from host.transports.sim import SimBoard, SimTransport
from sim.risk import RiskReason, RiskState


class Recorder:
    """A transport in between: records writes; can alter the words of one address on read."""

    def __init__(self, inner):
        self.inner = inner
        self.writes = []
        self.alter = {}

    def read(self, address, count=1):
        words = self.inner.read(address, count)
        return [self.alter.get(address + k, word) for k, word in enumerate(words)]

    def write(self, address, words):
        self.writes.append((address, list(words)))
        self.inner.write(address, words)

    def close(self):
        self.inner.close()


def random_value(rng, reg):
    return rng.choice([reg.min, reg.max, rng.randint(reg.min, reg.max)])


def test_identity_is_checked_before_anything_else():
    transport = SimTransport()
    Driver(transport)
    with pytest.raises(IdentityError, match="hash"):
        Driver(transport, build_register_map(2))

    class Silent:
        def read(self, address, count=1):
            return [0] * count

    with pytest.raises(IdentityError, match=f"expected 0x{MAGIC:08X}"):
        Driver(Silent())


def test_every_register_written_and_read_back_over_the_bus():
    rng = random.Random(11)
    board = SimBoard()
    driver = Driver(SimTransport(board))
    writable = {loc.path: random_value(rng, loc.reg) for loc in REGMAP
                if loc.reg.access is Access.RW}
    driver.apply(writable)  # verifies every value after the commit
    inputs = {}
    for loc in REGMAP:
        if loc.reg.access is Access.RO and loc.block.name not in INTERNAL_BLOCKS:
            inputs[loc.path] = random_value(rng, loc.reg)
            board.poke(loc.path, inputs[loc.path])
    got = driver.read_many([loc.path for loc in REGMAP])
    for loc in REGMAP:
        if loc.reg.access is Access.RW:
            assert got[loc.path] == writable[loc.path], loc.path
        elif loc.reg.access is Access.W1P:
            assert got[loc.path] == 0, loc.path
        elif loc.path in inputs:
            assert got[loc.path] == inputs[loc.path], loc.path
    assert got["ctrl.magic"] == MAGIC and got["ctrl.commit_count"] == 1


def test_typed_parameters_round_trip_with_one_commit_each():
    driver = Driver(SimTransport())
    quote = QuoteParams(enable=True, fair_value_mode=FairValueMode.MICROPRICE,
                        base_half_spread=3, tick_size=100, levels=3, level_spacing=2,
                        size=300, price_ceiling=2_000_000, price_floor=1_000_000)
    risk = RiskLimits(max_long=5000, max_short=4000, max_order_qty=1000, collar=20_000,
                      mmp_threshold=2000, mmp_window=1_000_000, hedge_enable=True,
                      hedge_threshold=3000, hedge_size=500)
    port = PortLimits(rate_tokens=20, rate_refill=15_625, max_live_orders=12,
                      max_unacked_orders=6, stale_feed_timeout=156_250_000)
    driver.configure(quotes={2: quote}, risk={1: risk}, port_limits=port)
    assert driver.get_quote(2) == quote
    assert driver.get_quote(0) == QuoteParams()
    assert driver.get_risk(1) == risk
    assert driver.get_port_limits() == port
    driver.set_quote(0, QuoteParams(size=7))
    assert driver.get_quote(0).size == 7
    assert driver.status().commit_count == 2
    driver.set_feed("02:00:5e:10:00:01", "233.54.12.111", 26477)
    assert driver.read("net.port") == 26477 and driver.read("net.mac") == 0x02005E100001


def test_a_bad_value_anywhere_writes_nothing():
    recorder = Recorder(SimTransport())
    driver = Driver(recorder)
    before = driver.get_quote(1), driver.get_risk(0)
    with pytest.raises(RangeError, match=r"risk\[0\]\.max_order_qty: value 1000000 is outside "
                                         r"the allowed range \[0, 999999\] shares"):
        driver.configure(quotes={1: QuoteParams(size=10)},
                         risk={0: RiskLimits(max_order_qty=1_000_000)})
    with pytest.raises(RangeError, match=r"net\.ip: cannot read"):
        driver.set_feed("02:00:00:00:00:01", "1.2.3", 1)
    with pytest.raises(KeyError, match="read-only"):
        driver.apply({"quote[1].size": 5, "ctrl.cycles": 0})
    with pytest.raises(KeyError, match="index 8"):
        driver.set_quote(8, QuoteParams())
    assert recorder.writes == []
    assert (driver.get_quote(1), driver.get_risk(0)) == before


def test_read_back_mismatch_after_commit_is_reported():
    recorder = Recorder(SimTransport())
    driver = Driver(recorder)
    recorder.alter[REGMAP["quote[0].levels"].address] = 1
    with pytest.raises(VerifyError, match=r"quote\[0\]\.levels wrote 2 read 1"):
        driver.set_quote(0, QuoteParams(levels=2))


@pytest.mark.parametrize("mode", ["direct", "uart"])
def test_refused_accesses_raise_with_the_bank_status_and_change_nothing(mode):
    regmap = build_register_map(1)
    transport = SimTransport(SimBoard(regmap, uart=mode == "uart"), mode=mode)
    driver = Driver(transport, regmap)
    with pytest.raises(RegisterAccessError) as error:
        transport.read(regmap.words + 1)
    assert error.value.status is Status.UNMAPPED
    with pytest.raises(RegisterAccessError) as error:
        transport.write(regmap["ctrl.cycles"].address, [5])
    assert error.value.status is Status.READ_ONLY
    # The gateware checks ranges too, for a host that skips the driver's checks.
    levels = regmap["quote[0].levels"]
    with pytest.raises(RegisterAccessError) as error:
        transport.write(levels.address - 1, [9, 7])  # base_half_spread... then levels = 7
    assert error.value.status is Status.RANGE and error.value.address == levels.address
    driver.commit()
    quote = driver.get_quote(0)
    assert quote.levels == 1 and quote.level_spacing == 1
    assert transport.read(levels.address - 1) == [9]


def test_counters_book_and_position_are_what_the_gateware_drives():
    board = SimBoard()
    driver = Driver(SimTransport(board))
    board.poke("udp_rx_stats.accepted", 0x1234_5678_9ABC)
    board.poke("mold_rx_stats.gaps", 3)
    board.poke("book[2].bid_price", 1_234_500)
    board.poke("book[2].ask_shares", 700)
    board.poke("book[2].halted", 1)
    board.poke("position[3].position", -250)
    board.poke("mold.expected", 1 << 40)
    board.poke("mold.session", int.from_bytes(b"SESSION123", "big"))
    counters = driver.counters()
    assert counters["udp_rx_stats"]["accepted"] == 0x1234_5678_9ABC
    assert counters["mold_rx_stats"]["gaps"] == 3
    assert set(counters) == {block.name for block in REGMAP.blocks
                             if block.name.endswith("_stats")}
    top = driver.top_of_book(2)
    assert (top.bid_price, top.ask_shares, top.halted) == (1_234_500, 700, 1)
    assert driver.book()[0].bid_price == 0
    assert driver.position(3).position == -250
    feed = driver.feed_status()
    assert (feed.expected, feed.session) == (1 << 40, "SESSION123")
    board.poke("risk_state[5].state", RiskState.HALTED)
    board.poke("risk_state[5].cause", RiskReason.MMP_TRIPPED)
    assert driver.risk_state(5) == RiskStatus(5, RiskState.HALTED, RiskReason.MMP_TRIPPED)
    assert driver.risk_states()[0] == RiskStatus(0, RiskState.ACTIVE, RiskReason.PASSED)
    board.poke("order_entry.next_user_ref", 1 << 32)
    assert driver.next_user_ref() == 1 << 32


def test_order_entry_registers():
    board = SimBoard()
    driver = Driver(SimTransport(board))
    assert driver.read("order_entry.clordid_prefix") == int.from_bytes(b"TKG", "little")
    driver.set_clordid_prefix("ABCDEF")
    assert driver.read("order_entry.clordid_prefix") == int.from_bytes(b"ABCDEF", "little")
    for bad in ("ABCDEFG", "A\0B", "é"):
        with pytest.raises(ValueError, match="clordid_prefix"):
            driver.set_clordid_prefix(bad)
    assert driver.read("order_entry.clordid_prefix") == int.from_bytes(b"ABCDEF", "little")
    driver.set_next_user_ref(77)
    assert driver.read("order_entry.set_user_ref") == 77
    with pytest.raises(ValueError, match="set_user_ref"):
        driver.set_next_user_ref(0)


def test_arm_kill_and_heartbeat_watchdog():
    board = SimBoard()
    driver = Driver(SimTransport(board))
    driver.set_heartbeat_timeout(300)
    driver.arm()
    assert driver.status().armed
    board.step(100)
    driver.heartbeat()
    board.step(100)
    status = driver.status()
    assert status.armed and status.heartbeat_age < 200
    board.step(400)
    status = driver.status()
    assert (status.armed, status.heartbeat_lost, status.killed) == (False, True, False)
    assert board.peek(board.plane.control.heartbeat_lost) == 1
    driver.arm()
    driver.kill()
    status = driver.status()
    assert (status.armed, status.killed, status.heartbeat_lost) == (False, True, False)
    assert status.uptime_s == status.cycles / 156_250_000


def test_gaps_are_popped_in_order_and_expected_is_set():
    board = SimBoard()
    gaps = deque([(5, 3), (20, 1), (1 << 33, 1000)])
    taken = []
    plane = board.plane

    async def mold_model(ctx):
        # Stands in for MoldRx: a gap FIFO on ``i_gap``, a taker on ``o_expected``.
        ctx.set(plane.o_expected.ready, 1)
        while True:
            if gaps:
                ctx.set(plane.i_gap.valid, 1)
                ctx.set(plane.i_gap.payload, {"first": gaps[0][0], "count": gaps[0][1]})
            else:
                ctx.set(plane.i_gap.valid, 0)
            _, _, ready, valid, expected = await ctx.tick().sample(
                plane.i_gap.ready, plane.o_expected.valid, plane.o_expected.payload)
            if ready and gaps:
                gaps.popleft()
            if valid:
                taken.append(expected)
    board.add_testbench(mold_model)
    driver = Driver(SimTransport(board))
    assert driver.feed_status().gap_pending
    assert [driver.pop_gap() for _ in range(4)] == [Gap(5, 3), Gap(20, 1), Gap(1 << 33, 1000),
                                                    None]
    driver.set_expected(12345)
    board.step(3)
    assert taken == [12345]
