"""benchmarks/remedies.py on a real tiny run: the fork keeps only what the run
was at the chosen checkpoint, every copy resumes from that same state, and
each copy trains with its own flags."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from gankit import train
from gankit.config import TrainConfig
from gankit.data import write_dataset
from gankit.metrics import dataset_encoder

from conftest import blobs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import remedies  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("remedies")
    ds = write_dataset(root / "blobs", blobs(32, seed=2), source="test-blobs")
    cfg = TrainConfig(data=str(ds.path), out=str(root / "runs"), name="base", width_g=8, width_d=8, latent=16,
                      batch=16, epochs=3, log_every=1, keep=10, num_samples=4, tensorboard=False)
    return root, train(cfg)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_fork_is_the_run_as_it_was_at_the_checkpoint(run, tmp_path):
    root, run_dir = run
    kimg = remedies.fork(run_dir, 0.07, tmp_path / "copy")  # checkpoints at 0, 32, 64, 96 images: the 64 one
    assert kimg == pytest.approx(0.064)
    assert [p.name for p in (tmp_path / "copy" / "checkpoints").iterdir()] == ["ckpt-000000064.pt"]
    kept = _records(tmp_path / "copy" / "metrics.jsonl")
    full = _records(run_dir / "metrics.jsonl")
    assert kept and max(r["kimg"] for r in kept) <= 0.064 < max(r["kimg"] for r in full)
    assert kept == [r for r in full if r["kimg"] <= 0.064]
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit, match="--from-kimg"):
        remedies.fork(tmp_path / "empty", 0.07, tmp_path / "none")
    with pytest.raises(SystemExit, match="exists"):
        remedies.fork(run_dir, 0.07, tmp_path / "copy")


def test_copies_resume_from_one_state_with_their_own_flags(run, tmp_path, capsys, monkeypatch):
    root, run_dir = run
    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 20)  # the same encoder, trained faster
    out = tmp_path / "forks"
    assert remedies.main([str(run_dir), "--from-kimg", "0.064", "--kimg", "0.064", "--out", str(out), "--jobs", "2",
                          "--variant", "none=", "--variant", "slow_d=--lr-d 1e-4", "--eval-num", "24"]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| none") or line.startswith("| slow_d")]
    assert len(rows) == 2
    cfgs = {n: yaml.safe_load((out / n / "config.yaml").read_text()) for n in ("none", "slow_d")}
    assert cfgs["none"]["lr_d"] == 2e-4 and cfgs["slow_d"]["lr_d"] == 1e-4
    firsts = []
    for name in ("none", "slow_d"):
        after = [r for r in _records(out / name / "metrics.jsonl") if "loss_d" in r and r["kimg"] > 0.064]
        assert after and after[-1]["kimg"] >= 0.128
        assert after[-1]["lr_d"] == cfgs[name]["lr_d"]
        firsts.append((after[0]["step"], after[0]["d_x"]))
    # the same state and random streams at the fork: the first step after it scores the same real batch with
    # the same D (D(x) is read before D's update, the first thing lr_d changes)
    assert firsts[0] == firsts[1]
