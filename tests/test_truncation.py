"""Truncation: the latent maths, its effect on images, and `gankit sample --truncation/--truncation-sweep`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from gankit.cli import main
from gankit.models import build_generator
from gankit.models.generator_file import save_generator_file
from gankit.sample import generate, truncate, truncation_sweep

ARCH = {"model": "seed", "height": 16, "width": 16, "channels": 3, "latent": 8, "width_g": 8, "coords": False,
        "attention": 0}


@pytest.fixture
def G():
    torch.manual_seed(0)
    G = build_generator(**ARCH).eval().requires_grad_(False)
    G.to_rgb[0].weight.mul_(300)  # untrained outputs are ~1e-4: spread them over [-1, 1] so images differ
    return G


def test_truncation_is_a_truncated_normal_from_the_same_z():
    z = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(truncate(z, 1.0), z)
    assert torch.equal(truncate(z, 0.0), torch.zeros_like(z))  # psi = 0: the mean latent
    t = truncate(z, 0.7)
    threshold = stats.norm.ppf(0.85)  # the central 70% of the mass
    assert float(t.abs().max()) <= threshold + 1e-6
    assert torch.all(torch.sign(t) == torch.sign(z)) and torch.all(t.abs() <= z.abs())
    # each component follows the normal truncated at +-threshold (KS test, 20000 draws)
    p = stats.kstest(t[:, 0].numpy(), stats.truncnorm(-threshold, threshold).cdf).pvalue
    assert p > 1e-3
    # the map is monotone per component, so one seed moves smoothly with psi
    a, b = truncate(z[:5], 0.5), truncate(z[:5], 0.52)
    assert float((a - b).abs().max()) < 0.1


def test_truncation_trades_diversity(G):
    spread = [generate(G, 64, seed=1, truncation=psi).std(dim=0).mean().item() for psi in (1.0, 0.5, 0.0)]
    assert spread[0] > spread[1] > spread[2] and spread[2] < 1e-6  # psi = 0: one image 64 times
    assert torch.equal(generate(G, 4, seed=1, truncation=1.0), generate(G, 4, seed=1))
    with pytest.raises(Exception, match="between 0 and 1"):
        generate(G, 4, truncation=1.5)


def test_sample_truncation_flags(G, tmp_path, capsys):
    f = tmp_path / "g.safetensors"
    save_generator_file(G, ARCH, f)
    assert main(["sample", str(f), "--num", "3", "--truncation", "0.0", "--out", str(tmp_path / "t")]) == 0
    tiles = [np.asarray(Image.open(tmp_path / "t" / f"{i:05d}.png")) for i in range(3)]
    assert np.array_equal(tiles[0], tiles[1]) and np.array_equal(tiles[1], tiles[2])
    with pytest.raises(SystemExit) as bad:
        main(["sample", str(f), "--truncation", "1.5"])
    assert bad.value.code == 2
    assert "--truncation" in capsys.readouterr().err
    out = tmp_path / "sweep.png"
    assert main(["sample", str(f), "--num", "3", "--truncation-sweep", "4", "--out", str(out)]) == 0
    assert "psi from 1.0 to 0.0 in 4 columns" in capsys.readouterr().out
    grid = np.asarray(Image.open(out).convert("RGB"))
    assert grid.shape == (2 + 3 * 18, 2 + 4 * 18, 3)  # 3 rows x 4 columns of 16 px tiles, 2 px gaps
    tile = lambda r, c: grid[2 + 18 * r:18 + 18 * r, 2 + 18 * c:18 + 18 * c]  # noqa: E731
    assert all(np.array_equal(tile(0, 3), tile(r, 3)) for r in (1, 2))  # psi = 0 column: one image
    assert not np.array_equal(tile(0, 0), tile(1, 0))  # psi = 1 column: different latents
    first = truncation_sweep(G, 3, 0, 4)[0::4]
    assert torch.allclose(first, generate(G, 3, seed=0), atol=1e-5)  # the psi = 1 column is plain sampling
