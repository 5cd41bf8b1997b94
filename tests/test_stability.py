"""Every stability option trains 200 iterations without NaN under every loss
it applies to, and the combinations that make no sense exit 2 naming the flag.

One run per loss with every option that loss accepts switched on at once
(DiffAugment, ADA, R1, spectral norm, label smoothing, instance noise,
separate learning rates) keeps the run count small; a BCE run with R1
through a BatchNorm D (the path taken when --spectral-norm is off) and one
of the `cards64` preset as shipped (but tiny) complete it.  A NaN
is looked for everywhere it could hide: the losses and every other number in
metrics.jsonl, the health log (the loop rolls back silently on NaN, so a
clean metrics file alone would not prove anything), and the final weights.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import TrainConfig
from gankit.train import checkpoint as ckpt

ITERS, BATCH = 200, 8

# run name -> (preset, options): every option a loss accepts, all at once (config.validate
# rejects the others; see test_impossible_combinations_exit_2_naming_the_flag)
ALL_ON = dict(diffaugment="color,translation,cutout", ada=True, ada_kimg=1.0, ada_target=0.5, r1_every=4,
              instance_noise=0.1, lr_g=2e-4, lr_d=1e-4, mbstd=4, coord_conv=True, attention=8, d_head=16)
RUNS = {
    "bce": ("", dict(ALL_ON, loss="bce", spectral_norm=True, r1=1.0, label_smoothing=0.1)),
    # D's linear last layer here (one run of the ALL_ON set keeps it)
    "bce-batchnorm-r1": ("", dict(ALL_ON, loss="bce", r1=1.0, label_smoothing=0.1, d_head=0)),
    "wgan": ("", dict(ALL_ON, loss="wgan")),  # weight clipping: no R1, no spectral norm
    "wgan-gp": ("", dict(ALL_ON, loss="wgan-gp", spectral_norm=True, r1=1.0)),
    "hinge": ("", dict(ALL_ON, loss="hinge", spectral_norm=True, r1=1.0)),
    "lsgan": ("", dict(ALL_ON, loss="lsgan", spectral_norm=True, r1=1.0)),
    # the shipped preset, its own values but for size and speed of ADA (p must move in 1.6k images)
    "cards64": ("cards64", dict(ada_kimg=1.0)),
}


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine its
    spin-waits cost several times the work; give the suite its setting back after."""
    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


def _train(data, out, name: str, preset: str, threads: int, **options) -> tuple:
    cfg = TrainConfig.from_preset(
        preset, data=str(data), out=str(out), name=name, model="dcgan", width_g=8, width_d=8, latent=16,
        batch=BATCH, epochs=0, kimg=ITERS * BATCH / 1000, log_every=10, num_samples=9, tensorboard=False,
        threads=threads, **options)
    run = gankit.train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines() if line.strip()]
    return cfg, run, records, events


@pytest.mark.parametrize("name", list(RUNS))
def test_every_option_trains_200_iterations_without_nan(tiny_dataset, tmp_path, one_thread, name):
    preset, options = RUNS[name]
    cfg, run, records, events = _train(tiny_dataset.path, tmp_path, name, preset, one_thread, **options)

    train = [r for r in records if "loss_d" in r]
    assert train[-1]["images_seen"] == ITERS * BATCH  # the whole budget, no early stop
    numbers = [(r.get("kind", "train"), k, v) for r in records for k, v in r.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert [n for n in numbers if not math.isfinite(n[2])] == []
    assert len({round(r["loss_d"], 6) for r in train}) > 1  # it trained: the loss moved
    kinds = {e["kind"] for e in events}
    assert not kinds & {"non_finite", "rollback"}, events  # no NaN was hidden by a roll-back

    # the options really were on: both learning rates, ADA's p moved and was logged, spectral norm wraps D
    assert (train[-1]["lr_g"], train[-1]["lr_d"]) == (cfg.lr_g, cfg.lr_d)
    ps = [r["ada_p"] for r in train]
    assert all(0.0 <= p <= 1.0 for p in ps)
    if cfg.loss != "wgan":  # a weight-clipped critic's sign carries no meaning; its p may sit at 0
        assert len(set(ps)) > 1, ps
    state = torch.load(ckpt.latest_checkpoint(run / "checkpoints"), weights_only=True)
    assert state["counters"]["retries"] == 0
    assert state["ada"]["p"] == pytest.approx(ps[-1])
    sn_keys = [k for k in state["D"] if "parametrizations" in k]
    bn_keys = [k for k in state["D"] if "running_mean" in k]
    d_weights = [k for k in state["D"] if (k.endswith("weight") or k.endswith("original")) and ".xy." not in k
                 and state["D"][k].ndim > 1]
    # with --d-head the last layer is head -> 1 and the one before it sees D's features
    assert state["D"][d_weights[-1]].shape[1] == cfg.d_head or not cfg.d_head, d_weights[-1]
    last = d_weights[-2] if cfg.d_head else d_weights[-1]
    assert state["D"][last].shape[1] % 2 == int(cfg.mbstd > 0), last  # the extra spread channel is there
    # CoordConv: every conv has its coordinate weights (2 input maps) but G's first, which sees only z,
    # and the 1x1 output of D's head, which sees only its hidden units
    for part, skip in (("D", int(cfg.d_head > 0)), ("G", 1)):
        kernels = [k for k in state[part] if state[part][k].ndim == 4]  # conv weights (spectral norm: "original")
        weights = [k for k in kernels if ".xy." not in k and k.split(".")[-2] not in ("query", "key", "value")]
        xy = [k for k in kernels if ".xy." in k]
        assert len(xy) == (len(weights) - skip if cfg.coord_conv else 0), part
    # self-attention in G: its gate is a 0-d parameter
    assert any(k.endswith("gamma") and state["G"][k].ndim == 0 for k in state["G"]) == bool(cfg.attention)
    if cfg.spectral_norm:
        assert sn_keys and not bn_keys
    else:  # DCGAN's D keeps its BatchNorm unless a per-sample penalty loss (wgan-gp) needs it gone
        assert not sn_keys and bool(bn_keys) == (cfg.loss != "wgan-gp")
    for part in ("G", "D", "G_ema"):
        for key, value in state[part].items():
            if value.is_floating_point():
                assert torch.isfinite(value).all(), (part, key)
    G = gankit.load_generator(run)
    x = G(torch.randn(4, G.latent))
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()


@pytest.mark.parametrize("flags, named", [
    (["--loss", "wgan", "--spectral-norm"], "--spectral-norm"),
    (["--loss", "wgan", "--r1", "10"], "--r1"),
    (["--loss", "hinge", "--label-smoothing", "0.1"], "--label-smoothing"),
    (["--loss", "wgan-gp", "--label-smoothing", "0.1"], "--label-smoothing"),
    (["--diffaugment", "color,rotate"], "--diffaugment"),
    (["--ada", "--ada-ops", "flip,zoom"], "--ada-ops"),
    (["--label-smoothing", "0.7"], "--label-smoothing"),
    (["--instance-noise", "-1"], "--instance-noise"),
    (["--r1", "-1"], "--r1"),
])
def test_impossible_combinations_exit_2_naming_the_flag(tiny_dataset, tmp_path, capsys, flags, named):
    out = tmp_path / "runs"
    code = main(["train", "--data", str(tiny_dataset.path), "--out", str(out), "--epochs", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {named}:" in err, err
    assert not out.exists() or not any(out.iterdir())  # nothing was started
