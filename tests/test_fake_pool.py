"""The pool of past fakes (--fake-pool): what D sees, the checkpoint, and resume."""
from __future__ import annotations

import json

import pytest
import torch

from gankit.cli import main
from gankit.train import checkpoint as ckpt
from gankit.train.fake_pool import FakePool, from_uint8, to_uint8

TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "4", "--num-samples", "4", "--no-tensorboard", "--no-health"]


def _batch(value: float, n: int = 8) -> torch.Tensor:
    """n images of 3x4x4, image i filled with value + i/100 (each one recognisable)."""
    return (value + torch.arange(n).float() / 100).view(n, 1, 1, 1).expand(n, 3, 4, 4).clone()


def test_fills_first_then_shows_half_old_fakes():
    pool = FakePool(16, seed=0)
    first, second = _batch(-0.5), _batch(0.2)
    assert pool.mix(first) is first and pool.mix(second) is second  # filling: batches pass unchanged
    assert len(pool) == 16 and pool.offered == 16
    kept = {round(v, 3) for v in from_uint8(pool.images, torch.float32)[:, 0, 0, 0].tolist()}
    new = _batch(0.6)
    out = pool.mix(new)
    assert out.shape == new.shape
    assert torch.equal(out[4:], new[4:])  # the second half is this batch as drawn
    old = {round(v, 3) for v in out[:4, 0, 0, 0].tolist()}
    assert old <= kept and not old & {round(v, 3) for v in new[:, 0, 0, 0].tolist()}
    assert len(pool) == 16 and pool.offered == 20  # the displaced half was offered; the pool did not grow


def _numbered(start: int, n: int) -> torch.Tensor:
    """n images whose first two pixels spell their number (start, start+1, ...) in base 256."""
    idx = torch.arange(start, start + n)
    x = torch.zeros(n, 1, 2, 2)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = (idx // 256).float(), (idx % 256).float()
    return x / 127.5 - 1


def test_the_pool_remembers_the_whole_run_not_just_the_last_steps():
    """A reservoir: after 40x its size in offers, what it holds is spread evenly over all of them
    (a pool with random replacement would hold almost only the last few hundred)."""
    pool, n = FakePool(200, seed=1), 0
    while pool.offered < 8000:
        pool.mix(_numbered(n, 32))
        n += 32
    q = pool.images.long()
    numbers = (q[:, 0, 0, 0] * 256 + q[:, 0, 0, 1]).float()
    first_half = (numbers < n / 2).float().mean().item()
    assert 0.4 < first_half < 0.6
    assert (numbers < n / 10).float().mean().item() > 0.04  # the oldest tenth is still there


def test_uint8_round_trip_is_within_half_a_level():
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    assert (from_uint8(to_uint8(x), torch.float32) - x).abs().max() <= 1 / 255 + 1e-6


def test_a_pool_restored_from_its_state_draws_the_same():
    a = FakePool(16, seed=3)
    for v in (-0.9, -0.4, 0.1):
        a.mix(_batch(v))
    b = FakePool(16, seed=99)
    b.load_state_dict(a.state_dict(), torch.device("cpu"))
    nxt = _batch(0.7)
    assert torch.equal(a.mix(nxt), b.mix(nxt))
    assert torch.equal(a.images, b.images)


def test_resume_is_bit_identical_with_the_pool_and_the_pool_changes_training(tiny_dataset, tmp_path):
    common = ["--data", str(tiny_dataset.path), "--out", str(tmp_path), *TINY]
    pool = ["--fake-pool", "64", "--fake-pool-from-kimg", "0.128"]  # fills in epoch 1, mixes from step 6 on
    assert main(["train", *common, *pool, "--name", "straight", "--epochs", "2"]) == 0
    assert main(["train", *common, *pool, "--name", "split", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2"]) == 0
    assert main(["train", *common, "--name", "nopool", "--epochs", "2"]) == 0
    a, b, c = (torch.load(ckpt.latest_checkpoint(tmp_path / n / "checkpoints"), weights_only=True)
               for n in ("straight", "split", "nopool"))
    assert a["fake_pool"]["images"].shape == (64, 3, 16, 16) and a["fake_pool"]["images"].dtype == torch.uint8
    assert torch.equal(a["fake_pool"]["images"], b["fake_pool"]["images"])
    for part in ("G", "D"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert "fake_pool" not in c
    records = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    held = [(r["kimg"], r.get("fake_pool")) for r in records if "loss_d" in r]
    assert all(n is None for k, n in held if k <= 0.128) and all(n == 64 for k, n in held if k > 0.192), held
    assert any(not torch.equal(a["D"][k], c["D"][k]) for k in a["D"])


@pytest.mark.parametrize("flags", [["--fake-pool", "8"], ["--fake-pool", "-1"]])
def test_a_pool_smaller_than_the_batch_is_refused(tiny_dataset, tmp_path, capsys, flags):
    code = main(["train", "--data", str(tiny_dataset.path), "--out", str(tmp_path), *TINY, *flags])
    assert code == 2
    assert "--fake-pool" in capsys.readouterr().err
