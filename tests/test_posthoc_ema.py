"""benchmarks/posthoc_ema.py: an EMA over a run's per-step checkpoints is the
trainer's own EMA, and the script scores it like the run's own."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gankit.cli import main
from gankit.data import write_dataset
from gankit.runpaths import list_checkpoints
from gankit.train import checkpoint as ckpt

from conftest import blobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import posthoc_ema  # noqa: E402

HALF_LIFE = 0.03  # kimg: 30 images, so five steps of 16 move the EMA far from both ends


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Sixteen images at batch 16: one step per epoch, so a checkpoint after every step."""
    root = tmp_path_factory.mktemp("posthoc")
    data = write_dataset(root / "blobs", blobs(16, seed=2), source="test-blobs").path
    argv = ["train", "--data", str(data), "--out", str(root), "--name", "r", "--model", "dcgan",
            "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "16", "--epochs", "5",
            "--keep", "100", "--ema-kimg", str(HALF_LIFE), "--log-every", "1", "--num-samples", "4",
            "--no-tensorboard", "--threads", "1"]
    assert main(argv) == 0
    return root / "r"


def _states(run: Path) -> list[tuple[int, dict]]:
    return [(int(p.stem.split("-")[1]), ckpt.load_checkpoint(p)) for p in list_checkpoints(run / "checkpoints")]


def _params(state: dict) -> set[str]:
    return {k for k in state if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def test_per_step_checkpoints_give_back_the_trainers_ema(run):
    states = _states(run)
    assert [n for n, _ in states] == [16 * i for i in range(6)]  # the start and every step
    raw = [(n, s["G"]) for n, s in states]
    params = _params(raw[-1][1])
    ours = posthoc_ema.posthoc_ema(raw, HALF_LIFE, params)
    theirs = states[-1][1]["G_ema"]
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=1e-5, atol=1e-6, msg=k)
    # it is the average, not the last state, and another half-life gives another average
    last = raw[-1][1]
    assert any(not torch.allclose(ours[k], last[k]) for k in params)
    other = posthoc_ema.posthoc_ema(raw, 10 * HALF_LIFE, params)
    assert any(not torch.allclose(ours[k], other[k]) for k in params)
    # buffers (BatchNorm statistics) are the newest raw generator's, as in training
    buffers = set(last) - params
    assert buffers and all(torch.equal(ours[k], last[k]) for k in buffers)


def test_the_script_scores_its_ema_as_the_runs_own(run, capsys, quick_encoder):
    assert posthoc_ema.main([str(run), "--half", f"{HALF_LIFE},1", "--at", "end", "--num", "16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("|") and "±" in line]
    by_name = {cells[1].strip(): [c.strip() for c in cells[2:]] for cells in rows}
    assert set(by_name) == {"run", f"{HALF_LIFE:g}", "1"}
    assert by_name[f"{HALF_LIFE:g}"] == by_name["run"]  # the same generator, so the same figures
    assert by_name["1"] != by_name["run"]


def test_a_run_without_its_checkpoints_is_refused(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(SystemExit, match="large --keep"):
        posthoc_ema.main([str(tmp_path)])
