"""``tickgate demo``: generate a session with our own generator and replay it."""

from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a session and replay it through model and gateware",
        description="Generate a seeded ITCH 5.0 session (several instruments, MoldUDP64 packets "
                    "filled to the MTU) and replay it through the reference model and the "
                    "gateware. Exit status 1 on any mismatch.")
    parser.add_argument("--messages", type=int, default=5000, help="messages to generate")
    parser.add_argument("--instruments", type=int, default=8, help="instruments in the session")
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--vlan", type=int, default=None, help="tag the frames with this VLAN")
    parser.add_argument("--out", default="build/demo", help="where the capture and report go")
    parser.add_argument("--sim", choices=("icarus", "verilator"), default=None,
                        help="Verilog simulator (default: TICKGATE_SIM or icarus)")
    parser.set_defaults(func=demo)


def demo(args) -> int:
    from argparse import Namespace

    from host.commands.replay import replay
    from sim.capture import write_pcap
    from sim.generator import SessionConfig, captured, default_instruments, generate_frames

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = SessionConfig(seed=args.seed, messages=args.messages,
                           instruments=default_instruments(args.instruments))
    capture = out / "session.pcap"
    write_pcap(capture, captured(config, generate_frames(config, vlan=args.vlan)))
    print(f"generated {args.messages:,} messages for {args.instruments} instruments "
          f"(seed {args.seed}) -> {capture}")
    report = out / "replay.json"
    status = replay(Namespace(capture=str(capture), sim=args.sim, model_only=False,
                              json=str(report), ip=None, port=None, vlan=None, limit=None,
                              idle=0.0, backpressure=0.0, seed=1, until="events", track=None,
                              bbo_out=None))
    print(f"report: {report}")
    return status
