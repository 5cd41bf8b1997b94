"""`gankit data` as a command: every subcommand and flag is documented with
its default, and `gankit data show` prints the right statistics and writes a
real preview grid."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
from PIL import Image

import gankit.cli
from gankit.data import write_dataset

SUBCOMMANDS = ("atari", "folder", "fetch", "show")


@pytest.fixture
def data_cli(monkeypatch):
    """Run `gankit data ...` through gankit.cli.main; returns the exit status."""
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})

    def run(*argv: str) -> int:
        try:
            return gankit.cli.main(["data", *argv])
        except SystemExit as exit_:
            return int(exit_.code or 0)

    return run


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = gankit.cli.build_parser()
    data = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["data"]
    return next(a for a in data._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


def _numbers(printed: str, label: str) -> list[float]:
    """The per-channel values on the line starting with ``label``."""
    line = next(text for text in printed.splitlines() if text.startswith(label))
    return [float(x) for x in re.findall(r"-?\d+\.\d+", line)]


def test_data_help_lists_subcommands(data_cli, capsys):
    assert data_cli("--help") == 0
    text = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in text


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_flag_is_in_help_with_its_default(name, data_cli, capsys, monkeypatch):
    sub = _subparser(name)
    assert data_cli(name, "--help") == 0
    text = " ".join(capsys.readouterr().out.split())  # undo line wrapping
    options = [a for a in sub._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 2
    for action in options:
        assert action.option_strings[-1] in text, action.option_strings
        if action.default not in (argparse.SUPPRESS, None, ""):
            assert f"(default: {action.default})" in text, action.option_strings
    assert "(default: None)" not in text  # "not given" is not worth a line


def test_show_prints_statistics_and_writes_a_grid(tmp_path, data_cli, capsys):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 8, 6, 3), dtype=np.uint8)
    images[:, 0, 0] = np.arange(10)[:, None] * 20 + 5  # a unique marker colour per image
    write_dataset(tmp_path / "ds", images, "test")
    out = tmp_path / "p" / "preview.png"
    assert data_cli("show", str(tmp_path / "ds"), "--out", str(out), "--count", "7") == 0
    printed = capsys.readouterr().out
    assert "10 images" in printed and "8x6" in printed and "3 channels" in printed
    flat = images.reshape(-1, 3).astype(float)
    np.testing.assert_allclose(_numbers(printed, "mean"), flat.mean(axis=0), atol=0.006)
    np.testing.assert_allclose(_numbers(printed, "std"), flat.std(axis=0), atol=0.006)
    with Image.open(out) as grid:
        assert grid.format == "PNG" and grid.mode == "RGB"
        pixels = np.asarray(grid).reshape(-1, 3)
    markers = {tuple(m) for m in images[:, 0, 0]}
    shown = markers & {tuple(p) for p in pixels}
    assert len(shown) == 7, "exactly --count distinct images in the grid"


def test_show_grey_dataset_and_errors(tmp_path, data_cli, capsys):
    grey = np.full((3, 4, 4, 1), 100, np.uint8)
    grey[1] = 200
    write_dataset(tmp_path / "g", grey, "test")
    assert data_cli("show", str(tmp_path / "g"), "--out", str(tmp_path / "g.png")) == 0
    printed = capsys.readouterr().out
    assert "1 channel" in printed and "grey" in printed
    np.testing.assert_allclose(_numbers(printed, "mean") + _numbers(printed, "std"), [grey.mean(), grey.std()],
                               atol=0.006)
    with Image.open(tmp_path / "g.png") as grid:
        assert grid.mode == "L"
    assert data_cli("show", str(tmp_path / "missing")) == 2
    assert "no such folder" in capsys.readouterr().err
    assert data_cli("show", str(tmp_path / "g"), "--count", "0") == 2
    assert "--count" in capsys.readouterr().err
    assert data_cli("show", str(tmp_path / "g"), "--out", str(tmp_path / "g.jpg")) == 2
    assert "--out" in capsys.readouterr().err
