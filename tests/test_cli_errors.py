"""Every command reports errors alike: `gankit <command>: error: ...` on the
first line of stderr, one `hint:` line, exit 2 (usage) or 1 (the machine),
no usage dump and no traceback unless --debug / GANKIT_DEBUG=1.

Driven as real subprocesses (`python -m gankit`), as a user would type them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import gankit as gankit_api
from gankit.cli import explain
from gankit.config import TrainConfig
from gankit.data import write_dataset
from gankit.errors import EnvironmentProblem, UsageError

from conftest import blobs


def gankit(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "GANKIT_DEBUG"}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "gankit", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def first_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stderr.splitlines()


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    """A folder with a dataset, a plain image folder, and a trained run."""
    root = tmp_path_factory.mktemp("errors")
    write_dataset(root / "data" / "tiny", blobs(64), source="test-blobs")
    (root / "imgs").mkdir()
    for i, arr in enumerate(blobs(3)):
        Image.fromarray(arr).save(root / "imgs" / f"{i}.png")
    cfg = TrainConfig(data=str(root / "data" / "tiny"), out=str(root / "runs"), name="r", epochs=1, batch=32,
                      width_g=8, width_d=8, latent=8, tensorboard=False)
    gankit_api.train(cfg)
    # as `gankit train --data data/tiny` run from `root` would have written it
    (root / "runs" / "r" / "config.yaml").write_text(yaml.safe_dump({**cfg.to_dict(), "data": "data/tiny"}))
    return root


def test_a_dataset_given_as_run_says_so(place):
    proc = gankit("sample", "data/tiny", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc) == ["gankit sample: error: RUN: data/tiny is a dataset, not a training run",
                                 "hint: train on it with `gankit train --data data/tiny`; `gankit runs` lists the runs"]


def test_an_image_folder_given_as_data_names_the_converting_command(place):
    proc = gankit("train", "--data", "imgs", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc) == ["gankit train: error: --data: imgs is a folder of images, not a gankit dataset",
                                 "hint: convert it first: `gankit data folder imgs --out data/imgs`"]


def test_nested_commands_name_themselves(place):
    proc = gankit("data", "show", "imgs", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc)[0] == "gankit data show: error: DATASET: imgs is a folder of images, not a gankit dataset"


def test_a_run_given_as_data_names_its_dataset(place):
    proc = gankit("train", "--data", "runs/r", "--dry-run", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc) == ["gankit train: error: --data: runs/r is a training run, not a dataset",
                                 "hint: that run trained on data/tiny"]


def test_a_missing_dataset_fails_the_dry_run(place):
    proc = gankit("train", "--data", "data/nope", "--dry-run", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc)[0] == "gankit train: error: --data: no such folder data/nope"


def test_parse_errors_have_no_usage_dump(place):
    proc = gankit("train", "--lr-d", "abc", cwd=place)
    assert proc.returncode == 2
    assert first_lines(proc) == ["gankit train: error: argument --lr-d: invalid float value: 'abc'",
                                 "hint: `gankit train --help` lists every flag and its default"]


def test_best_pt_missing_says_why_and_lists_what_is_there(place):
    proc = gankit("sample", "runs/r", "--checkpoint", "best.pt", cwd=place)
    assert proc.returncode == 2
    lines = first_lines(proc)
    assert lines[0] == ("gankit sample: error: --checkpoint: no such checkpoint best.pt in "
                        f"{Path('runs/r/checkpoints')} "
                        "(best.pt is written only by runs trained with --eval-every-kimg)")
    assert lines[1].startswith("hint: there: ckpt-") and len(lines) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["sample", "interpolate", "eval", "train"])
def test_absent_devices_are_one_line_in_every_command(place, command):
    target = ["--data", "data/tiny"] if command == "train" else ["runs/r"]
    proc = gankit(command, *target, "--device", "cuda", cwd=place)
    assert proc.returncode == 2
    why = "this PyTorch is a CPU-only build" if torch.version.cuda is None else "no CUDA GPU is visible"
    assert first_lines(proc)[0] == f"gankit {command}: error: --device: cuda requested but {why}"
    assert len(first_lines(proc)) == 2 and "Traceback" not in proc.stderr
    if command in ("sample", "train") and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        proc = gankit(command, *target, "--device", "mps", cwd=place)
        assert proc.returncode == 2
        assert first_lines(proc)[0] == (f"gankit {command}: error: --device: mps requested but this machine has no "
                                        "Apple GPU (MPS) for PyTorch")


def test_a_full_disk_exits_1_in_one_line(place):
    full = place / "full.png"
    if not full.exists():
        full.symlink_to("/dev/full")  # every write fails with ENOSPC
    proc = gankit("sample", "runs/r", "--num", "4", "--out", "full.png", "--device", "cpu", cwd=place)
    assert proc.returncode == 1
    lines = first_lines(proc)
    assert lines[0].startswith("gankit sample: error: No space left on device") and len(lines) == 2
    assert lines[1].startswith("hint: ")


def test_debug_shows_the_traceback(place):
    for extra, env in ((["--debug"], None), ([], {"GANKIT_DEBUG": "1"})):
        proc = gankit("train", "--data", "imgs", *extra, cwd=place, env=env)
        assert proc.returncode != 0
        assert "Traceback" in proc.stderr and "UsageError" in proc.stderr


def test_explain_sorts_errors_by_who_can_fix_them():
    assert explain(UsageError("--x: bad", hint="do y"), "train") == (2, "gankit train: error: --x: bad", "do y")
    status, line, hint = explain(EnvironmentProblem("disk full: runs/x"), "train")
    assert (status, line) == (1, "gankit train: error: disk full: runs/x") and hint
    assert explain(KeyError("bug"), "train") is None  # a bug keeps its traceback
