"""``tickgate bench``: the figures the design promises, measured and printed.

Figures, not pass/fail: run it on the machine you care about. Each figure comes from running the
real gateware (cycle counts) and the real model (messages per second).
"""

__all__ = ["register"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="measure latency, line rate, simulation and model speed (and Fmax)",
        description="Generate a session, run it through the feed ingress gateware back to back "
                    "and through the model, and print latency in cycles (last byte of a message "
                    "in -> its event out), input stall cycles, beats per cycle, and messages per "
                    "second of the model and of the gateware simulation. With --until book the "
                    "session goes through the ingress and the order book (hdl/top.py) and the "
                    "latency to each top-of-book update is printed too. With --synth also the "
                    "post-route Fmax of the ingress on the ULX3S 85F.")
    parser.add_argument("--messages", type=int, help="messages to generate (default 20,000)")
    parser.add_argument("--instruments", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sim", action="append", choices=("icarus", "verilator"),
                        help="simulator(s) to measure (repeatable; default icarus)")
    parser.add_argument("--until", choices=("events", "book", "trade", "loop"),
                        default="events",
                        help="events: the feed ingress (default); book: the ingress and the book, "
                             "tracking the first instruments of the stock directory; trade: the "
                             "whole core set up by the host driver, one message per frame, "
                             "tick to trade from a message's last byte to its order's first "
                             "beat (Amaranth's simulator; --messages defaults to 60 there); "
                             "loop: the loop replay of a generated session (model and "
                             "gateware) with 1 job and with 2, and the speed-up (--messages "
                             "defaults to 200 there, 2 instruments quoted)")
    parser.add_argument("--aapl", metavar="FILE", help="also measure the model on this ITCH file")
    parser.add_argument("--model-only", action="store_true",
                        help="measure only the models (feed ingress; and the market maker's "
                             "loop quoting 2 instruments): a 1,000,000-message session in a "
                             "minute or so")
    parser.add_argument("--synth", action="store_true", help="also build for the ULX3S (minutes)")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.set_defaults(func=bench)


def _model_rate(frames_or_input) -> tuple[float, int]:
    from host.replay.runs import run_model

    run = run_model(frames_or_input)
    messages = sum(v for k, v in run.stats["itch_decode"].items()
                   if k not in ("unknown_type", "bad_length", "bad_side"))
    return messages / run.wall_seconds, messages


def _loop_model_rate(inp) -> tuple[float, int]:
    """Messages per second of the whole model: feed ingress, book and the market maker's loop
    quoting the first 2 instruments of the stock directory with the replay's defaults."""
    import time

    from host.replay.loop import load_params, timed_feed
    from sim.market_maker import MarketMaker, MarketMakerConfig

    start = time.perf_counter()
    feed, directory = timed_feed(inp)
    instruments, port = load_params(None, directory[:2])
    MarketMaker(MarketMakerConfig(instruments, port)).run(feed)
    seconds = time.perf_counter() - start
    return len(feed) / seconds, len(feed)


def _loop(args) -> int:
    """Wall time of the loop replay with 1 job and with 2 shards, and whether they agree."""
    import json
    import tempfile
    import time
    from pathlib import Path

    from host.replay.inputs import load_capture
    from host.replay.loop import run_loop, trading_figures
    from host.replay.shards import run_loop_sharded
    from sim.capture import write_pcap
    from sim.generator import SessionConfig, captured, default_instruments, generate_frames

    count = max(2, min(args.instruments, 8))
    insts = default_instruments(count)
    symbols = [i.symbol for i in insts[:2]]
    options = dict(latency=200, max_gap=300)
    with tempfile.TemporaryDirectory(prefix="tickgate-bench-") as tmp:
        capture = str(Path(tmp) / "loop.pcap")
        config = SessionConfig(seed=args.seed, messages=args.messages or 1000, instruments=insts)
        write_pcap(capture, captured(config, generate_frames(config)))
        start = time.perf_counter()
        one = run_loop(load_capture(capture), symbols=symbols, **options)
        one_s = time.perf_counter() - start
        start = time.perf_counter()
        two = run_loop_sharded(capture, {}, symbols, options, jobs=2)
        two_s = time.perf_counter() - start
    agree = all(trading_figures(one.summaries[side].per_slot)
                == trading_figures(two.summaries[side].per_slot)
                for side in ("model", "gateware"))
    figures = {"messages": config.messages, "instruments": symbols,
               "orders": len(one.model.sent), "one_job_s": round(one_s, 1),
               "two_jobs_s": round(two_s, 1), "speed_up": round(one_s / two_s, 2),
               "mismatches": one.mismatches + two.mismatches, "shards_agree": agree}
    print(f"tickgate bench: the loop replay of {config.messages} generated messages quoting "
          f"{', '.join(symbols)} ({figures['orders']} orders, model and gateware)")
    print(f"  1 job:  {one_s:7.1f} s")
    print(f"  2 jobs: {two_s:7.1f} s   speed-up {one_s / two_s:.2f}x")
    print(f"  mismatches {figures['mismatches']}; per-instrument figures of the 2 shards "
          f"{'equal' if agree else 'DIFFER FROM'} those of 1 job")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if agree and not figures["mismatches"] else 1


def _trade(args) -> int:
    """Tick to trade of the whole core, in cycles and in ns at the core clock."""
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
    from host.gatesim.trade_bench import tick_to_trade
    from sim.generator import SessionConfig, default_instruments, generate_messages
    from sim.market_maker import MarketMakerConfig, QuotedInstrument

    count = max(1, min(args.instruments, 8))
    insts = default_instruments(count)
    messages = generate_messages(SessionConfig(seed=args.seed, messages=args.messages or 60,
                                               instruments=insts))
    quoted = [QuotedInstrument(i.symbol, QuoteParams(
        enable=True, base_half_spread=1, levels=3, level_spacing=1, size=100,
        skew_ticks_per_unit=400, vol_multiplier=128, requote_threshold=1, min_quote_life=2_000,
        fair_value_mode=FairValueMode.MID), RiskLimits(
        max_long=400, max_short=300, max_order_qty=100, collar=300)) for i in insts]
    config = MarketMakerConfig(quoted, PortLimits(
        rate_tokens=64, rate_refill=10, max_live_orders=48, max_unacked_orders=12,
        stale_feed_timeout=0), latency=200)
    run = tick_to_trade(messages, config)
    summary = run.summary()
    clk_mhz = config.clk_hz / 1e6
    figures = {"messages": len(messages), "orders": len(run.orders),
               "tick_to_trade_cycles": summary, "clock_mhz": clk_mhz}
    table = Table(title=f"tickgate bench: tick to trade on the whole core, {len(messages)} "
                        f"messages, {count} instruments (fair value: mid)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("orders sent", str(len(run.orders)))
    if summary:
        ns = {k: summary[k] * 1e3 / clk_mhz for k in ("min", "median", "max")}
        figures["tick_to_trade_ns"] = ns
        table.add_row("tick to trade (last byte in -> first order beat out)",
                      f"min {summary['min']} / median {summary['median']} / max "
                      f"{summary['max']} cycles ({summary['samples']} samples)")
        table.add_row(f"the same at {clk_mhz:g} MHz",
                      f"min {ns['min']:.0f} / median {ns['median']:.0f} / max {ns['max']:.0f} ns")
    else:
        table.add_row("tick to trade", "no sample (no order followed a quiet frame)")
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


def bench(args) -> int:
    if args.until == "trade":
        return _trade(args)
    if args.until == "loop":
        return _loop(args)
    args.messages = args.messages or 20_000
    import json
    import tempfile
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from host.replay.book import default_tracking
    from host.replay.compare import compare
    from host.replay.inputs import load_capture
    from host.replay.report import latency_summary
    from host.replay.runs import decoded_events, run_gateware, run_model
    from sim.book_mirror import BookGeometry
    from sim.capture import write_pcap
    from sim.generator import SessionConfig, default_instruments, generate_session

    console = Console()
    figures: dict = {}
    simulators = [] if args.model_only else (args.sim or ["icarus"])
    with tempfile.TemporaryDirectory(prefix="tickgate-bench-") as tmp:
        capture = Path(tmp) / "bench.pcap"
        config = SessionConfig(seed=args.seed, messages=args.messages,
                               instruments=default_instruments(args.instruments))
        write_pcap(capture, generate_session(config))
        inp = load_capture(capture)
        tracked = None
        if args.until == "book":
            tracked = default_tracking(decoded_events(inp), BookGeometry().slots)
        model = run_model(inp, tracked) if simulators else None
        rate, messages = _model_rate(inp)
        figures["model_messages_per_s_generated"] = round(rate)
        figures["messages"] = messages
        if args.aapl:
            rate, _ = _model_rate(load_capture(args.aapl))
            figures["model_messages_per_s_aapl"] = round(rate)
        if args.model_only:
            rate, _ = _loop_model_rate(inp)
            figures["loop_model_events_per_s_generated"] = round(rate)
            if args.aapl:
                rate, _ = _loop_model_rate(load_capture(args.aapl))
                figures["loop_model_events_per_s_aapl"] = round(rate)
        for simulator in simulators:
            gateware = run_gateware(inp, simulator=simulator, expected=model, tracked=tracked)
            lat = latency_summary(gateware.latencies)
            figures[simulator] = {
                "mismatches": compare(model, gateware).mismatches,
                "latency_cycles": lat,
                "input_beats": gateware.input_beats,
                "input_cycles": gateware.input_cycles,
                "stall_cycles": gateware.stall_cycles,
                "sim_messages_per_s": round(messages / gateware.wall_seconds),
                "sim_cycles_per_s": round(gateware.input_cycles / gateware.wall_seconds),
            }
            if gateware.book is not None:
                figures[simulator]["top_of_book_updates"] = len(gateware.book.updates)
                figures[simulator]["top_of_book_latency_cycles"] = latency_summary(
                    gateware.book.latencies)
    if args.synth:
        from boards.ulx3s import build
        from hdl.export import build_core

        report = build(build_core("ingress"), Path("build/synth/ulx3s-ingress"), seed=args.seed)
        figures["synth"] = report.to_json()
    else:
        report = None

    stages = "feed ingress and book" if args.until == "book" else "feed ingress"
    table = Table(title=f"tickgate bench: {stages}, {messages:,} generated messages",
                  title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("model speed (generated session)",
                  f"{figures['model_messages_per_s_generated']:,} messages/s")
    if "model_messages_per_s_aapl" in figures:
        table.add_row("model speed (AAPL file)",
                      f"{figures['model_messages_per_s_aapl']:,} messages/s")
    for key, what in (("generated", "generated session"), ("aapl", "AAPL file")):
        if f"loop_model_events_per_s_{key}" in figures:
            table.add_row(f"loop model speed ({what}, ingress to fills)",
                          f"{figures[f'loop_model_events_per_s_{key}']:,} events/s")
    for simulator in simulators:
        f = figures[simulator]
        # With the book behind it, the ingress's events stay inside the core: no figure.
        if f["latency_cycles"]:
            lat = f["latency_cycles"]
            table.add_row(f"\\[{simulator}] latency, last byte in -> event out",
                          f"min {lat['min']} / median {lat['median']} / max {lat['max']} cycles")
        if "top_of_book_latency_cycles" in f:
            lat = f["top_of_book_latency_cycles"] or {}
            table.add_row(f"\\[{simulator}] latency, last byte in -> top-of-book update out",
                          f"min {lat.get('min')} / median {lat.get('median')} / "
                          f"max {lat.get('max')} cycles ({f['top_of_book_updates']:,} updates)")
        table.add_row(f"\\[{simulator}] input beats / cycles / stall cycles",
                      f"{f['input_beats']:,} / {f['input_cycles']:,} / {f['stall_cycles']:,}")
        table.add_row(f"\\[{simulator}] simulation speed",
                      f"{f['sim_messages_per_s']:,} messages/s "
                      f"({f['sim_cycles_per_s']:,} cycles/s)")
        table.add_row(f"\\[{simulator}] mismatches", str(f["mismatches"]))
    console.print(table)
    if report is not None:
        console.print(report.format_table())
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    bad = any(figures[s]["mismatches"] for s in simulators)
    return 1 if bad else 0
