"""`--mirror`: real images shown flipped left-right half of the time (x-flips)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from gankit.cli import main
from gankit.data import write_dataset
from gankit.train import checkpoint as ckpt
from gankit.train.batches import BatchSource

from conftest import blobs

CPU = torch.device("cpu")
TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "4", "--num-samples", "4", "--no-tensorboard", "--no-health"]


@pytest.fixture
def labelled(tmp_path):
    """200 8x8 images of a square at a random place (no image is its own mirror), 3 classes."""
    labels = np.arange(200, dtype=np.int64) % 3
    return write_dataset(tmp_path / "l", blobs(200, size=8, seed=4), source="test", labels=labels,
                         classes=["a", "b", "c"])


def _read(src: BatchSource, order: torch.Tensor, n: int):
    """The images and classes `pair` gives for ``order``, with the rows and flips they were read in."""
    x, y = src.pair(order, labels=True)
    idx = order.numpy()
    idx = idx[np.argsort(idx % n, kind="stable")]  # pair's read order
    return x, y, idx % n, idx >= n


def test_the_order_is_the_unmirrored_one_and_about_half_the_images_are_flipped(labelled):
    n = len(labelled)
    plain = BatchSource(labelled, 20, CPU, (8, 8), seed=2)
    mirrored = BatchSource(labelled, 20, CPU, (8, 8), seed=2, mirror=True)
    for epoch in (1, 2):
        a, b = plain.order(epoch), mirrored.order(epoch)
        assert (a < n).all() and torch.equal(b % n, a)  # the same images, in the same order
        assert 0.35 < (b >= n).float().mean().item() < 0.65
    assert not torch.equal(mirrored.order(1) >= n, mirrored.order(2) >= n)  # a new coin each epoch
    assert torch.equal(mirrored.order(3), BatchSource(labelled, 20, CPU, (8, 8), seed=2, mirror=True).order(3))

    order = mirrored.order(1)[:20]
    x, y, rows, flipped = _read(mirrored, order, n)
    assert flipped.any() and not flipped.all()
    plain_x, plain_y = plain.pair(torch.from_numpy(np.sort(rows)), labels=True)  # the same rows, unflipped
    flipped_t = torch.from_numpy(flipped)
    assert torch.equal(x[~flipped_t], plain_x[~flipped_t])
    assert torch.equal(x[flipped_t], plain_x[flipped_t].flip(-1))
    assert not torch.equal(x[flipped_t], plain_x[flipped_t])  # squares off-centre: a flip shows
    assert torch.equal(y, plain_y) and torch.equal(y, torch.from_numpy(labelled.labels[rows]))


def test_ranks_share_the_coin(labelled):
    """Under torchrun each rank takes every world-th image of one mirrored order."""
    whole = BatchSource(labelled, 20, CPU, (8, 8), seed=5, mirror=True).order(1)
    shards = [BatchSource(labelled, 10, CPU, (8, 8), seed=5, rank=r, world=2, mirror=True).order(1) for r in (0, 1)]
    assert torch.equal(shards[0], whole[0::2][: len(shards[0])])
    assert torch.equal(shards[1], whole[1::2][: len(shards[1])])


def test_a_mirrored_run_differs_from_a_plain_one_and_resumes_bit_identically(tmp_path):
    ds = write_dataset(tmp_path / "d", blobs(128, seed=1), source="test-blobs")
    common = ["--data", str(ds.path), "--out", str(tmp_path), *TINY]
    assert main(["train", *common, "--name", "plain", "--epochs", "2"]) == 0
    assert main(["train", *common, "--mirror", "--name", "straight", "--epochs", "2"]) == 0
    assert main(["train", *common, "--mirror", "--name", "split", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2"]) == 0
    config = yaml.safe_load((tmp_path / "split" / "config.yaml").read_text())
    assert config["mirror"] is True
    plain, a, b = (torch.load(ckpt.latest_checkpoint(tmp_path / name / "checkpoints"), weights_only=True)
                   for name in ("plain", "straight", "split"))
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert any(not torch.equal(a["D"][k], plain["D"][k]) for k in a["D"])  # D saw other images
