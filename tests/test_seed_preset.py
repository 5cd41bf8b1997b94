"""The `seed-breakout` preset: the original notebook's model (`--model seed`)
with a recipe measured to draw Breakout frames (docs/presets/seed-breakout.md).
Users arrive from that notebook, so the preset must resolve to that model,
build it with every value it sets, and train from the command line."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from gankit.cli import main
from gankit.config import TrainConfig
from gankit.data import write_dataset
from gankit.models import config_discriminator, config_generator
from gankit.models.seed import SeedDiscriminator, SeedGenerator
from gankit.presets import DOCS, PRESETS, REASONS, SUMMARIES
from gankit.sample import load_generator

from conftest import blobs

ROOT = Path(__file__).resolve().parents[1]


def test_the_preset_is_listed_with_why_for_every_value_and_its_page():
    values = PRESETS["seed-breakout"]
    assert values["model"] == "seed"
    assert set(REASONS["seed-breakout"]) == set(values)
    assert all(len(why) > 10 and "TODO" not in why for why in REASONS["seed-breakout"].values())
    assert "seed" in SUMMARIES["seed-breakout"]
    page = (ROOT / DOCS["seed-breakout"]).read_text()
    assert "gankit train --preset seed-breakout" in page and "breakout_quality.py" in page
    # a budget a 2-core machine finishes in under 15 minutes, and a best state kept on the way
    assert 0 < values["minutes"] <= 15 and values["kimg"] > 0
    assert 0 < values["eval_every_kimg"] <= values["kimg"]


def test_its_values_build_the_seed_model_at_breakout_size():
    cfg = TrainConfig.from_preset("seed-breakout")
    G, D = config_generator(cfg, (3, 64, 64)), config_discriminator(cfg, (3, 64, 64))
    assert isinstance(G, SeedGenerator) and isinstance(D, SeedDiscriminator)
    # every architecture value the preset sets reaches the model
    assert G.fc[0].out_features == 8 * cfg.width_g * 4 * 4  # Linear -> (8*width_g, 4, 4)
    assert D.features[0].conv.out_channels == cfg.width_d  # coord_conv wraps each convolution
    assert D.head[0].out_features == cfg.d_head and D.head[2].out_features == 1
    assert any(type(m).__name__ == "MinibatchStd" and m.group == cfg.mbstd for m in D.modules())
    z = torch.randn(4, cfg.latent)
    with torch.no_grad():
        x = G.eval()(z)
        logits = D(x)
    assert x.shape == (4, 3, 64, 64) and float(x.abs().max()) <= 1.0
    assert logits.shape == (4,) and bool(torch.isfinite(logits).all())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seedpreset")
    data = write_dataset(root / "tiny", blobs(128), source="test-blobs").path
    # the preset as it is but for a tiny budget: 7 steps inside the first epoch, under the preset's eval
    # interval, so no FID encoder is trained here
    assert main(["train", "--preset", "seed-breakout", "--data", str(data), "--kimg", "0.1", "--threads", "1",
                 "--no-tensorboard", "--out", str(root / "runs"), "--name", "s"]) == 0
    return root / "runs" / "s"


def test_training_with_the_preset_runs_the_seed_model(trained):
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    for key, value in PRESETS["seed-breakout"].items():
        if key not in ("kimg", "minutes", "precision"):  # the budget typed replaces the preset's; auto resolves
            assert cfg[key] == value, key
    assert cfg["kimg"] == 0.1 and cfg["model"] == "seed"
    G = load_generator(trained)
    assert isinstance(G, SeedGenerator)
    assert any(type(m).__name__ == "CoordConv" for m in G.modules())
    with torch.no_grad():
        images = G(torch.randn(3, G.latent))
    assert images.shape == (3, 3, 16, 16) and bool(torch.isfinite(images).all())
    grid = sorted((trained / "samples").glob("*.png"))
    assert grid
    with Image.open(grid[-1]) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 0  # a real grid of samples, not a blank file


def test_the_seed_discriminator_sees_its_input_from_the_first_step():
    # D has no normalisation: with the N(0, 0.02) init alone its features shrank ~10x a layer and every
    # 64-px frame got the same logit, so D learnt nothing for the first ~10 kimg.
    torch.manual_seed(0)
    x = torch.from_numpy(blobs(32, size=64)).permute(0, 3, 1, 2).float() / 127.5 - 1
    D = SeedDiscriminator(64, 64, 3, 16)
    with torch.no_grad():
        features, logits = D.features(x), D(x)
    assert float(features.std()) > 0.25 * float(x.std())
    assert float(logits.std()) > 1e-3
