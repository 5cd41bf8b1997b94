"""R1, WGAN-GP, spectral norm and instance noise against
values worked out by hand on small discriminators."""
import copy
import io

import pytest
import torch
from torch import nn

from gankit.errors import UsageError
from gankit.regularize import (
    apply_spectral_norm,
    gradient_penalty,
    instance_noise,
    instance_noise_sigma,
    lazy_r1_weight,
    r1_penalty,
)


def linear_d(shape, seed=0, scale=1.0):
    """D(x) = w . x + b on flattened images: its input gradient is w."""
    torch.manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    lin = nn.Linear(n, 1)
    with torch.no_grad():
        lin.weight.mul_(scale)
    return nn.Sequential(nn.Flatten(), lin), lin


def test_r1_equals_squared_weight_norm_on_a_linear_d():
    D, lin = linear_d((3, 4, 4), scale=5.0)
    real = torch.randn(6, 3, 4, 4).requires_grad_(True)
    r1 = r1_penalty(D(real).flatten(), real)
    expected = lin.weight.detach().pow(2).sum()
    assert r1.item() == pytest.approx(expected.item(), rel=1e-5)
    r1.backward()  # create_graph: the penalty trains D, d||w||^2/dw = 2w
    assert torch.allclose(lin.weight.grad, 2 * lin.weight.detach(), rtol=1e-5)


def test_r1_is_zero_where_d_is_flat_and_needs_requires_grad():
    D = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    nn.init.zeros_(D[1].weight)
    real = torch.randn(4, 3, 2, 2).requires_grad_(True)
    assert r1_penalty(D(real), real).item() == 0.0
    plain = torch.randn(4, 3, 2, 2)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(D(plain), plain)


def test_lazy_r1_weight():
    assert lazy_r1_weight(10.0, 16) == 80.0
    assert lazy_r1_weight(0.2, 1) == pytest.approx(0.1)
    with pytest.raises(UsageError, match="--r1-every"):
        lazy_r1_weight(1.0, 0)


@pytest.mark.parametrize("scale", [0.5, 3.0])
def test_gradient_penalty_on_a_linear_d(scale):
    D, lin = linear_d((2, 3, 3), seed=1, scale=scale)
    real, fake = torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3)
    gp = gradient_penalty(D, real, fake, generator=torch.Generator().manual_seed(0))
    norm = lin.weight.detach().norm()
    assert gp.item() == pytest.approx(((norm - 1) ** 2).item(), rel=1e-4)
    gp.backward()
    expected = 2 * (norm - 1) * lin.weight.detach() / norm
    assert torch.allclose(lin.weight.grad, expected, rtol=1e-4, atol=1e-7)


def test_gradient_penalty_is_zero_for_a_unit_gradient_d_and_checks_shapes():
    D, lin = linear_d((4,), seed=2)
    with torch.no_grad():
        lin.weight.div_(lin.weight.norm())
    assert gradient_penalty(D, torch.randn(8, 4), torch.randn(8, 4)).item() == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="differ in shape"):
        gradient_penalty(D, torch.randn(8, 4), torch.randn(7, 4))


def small_d():
    torch.manual_seed(0)
    d = nn.Sequential(
        nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2),   # (B, 3, 16, 16) -> (B, 8, 8, 8)
        nn.Conv2d(8, 16, 4, 2, 1), nn.LeakyReLU(0.2),  # -> (B, 16, 4, 4)
        nn.Flatten(), nn.Linear(256, 1),               # -> (B, 1)
    )
    for m in d.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 1.0)  # singular values far above 1
    return d


def layers(d):
    return [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def sigma(w):
    return torch.linalg.matrix_norm(w.detach().reshape(w.shape[0], -1), ord=2).item()


def test_spectral_norm_keeps_every_weight_at_unit_singular_value_while_training():
    assert all(sigma(m.weight) > 3 for m in layers(small_d()))  # without it: far from 1
    D = apply_spectral_norm(small_d())
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    data = torch.randn(16, 3, 16, 16)
    for _ in range(5):
        loss = torch.relu(1 - D(data)).mean() + torch.relu(1 + D(torch.randn(16, 3, 16, 16))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    D(data)  # one more power iteration on the updated weights
    D.eval()
    for m in layers(D):
        raw = m.parametrizations.weight.original
        assert sigma(raw) > 3
        assert sigma(m.weight) == pytest.approx(1.0, abs=0.05)


def test_spectral_norm_checkpoint_loads_weights_only_and_deepcopies():
    D = apply_spectral_norm(small_d())
    D(torch.randn(4, 3, 16, 16))
    D.eval()
    buf = io.BytesIO()
    torch.save(D.state_dict(), buf)
    buf.seek(0)
    fresh = apply_spectral_norm(small_d())
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # make sure the load really replaces them
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.eval()
    x = torch.randn(3, 3, 16, 16)
    assert torch.allclose(fresh(x), D(x), atol=1e-6)
    assert torch.allclose(copy.deepcopy(D)(x), D(x), atol=1e-6)
    assert apply_spectral_norm(D) is D  # idempotent: no double wrapping
    assert all(len(m.parametrizations.weight) == 1 for m in layers(D))
    with pytest.raises(UsageError, match="--spectral-norm"):
        apply_spectral_norm(nn.Sequential(nn.ReLU()))


def test_instance_noise_anneals_to_zero():
    sigmas = [instance_noise_sigma(0.5, t / 10) for t in range(11)]
    assert sigmas[0] == 0.5 and sigmas[5] == pytest.approx(0.25) and sigmas[-1] == 0.0
    assert all(a > b for a, b in zip(sigmas, sigmas[1:]))
    assert instance_noise_sigma(0.5, 2.0) == 0.0
    x = torch.zeros(64, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    assert instance_noise(x, 0.5, 0.0, g).std().item() == pytest.approx(0.5, rel=0.03)
    assert instance_noise(x, 0.5, 0.8, g).std().item() == pytest.approx(0.1, rel=0.03)
    assert instance_noise(x, 0.5, 1.0, g) is x
    with pytest.raises(UsageError, match="--instance-noise"):
        instance_noise_sigma(-1.0, 0.0)


def test_r1_from_kimg_leaves_training_alone_until_then(tmp_path):
    """Two runs from one seed, one without R1 and one with a strong R1 from 64 images on:
    their records are identical up to that point and differ after it; the log says when R1 is on."""
    import json

    from gankit import train
    from gankit.config import TrainConfig
    from gankit.data import write_dataset

    from conftest import blobs

    ds = write_dataset(tmp_path / "blobs", blobs(64, seed=5), source="test-blobs")
    common = dict(data=str(ds.path), out=str(tmp_path / "runs"), width_g=8, width_d=8, latent=16, batch=16,
                  epochs=2, log_every=1, num_samples=4, tensorboard=False, health=False, seed=3)
    runs = {name: train(TrainConfig(name=name, **common, **extra))
            for name, extra in (("plain", {}), ("late", dict(r1=5.0, r1_every=1, r1_from_kimg=0.064)))}
    recs = {name: [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "kind" not in r]
            for name, run in runs.items()}  # the training records
    plain, late = recs["plain"], recs["late"]
    assert [r["kimg"] for r in plain] == [r["kimg"] for r in late]
    before = [i for i, r in enumerate(late) if r["kimg"] < 0.064]
    after = [i for i, r in enumerate(late) if r["kimg"] >= 0.064]
    assert before and after
    assert all(plain[i]["loss_d"] == late[i]["loss_d"] and "r1" not in late[i] for i in before)
    assert all(late[i]["r1"] == 5.0 for i in after)
    assert any(plain[i]["loss_d"] != late[i]["loss_d"] for i in after)
