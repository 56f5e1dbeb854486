"""``tickgate demo``: generate a session with our own generator and replay the market maker's
loop over it, through the model and the gateware."""

from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a session and replay the market maker's loop over it",
        description="Generate a seeded ITCH 5.0 session (several instruments, MoldUDP64 packets "
                    "filled to the MTU) and replay it through the market maker's loop (feed, "
                    "book, quoter, risk gate, OUCH orders, the exchange simulator's fills) in "
                    "the reference model and in the gateware, comparing their orders byte for "
                    "byte. Writes the capture, the report (JSON), the orders (CSV and pcap) and "
                    "a plot. Exit status 1 on any mismatch.")
    parser.add_argument("--messages", type=int, default=300, help="messages to generate")
    parser.add_argument("--instruments", type=int, default=4, help="instruments in the session")
    parser.add_argument("--quote", type=int, default=2,
                        help="how many of them to quote (the first of the stock directory)")
    parser.add_argument("--seed", type=int, default=3, help="generator seed")
    parser.add_argument("--vlan", type=int, default=None, help="tag the frames with this VLAN")
    parser.add_argument("--out", default="build/demo", help="where the capture and report go")
    parser.set_defaults(func=demo)


def demo(args) -> int:
    from host.cli import build_parser
    from host.commands.replay import replay
    from sim.capture import write_pcap
    from sim.generator import SessionConfig, captured, default_instruments, generate_frames

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    instruments = default_instruments(args.instruments)
    config = SessionConfig(seed=args.seed, messages=args.messages, instruments=instruments)
    capture = out / "session.pcap"
    write_pcap(capture, captured(config, generate_frames(config, vlan=args.vlan)))
    print(f"generated {args.messages:,} messages for {args.instruments} instruments "
          f"(seed {args.seed}) -> {capture}")
    # Pauses are cut to 300 cycles and the exchange is 200 cycles away, so the gateware's
    # simulation spends its time trading rather than waiting (see `tickgate replay --help`).
    symbols = ",".join(i.symbol for i in instruments[:args.quote])
    command = ["replay", str(capture), "--until", "loop", "--symbols", symbols,
               "--max-gap", "300", "--latency", "200", "--json", str(out / "replay.json"),
               "--orders-out", str(out / "orders.csv"), "--quotes-out", str(out / "quotes.csv"),
               "--orders-pcap", str(out / "orders.pcap"), "--plot", str(out / "loop.png")]
    print("tickgate " + " ".join(command))
    return replay(build_parser().parse_args(command))
