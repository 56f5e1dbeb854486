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
    parser.add_argument("capture", help="pcap, pcapng or raw ITCH 5.0 BinaryFILE")
    parser.add_argument("--sim", choices=("icarus", "verilator"), default=None,
                        help="Verilog simulator for the gateware (default: TICKGATE_SIM or icarus)")
    parser.add_argument("--model-only", action="store_true",
                        help="run only the reference model (no gateware simulation)")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON "
                        "(keys: capture, model, gateware, mismatches, differences)")
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
                        help="probability the event output is not ready on a cycle")
    pacing.add_argument("--seed", type=int, default=1, help="seed of the pacing generators")


def replay(args) -> int:
    import json

    from host.replay.compare import compare
    from host.replay.inputs import load_capture
    from host.replay.report import print_report, report_json
    from host.replay.runs import run_gateware, run_model
    from sim.capture import CaptureError

    try:
        inp = load_capture(args.capture, ip=args.ip, port=args.port, vlan=args.vlan,
                           limit=args.limit)
    except (CaptureError, OSError) as error:
        raise SystemExit(f"tickgate replay: {error}") from error
    model = run_model(inp)
    gateware = comparison = None
    if not args.model_only:
        gateware = run_gateware(inp, simulator=args.sim, expected=model, idle=args.idle,
                                backpressure=args.backpressure, seed=args.seed)
        comparison = compare(model, gateware)
    print_report(inp, model, gateware, comparison)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report_json(inp, model, gateware, comparison), f, indent=2)
    return 1 if comparison is not None and comparison.mismatches else 0
