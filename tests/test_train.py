"""The training loop end to end on tiny real datasets, through the CLI and the API."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main
from gankit.config import TrainConfig
from gankit.errors import TrainingFailed, UsageError
from gankit.train import checkpoint as ckpt
from gankit.train.loop import Trainer

TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "4", "--num-samples", "9", "--no-tensorboard"]
LINE = re.compile(r"^\[(\d+)(?:/(\d+))?\]\[(\d+)/(\d+)\] Loss_D: -?\d+\.\d{4} Loss_G: -?\d+\.\d{4} "
                  r"D\(x\): \d\.\d{4} D\(G\(z\)\): \d\.\d{4} / \d\.\d{4}"
                  r" \| (epoch \d+/\d+|kimg [\d.]+/[\d.]+|time \d+m\d\ds/\d+m\d\ds)(, \d+m\d\ds left)?$")


def test_one_epoch_writes_every_file(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", "--data", str(tiny_dataset.path), "--out", str(out), "--epochs", "1", *TINY]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    run = out / "00000-dcgan"
    assert printed[-1] == f"run directory: {run}"
    lines = [line for line in printed if line.startswith("[")]
    assert lines and all(LINE.match(line) for line in lines), lines
    assert lines[-1].startswith("[1/1][8/8]")  # 256 images / batch 32
    for name in ("config.yaml", "log.txt", "metrics.jsonl", "samples/epoch_0001.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss_d" in r]
    assert [r["iter"] for r in train_records] == [4, 8]
    for key in ("images_seen", "time", "lr_g", "lr_d", "acc_real", "acc_fake", "d_x", "d_g_z1", "d_g_z2"):
        assert all(math.isfinite(r[key]) for r in train_records), key
    assert train_records[-1]["images_seen"] == 256
    with Image.open(run / "samples/epoch_0001.png") as im:
        assert im.width > im.height  # real | fake side by side
    checkpoints = ckpt.list_checkpoints(run / "checkpoints")
    assert checkpoints and checkpoints[-1].name == "ckpt-000000256.pt"
    state = torch.load(checkpoints[-1], weights_only=True)
    for key in ("G", "D", "G_ema", "opt_g", "opt_d", "scaler", "rng", "counters", "config", "gankit_version"):
        assert key in state
    assert state["counters"]["images_seen"] == 256


def _weights(run_dir):
    state = torch.load(ckpt.latest_checkpoint(run_dir / "checkpoints"), weights_only=True)
    return state


def test_resume_is_bit_identical(tiny_dataset, tmp_path):
    common = ["--data", str(tiny_dataset.path), "--out", str(tmp_path), *TINY, "--diffaugment", "translation"]
    assert main(["train", *common, "--name", "straight", "--epochs", "2"]) == 0
    assert main(["train", *common, "--name", "split", "--epochs", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2"]) == 0
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a["counters"]["images_seen"] == b["counters"]["images_seen"] == 512
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert main(["sample", str(tmp_path / "straight"), "--num", "4", "--out", str(tmp_path / "s1")]) == 0
    assert main(["sample", str(tmp_path / "split"), "--num", "4", "--out", str(tmp_path / "s2")]) == 0
    for i in range(4):
        assert (tmp_path / "s1" / f"{i:05d}.png").read_bytes() == (tmp_path / "s2" / f"{i:05d}.png").read_bytes()
    # And one epoch more is not the same as the two: the comparison can fail.
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "3"]) == 0
    c = _weights(tmp_path / "split")
    assert not torch.equal(a["G"][next(iter(a["G"]))], c["G"][next(iter(c["G"]))])


def test_resume_latest_and_config_kept(tiny_dataset, tmp_path):
    assert main(["train", "--data", str(tiny_dataset.path), "--out", str(tmp_path), "--epochs", "1",
                 "--lr-d", "1e-4", *TINY]) == 0
    assert main(["train", "--resume", "latest", "--out", str(tmp_path), "--epochs", "2"]) == 0
    state = _weights(tmp_path / "00000-dcgan")
    assert state["counters"]["images_seen"] == 512
    assert state["config"]["lr_d"] == 1e-4


@pytest.mark.parametrize("loss", ["bce", "wgan", "wgan-gp", "hinge", "lsgan"])
def test_every_loss_trains_200_iterations_without_nan(tiny_dataset, tmp_path, loss):
    cfg = TrainConfig.from_preset("", data=str(tiny_dataset.path), out=str(tmp_path), model="dcgan", width_g=8,
                                  width_d=8, latent=16, batch=16, loss=loss, kimg=200 * 16 / 1000, log_every=20,
                                  tensorboard=False, health=False)
    run = gankit.train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss_d" in r]
    assert records[-1]["images_seen"] == 3200
    assert all(math.isfinite(r["loss_d"]) and math.isfinite(r["loss_g"]) for r in records)
    assert len({round(r["loss_d"], 6) for r in records}) > 1  # it moved
    G = gankit.load_generator(run)
    x = G(torch.randn(4, G.latent))
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()


def _poison(step_at: int, times: int):
    state = {"left": times}

    def hook(trainer: Trainer) -> None:
        if trainer.counters.step >= step_at and state["left"] > 0 and trainer.counters.iter % 4 == 1:
            state["left"] -= 1
            with torch.no_grad():
                next(trainer.state.G.parameters()).fill_(float("nan"))

    return hook


def test_injected_nan_rolls_back_and_recovers(tiny_dataset, tmp_path):
    cfg = TrainConfig.from_preset("", data=str(tiny_dataset.path), out=str(tmp_path), model="dcgan", width_g=8,
                                  width_d=8, latent=16, batch=32, epochs=3, log_every=4, tensorboard=False)
    trainer = Trainer(cfg, callbacks=[_poison(step_at=10, times=1)])
    run = trainer.run()
    events = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert "non_finite" in kinds and "rollback" in kinds
    state = _weights(run)
    assert state["counters"]["images_seen"] == 3 * 256
    assert state["config"]["lr_g"] == pytest.approx(1e-4)  # halved once
    for path in ckpt.list_checkpoints(run / "checkpoints"):
        s = torch.load(path, weights_only=True)
        assert all(torch.isfinite(t).all() for t in s["G"].values() if t.is_floating_point())


def test_persistent_nan_stops_cleanly_without_nan_checkpoint(tiny_dataset, tmp_path):
    cfg = TrainConfig.from_preset("", data=str(tiny_dataset.path), out=str(tmp_path), model="dcgan", width_g=8,
                                  width_d=8, latent=16, batch=32, epochs=3, log_every=4, tensorboard=False)
    trainer = Trainer(cfg, callbacks=[_poison(step_at=2, times=100)])
    with pytest.raises(TrainingFailed, match="roll-backs"):
        trainer.run()
    for path in ckpt.list_checkpoints(trainer.run_dir / "checkpoints"):
        s = torch.load(path, weights_only=True)
        assert all(torch.isfinite(t).all() for t in s["G"].values() if t.is_floating_point())
    assert not list((trainer.run_dir / "checkpoints").glob(".*tmp*"))


def test_crash_while_saving_leaves_no_partial_checkpoint(tmp_path):
    folder = tmp_path / "checkpoints"
    good = ckpt.save_checkpoint({"G": {"w": torch.ones(3)}, "config": {}}, folder, 100, keep=2)

    class Explodes:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint({"G": {"w": torch.ones(1000)}, "config": {}, "x": Explodes()}, folder, 200, keep=2)
    assert [p.name for p in folder.iterdir()] == [good.name]
    assert torch.equal(torch.load(good, weights_only=True)["G"]["w"], torch.ones(3))


def test_keep_prunes_old_checkpoints(tmp_path):
    for images in (1, 2, 3, 4):
        ckpt.save_checkpoint({"G": {}, "config": {}}, tmp_path, images, keep=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["ckpt-000000003.pt", "ckpt-000000004.pt"]


def test_damaged_or_foreign_checkpoint_gives_clear_error(tiny_dataset, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(UsageError, match="bad.pt"):
        gankit.load_generator(bad)
    assert main(["sample", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_dataset.path), "--out", str(tmp_path), "--name", "r",
                 "--epochs", "1", *TINY]) == 0
    assert main(["train", "--resume", str(tmp_path / "r"), "--width-g", "16", "--epochs", "2"]) == 2
    assert "architecture" in capsys.readouterr().err


def test_sample_and_interpolate(tiny_dataset, tmp_path):
    assert main(["train", "--data", str(tiny_dataset.path), "--out", str(tmp_path), "--name", "r",
                 "--epochs", "1", *TINY]) == 0
    run = tmp_path / "r"
    assert main(["sample", str(run), "--num", "5", "--out", str(tmp_path / "many"), "--seed", "3"]) == 0
    files = sorted((tmp_path / "many").glob("*.png"))
    assert len(files) == 5
    with Image.open(files[0]) as im:
        assert im.size == (16, 16) and im.mode == "RGB"
    assert main(["sample", str(run), "--num", "16", "--out", str(tmp_path / "grid.png")]) == 0
    with Image.open(tmp_path / "grid.png") as im:
        assert im.width >= 4 * 16
    G = gankit.load_generator(run)
    a, b = gankit.sample.generate(G, 3, seed=1), gankit.sample.generate(G, 3, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, gankit.sample.generate(G, 3, seed=2))
    assert main(["interpolate", str(run), "--out", str(tmp_path / "walk.gif"), "--points", "3", "--steps", "4"]) == 0
    with Image.open(tmp_path / "walk.gif") as im:
        assert im.n_frames == 12


def test_minutes_and_kimg_budgets(tiny_dataset, tmp_path):
    cfg = TrainConfig.from_preset("", data=str(tiny_dataset.path), out=str(tmp_path), model="dcgan", width_g=8,
                                  width_d=8, latent=16, batch=32, kimg=0.4, log_every=4, tensorboard=False)
    run = gankit.train(cfg)
    assert _weights(run)["counters"]["images_seen"] == 416  # first whole batch past 400 images
    assert (run / "samples" / "epoch_0002.png").is_file()  # the partial last epoch is shown too
    cfg = cfg.replace(kimg=0.0, minutes=0.01, name="m")
    run = gankit.train(cfg)
    assert 0 < _weights(run)["counters"]["elapsed"] < 30
