"""Multi-process training for real: torchrun, 2 ranks, gloo on the CPU.

The comparison with one process is exact in intent: with --sync-bn both runs
see the same global batches (the epoch permutation is sharded by rank, so
rank 0's and rank 1's first batches together are the one-process batch), the
same z (drawn for the global batch from a stream every rank seeds alike,
each rank keeping its slice) and the same BatchNorm statistics, and DDP
averages the gradients of the half batches.  What is left is float rounding.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gankit
from gankit.config import TrainConfig

from conftest import blobs

TOL = 1e-5  # observed differences are ~1e-7; one wrong gradient or batch gives ~1e-3
FLAGS = dict(epochs=2, batch=16, width_g=8, width_d=8, latent=8, log_every=2, tensorboard=False, keep=5, sync_bn=True)


def _cli_flags(values: dict) -> list[str]:
    out = []
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out += [flag, str(value)]
    return out


def _env() -> dict[str, str]:
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, f"{' '.join(args)}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One 2-process run (2 epochs) and one 1-process run (3 epochs) of the same config."""
    from gankit.data import write_dataset

    root = tmp_path_factory.mktemp("dist")
    data = write_dataset(root / "data", blobs(128, size=16), source="test-blobs").path
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "gankit", "train", "--data", str(data), "--out", str(root), "--name", "two",
                *_cli_flags(FLAGS)])
    one = gankit.train(TrainConfig.from_preset("", data=str(data), out=str(root), name="one", **{**FLAGS, "epochs": 3}))
    return {"root": root, "data": data, "two": root / "two", "one": Path(one), "two_stdout": two.stdout}


def test_two_processes_train_and_rank0_alone_writes(runs):
    two = runs["two"]
    state = _load(two / "checkpoints" / "ckpt-000000256.pt")
    assert state["world"] == 2
    assert state["counters"]["images_seen"] == 256  # 2 epochs x 128 images, both ranks counted
    assert state["counters"]["step"] == 16  # 128 / global batch 16 = 8 steps per epoch
    # One writer: each console line once, one metrics record per log interval (8 per epoch / 2).
    log = (two / "log.txt").read_text()
    assert log.count("[2/2][8/8]") == 1
    records = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r.get("kind", "train") == "train"]
    assert len(train_records) == 8
    assert runs["two_stdout"].count("2 process(es)") == 1
    G = gankit.load_generator(two, checkpoint="ckpt-000000256.pt")
    images = G(torch.randn(4, G.latent))
    assert images.shape == (4, 3, 16, 16)
    assert torch.isfinite(images).all() and images.abs().max() <= 1.0


def test_two_processes_match_one_process(runs):
    one_ckpts = runs["one"] / "checkpoints"
    one = _load(one_ckpts / "ckpt-000000256.pt")
    two = _load(runs["two"] / "checkpoints" / "ckpt-000000256.pt")
    start = _load(one_ckpts / "ckpt-000000000.pt")
    for net in ("G", "D", "G_ema"):
        assert _max_diff(one[net], start[net]) > 100 * TOL, f"{net} did not train"  # the match below means something
        assert _max_diff(one[net], two[net]) < TOL, net
    assert one["counters"]["images_seen"] == two["counters"]["images_seen"]


def test_two_process_checkpoint_resumes_on_one_process(runs, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(runs["two"], run)
    _run([sys.executable, "-m", "gankit", "train", "--resume", str(run), "--epochs", "3"])
    resumed = _load(run / "checkpoints" / "ckpt-000000384.pt")
    assert resumed["world"] == 1
    assert resumed["counters"]["epoch"] == 4 and resumed["counters"]["images_seen"] == 384
    # The third epoch on one process continues exactly where the two ranks stopped.
    reference = _load(runs["one"] / "checkpoints" / "ckpt-000000384.pt")
    for net in ("G", "D"):
        assert _max_diff(resumed[net], reference[net]) < 10 * TOL, net


def test_cpu_sync_batchnorm_keeps_state_and_acts_as_batchnorm_alone():
    from gankit.models import build_generator
    from gankit.train.distributed import CPUSyncBatchNorm, convert_sync_batchnorm

    torch.manual_seed(0)
    G = build_generator("dcgan", 16, 16, 3, 8, 8).train()
    params_before = [id(p) for p in G.parameters()]
    keys_before = list(G.state_dict())
    z = torch.randn(6, 8)
    expected = G(z)
    convert_sync_batchnorm(G, torch.device("cpu"))
    assert any(isinstance(m, CPUSyncBatchNorm) for m in G.modules())
    assert [id(p) for p in G.parameters()] == params_before  # optimisers still hold the right tensors
    assert list(G.state_dict()) == keys_before  # checkpoints load either way
    # Without a process group it is ordinary BatchNorm: batch statistics in training, running ones in eval.
    assert torch.allclose(G(z), expected, atol=1e-6)
    assert not torch.allclose(G.eval()(z), expected, atol=1e-3)


def test_global_batch_must_split_evenly_over_ranks():
    from gankit.errors import UsageError
    from gankit.train.distributed import DistInfo, per_rank_batch

    assert per_rank_batch(64, DistInfo(True, 1, 2)) == 32
    assert per_rank_batch(64, DistInfo()) == 64
    with pytest.raises(UsageError, match=r"^--batch: .*64.* 3 ranks"):
        per_rank_batch(64, DistInfo(True, 0, 3))


def test_two_processes_leave_the_extractors_setup_out_of_minutes(tmp_path):
    """--minutes on two ranks with an evaluation: only rank 0 evaluates, and it
    leaves the dataset encoder's one-off training out of its clock while rank
    1 waits for it.  Both ranks stop together by rank 0's clock, so the run
    gets its full training time after the pause (by rank 1's clock it would
    stop at the first step after the evaluation)."""
    from gankit.data import write_dataset

    data = write_dataset(tmp_path / "data", blobs(128, size=16), source="test-blobs").path
    minutes = 0.05
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          "-m", "gankit", "train", "--data", str(data), "--out", str(tmp_path), "--name", "m",
          *_cli_flags({**FLAGS, "epochs": 0, "minutes": minutes, "eval_every_kimg": 0.032, "eval_num": 64,
                       "eval_metrics": "kid"})])
    records = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    setup = next(r["eval_setup_seconds"] for r in records if "eval_setup_seconds" in r)
    train = [r for r in records if r.get("kind", "train") == "train"]
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert setup > minutes * 60, setup  # the encoder's training alone outlasts the budget
    assert summary["status"] == "finished"
    assert train[-1]["time"] >= minutes * 60 * 0.9, (train[-1]["time"], setup)
