"""Conditional GANs (issue 20): class-conditional G and projection D, training
on a labelled dataset made by the real `gankit data folder --labels subdirs`
command, resume and torchrun with labels, and sampling a chosen class through
the real CLI (PNG grids opened and measured)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main
from gankit.config import TrainConfig
from gankit.data import load_dataset, write_dataset
from gankit.errors import UsageError
from gankit.models import build_discriminator, build_generator
from gankit.regularize import apply_spectral_norm
from gankit.sample import generate
from gankit.train import checkpoint as ckpt
from gankit.train.batches import BatchSource
from gankit.train.conditioning import Conditioning

from conftest import blobs

# Three classes of 16x16 squares, each its own colour, on a dark background.
COLOURS = {"blue": (40, 60, 230), "green": (40, 210, 60), "red": (230, 40, 40)}
# batch 8: 36 iterations an epoch, so a few hundred iterations are a few epochs (each writes samples)
TINY = dict(model="dcgan", width_g=8, width_d=8, latent=8, batch=8, log_every=12, num_samples=4,
            tensorboard=False, health=False, checkpoint_every=100)


def _gankit(*argv: str, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([sys.executable, "-m", "gankit", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """A dataset of 3 classes x 96 images, made from class folders by the real CLI."""
    root = tmp_path_factory.mktemp("cond")
    src = root / "squares"
    for k, (name, colour) in enumerate(COLOURS.items()):
        (src / name).mkdir(parents=True)
        for i, img in enumerate(blobs(96, size=16, seed=k)):
            square = img.max(-1, keepdims=True) > 20  # the blob's place, drawn in the class colour
            Image.fromarray(np.where(square, np.array(colour, np.uint8), np.uint8(20))).save(src / name / f"{i}.png")
    done = _gankit("data", "folder", str(src), "--labels", "subdirs", "--size", "16", "--out", str(root / "ds"),
                   "--quiet")
    assert done.returncode == 0, done.stderr
    ds = load_dataset(root / "ds")
    assert ds.classes == sorted(COLOURS) and ds.class_counts == [96, 96, 96]
    return root / "ds"


def _train(data: Path, out: Path, name: str, **kw) -> Path:
    return Path(gankit.train(TrainConfig.from_preset("", data=str(data), out=str(out), name=name, **{**TINY, **kw})))


def _state(run: Path) -> dict:
    return torch.load(ckpt.latest_checkpoint(run / "checkpoints"), map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ models
@pytest.mark.parametrize("model", ["dcgan", "seed"])
@pytest.mark.parametrize("extras", [{}, {"mbstd": 2, "coords": True, "head": 8}])
def test_conditional_models_use_the_class(model, extras):
    torch.manual_seed(0)
    G = build_generator(model, 16, 16, 3, 8, 8, coords=extras.get("coords", False), num_classes=3)
    D = build_discriminator(model, 16, 16, 3, 8, "hinge", spectral_norm=True, num_classes=3, **extras)
    assert G.num_classes == D.num_classes == 3
    z = torch.randn(6, 8).repeat(2, 1)  # the same latents twice ...
    y = torch.tensor([0] * 6 + [2] * 6)  # ... with two classes
    x = G(z, y)
    assert x.shape == (12, 3, 16, 16) and x.abs().max() <= 1
    assert (x[:6] - x[6:]).abs().mean() > 1e-3, "G ignores the class"
    logits = D(x.detach(), y)
    assert logits.shape == (12,)
    assert not torch.allclose(D(x.detach(), y), D(x.detach(), (y + 1) % 3)), "D ignores the class"
    with pytest.raises(TypeError, match="conditional"):
        G(z)
    # channels_last and bf16 autocast run the same modules
    G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(D(G(z, y), y).float()).all()


@pytest.mark.parametrize("model", ["dcgan", "seed"])
def test_unconditional_models_keep_their_parameters(model):
    G = build_generator(model, 16, 16, 3, 8, 8)
    D = apply_spectral_norm(build_discriminator(model, 16, 16, 3, 8, mbstd=2))
    assert G.num_classes == D.num_classes == 0
    names = list(G.state_dict()) + list(D.state_dict())
    assert not any("gain" in n or "projection" in n for n in names)
    with pytest.raises(TypeError, match="unconditional"):
        G(torch.randn(2, 8), torch.zeros(2, dtype=torch.int64))
    conditional = build_generator(model, 16, 16, 3, 8, 8, num_classes=4)
    assert sum(p.numel() for p in conditional.parameters()) > sum(p.numel() for p in G.parameters())


def test_fake_labels_are_global_and_sliced_per_rank(labelled):
    ds = load_dataset(labelled)
    cfg = TrainConfig(conditional=True)
    one = Conditioning(cfg, ds, torch.Generator().manual_seed(5), torch.device("cpu")).fake_labels(8)
    halves = [Conditioning(cfg, ds, torch.Generator().manual_seed(5), torch.device("cpu"), rank, 2).fake_labels(4)
              for rank in (0, 1)]
    assert torch.equal(torch.cat(halves), one)
    off = Conditioning(TrainConfig(conditional=False), ds, torch.Generator().manual_seed(5), torch.device("cpu"))
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    assert off.fake_labels(8) is None and torch.equal(gen.get_state(), state)  # draws nothing


def test_class_balance_draws_classes_uniformly(tmp_path):
    images = blobs(400, size=8)
    labels = np.array([0] * 360 + [1] * 30 + [2] * 10, np.int64)  # 90% / 7.5% / 2.5%
    ds = write_dataset(tmp_path / "skewed", images, source="test", labels=labels, classes=["a", "b", "c"])
    plain = BatchSource(ds, 16, torch.device("cpu"), (8, 8), seed=1)
    balanced = BatchSource(ds, 16, torch.device("cpu"), (8, 8), seed=1, class_balance=True)
    share = np.bincount(labels[balanced.order(1).numpy()], minlength=3) / len(balanced.order(1))
    assert np.abs(share - 1 / 3).max() < 0.07, share
    assert np.bincount(labels[plain.order(1).numpy()], minlength=3)[2] <= 10
    assert torch.equal(balanced.order(2), balanced.order(2)) and not torch.equal(balanced.order(1), balanced.order(2))
    _, y = balanced.pair(balanced.order(1)[:16], labels=True)
    assert y.dtype == torch.int64 and y.shape == (16,)


# ---------------------------------------------------------------- training
LOSS_SETUPS = {
    "bce": dict(diffaugment="translation,color", r1=1.0, r1_every=4),
    "hinge": dict(spectral_norm=True, mbstd=2, coord_conv=True, d_head=8),
    "wgan-gp": dict(n_critic=2, model="seed"),
    "wgan": dict(ada=True, ada_kimg=1.0),
    "lsgan": dict(channels_last=True, precision="bf16", class_balance=True),
}


@pytest.mark.parametrize("loss", list(LOSS_SETUPS))
def test_conditional_run_for_each_loss(labelled, tmp_path, loss):
    run = _train(labelled, tmp_path, loss, loss=loss, epochs=8, **LOSS_SETUPS[loss])  # 36 iterations x 8
    state = _state(run)
    assert state["classes"] == sorted(COLOURS)
    assert state["config"]["conditional"] is True
    assert state["counters"]["d_steps"] == 288
    assert "projection.embed.weight" in state["D"]
    G = gankit.load_generator(run)
    assert G.num_classes == 3 and G.classes == sorted(COLOURS)
    x = generate(G, 6, classes=[0, 1, 2, 0, 1, 2])
    assert torch.isfinite(x).all() and x.shape == (6, 3, 16, 16)
    with Image.open(run / "samples" / "epoch_0008.png") as im:
        assert im.height < im.width  # real | generated, 3 rows each


def test_conditional_generator_learns_the_class_colours(labelled, tmp_path):
    # 20 epochs: after 12 the squares were still faint (red ~0.4 of 0.8) and the class drawn
    # nearest its colour depended on the thread count; at 20 each is clear on 1 and 2 threads
    run = _train(labelled, tmp_path, "colours", epochs=20, lr_g=1e-3, lr_d=1e-3, ema_kimg=0.2)
    G = gankit.load_generator(run)
    colours = np.array([COLOURS[name] for name in G.classes], float) / 127.5 - 1  # (3, 3) in [-1, 1]
    hue = colours - colours.mean(1, keepdims=True)  # which channel leads, brightness taken out
    hits = 0
    for k in range(3):
        x = generate(G, 32, seed=k, classes=k)  # (32, 3, 16, 16)
        bright = x.amax(dim=(2, 3)).mean(0).numpy()  # the square's colour, roughly
        # the hue, not the brightness, names the class; a G that ignores the class draws
        # one hue for all three and scores 1 hit
        hits += int(np.argmax(hue @ (bright - bright.mean())) == k)
    assert hits == 3, "each class should draw squares of its own colour"


def test_resume_is_bit_identical_with_labels(labelled, tmp_path):
    kw = dict(diffaugment="translation", class_balance=True)
    straight = _train(labelled, tmp_path, "straight", epochs=2, **kw)
    split = _train(labelled, tmp_path, "split", epochs=1, **kw)
    assert main(["train", "--resume", str(split), "--epochs", "2"]) == 0  # in this process: same thread count
    a, b = _state(straight), _state(split)
    assert a["counters"]["images_seen"] == b["counters"]["images_seen"] == 576
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert torch.equal(a["z_rng"], b["z_rng"])  # the fake classes came from the same stream


@pytest.mark.slow
def test_two_processes_with_labels_match_one(labelled, tmp_path):
    flags = ["--data", str(labelled), "--out", str(tmp_path), "--epochs", "1", "--batch", "16", "--width-g", "8",
             "--width-d", "8", "--latent", "8", "--sync-bn", "--no-tensorboard", "--no-health", "--log-every", "9"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "gankit", "train", *flags, "--name", "two"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _gankit("train", *flags, "--name", "one")
    assert one.returncode == 0, one.stderr
    a, b = _state(tmp_path / "one"), _state(tmp_path / "two")
    assert b["world"] == 2 and b["classes"] == a["classes"] == sorted(COLOURS)
    start = torch.load(tmp_path / "one" / "checkpoints" / "ckpt-000000000.pt", weights_only=True)
    for net in ("G", "D"):
        moved = max((a[net][k].float() - start[net][k].float()).abs().max().item() for k in a[net])
        diff = max((a[net][k].float() - b[net][k].float()).abs().max().item() for k in a[net])
        assert moved > 1e-3 and diff < 1e-5, (net, moved, diff)


def test_conditional_flag_rules(labelled, tmp_path, tiny_dataset):
    runs = tmp_path / "runs"
    done = _gankit("train", "--data", str(tiny_dataset.path), "--out", str(runs), "--conditional", "--epochs", "1")
    assert done.returncode == 2
    assert "--conditional" in done.stderr and "no labels" in done.stderr
    assert not runs.exists() or not any(runs.iterdir()), "a refused start leaves no run directory"
    run = _train(labelled, tmp_path, "plain", conditional=False, epochs=1)
    state = _state(run)
    assert "classes" not in state and state["config"]["conditional"] is False
    assert not any("projection" in k for k in state["D"])
    assert gankit.load_generator(run).num_classes == 0


def test_old_unconditional_checkpoint_still_loads(tiny_dataset, tmp_path):
    run = _train(tiny_dataset.path, tmp_path, "old", epochs=1, num_samples=9)
    path = ckpt.latest_checkpoint(run / "checkpoints")
    state = torch.load(path, weights_only=True)
    assert "classes" not in state and state["config"]["conditional"] is False
    for key in ("conditional", "class_balance"):  # what a checkpoint from before issue 20 holds
        del state["config"][key]
    torch.save(state, path)
    G = gankit.load_generator(run)
    assert G.num_classes == 0 and generate(G, 3).shape == (3, 3, 16, 16)
    with pytest.raises(UsageError, match="unconditional"):
        generate(G, 3, classes=1)
    done = _gankit("train", "--resume", str(run), "--epochs", "2")
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------- using it
@pytest.fixture(scope="module")
def trained(labelled, tmp_path_factory) -> Path:
    return _train(labelled, tmp_path_factory.mktemp("trained"), "run", epochs=3)


def test_sample_class_errors_name_the_valid_ones(trained, tmp_path):
    done = _gankit("sample", str(trained), "--class", "Pong", "--num", "4", "--out", str(tmp_path / "x"))
    assert done.returncode == 2
    assert "--class" in done.stderr and "0=blue, 1=green, 2=red" in done.stderr
    assert not (tmp_path / "x").exists()
    done = _gankit("interpolate", str(trained), "--class-from", "red", "--class-to", "9",
                   "--out", str(tmp_path / "w.gif"))
    assert done.returncode == 2 and "--class-to" in done.stderr
    ok = _gankit("sample", str(trained), "--class", "green", "--num", "4", "--out", str(tmp_path / "g"))
    assert ok.returncode == 0 and "of class green" in ok.stdout
    by_index = _gankit("sample", str(trained), "--class", "1", "--num", "4", "--out", str(tmp_path / "g1"))
    assert by_index.returncode == 0
    for i in range(4):
        assert (tmp_path / "g" / f"{i:05d}.png").read_bytes() == (tmp_path / "g1" / f"{i:05d}.png").read_bytes()


def test_per_class_grid_has_a_row_per_class(trained, tmp_path):
    out = tmp_path / "grid.png"
    done = _gankit("sample", str(trained), "--per-class", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with Image.open(out) as im:
        grid = np.asarray(im.convert("RGB"))
    pad, side = 2, 16
    assert grid.shape[:2] == (3 * (side + pad) + pad, 5 * (side + pad) + pad)  # 3 classes x 5 latents
    tiles = np.stack([grid[pad + r * (side + pad):][:side, pad:][:, :side] for r in range(3)]).astype(int)
    assert np.abs(tiles[0] - tiles[2]).mean() > 0.1  # rows differ (identical if G ignored the class)


def test_generate_by_class_and_class_walk(trained, tmp_path):
    G = gankit.load_generator(trained)
    a, b = generate(G, 4, seed=3, classes=0), generate(G, 4, seed=3, classes=2)
    assert (a - b).abs().mean() > 1e-3  # same z, another class
    assert torch.equal(generate(G, 4, seed=3, classes=[0, 0, 0, 0]), a)
    mixed = generate(G, 4, seed=3)  # classes drawn from the seed
    assert torch.equal(mixed, generate(G, 4, seed=3))
    with pytest.raises(UsageError):
        generate(G, 4, classes=[0, 1])
    with pytest.raises(UsageError):
        generate(G, 2, classes=3)
    from gankit.sample import class_walk

    frames = class_walk(G, 0, 2, steps=4, count=2)
    assert frames.shape == (8, 2, 3, 16, 16)
    assert torch.allclose(frames[0], G(torch.randn(2, 8, generator=torch.Generator().manual_seed(0)),
                                       torch.zeros(2, dtype=torch.int64)), atol=1e-5)
    assert (frames[4] - frames[0]).abs().mean() > 1e-3  # halfway back: the other class
    done = _gankit("interpolate", str(trained), "--class-from", "blue", "--class-to", "red", "--steps", "3",
                   "--grid", "2", "--out", str(tmp_path / "walk.gif"))
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.n_frames == 6


def test_exported_generator_keeps_its_classes(trained, tmp_path):
    out = tmp_path / "g.safetensors"
    done = _gankit("export", str(trained), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "0=blue" in done.stdout
    G = gankit.load_generator(out)
    assert G.num_classes == 3 and G.classes == sorted(COLOURS)
    assert torch.allclose(generate(G, 3, classes=1), generate(gankit.load_generator(trained), 3, classes=1))
    done = _gankit("sample", str(out), "--class", "red", "--num", "2", "--out", str(tmp_path / "r.png"))
    assert done.returncode == 0, done.stderr
    ts = tmp_path / "g.pt"
    done = _gankit("export", str(trained), "--format", "torchscript", "--out", str(ts))
    assert done.returncode == 0, done.stderr
    traced = torch.jit.load(str(ts))
    z = torch.randn(3, 8)
    y = torch.tensor([2, 0, 1])
    assert torch.allclose(traced(z, y), G(z, y), atol=1e-5)


def test_conditional_run_is_scored_per_class_in_training_eval_and_report(labelled, tmp_path, monkeypatch, capsys):
    """The whole path of issue 20's evaluation on a real conditional run: agreement in the
    in-training records, the per-class table of `gankit eval`, and the report's section."""
    from gankit.metrics import dataset_encoder

    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 40)  # the same encoder, trained faster (in-process CLI)
    monkeypatch.setattr("gankit.monitor.run_monitor.REDRAW_EVERY_S", 1e9)  # plots: at the start and the end
    run = _train(labelled, tmp_path, "scored", kimg=0.6, eval_every_kimg=0.3, eval_metrics="fid,kid,agreement",
                 eval_num=60)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r.get("kind") == "eval"]
    assert evals and all(0.0 <= r["agreement"] <= 1.0 and r["agreement_ceiling"] > 0.5 for r in evals)
    capsys.readouterr()
    assert main(["eval", str(run), "--num", "60", "--metrics", "fid,kid,agreement"]) == 0
    out = capsys.readouterr().out
    for name in COLOURS:
        assert any(line.split()[:1] == [name] for line in out.splitlines()), out
    assert "class agreement" in out
    result = json.loads((run / "eval.json").read_text())
    assert sorted(row["class"] for row in result["per_class"]) == sorted(COLOURS)
    assert 0.0 <= result["metrics"]["agreement"] <= 1.0
    assert main(["report", str(run)]) == 0
    assert "Per-class quality" in (run / "report.html").read_text()
