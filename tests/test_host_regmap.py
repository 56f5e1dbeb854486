"""The host's register map: derived from the gateware declaration, names, text values."""

import pytest

from hdl.csr.map import N_INSTRUMENTS, REGISTER_MAP
from hdl.csr.reg import RangeError
from host.regmap import REGMAP, format_value, lookup, parse_value, select


def test_host_map_is_the_gateware_declaration():
    assert REGMAP is REGISTER_MAP


def test_lookup_suggests_near_names():
    assert lookup("quote[1].size").address == REGISTER_MAP["quote[1].size"].address
    with pytest.raises(KeyError, match=r"did you mean quote\[1\]\.size"):
        lookup("quote[1].sise")


@pytest.mark.parametrize("pattern, first, count", [
    ("ctrl.scratch", "ctrl.scratch", 1),
    ("quote[2]", "quote[2].enable", len(REGISTER_MAP.block("quote").regs)),
    ("quote", "quote[0].enable", N_INSTRUMENTS * len(REGISTER_MAP.block("quote").regs)),
    ("quote[*].size", "quote[0].size", N_INSTRUMENTS),
    ("*_stats.*", "bridge_stats.requests", None),
    ("ctrl", "ctrl.magic", len(REGISTER_MAP.block("ctrl").regs)),
])
def test_select_by_path_block_element_or_pattern(pattern, first, count):
    found = select(pattern)
    assert found[0].path == first
    assert [loc.address for loc in found] == sorted(loc.address for loc in found)
    if count is not None:
        assert len(found) == count
    else:
        assert all(loc.block.name.endswith("_stats") for loc in found)


def test_select_unknown_names_fail_clearly():
    with pytest.raises(KeyError, match="no register"):
        select("nothing.here")


@pytest.mark.parametrize("path, text, shown", [
    ("net.mac", "02:00:5E:10:00:01", "02:00:5e:10:00:01"),
    ("net.ip", "233.54.12.111", "233.54.12.111"),
    ("net.port", "26477", "26477"),
    ("quote[0].fair_value_mode", "reference", "REFERENCE"),
    ("quote[0].enable", "true", "yes"),
    ("quote[0].tick_size", "0x64", "100 price (1e-4 $)"),
    ("ctrl.heartbeat_timeout", "1_000_000", "1000000 cycles"),
])
def test_text_values_parse_and_format_back(path, text, shown):
    loc = lookup(path)
    raw = parse_value(loc, text)
    assert format_value(loc, raw) == shown
    assert parse_value(loc, format_value(loc, raw, unit=False)) == raw


def test_out_of_range_text_names_register_value_and_range():
    with pytest.raises(RangeError, match=r"quote\[3\]\.levels: value 4 is outside the allowed "
                                         r"range \[1, 3\] levels"):
        parse_value(lookup("quote[3].levels"), "4")
    with pytest.raises(RangeError, match=r"net\.ip: cannot read '10\.0\.0' as a ipv4"):
        parse_value(lookup("net.ip"), "10.0.0")
    with pytest.raises(RangeError, match=r"net\.port: value 70000"):
        parse_value(lookup("net.port"), 70000)


def test_read_only_values_format_with_their_kind():
    assert format_value(lookup("ctrl.magic"), 0x544B4754) == "0x544B4754"
    assert format_value(lookup("mold.session"),
                        int.from_bytes(b"SESSION001", "big")) == "'SESSION001'"
    assert format_value(lookup("position[0].position"), -5) == "-5 shares"
