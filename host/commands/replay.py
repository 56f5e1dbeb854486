"""``tickgate replay CAPTURE``: the capture through the model and the gateware, side by side."""

import argparse

__all__ = ["register", "replay"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="replay a capture through the model and the gateware and compare them",
        description="Run a pcap, pcapng or raw ITCH BinaryFILE through the reference model and "
                    "through the gateware in simulation, print messages by type, events, drops "
                    "by reason and mismatches side by side. Exit status 1 on any mismatch.")
    add_replay_arguments(parser)
    parser.set_defaults(func=replay)


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    from sim.book_mirror import BookGeometry

    slots = BookGeometry().slots
    parser.add_argument("capture", help="pcap, pcapng or raw ITCH 5.0 BinaryFILE")
    parser.add_argument("--sim", choices=("icarus", "verilator", "amaranth"), default=None,
                        help="simulator for the gateware: icarus or verilator under cocotb "
                             "(for --until events and book the default is TICKGATE_SIM or "
                             "icarus), or amaranth (the loop's default, with the progress bar "
                             "and Ctrl-C stop; the loop runs on all three)")
    parser.add_argument("--model-only", action="store_true",
                        help="run only the reference model (no gateware simulation)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON "
                        "(keys: capture, model, gateware, mismatches, differences; with "
                        "--until book also tracking)")
    parser.add_argument("--until", choices=("events", "book", "loop"), default="loop",
                        help="how far down the pipeline to replay: events (feed ingress: "
                             "UDP, MoldUDP64, ITCH decode), book (the ingress and the order "
                             "book: top-of-book updates, compared update by update, and the "
                             "final books) or loop (the default: the market maker's whole "
                             "loop: quoter, risk gate, OUCH orders, the exchange simulator's "
                             "answers and fills, position and PnL; the orders compared byte "
                             "for byte)")
    book = parser.add_argument_group("order book (with --until book)")
    book.add_argument("--track", metavar="LIST",
                      help=f"instruments the book tracks, comma-separated, at most {slots} (its "
                           "slots): a number is a stock locate, anything else a symbol, bound "
                           "when the capture's stock directory message (R) names it. Default: "
                           f"the first {slots} instruments of the stock directory, then the "
                           "first other locates seen in order messages, tracked by locate")
    book.add_argument("--bbo-out", metavar="FILE.csv",
                      help="write one row per top-of-book change (CSV, or Parquet when FILE "
                           "ends in .parquet), columns "
                           "msg_index,seq,timestamp,locate,bid_px,bid_qty,ask_px,ask_qty "
                           "(prices in ITCH units, 4 implied decimals; an empty side is 0, 0; "
                           "msg_index counts every message the feed delivered, from 0). The "
                           "rows come from the model, which the gateware's updates must equal; "
                           "updates that only change a halted or degraded flag are left out")
    loop = parser.add_argument_group("market-maker loop (with --until loop)")
    loop.add_argument("--symbols", metavar="LIST",
                      help="instruments to quote, comma-separated symbols, at most 8 (default: "
                           "the first 2 of the stock directory)")
    loop.add_argument("--params", metavar="FILE.toml",
                      help="quote parameters, risk and port limits in the host's settings "
                           "format (blocks quote, risk, port_limits), over the bundled defaults")
    loop.add_argument("--latency", type=int, default=2_500,
                      help="one-way cycles between our order port and the exchange")
    loop.add_argument("--max-gap", type=int, default=2_000,
                      help="pauses in the capture longer than this many cycles are shortened "
                           "to it, in both runs (0: keep every pause)")
    loop.add_argument("--maker-rebate", type=int, default=20,
                      help="rebate per share for adding liquidity, in 1e-4 $")
    loop.add_argument("--taker-fee", type=int, default=30,
                      help="fee per share for taking liquidity, in 1e-4 $")
    loop.add_argument("--orders-out", metavar="FILE.csv",
                      help="write both sides' orders, one row each (run, index, cycle, kind, "
                           "slot, symbol, UserRefNum, side, quantity, price, packet bytes), "
                           "as CSV or, when FILE ends in .parquet, Parquet")
    loop.add_argument("--quotes-out", metavar="FILE.csv",
                      help="write both sides' quotes after each of their orders, one row each "
                           "(run, order, cycle, slot, symbol, our best bid price, shares and "
                           "orders, the same for the ask), as CSV or Parquet (.parquet)")
    loop.add_argument("--orders-pcap", metavar="FILE.pcap",
                      help="write the orders (the gateware's, or the model's with "
                           "--model-only) as SoupBinTCP over one TCP connection, for Wireshark")
    loop.add_argument("--plot", metavar="FILE.png",
                      help="draw the book, our quotes, fills and position per instrument")
    loop.add_argument("--core", action="store_true",
                      help="run the whole core instead of the loop alone: the capture's own "
                           "Ethernet frames in, its book making the loop's top updates (each "
                           "compared with the model's), set up by the host driver through the "
                           "register map; under cocotb (--sim icarus, the default, or "
                           "verilator)")
    loop.add_argument("--free-running", action="store_true",
                      help="give the gateware loop each input in the cycle it is due and "
                           "let its orders reach the exchange --latency cycles after they "
                           "leave it, instead of lockstep with the model (the default: the "
                           "model's inputs in its order, each into a settled loop, the "
                           "model's exchange times): shows what the pipeline's timing changes")
    loop.add_argument("--waves", metavar="FILE.vcd",
                      help="on a mismatch, write the gateware loop's signals from cycle 0 to "
                           "500 cycles past the first differing order (with shards, one file "
                           "per shard: FILE.shardK.vcd)")
    loop.add_argument("--jobs", type=int, default=1,
                      help="split the instruments into this many shards and replay them in "
                           "as many worker processes (each instrument's figures are those of "
                           "one job while the port-wide limits leave room)")
    loop.add_argument("--dask", metavar="ADDRESS",
                      help="run the shards (one per instrument, or --jobs of them) on the Dask "
                           "scheduler at ADDRESS (tcp://host:8786); the workers need tickgate "
                           "and the capture at the same path")
    loop.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                      help="progress bar of the gateware run (auto: when stderr is a terminal)")
    feed = parser.add_argument_group("feed selection (default: the busiest UDP flow)")
    feed.add_argument("--ip", help="destination IPv4 address of the feed")
    feed.add_argument("--port", type=int, help="destination UDP port of the feed")
    feed.add_argument("--vlan", type=int, help="VLAN id of the feed (for a BinaryFILE: tag "
                      "the generated frames)")
    feed.add_argument("--limit", type=int, help="replay only the first N frames (messages for a "
                      "BinaryFILE)")
    pacing = parser.add_argument_group("gateware pacing (stimulus for verification)")
    pacing.add_argument("--idle", type=float, default=0.0,
                        help="probability of an idle cycle before each input beat")
    pacing.add_argument("--backpressure", type=float, default=0.0,
                        help="probability the event output (with --until book: the "
                             "top-of-book output) is not ready on a cycle")
    pacing.add_argument("--seed", type=int, default=1, help="seed of the pacing generators")


def replay(args) -> int:
    import json

    from host.replay.book import default_tracking, parse_track, write_bbo
    from host.replay.compare import compare
    from host.replay.inputs import load_capture
    from host.replay.report import print_report, report_json
    from host.replay.runs import decoded_events, run_gateware, run_model
    from sim.book_mirror import BookGeometry
    from sim.capture import CaptureError

    if args.until != "book" and (args.track or args.bbo_out):
        raise SystemExit("tickgate replay: --track and --bbo-out need --until book")
    if args.until == "loop":
        return _replay_loop(args)
    if (args.symbols or args.params or args.orders_out or args.quotes_out or args.orders_pcap
            or args.plot or args.jobs != 1 or args.dask or args.waves or args.core):
        raise SystemExit("tickgate replay: --symbols, --params, --orders-out, --quotes-out, "
                         "--orders-pcap, --plot, --waves, --jobs, --dask and --core need "
                         "--until loop")
    if args.sim == "amaranth":
        raise SystemExit("tickgate replay: --until events and book run on icarus or verilator")
    slots = BookGeometry().slots
    tracked = None
    if args.track:
        try:
            tracked = parse_track(args.track, slots)
        except ValueError as error:
            raise SystemExit(f"tickgate replay: {error}") from error
    try:
        inp = load_capture(args.capture, ip=args.ip, port=args.port, vlan=args.vlan,
                           limit=args.limit)
    except (CaptureError, OSError) as error:
        raise SystemExit(f"tickgate replay: {error}") from error
    if args.until == "book" and tracked is None:
        tracked = default_tracking(decoded_events(inp), slots)
    model = run_model(inp, tracked)
    gateware = comparison = None
    if not args.model_only:
        gateware = run_gateware(inp, simulator=args.sim, expected=model, idle=args.idle,
                                backpressure=args.backpressure, seed=args.seed,
                                tracked=tracked)
        comparison = compare(model, gateware)
    print_report(inp, model, gateware, comparison)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report_json(inp, model, gateware, comparison), f, indent=2)
    if args.bbo_out:
        rows = write_bbo(args.bbo_out, model.book)
        print(f"{rows:,} top-of-book changes -> {args.bbo_out}")
    return 1 if comparison is not None and comparison.mismatches else 0


def _replay_loop(args) -> int:
    import json
    import signal
    import sys

    from rich.progress import Progress

    from host.replay.inputs import load_capture
    from host.replay.loop import run_loop
    from host.replay.loop_report import (
        loop_json,
        print_loop_report,
        write_orders,
        write_quotes,
    )
    from host.replay.shards import run_loop_sharded
    from sim.capture import CaptureError
    from sim.order_capture import write_orders_pcap
    from sim.position import FeeSchedule

    if args.jobs < 1:
        raise SystemExit("tickgate replay: --jobs is 1 or more")
    if args.waves and args.sim not in (None, "amaranth"):
        raise SystemExit(f"tickgate replay: --waves writes Amaranth's VCD; under {args.sim}, "
                         "set TICKGATE_WAVES=1 for an FST of the run in its build directory")
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    # The first Ctrl-C ends the gateware run where it is and still writes the report of what
    # was done; a second one interrupts at once.
    interrupted = []

    def on_sigint(signum, frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        print("\nstopping: reporting what was replayed (Ctrl-C again to abort)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with Progress(disable=not show, transient=True) as bar:
            task = bar.add_task("gateware loop", total=None)
            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            loader = dict(ip=args.ip, port=args.port, vlan=args.vlan, limit=args.limit)
            options = dict(params=args.params, fees=FeeSchedule(args.maker_rebate,
                                                                args.taker_fee),
                           latency=args.latency, max_gap=args.max_gap,
                           gateware=not args.model_only, lockstep=not args.free_running,
                           waves=args.waves, core=args.core,
                           simulator=args.sim or ("icarus" if args.core else "amaranth"))
            symbols = [s.strip() for s in args.symbols.split(",")] if args.symbols else None
            try:
                inp = load_capture(args.capture, **loader)
                if args.jobs > 1 or args.dask:
                    # Workers get Ctrl-C too: a sharded run is aborted, not stopped.
                    signal.signal(signal.SIGINT, previous)
                    bar.update(task, description="shards")
                    replay = run_loop_sharded(args.capture, loader, symbols, options,
                                              jobs=args.jobs, dask=args.dask, done=progress)
                else:
                    replay = run_loop(inp, symbols=symbols, progress=progress,
                                      stop=lambda: bool(interrupted), **options)
            except (CaptureError, OSError, ValueError) as error:
                raise SystemExit(f"tickgate replay: {error}") from error
    finally:
        signal.signal(signal.SIGINT, previous)
    print_loop_report(inp, replay)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(loop_json(inp, replay), f, indent=2)
        print(f"report -> {args.json}")
    if args.orders_out:
        rows = write_orders(args.orders_out, replay)
        print(f"{rows:,} orders -> {args.orders_out}")
    if args.quotes_out:
        rows = write_quotes(args.quotes_out, replay)
        print(f"{rows:,} quote changes -> {args.quotes_out}")
    if args.orders_pcap:
        if replay.gateware is not None:
            packets = [(r.first_beat, r.packet) for r in replay.gateware.sent]
        else:
            packets = [(r.time, r.packet) for r in replay.model.sent]
        write_orders_pcap(args.orders_pcap, packets, clk_hz=replay.config.clk_hz)
        print(f"{len(packets):,} orders -> {args.orders_pcap} (SoupBinTCP, TCP port "
              f"{_order_port()})")
    if args.plot:
        from host.replay.plot import plot_loop

        print(f"plot -> {plot_loop(replay, args.plot)}")
    return 1 if replay.mismatches or replay.stopped else 0


def _order_port() -> int:
    from sim.order_capture import ORDER_PORT

    return ORDER_PORT.server_port
