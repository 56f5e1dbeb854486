"""``tickgate host ...``: read and set registers, arm, kill and watch a board (or a simulation).

The board is reached over its UART bridge with ``--port DEVICE`` or, with ``--sim``, simulated in
this process (the gateware in Amaranth's simulator; it starts from reset on every command).
``tickgate host sim-board`` runs a simulated board behind a pseudo-terminal, so that
``--port /dev/pts/N`` exercises the serial path end to end.

Parameters for ``set`` come from a TOML file, one table per register block; per-instrument
blocks take a table per slot (``[quote.0]``) or ``[quote.all]`` for every slot, which a slot's
own table overrides::

    [net]
    mac = "02:00:5e:10:00:01"
    ip = "233.54.12.111"
    port = 26477

    [quote.all]
    tick_size = 100
    size = 100

    [quote.0]
    enable = true
    fair_value_mode = "MICROPRICE"

    [risk.0]
    max_long = 1000
    max_short = 1000

Every value is checked against the register map before anything is written; the staged ones are
applied together by one commit and read back.
"""

import argparse
import sys
import time

__all__ = ["load_settings", "register"]

_PRICE_SCALE = 10_000  # ITCH prices have 4 implied decimals

_SETTINGS_HELP = """\
settings file for `set` (TOML; one table per register block, see docs/registers.md):

  [net]
  mac = "02:00:5e:10:00:01"
  ip = "233.54.12.111"
  port = 26477

  [quote.all]          # every instrument slot ...
  size = 100
  [quote.0]            # ... and slot 0's own values
  enable = true
  fair_value_mode = "MICROPRICE"

  [risk.0]
  max_long = 1000
  max_short = 1000
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "host", help="read and set registers, arm, kill and watch a board over its UART",
        description="Read and set registers, arm, kill and watch a board over its UART bridge "
                    "(--port DEVICE), or a board simulated in this process (--sim; it starts "
                    "from reset on every command). `tickgate host sim-board` serves a "
                    "simulated board on a pseudo-terminal for --port.",
        epilog=_SETTINGS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    link = parser.add_argument_group("link (one of --port or --sim)")
    link.add_argument("--port", metavar="DEVICE",
                      help="serial device of the board's UART bridge (e.g. /dev/ttyUSB0)")
    link.add_argument("--baud", type=int, default=115_200, help="baud rate (default 115200)")
    link.add_argument("--timeout", type=float, default=0.5,
                      help="seconds to wait for a reply byte (default 0.5)")
    link.add_argument("--sim", action="store_true",
                      help="drive a simulated board in this process instead of a device")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    get = commands.add_parser("get", help="read registers",
                              description="Read registers by path (quote[0].size), block or "
                                          "element (ctrl, quote[1]) or pattern (*_stats.*).")
    get.add_argument("names", nargs="+", metavar="NAME")
    get.add_argument("--raw", action="store_true", help="print values as hex words")
    get.set_defaults(func=_get)

    set_ = commands.add_parser("set", help="write registers from a TOML file and/or "
                                           "PATH=VALUE pairs, commit and verify",
                               description="Write registers, then commit the staged ones and "
                                           "read everything back. Nothing is written if any "
                                           "value is out of range.")
    set_.add_argument("items", nargs="+", metavar="FILE|PATH=VALUE",
                      help="TOML files (see `tickgate host --help`) and single values, "
                           "applied in order")
    set_.set_defaults(func=_set)

    status = commands.add_parser("status", help="control state, feed sequencing, link health")
    status.set_defaults(func=_status)
    for name, text in (("arm", "allow trading (clears killed and heartbeat_lost)"),
                       ("kill", "stop trading and cancel every live order"),
                       ("heartbeat", "tell the watchdog the host is alive")):
        sub = commands.add_parser(name, help=text)
        sub.set_defaults(func=_strobe, strobe=name)

    watch = commands.add_parser("watch", help="live counters, book and positions")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    watch.add_argument("--count", type=int, default=0,
                       help="stop after this many refreshes (default: until Ctrl-C)")
    watch.add_argument("--heartbeat", action="store_true",
                       help="send a heartbeat with every refresh")
    watch.set_defaults(func=_watch)

    board = commands.add_parser("sim-board", help="run a simulated board on a pseudo-terminal",
                                description="Simulate the gateware with its UART bridge behind "
                                            "a pseudo-terminal and print the device to use with "
                                            "--port. Runs until interrupted. The simulation is "
                                            "slow: use --timeout 10 or more with it.")
    board.add_argument("--divisor", type=int, default=4, help="UART clock cycles per bit")
    board.set_defaults(func=_sim_board)


# -- plumbing -----------------------------------------------------------------------------------

def _fail(message: str) -> SystemExit:
    return SystemExit(f"tickgate host: {message}")


def _driver(args):
    from host.driver import Driver, DriverError
    from host.transports import LinkError

    if bool(args.port) == bool(args.sim):
        raise _fail("give exactly one of --port DEVICE or --sim")
    try:
        if args.sim:
            from host.transports.sim import SimTransport
            transport = SimTransport()
        else:
            from host.transports.serial import SerialTransport
            transport = SerialTransport(args.port, args.baud, timeout=args.timeout)
        return Driver(transport)
    except (LinkError, DriverError) as error:
        raise _fail(str(error)) from error
    except OSError as error:  # pyserial's SerialException is an OSError
        raise _fail(f"cannot open {args.port}: {error}") from error


def _errors():
    from hdl.csr.reg import RangeError
    from host.driver import DriverError
    from host.transports import LinkError, RegisterAccessError
    return RangeError, KeyError, DriverError, LinkError, RegisterAccessError


def _run(args, action) -> int:
    errors = _errors()
    driver = _driver(args)
    try:
        return action(driver) or 0
    except errors as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise _fail(str(message)) from error
    finally:
        driver.transport.close()


def load_settings(text: str, regmap=None) -> dict[str, object]:
    """Register values (path -> TOML value) from the text of a settings file.

    Raises
    ------
    KeyError
        An unknown block, slot or register (the message names it).
    """
    import tomllib

    from host.regmap import REGMAP

    regmap = regmap or REGMAP
    values: dict[str, object] = {}
    for block_name, table in tomllib.loads(text).items():
        try:
            block = regmap.block(block_name)
        except KeyError:
            raise KeyError(f"unknown block [{block_name}]") from None
        if not isinstance(table, dict):
            raise KeyError(f"{block_name} must be a table")
        if block.count is None:
            tables = [(None, table)]
        else:
            slots = {key: sub for key, sub in table.items() if key != "all"}
            tables = [(index, table["all"]) for index in range(block.count)] \
                if "all" in table else []
            for key, sub in slots.items():
                if not key.isdigit() or int(key) >= block.count:
                    raise KeyError(f"[{block_name}.{key}]: slots are 0..{block.count - 1} or "
                                   f"'all'")
                tables.append((int(key), sub))
        for index, sub in tables:
            for name, value in sub.items():
                path = regmap.path(block_name, name, index)
                if path not in regmap:
                    raise KeyError(f"no register {path!r}")
                values[path] = value
    return values


def _parse_assignment(text: str) -> tuple[str, str]:
    path, sep, value = text.partition("=")
    if not sep:
        raise _fail(f"expected PATH=VALUE, got {text!r}")
    return path.strip(), value.strip()


# -- commands -----------------------------------------------------------------------------------

def _get(args) -> int:
    from host.regmap import format_value, select

    def action(driver):
        locs = []
        for name in args.names:
            locs.extend(select(name, driver.regmap))
        values = driver.read_many([loc.path for loc in locs])
        width = max(len(loc.path) for loc in locs)
        for loc in locs:
            value = values[loc.path]
            shown = (f"0x{value & ((1 << (32 * loc.words)) - 1):0{8 * loc.words}X}" if args.raw
                     else format_value(loc, value))
            print(f"{loc.path:<{width}}  {shown}")
    return _run(args, action)


def _set(args) -> int:
    values: dict[str, object] = {}
    for item in args.items:
        if "=" in item:
            path, value = _parse_assignment(item)
            values[path] = value
            continue
        try:
            with open(item, encoding="utf-8") as file:
                text = file.read()
        except OSError as error:
            raise _fail(f"cannot read {item}: {error}") from error
        try:
            values.update(load_settings(text))
        except KeyError as error:
            raise _fail(f"{item}: {error.args[0]}") from error
        except ValueError as error:  # tomllib.TOMLDecodeError
            raise _fail(f"{item}: {error}") from error

    def action(driver):
        driver.apply(values)
        print(f"set {len(values)} registers, committed and verified "
              f"(commit {driver.read('ctrl.commit_count')})")
    return _run(args, action)


def _strobe(args) -> int:
    def action(driver):
        getattr(driver, args.strobe)()
        status = driver.status()
        print(f"{args.strobe}: armed={_yes(status.armed)} killed={_yes(status.killed)} "
              f"heartbeat_lost={_yes(status.heartbeat_lost)}")
    return _run(args, action)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _status(args) -> int:
    def action(driver):
        status, feed = driver.status(), driver.feed_status()
        link = driver.counters().get("bridge_stats", {})
        rows = [
            ("build", f"0x{status.build_id:08X}, map 0x{driver.regmap.hash:08X}, "
                      f"clock {status.clk_hz / 1e6:g} MHz"),
            ("uptime", f"{status.uptime_s:.3f} s ({status.cycles} cycles)"),
            ("armed", _yes(status.armed)),
            ("killed", _yes(status.killed)),
            ("heartbeat", f"lost={_yes(status.heartbeat_lost)} age={status.heartbeat_age} "
                          f"timeout={status.heartbeat_timeout or 'off'} cycles"),
            ("commits", str(status.commit_count)),
            ("feed", f"session {feed.session if feed.session_valid else '(none yet)'} "
                     f"expected {feed.expected} ended={_yes(feed.ended)} "
                     f"gap waiting={_yes(feed.gap_pending)}"),
            ("link", ", ".join(f"{name}={value}" for name, value in link.items() if value)
             or "no errors"),
        ]
        for name, value in rows:
            print(f"{name:<10} {value}")
    return _run(args, action)


def _price(price: int) -> str:
    return f"{price // _PRICE_SCALE}.{price % _PRICE_SCALE:04d}" if price else "-"


def _watch_view(driver, previous):
    from rich.console import Group
    from rich.table import Table

    status = driver.status()
    counters = driver.counters()
    head = Table(title=f"tickgate  uptime {status.uptime_s:.1f} s  armed {_yes(status.armed)}  "
                       f"killed {_yes(status.killed)}  heartbeat lost "
                       f"{_yes(status.heartbeat_lost)}  commits {status.commit_count}",
                 show_header=True)
    for column in ("slot", "bid", "bid shares", "ask", "ask shares", "flags", "position",
                   "live", "unacked", "risk"):
        head.add_column(column, justify="right")
    for top, pos, risk in zip(driver.book(), driver.positions(), driver.risk_states(),
                              strict=True):
        flags = " ".join(name for name in ("halted", "degraded") if getattr(top, name))
        state = risk.state.name.lower() + (f" ({risk.cause.name.lower()})"
                                           if risk.cause.name != "PASSED" else "")
        head.add_row(str(top.slot), _price(top.bid_price), str(top.bid_shares),
                     _price(top.ask_price), str(top.ask_shares), flags, str(pos.position),
                     str(pos.live_orders), str(pos.unacked_orders), state)
    now = time.monotonic()
    elapsed = now - previous.get("", now)
    previous[""] = now
    table = Table(show_header=True, caption="counters at 0 are not shown")
    for column in ("counter", "value", "per second"):
        table.add_column(column, justify="right" if column != "counter" else "left")
    for block, values in counters.items():
        for name, value in values.items():
            key = f"{block}.{name}"
            rate = (value - previous[key]) / elapsed if key in previous and elapsed else 0.0
            previous[key] = value
            if value:
                table.add_row(key, str(value), f"{rate:.0f}")
    return Group(head, table)


def _watch(args) -> int:
    def action(driver):
        from rich.console import Console
        from rich.live import Live

        previous: dict[str, float] = {}
        console = Console()
        refreshes = 0
        with Live(_watch_view(driver, previous), console=console, auto_refresh=False) as live:
            while not args.count or refreshes < args.count:
                refreshes += 1
                if args.heartbeat:
                    driver.heartbeat()
                live.update(_watch_view(driver, previous), refresh=True)
                if args.count and refreshes >= args.count:
                    break
                time.sleep(args.interval)
    try:
        return _run(args, action)
    except KeyboardInterrupt:
        return 0


def _sim_board(args) -> int:
    from host.transports.pty import PtyBoard
    from host.transports.sim import SimBoard

    if args.port or args.sim:
        raise _fail("sim-board takes neither --port nor --sim")
    board = PtyBoard(SimBoard(uart=True, divisor=args.divisor))
    print(board.path, flush=True)
    print(f"simulated board on {board.path}; use: tickgate host --port {board.path} "
          f"--timeout 10 status", file=sys.stderr, flush=True)
    try:
        board.serve()
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0
