"""The monitor inside real (tiny) training runs: a healthy run produces every
output and stays silent; forced failures (D learning 100x faster than G, a
generator that ignores its input) are reported with advice at about the
right step, and --auto-remedy really changes the learning rate."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gankit.config import TrainConfig

train_loop = pytest.importorskip("gankit.train.loop")

TINY = dict(batch=32, log_every=1, latent=16, width_g=8, width_d=8, device="cpu")


def config(dataset, tmp_path, name: str, **kw) -> TrainConfig:
    return TrainConfig.from_preset("", data=str(dataset.path), out=str(tmp_path / "runs"), name=name, **{**TINY, **kw})


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_epoch_run_writes_every_output_and_stays_silent(tiny_dataset, tmp_path) -> None:
    run = train_loop.train(config(tiny_dataset, tmp_path, "healthy", epochs=2, batch=16))
    for name in ("losses", "d_accuracy", "d_outputs", "grad_norms", "diversity"):
        with Image.open(run / "plots" / f"{name}.png") as img:
            assert img.format == "PNG" and img.width > 400
    for epoch in (1, 2):
        with Image.open(run / "samples" / f"epoch_{epoch:04d}.png") as img:
            assert img.width > img.height
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 2
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    records = [r for r in lines(run / "metrics.jsonl") if "kind" not in r]
    assert len(records) == 32
    for tag in ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "acc_real", "acc_fake", "grad_norm_g", "grad_norm_d"):
        assert [e.value for e in acc.Scalars(tag)] == pytest.approx([r[tag] for r in records], rel=1e-5, abs=1e-7)
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6 and "data:image/gif;base64," in page
    assert (run / "health.jsonl").read_text() == ""
    assert json.loads((run / "summary.json").read_text())["verdict"].startswith("Healthy")


def test_forced_saturation_is_reported_and_auto_remedied(tiny_dataset, tmp_path) -> None:
    cfg = config(tiny_dataset, tmp_path, "saturate", epochs=3, lr_g=2e-4, lr_d=2e-2,
                 auto_remedy=True)
    run = train_loop.train(cfg)
    events = lines(run / "health.jsonl")
    sat = [i for i, e in enumerate(events) if e["kind"] == "d_saturation"]
    assert sat, events
    first = events[sat[0]]
    assert first["step"] <= 20 and "--r1 1" in first["advice"] and first["remedy"] == {"r1": pytest.approx(1.0)}
    applied = events[sat[0] + 1]
    assert applied["kind"] == "remedy_applied" and applied["applied"] is True
    assert applied["remedy"] == {"r1": pytest.approx(1.0)}
    records = [r for r in lines(run / "metrics.jsonl") if "kind" not in r]
    before = [r for r in records if r["step"] <= applied["step"]]
    after = [r for r in records if r["step"] > applied["step"]]
    assert all("r1" not in r for r in before) and after and all(r["r1"] == pytest.approx(1.0) for r in after)
    assert after[0]["lr_d"] == pytest.approx(2e-2)  # the rates are left alone
    verdict = json.loads((run / "summary.json").read_text())["verdict"]
    assert "discriminator saturation" in verdict and "r1 to 1" in verdict
    # the checkpoint holds the remedied config, so a resume keeps R1 on
    state = torch.load(sorted((run / "checkpoints").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    assert state["config"]["r1"] == pytest.approx(1.0)


def test_generator_that_ignores_its_input_is_reported_as_mode_collapse(tiny_dataset, tmp_path) -> None:
    cfg = config(tiny_dataset, tmp_path, "collapse", epochs=1, no_ema=True)
    trainer = train_loop.Trainer(cfg)
    forward = trainer.state.G.forward
    z0 = torch.randn(1, cfg.latent, generator=torch.Generator().manual_seed(3))
    trainer.state.G.forward = lambda z: forward(z0.to(z.device).expand(z.shape[0], -1))  # same image for every z
    run = trainer.run()
    events = lines(run / "health.jsonl")
    assert [e["kind"] for e in events] == ["mode_collapse"]
    assert events[0]["step"] == 8 and "--diffaugment" in events[0]["advice"]
    div = [r for r in lines(run / "metrics.jsonl") if r.get("kind") == "diversity"]
    assert div[-1]["diversity_ratio"] < 0.01
