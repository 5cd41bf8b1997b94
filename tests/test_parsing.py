"""The shared readings of sizes and option lists: limits, and errors that name the flag."""
from __future__ import annotations

import pytest

from gankit.config import RESOLUTION_LIMITS, TrainConfig, parse_resolution
from gankit.errors import UsageError
from gankit.parsing import MAX_SIDE, parse_list, parse_size


@pytest.mark.parametrize("text, size", [("64", (64, 64)), ("84x64", (84, 64)), (" 84X64 ", (84, 64)),
                                        ("84*64", (84, 64)), (32, (32, 32))])
def test_parse_size_reads_height_then_width(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["big", "64x", "x64", "8x8x8", "", "6.5"])
def test_parse_size_bad_text_names_the_flag(text):
    with pytest.raises(UsageError, match=r"^--size: expected S or HxW"):
        parse_size(text, "--size")


def test_parse_size_limits_are_arguments():
    assert parse_size("1") == (1, 1) and parse_size(str(MAX_SIDE)) == (MAX_SIDE, MAX_SIDE)
    with pytest.raises(UsageError, match=f"between 1 and {MAX_SIDE}"):
        parse_size(f"{MAX_SIDE + 1}x64")
    with pytest.raises(UsageError, match=r"^--resolution: sides must be between 8 and 16, got '32'"):
        parse_size("32", "resolution", low=8, high=16)  # a flag without dashes gets them
    low, high = RESOLUTION_LIMITS
    assert parse_resolution(str(low)) == (low, low)
    for bad in (str(low - 1), f"{high * 2}x{high}"):
        with pytest.raises(UsageError, match="^--resolution"):
            parse_resolution(bad)


def test_config_resolution_check_uses_the_limits():
    assert TrainConfig.from_preset("", resolution="84x64").image_size == (84, 64)
    assert TrainConfig().image_size is None
    with pytest.raises(UsageError, match="^--resolution"):
        TrainConfig.from_preset("", resolution="4")


def test_parse_list_strips_and_keeps_order():
    assert parse_list(" color, ,cutout,", "--diffaugment") == ["color", "cutout"]
    assert parse_list(["a ", "", "b"], "--x") == ["a", "b"]
    assert parse_list("", "--x") == []
    assert parse_list("b,a", "--x", allowed=["a", "b"]) == ["b", "a"]


def test_parse_list_unknown_item_names_flag_item_and_choices():
    with pytest.raises(UsageError, match=r"^--ada-ops: unknown operation 'zoom'; choose from flip, color$"):
        parse_list("flip,zoom", "ada_ops", allowed=["flip", "color"], what="operation")
    with pytest.raises(UsageError, match="^--diffaugment: unknown operation 'zoom'"):
        TrainConfig.from_preset("", diffaugment="color,zoom")
