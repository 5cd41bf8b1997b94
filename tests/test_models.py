import pytest
import torch

from gankit.errors import UsageError
from gankit.models import build_discriminator, build_generator, plan_resolution

SIZES = [(16, 16), (32, 32), (64, 64), (128, 128), (256, 256), (84, 64)]


@pytest.mark.parametrize("model", ["seed", "dcgan"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(model, size, channels):
    h, w = size
    G = build_generator(model, h, w, channels, latent=8, width_g=4)
    D = build_discriminator(model, h, w, channels, width_d=4)
    x = G(torch.randn(3, 8))
    assert x.shape == (3, channels, h, w)
    assert x.min() >= -1 and x.max() <= 1  # Tanh output
    logits = D(x)
    assert logits.shape == (3,)
    logits.sum().backward()
    assert all(p.grad is not None for p in G.parameters())


@pytest.mark.parametrize("size", [(30, 30), (12, 12), (64, 6)])
def test_unbuildable_resolution_is_a_usage_error(size):
    with pytest.raises(UsageError, match="resolution"):
        plan_resolution(*size)


def test_init_is_dcgan_normal():
    G = build_generator("dcgan", 64, 64, 3, 100, 64)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.05)


def test_wgan_gp_discriminator_has_no_batchnorm():
    D = build_discriminator("dcgan", 32, 32, 3, 8, loss="wgan-gp")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    D = build_discriminator("dcgan", 32, 32, 3, 8, loss="bce")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
