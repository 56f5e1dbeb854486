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
    parser.add_argument("--sim", choices=("icarus", "verilator"), default=None,
                        help="Verilog simulator for the gateware (default: TICKGATE_SIM or icarus)")
    parser.add_argument("--model-only", action="store_true",
                        help="run only the reference model (no gateware simulation)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON "
                        "(keys: capture, model, gateware, mismatches, differences; with "
                        "--until book also tracking)")
    parser.add_argument("--until", choices=("events", "book"), default="events",
                        help="how far down the pipeline to replay: events (feed ingress: "
                             "UDP, MoldUDP64, ITCH decode; the default) or book (the ingress "
                             "and the order book: top-of-book updates, compared update by "
                             "update, and the final books)")
    book = parser.add_argument_group("order book (with --until book)")
    book.add_argument("--track", metavar="LIST",
                      help=f"instruments the book tracks, comma-separated, at most {slots} (its "
                           "slots): a number is a stock locate, anything else a symbol, bound "
                           "when the capture's stock directory message (R) names it. Default: "
                           f"the first {slots} instruments of the stock directory, then the "
                           "first other locates seen in order messages, tracked by locate")
    book.add_argument("--bbo-out", metavar="FILE.csv",
                      help="write one CSV row per top-of-book change, columns "
                           "msg_index,seq,timestamp,locate,bid_px,bid_qty,ask_px,ask_qty "
                           "(prices in ITCH units, 4 implied decimals; an empty side is 0, 0; "
                           "msg_index counts every message the feed delivered, from 0). The "
                           "rows come from the model, which the gateware's updates must equal; "
                           "updates that only change a halted or degraded flag are left out")
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

    from host.replay.book import default_tracking, parse_track, write_bbo_csv
    from host.replay.compare import compare
    from host.replay.inputs import load_capture
    from host.replay.report import print_report, report_json
    from host.replay.runs import decoded_events, run_gateware, run_model
    from sim.book_mirror import BookGeometry
    from sim.capture import CaptureError

    if args.until != "book" and (args.track or args.bbo_out):
        raise SystemExit("tickgate replay: --track and --bbo-out need --until book")
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
        rows = write_bbo_csv(args.bbo_out, model.book)
        print(f"{rows:,} top-of-book changes -> {args.bbo_out}")
    return 1 if comparison is not None and comparison.mismatches else 0
