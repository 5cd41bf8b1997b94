"""The FastGAN-style model: shapes at every size, the skip-layer gates, and
the discriminator's reconstruction decoders."""
import pytest
import torch

from gankit.errors import UsageError
from gankit.models.common import plan_resolution
from gankit.models.fastgan import FastGANDiscriminator, FastGANGenerator, excitation_pairs


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (128, 128), (256, 256), (160, 128)])
def test_shapes_at_every_size(size):
    H, W = size
    torch.manual_seed(0)
    G, D = FastGANGenerator(H, W, 3, 16, base=4), FastGANDiscriminator(H, W, 3, base=4, decoder_width=4)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, H, W)
    assert x.min() >= -1 and x.max() <= 1
    logits, rec = D(x, reconstruct=True)
    assert logits.shape == (3,) and rec.dim() == 0 and rec > 0
    assert torch.equal(D(x), logits)  # the same logits with or without reconstruction
    assert len(G.gates) == len(excitation_pairs(plan_resolution(H, W).doublings)) >= 1


def test_too_small_for_the_decoders_names_the_flag():
    with pytest.raises(UsageError, match="fastgan"):
        FastGANDiscriminator(16, 16, 3)


def test_the_gate_carries_the_coarse_map_to_the_fine_one():
    """Changing only the 8x8 map's contribution to the gate changes the output;
    a gate forced open (1) gives another image than the learned one."""
    torch.manual_seed(0)
    G = FastGANGenerator(64, 64, 3, 16, base=4).eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        gated = G(z)
        last = G.gates[0].net[-1]
        G.gates[0].net[-1] = torch.nn.Identity()  # remove the sigmoid: another gate value
        changed = G(z)
        G.gates[0].net[-1] = last
        assert not torch.allclose(gated, changed)
        assert torch.equal(G(z), gated)


def test_decoders_learn_to_reconstruct_a_fixed_batch():
    torch.manual_seed(0)
    D = FastGANDiscriminator(32, 32, 3, base=8, decoder_width=8)
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        torch.manual_seed(1)  # the same quadrant every time: a fixed target
        _, rec = D(real, reconstruct=True)
        opt.zero_grad()
        rec.backward()
        opt.step()
        losses.append(rec.item())
    assert losses[-1] < 0.6 * losses[0]


def test_the_quadrant_follows_the_global_generator():
    D = FastGANDiscriminator(32, 32, 3, base=4, decoder_width=4)
    real = torch.rand(2, 3, 32, 32)
    torch.manual_seed(5)
    a = D(real, reconstruct=True)[1]
    torch.manual_seed(5)
    b = D(real, reconstruct=True)[1]
    assert torch.equal(a, b)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        seen.add(D(real, reconstruct=True)[1].item())
    assert len(seen) > 1  # several quadrants are drawn
