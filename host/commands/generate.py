"""``tickgate generate OUT``: write a seeded, synthetic ITCH 5.0 session as pcap, pcapng or ITCH."""

import argparse
import sys
from pathlib import Path

__all__ = ["register", "run"]

_FORMATS = ("pcap", "pcapng", "itch")
_SUFFIXES = {".pcap": "pcap", ".pcapng": "pcapng", ".itch": "itch", ".bin": "itch"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write a synthetic ITCH 5.0 session",
        description="Generate a realistic, internally consistent TotalView-ITCH 5.0 session "
                    "(system events, directory, order flow around a random-walk price, trades) "
                    "and write it as a capture of its MoldUDP64 multicast feed (pcap, pcapng) "
                    "or as a raw BinaryFILE (itch). The same seed gives the same bytes.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="output file")
    parser.add_argument("--messages", type=int, default=100_000,
                        help="total ITCH messages, system events included (default: 100000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--instruments", type=int, default=4,
                        help="number of stocks (default: 4)")
    parser.add_argument("--format", choices=_FORMATS, default=None,
                        help="output format (default: from OUT's suffix, else pcap)")
    parser.add_argument("--vlan", type=int, default=None,
                        help="802.1Q VLAN id on every frame (default: untagged)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sim.capture import write_binaryfile, write_pcap, write_pcapng
    from sim.generator import (
        SessionConfig,
        captured,
        default_instruments,
        generate_frames,
        generate_messages,
    )

    fmt = args.format or _SUFFIXES.get(args.out.suffix.lower(), "pcap")
    if args.vlan is not None and fmt == "itch":
        raise SystemExit("tickgate generate: --vlan applies to pcap and pcapng, not to itch")
    if args.vlan is not None and not 0 <= args.vlan <= 4095:
        raise SystemExit(f"tickgate generate: VLAN id {args.vlan} is not in 0..4095")
    try:
        config = SessionConfig(seed=args.seed, messages=args.messages,
                               instruments=default_instruments(args.instruments))
    except ValueError as error:
        raise SystemExit(f"tickgate generate: {error}") from None

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "itch":
        count = write_binaryfile(args.out, generate_messages(config))
        print(f"wrote {args.out}: {count} messages (ITCH BinaryFILE), seed {args.seed}",
              file=sys.stderr)
        return 0
    frames = generate_frames(config, vlan=args.vlan)
    writer = write_pcap if fmt == "pcap" else write_pcapng
    writer(args.out, captured(config, frames))
    messages = sum(f.messages for f in frames)
    print(f"wrote {args.out}: {messages} messages in {len(frames)} frames ({fmt}), "
          f"seed {args.seed}", file=sys.stderr)
    return 0
