"""The register declaration primitives and the address builder (plain Python, no simulation)."""

import subprocess
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import pytest

from hdl.csr.map import build_register_map, stats_block
from hdl.csr.params import FairValueMode, PortLimits, QuoteParams, RiskLimits
from hdl.csr.reg import (
    BLOCK_ALIGN,
    Access,
    Block,
    Fmt,
    Param,
    RangeError,
    Reg,
    build_map,
    dataclass_values,
    from_values,
    parameters,
    to_python,
    to_raw,
)
from hdl.stats import COUNTER_WIDTH, stats_layout


def _map(*blocks):
    return build_map([Block("ctrl", "c", (Reg("commit", 1, Access.W1P, "c"),)), *blocks],
                     commit="ctrl.commit")


def test_builder_lays_blocks_out_in_order_aligned_with_power_of_two_strides():
    regmap = _map(
        Block("a", "a", (Reg("x", 32, Access.RW, "x"), Reg("wide", 80, Access.RO, "w"),
                         Reg("y", 8, Access.RW, "y"))),
        Block("arr", "arr", (Reg("p", 16, Access.RW, "p"), Reg("q", 64, Access.RW, "q")),
              count=3),
        Block("big", "big", tuple(Reg(f"r{k}", 32, Access.RO, "r") for k in range(300))),
        Block("after", "after", (Reg("z", 1, Access.RO, "z"),)),
    )
    assert regmap.bases == {"ctrl": 0, "a": BLOCK_ALIGN, "arr": 2 * BLOCK_ALIGN,
                            "big": 3 * BLOCK_ALIGN, "after": 5 * BLOCK_ALIGN}
    assert [regmap[p].address for p in ("a.x", "a.wide", "a.y")] == [0x100, 0x101, 0x104]
    assert regmap.block("arr").stride == 4  # 3 words rounded up
    assert [regmap[f"arr[{i}].q"].address for i in range(3)] == [0x201, 0x205, 0x209]
    assert regmap.at(0x102) == (regmap["a.wide"], 1)
    assert regmap.at(0x105) is None
    assert regmap.words == 5 * BLOCK_ALIGN + 1


def test_reserve_keeps_room_so_a_new_register_moves_nothing():
    small = Block("arr", "a", (Reg("p", 32, Access.RW, "p"),), count=2, reserve=8)
    grown = Block("arr", "a", (Reg("p", 32, Access.RW, "p"), Reg("new", 32, Access.RW, "n")),
                  count=2, reserve=8)
    before, after = _map(small), _map(grown)
    assert before["arr[1].p"].address == after["arr[1].p"].address
    assert before.hash != after.hash


def test_builder_refuses_maps_that_do_not_fit_or_lack_a_commit_strobe():
    with pytest.raises(ValueError, match="address bits"):
        build_map([Block("ctrl", "c", (Reg("commit", 1, Access.W1P, "c"),)),
                   Block("b", "b", (Reg("x", 32, Access.RW, "x"),), count=64, reserve=64)],
                  commit="ctrl.commit", addr_width=12)
    with pytest.raises(ValueError, match="W1P"):
        build_map([Block("ctrl", "c", (Reg("commit", 1, Access.RW, "c"),))],
                  commit="ctrl.commit")
    with pytest.raises(ValueError, match="duplicate"):
        Block("b", "b", (Reg("x", 1, Access.RO, "x"), Reg("x", 2, Access.RO, "x")))


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "Bad"}, "must match"),
    ({"width": 0}, "width"),
    ({"reset": 300}, "reset"),
    ({"min": 5, "max": 4}, "range"),
    ({"width": 40, "max": 10}, "whole width"),
    ({"access": Access.W1P, "width": 2}, "W1P"),
    ({"access": Access.RO, "staged": True}, "staged"),
])
def test_reg_declaration_errors_are_caught(kwargs, message):
    args = {"name": "x", "width": 8, "access": Access.RW, "doc": "d"} | kwargs
    with pytest.raises(ValueError, match=message):
        Reg(**args)


def test_check_names_register_value_and_range():
    reg = Reg("levels", 2, Access.RW, "d", reset=1, min=1, max=3, unit="levels")
    assert reg.check(3) == 3
    with pytest.raises(RangeError, match=r"quote\[2\]\.levels: value 4 is outside the allowed "
                                         r"range \[1, 3\] levels"):
        reg.check(4, "quote[2].levels")
    with pytest.raises(TypeError):
        reg.check("3")


def test_words_round_trip_little_word_first_and_signed():
    wide = Reg("w", 80, Access.RO, "w")
    value = 0x1234_5678_9ABC_DEF0_1122
    assert wide.to_words(value) == [0xDEF0_1122, 0x5678_9ABC, 0x1234]
    assert wide.from_words(wide.to_words(value)) == value
    small = Reg("s", 12, Access.RW, "s", signed=True)
    assert small.to_words(-3) == [0xFFFF_FFFD]  # sign-extended: what the bank range-checks
    assert small.from_words([0xFFFF_FFFD]) == -3
    assert small.from_words([0x7FF]) == 2047


@pytest.mark.parametrize("fmt, width, text, raw", [
    (Fmt.MAC, 48, "02:00:5e:10:00:01", 0x02005E100001),
    (Fmt.IPV4, 32, "233.54.12.111", 0xE9360C6F),
    (Fmt.SYMBOL, 64, "AAPL", int.from_bytes(b"AAPL    ", "little")),
    (Fmt.TEXT, 80, "SESSION1", int.from_bytes(b"SESSION1  ", "big")),
    (Fmt.BOOL, 1, "yes", 1),
    (Fmt.INT, 32, "0x10", 16),
    (Fmt.INT, 32, "1_000", 1000),
])
def test_text_values_in_each_format(fmt, width, text, raw):
    reg = Reg("r", width, Access.RW, "d", fmt=fmt)
    assert to_raw(reg, text) == raw


def test_enum_values_by_name_or_number_and_bad_text_is_a_clear_error():
    reg = QuoteParams.__registers__["fair_value_mode"]
    assert to_raw(reg, "microprice") == FairValueMode.MICROPRICE
    assert to_raw(reg, FairValueMode.REFERENCE) == 2
    assert to_python(reg, 1) is FairValueMode.MICROPRICE
    with pytest.raises(RangeError, match="one of MID, MICROPRICE, REFERENCE"):
        to_raw(reg, "best", "quote[0].fair_value_mode")
    with pytest.raises(RangeError, match="value 3 is outside"):
        to_raw(reg, 3)
    mac = Reg("mac", 48, Access.RW, "d", fmt=Fmt.MAC)
    with pytest.raises(RangeError, match="six bytes"):
        to_raw(mac, "02:00:00:00:01", "net.mac")


def test_parameter_classes_are_their_own_register_declaration():
    block = Block.from_dataclass("quote", QuoteParams, "q")
    assert [reg.name for reg in block.regs] == list(QuoteParams.__dataclass_fields__)
    assert all(reg.access is Access.RW and reg.staged for reg in block.regs)
    defaults = QuoteParams()
    assert defaults.levels == 1 and defaults.enable is False
    assert defaults.fair_value_mode is FairValueMode.MID
    for cls in (QuoteParams, RiskLimits, PortLimits):
        blk = Block.from_dataclass("b", cls, "b")
        obj = cls()
        values = dataclass_values(blk, obj)
        assert values == {reg.name: reg.reset for reg in blk.regs}
        assert from_values(blk, values) == obj
    with pytest.raises(RangeError, match=r"quote\[1\]\.size: value 0 is outside"):
        dataclass_values(block, QuoteParams(size=0), "quote[1]")


def test_parameters_decorator_refuses_unannotated_fields():
    with pytest.raises(TypeError, match="Annotated"):
        @parameters
        class Bad:
            a: int = 3

    @parameters
    class Good:
        a: Annotated[int, Param(8, 5, doc="a", max=9)]
    assert Good().a == 5 and Good.__registers__["a"].max == 9


def test_counter_blocks_are_derived_from_the_stats_layout():
    class FakeStat(IntEnum):
        GOOD = 0
        BAD_THING = 1

    block = stats_block("fake_stats", FakeStat, "fake")
    assert [(reg.name, reg.width, reg.access) for reg in block.regs] == [
        ("good", COUNTER_WIDTH, Access.RO), ("bad_thing", COUNTER_WIDTH, Access.RO)]
    assert block.layout == stats_layout(FakeStat)


def test_instrument_count_changes_only_the_arrays():
    two, four = build_register_map(2), build_register_map(4)
    assert two["quote[1].size"].address == four["quote[1].size"].address
    assert "quote[3].size" in four and "quote[3].size" not in two
    assert two.hash != four.hash


def test_parameter_modules_import_no_amaranth():
    # The reference model of the quoter and risk gate uses the parameter classes as they are.
    code = ("import sys, hdl.csr.params, hdl.csr.reg, hdl.csr.protocol; "
            "sys.exit('amaranth' in sys.modules)")
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
