"""The design's register map: pinned addresses, and the generated document and C header."""

import shutil
import subprocess

import pytest

from hdl.csr import docgen
from hdl.csr.map import MAGIC, REGISTER_MAP

# The golden table: (base, stride, instances, {register: offset}) of every block. A register that
# moves breaks firmware and host tools built against the old map, so moving one must be a
# decision: change this table in the same commit. Registers added after these are allowed.
GOLDEN = {
    "ctrl": (0x0000, None, None, {
        "magic": 0, "map_version": 1, "map_hash": 2, "build_id": 3, "clk_hz": 4, "scratch": 5,
        "cycles": 6, "commit": 8, "commit_count": 9, "arm": 10, "kill": 11, "heartbeat": 12,
        "heartbeat_timeout": 13, "heartbeat_age": 14, "armed": 15, "killed": 16,
        "heartbeat_lost": 17}),
    "bridge_stats": (0x0100, None, None, {
        "requests": 0, "bad_crc": 2, "bad_command": 4, "bad_length": 6, "timeout": 8,
        "bus_error": 10, "uart_framing": 12, "uart_overrun": 14, "junk": 16}),
    "net": (0x0200, None, None, {"mac": 0, "ip": 2, "port": 3}),
    "mold": (0x0300, None, None, {"expected": 0, "session": 2, "session_valid": 5, "ended": 6}),
    "mold_recovery": (0x0400, None, None, {
        "gap_pending": 0, "gap_first": 1, "gap_count": 3, "gap_pop": 5, "next_expected": 6,
        "set_expected": 8, "set_pending": 9}),
    "udp_rx_stats": (0x0500, None, None, {
        "frames": 0, "accepted": 2, "frame_error": 4, "runt": 6, "mac": 8, "not_ipv4": 10,
        "ip_options": 12, "fragment": 14, "not_udp": 16, "ip_checksum": 18, "length": 20,
        "dst_ip": 22, "dst_port": 24, "truncated": 26}),
    "mold_rx_stats": (0x0600, None, None, {
        "packets": 0, "messages": 2, "heartbeats": 4, "end_of_session": 6, "dup_packets": 8,
        "dup_messages": 10, "gaps": 12, "gap_messages": 14, "gap_overflow": 16,
        "session_mismatch": 18, "short_header": 20, "length_short": 22, "length_past_end": 24,
        "count_short": 26, "trailing_bytes": 28, "frame_error": 30}),
    "itch_decode_stats": (0x0700, None, None, {
        "system_event": 0, "stock_directory": 2, "stock_trading_action": 4,
        "reg_sho_restriction": 6, "market_participant_position": 8, "mwcb_decline_level": 10,
        "mwcb_status": 12, "ipo_quoting_period": 14, "luld_auction_collar": 16,
        "operational_halt": 18, "add_order": 20, "add_order_mpid": 22, "order_executed": 24,
        "order_executed_price": 26, "order_cancel": 28, "order_delete": 30,
        "order_replace": 32, "trade": 34, "cross_trade": 36, "broken_trade": 38, "noii": 40,
        "rpii": 42, "dlcr_price_discovery": 44, "unknown_type": 46, "bad_length": 48,
        "bad_side": 50}),
    "book_stats": (0x0800, None, None, {
        "events": 0, "filtered": 2, "bound": 4, "clears": 6, "unknown_ref": 8,
        "over_execute": 10, "over_cancel": 12, "duplicate_ref": 14, "bad_order": 16,
        "table_full": 18, "level_full": 20, "overflow": 22, "refills": 24, "updates": 26}),
    "book": (0x0900, 16, 8, {
        "bound": 0, "locate": 1, "halted": 2, "degraded": 3, "bid_price": 4, "bid_shares": 5,
        "ask_price": 7, "ask_shares": 8}),
    "position": (0x0A00, 8, 8, {"position": 0, "live_orders": 1, "unacked_orders": 2}),
    "quote": (0x0B00, 32, 8, {
        "enable": 0, "fair_value_mode": 1, "reference_price": 2, "base_half_spread": 3,
        "vol_multiplier": 4, "vol_ewma_shift": 5, "skew_ticks_per_unit": 6, "tick_size": 7,
        "levels": 8, "level_spacing": 9, "requote_threshold": 10, "min_quote_life": 11,
        "size": 12, "price_ceiling": 13, "price_floor": 14}),
    "risk": (0x0C00, 16, 8, {
        "max_long": 0, "max_short": 1, "max_order_qty": 2, "collar": 3, "mmp_threshold": 4,
        "mmp_window": 5, "hedge_enable": 6, "hedge_threshold": 7, "hedge_size": 8}),
    "port_limits": (0x0D00, None, None, {
        "rate_tokens": 0, "rate_refill": 1, "max_live_orders": 2, "max_unacked_orders": 3,
        "stale_feed_timeout": 4}),
    "slot": (0x0E00, 8, 8, {
        "enable": 0, "by_symbol": 1, "locate": 2, "symbol": 3, "clear_degraded": 5,
        "clear_book": 6}),
}


@pytest.mark.parametrize("block", sorted(GOLDEN))
def test_golden_addresses(block):
    base, stride, count, offsets = GOLDEN[block]
    blk = REGISTER_MAP.block(block)
    assert REGISTER_MAP.bases[block] == base
    assert (blk.count, blk.stride if blk.count else None) == (count, stride)
    for index in range(count) if count else [None]:
        for name, offset in offsets.items():
            path = REGISTER_MAP.path(block, name, index)
            assert REGISTER_MAP[path].address == base + (index or 0) * (stride or 0) + offset, \
                f"{path} moved"


def test_every_register_is_described():
    for loc in REGISTER_MAP:
        assert loc.reg.doc.strip(), f"{loc.path} has no description"


def test_document_and_header_are_up_to_date():
    for path, text in ((docgen.MARKDOWN_PATH, docgen.markdown()),
                       (docgen.HEADER_PATH, docgen.c_header())):
        assert path.exists() and path.read_text() == text, \
            f"{path.name} is out of date: run `python -m hdl.csr.docgen`"
    assert docgen.main(["--check"]) == 0


def test_document_lists_every_register():
    text = docgen.markdown()
    for block in REGISTER_MAP.blocks:
        for reg in block.regs:
            name = f"{block.name}[i].{reg.name}" if block.count else f"{block.name}.{reg.name}"
            assert f"`{name}`" in text


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_header_compiles_and_agrees_with_the_map(tmp_path):
    program = tmp_path / "probe.c"
    program.write_text(
        f'#include "{docgen.HEADER_PATH}"\n#include <stdio.h>\n'
        "int main(void) {\n"
        '  printf("%u %u %u %u %u %u\\n", TG_MAGIC, TG_MAP_HASH, TG_CTRL_CYCLES,\n'
        "         TG_QUOTE_SIZE(3), TG_RISK_COLLAR(2), TG_QUOTE_LEVELS_MAX);\n"
        "  return 0;\n}\n")
    binary = tmp_path / "probe"
    subprocess.run(["cc", "-Wall", "-Werror", "-o", str(binary), str(program)], check=True)
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    assert [int(x) for x in out.split()] == [
        MAGIC, REGISTER_MAP.hash, REGISTER_MAP["ctrl.cycles"].address,
        REGISTER_MAP["quote[3].size"].address, REGISTER_MAP["risk[2].collar"].address,
        REGISTER_MAP["quote[0].levels"].reg.max]
