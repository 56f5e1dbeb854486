"""The typed host driver: one object that drives the design over any transport.

::

    from host.driver import Driver
    from host.transports.serial import SerialTransport
    from hdl.csr.params import QuoteParams, RiskLimits

    drv = Driver(SerialTransport("/dev/ttyUSB0"))
    drv.configure(quotes={0: QuoteParams(enable=True, symbol="AAPL", size=200)},
                  risk={0: RiskLimits(max_long=1000, max_short=1000, max_order_qty=500,
                                      collar=5000)})
    drv.arm()

Every value is checked against the register map before anything is written: a bad one raises
:class:`~hdl.csr.reg.RangeError` naming the register, the value and the allowed range, and
nothing at all is written. Staged registers (parameters, limits, feed address) are applied by one
commit, after which the driver reads every written register back and raises
:class:`VerifyError` on any difference.
"""

from dataclasses import dataclass

from hdl.csr.params import PortLimits, QuoteParams, RiskLimits
from hdl.csr.reg import Access, Location, RegisterMap, dataclass_values, from_values
from host.regmap import MAGIC, MAP_VERSION, REGMAP, parse_value
from host.transports import Transport
from sim.risk import RiskReason, RiskState

__all__ = [
    "BoardStatus",
    "Driver",
    "DriverError",
    "FeedStatus",
    "Gap",
    "IdentityError",
    "Position",
    "RiskStatus",
    "TopOfBook",
    "VerifyError",
]


class DriverError(RuntimeError):
    """The design did not behave as the driver expected."""


class IdentityError(DriverError):
    """The other end is not a tickgate design built from this host's register map."""


class VerifyError(DriverError):
    """Registers read back after a commit differ from what was written."""


@dataclass(frozen=True)
class BoardStatus:
    """The control state and feed sequencing at one moment."""

    armed: bool
    killed: bool
    heartbeat_lost: bool
    heartbeat_age: int
    heartbeat_timeout: int
    cycles: int
    uptime_s: float
    commit_count: int
    build_id: int
    clk_hz: int


@dataclass(frozen=True)
class TopOfBook:
    """Best bid and ask of one slot; an empty side is price 0, 0 shares."""

    slot: int
    bound: int
    locate: int
    bid_price: int
    bid_shares: int
    ask_price: int
    ask_shares: int
    halted: int
    degraded: int


@dataclass(frozen=True)
class Position:
    """Inventory and order counts of one slot."""

    slot: int
    position: int
    live_orders: int
    unacked_orders: int


@dataclass(frozen=True)
class RiskStatus:
    """The risk gate's state of one slot and why (``PASSED`` when active)."""

    slot: int
    state: RiskState
    cause: RiskReason


@dataclass(frozen=True)
class FeedStatus:
    """MoldUDP64 sequencing state."""

    expected: int
    session: str
    session_valid: bool
    ended: bool
    gap_pending: bool


@dataclass(frozen=True)
class Gap:
    """MoldUDP64 messages ``first`` .. ``first + count - 1`` were missed."""

    first: int
    count: int


class Driver:
    """Typed access to every register of the design.

    Parameters
    ----------
    transport : Transport
    regmap : RegisterMap
        The host's map; defaults to the one derived from the gateware declaration.
    check_identity : bool
        Read ``ctrl.magic``, ``ctrl.map_version`` and ``ctrl.map_hash`` first and refuse a
        design that does not match (:class:`IdentityError`).
    """

    def __init__(self, transport: Transport, regmap: RegisterMap = REGMAP, *,
                 check_identity: bool = True):
        self.transport = transport
        self.regmap = regmap
        if check_identity:
            self.identify()

    # -- raw register access --------------------------------------------------------------------

    def identify(self) -> None:
        values = self.read_many(["ctrl.magic", "ctrl.map_version", "ctrl.map_hash"])
        if values["ctrl.magic"] != MAGIC:
            raise IdentityError(f"no tickgate design answers (ctrl.magic reads "
                                f"0x{values['ctrl.magic']:08X}, expected 0x{MAGIC:08X})")
        if values["ctrl.map_version"] != MAP_VERSION:
            raise IdentityError(f"design uses register conventions version "
                                f"{values['ctrl.map_version']}, this host {MAP_VERSION}")
        if values["ctrl.map_hash"] != self.regmap.hash:
            raise IdentityError(f"design's register map (hash 0x{values['ctrl.map_hash']:08X}) "
                                f"differs from this host's (0x{self.regmap.hash:08X}): rebuild "
                                f"the bitstream or use the matching host version")

    def read(self, path: str) -> int:
        """One register's value (atomic for a wide register)."""
        return self.read_many([path])[path]

    def read_many(self, paths: list[str]) -> dict[str, int]:
        """Several registers' values, read in bursts of consecutive addresses."""
        locs = sorted((self.regmap[path] for path in paths), key=lambda loc: loc.address)
        values = {}
        for run in _runs(locs):
            start = run[0].address
            words = self.transport.read(start, run[-1].address + run[-1].words - start)
            for loc in run:
                offset = loc.address - start
                values[loc.path] = loc.reg.from_words(words[offset:offset + loc.words])
        return values

    def write(self, path: str, value) -> None:
        """Write one register (checked first). A staged register waits for :meth:`commit`."""
        self._write_checked({path: value}, allow_pulse=True)

    def commit(self) -> None:
        """Apply every staged register at once."""
        self._write_raw({self.regmap.commit: 1})

    def apply(self, values: dict[str, object]) -> None:
        """Write ``values`` (path -> value), commit if any is staged, read back and verify.

        All values are checked before the first write. Values may be ints, bools, enum members
        or text in the register's format.

        Raises
        ------
        RangeError
            A value is unreadable or out of range (nothing written).
        KeyError
            Unknown register, or one the host cannot write this way (read-only or a strobe).
        VerifyError
            The values read back after the commit differ.
        """
        raw = self._write_checked(values, allow_pulse=False)
        if any(self.regmap[path].reg.staged for path in raw):
            self.commit()
        got = self.read_many(list(raw))
        wrong = {path: (want, got[path]) for path, want in raw.items() if got[path] != want}
        if wrong:
            raise VerifyError("read back after commit differs: " + ", ".join(
                f"{path} wrote {want} read {have}" for path, (want, have) in wrong.items()))

    def _write_checked(self, values: dict[str, object], *, allow_pulse: bool) -> dict[str, int]:
        raw = {}
        for path, value in values.items():
            loc = self.regmap[path]
            if loc.reg.access is Access.RO:
                raise KeyError(f"{path} is read-only")
            if loc.reg.access is Access.W1P and not allow_pulse:
                raise KeyError(f"{path} is a strobe; use the driver's method for it")
            raw[path] = parse_value(loc, value)
        self._write_raw(raw)
        return raw

    def _write_raw(self, raw: dict[str, int]) -> None:
        locs = sorted((self.regmap[path] for path in raw), key=lambda loc: loc.address)
        for run in _runs(locs):
            words = [word for loc in run for word in loc.reg.to_words(raw[loc.path])]
            self.transport.write(run[0].address, words)

    # -- typed parameters -----------------------------------------------------------------------

    def _element_values(self, block: str, index: int | None, obj) -> dict[str, int]:
        self.regmap.element(block, index)  # checks the index
        prefix = f"{block}[{index}]" if index is not None else block
        return {f"{prefix}.{name}": value for name, value in
                dataclass_values(self.regmap.block(block), obj, prefix).items()}

    def configure(self, *, quotes: dict[int, QuoteParams] | None = None,
                  risk: dict[int, RiskLimits] | None = None,
                  port_limits: PortLimits | None = None,
                  extra: dict[str, object] | None = None) -> None:
        """Write any mix of quote parameters, risk limits, port limits and other registers,
        then apply them with one commit and verify them (see :meth:`apply`)."""
        values: dict[str, object] = {}
        for slot, params in (quotes or {}).items():
            values.update(self._element_values("quote", slot, params))
        for slot, limits in (risk or {}).items():
            values.update(self._element_values("risk", slot, limits))
        if port_limits is not None:
            values.update(self._element_values("port_limits", None, port_limits))
        values.update(extra or {})
        self.apply(values)

    def set_quote(self, slot: int, params: QuoteParams) -> None:
        self.configure(quotes={slot: params})

    def set_risk(self, slot: int, limits: RiskLimits) -> None:
        self.configure(risk={slot: limits})

    def set_port_limits(self, limits: PortLimits) -> None:
        self.configure(port_limits=limits)

    def _get(self, block: str, index: int | None):
        locs = self.regmap.element(block, index)
        values = self.read_many([loc.path for loc in locs])
        return from_values(self.regmap.block(block),
                           {loc.reg.name: values[loc.path] for loc in locs})

    def get_quote(self, slot: int) -> QuoteParams:
        """The quote parameters in force (last committed) for ``slot``."""
        return self._get("quote", slot)

    def get_risk(self, slot: int) -> RiskLimits:
        return self._get("risk", slot)

    def get_port_limits(self) -> PortLimits:
        return self._get("port_limits", None)

    def track(self, slot: int, *, locate: int | None = None, symbol: str | None = None) -> None:
        """Make the book's ``slot`` track one instrument: by stock ``locate``, or by ``symbol``
        (bound to its locate when the stock directory message announces it). Applied at once
        (committed and verified); a symbol slot starts unbound."""
        if (locate is None) == (symbol is None):
            raise ValueError("track a slot by exactly one of locate and symbol")
        self.apply({f"slot[{slot}].enable": True, f"slot[{slot}].by_symbol": symbol is not None,
                    f"slot[{slot}].locate": locate or 0, f"slot[{slot}].symbol": symbol or ""})

    def untrack(self, slot: int) -> None:
        """Stop tracking anything in ``slot`` (its book empties)."""
        self.apply({f"slot[{slot}].enable": False})

    def clear_degraded(self, slot: int) -> None:
        """Clear ``slot``'s degraded flag, once the cause (a full order table) is dealt with."""
        self.regmap.element("slot", slot)  # checks the index
        self._write_raw({f"slot[{slot}].clear_degraded": 1})

    def clear_book(self, slot: int) -> None:
        """Empty ``slot``'s book."""
        self.regmap.element("slot", slot)
        self._write_raw({f"slot[{slot}].clear_book": 1})

    def set_feed(self, mac, ip, port: int) -> None:
        """Where the feed arrives: destination MAC, IPv4 address and UDP port (text or ints)."""
        self.apply({"net.mac": mac, "net.ip": ip, "net.port": port})

    # -- control --------------------------------------------------------------------------------

    def arm(self) -> None:
        """Allow trading (clears ``killed`` and ``heartbeat_lost``)."""
        self._write_raw({"ctrl.arm": 1})

    def kill(self) -> None:
        """Stop trading and cancel every live order."""
        self._write_raw({"ctrl.kill": 1})

    def heartbeat(self) -> None:
        """Tell the watchdog the host is alive."""
        self._write_raw({"ctrl.heartbeat": 1})

    def set_heartbeat_timeout(self, cycles: int) -> None:
        """Cycles without a heartbeat that disarm the design; 0 disables the watchdog."""
        self.apply({"ctrl.heartbeat_timeout": cycles})

    def status(self) -> BoardStatus:
        names = ["armed", "killed", "heartbeat_lost", "heartbeat_age", "heartbeat_timeout",
                 "cycles", "commit_count", "build_id", "clk_hz"]
        values = self.read_many([f"ctrl.{name}" for name in names])
        v = {name: values[f"ctrl.{name}"] for name in names}
        return BoardStatus(
            armed=bool(v["armed"]), killed=bool(v["killed"]),
            heartbeat_lost=bool(v["heartbeat_lost"]), heartbeat_age=v["heartbeat_age"],
            heartbeat_timeout=v["heartbeat_timeout"], cycles=v["cycles"],
            uptime_s=v["cycles"] / v["clk_hz"] if v["clk_hz"] else 0.0,
            commit_count=v["commit_count"], build_id=v["build_id"], clk_hz=v["clk_hz"])

    # -- feed sequencing ------------------------------------------------------------------------

    def feed_status(self) -> FeedStatus:
        values = self.read_many([loc.path for loc in self.regmap.element("mold")]
                                + ["mold_recovery.gap_pending"])
        session = values["mold.session"].to_bytes(self.regmap["mold.session"].reg.width // 8,
                                                  "big")
        return FeedStatus(expected=values["mold.expected"],
                          session=session.decode("ascii", "replace").rstrip(" \0"),
                          session_valid=bool(values["mold.session_valid"]),
                          ended=bool(values["mold.ended"]),
                          gap_pending=bool(values["mold_recovery.gap_pending"]))

    def pop_gap(self) -> Gap | None:
        """The oldest MoldUDP64 gap not yet handled (removing it), or ``None``."""
        values = self.read_many(["mold_recovery.gap_pending", "mold_recovery.gap_first",
                                 "mold_recovery.gap_count"])
        if not values["mold_recovery.gap_pending"]:
            return None
        self._write_raw({"mold_recovery.gap_pop": 1})
        return Gap(values["mold_recovery.gap_first"], values["mold_recovery.gap_count"])

    def set_expected(self, seq: int) -> None:
        """Make ``seq`` the next MoldUDP64 sequence number wanted (after a recovery)."""
        self.apply({"mold_recovery.next_expected": seq})
        self._write_raw({"mold_recovery.set_expected": 1})

    # -- counters and per-instrument status -----------------------------------------------------

    def counters(self) -> dict[str, dict[str, int]]:
        """Every counter block (``*_stats``), by block and counter name."""
        blocks = [block for block in self.regmap.blocks if block.name.endswith("_stats")]
        paths = [loc.path for block in blocks for loc in self.regmap.element(block.name)]
        values = self.read_many(paths)
        return {block.name: {reg.name: values[f"{block.name}.{reg.name}"] for reg in block.regs}
                for block in blocks}

    def _slots(self, block: str) -> range:
        return range(self.regmap.block(block).count)

    def top_of_book(self, slot: int) -> TopOfBook:
        values = self.read_many([loc.path for loc in self.regmap.element("book", slot)])
        return TopOfBook(slot, **{path.split(".")[-1]: v for path, v in values.items()})

    def book(self) -> list[TopOfBook]:
        return [self.top_of_book(slot) for slot in self._slots("book")]

    def position(self, slot: int) -> Position:
        values = self.read_many([loc.path for loc in self.regmap.element("position", slot)])
        return Position(slot, **{path.split(".")[-1]: v for path, v in values.items()})

    def positions(self) -> list[Position]:
        return [self.position(slot) for slot in self._slots("position")]

    def risk_state(self, slot: int) -> RiskStatus:
        values = self.read_many([f"risk_state[{slot}].state", f"risk_state[{slot}].cause"])
        return RiskStatus(slot, RiskState(values[f"risk_state[{slot}].state"]),
                          RiskReason(values[f"risk_state[{slot}].cause"]))

    def risk_states(self) -> list[RiskStatus]:
        return [self.risk_state(slot) for slot in self._slots("risk_state")]

    # -- order entry ------------------------------------------------------------------------------

    def set_clordid_prefix(self, prefix: str) -> None:
        """The ClOrdID prefix of our orders (up to 6 ASCII characters, no zero byte)."""
        raw = prefix.encode("ascii", "strict") if prefix.isascii() else b"\0"
        if len(raw) > 6 or b"\0" in raw:
            raise ValueError(f"order_entry.clordid_prefix: {prefix!r} is not 0 to 6 ASCII "
                             "characters without a zero byte")
        self.apply({"order_entry.clordid_prefix": int.from_bytes(raw, "little")})

    def next_user_ref(self) -> int:
        """The UserRefNum the next order will carry (2**32 once they are exhausted)."""
        return self.read("order_entry.next_user_ref")

    def set_next_user_ref(self, ref: int) -> None:
        """Make ``ref`` the next UserRefNum (the exchange's NextUserRefNum after a login)."""
        self.apply({"order_entry.set_user_ref": ref})
        self._write_raw({"order_entry.set_next": 1})


def _runs(locs: list[Location]) -> list[list[Location]]:
    """Split address-sorted locations into runs of back-to-back registers (one burst each)."""
    runs: list[list[Location]] = []
    for loc in locs:
        if runs and runs[-1][-1].address + runs[-1][-1].words == loc.address:
            runs[-1].append(loc)
        elif runs and runs[-1][-1].address == loc.address:
            continue  # the same register asked for twice
        else:
            runs.append([loc])
    return runs
