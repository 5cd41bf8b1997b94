import pytest
import torch

from gankit.errors import UsageError
from gankit.models import build_discriminator, build_generator, plan_resolution

SIZES = [(16, 16), (32, 32), (64, 64), (128, 128), (256, 256), (84, 64)]


@pytest.mark.parametrize("model", ["seed", "dcgan"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("coords", [False, True])
def test_generator_and_discriminator_shapes(model, size, channels, coords):
    h, w = size
    G = build_generator(model, h, w, channels, latent=8, width_g=4, coords=coords)
    D = build_discriminator(model, h, w, channels, width_d=4, coords=coords)
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


def test_minibatch_std_measures_spread_within_groups():
    from gankit.models.common import MinibatchStd

    layer = MinibatchStd(group=4)
    same = torch.randn(1, 5, 4, 4).repeat(8, 1, 1, 1)  # eight copies of one sample
    varied = torch.randn(8, 5, 4, 4)
    out_same, out_varied = layer(same), layer(varied)
    assert out_same.shape == (8, 6, 4, 4)
    assert torch.equal(out_same[:, :5], same)  # the features pass through untouched
    assert out_same[:, 5].abs().max() < 1e-3  # copies: no spread
    assert out_varied[:, 5].min() > 0.5  # unit Gaussians: spread near 1
    # groups are samples i, i + B/g, ...: spread only inside group {0, 2, 4, 6}
    mixed = same.clone()
    mixed[0] += 3 * torch.randn(5, 4, 4)
    spread = layer(mixed)[:, 5, 0, 0]
    assert spread[0] > 0.1 and spread[2] == spread[0] and spread[1] < 1e-3
    # batch sizes the group does not divide still work (g = largest divisor)
    assert layer(torch.randn(6, 5, 4, 4)).shape == (6, 6, 4, 4)
    assert layer(torch.randn(1, 5, 4, 4))[:, 5].abs().max() < 1e-3


@pytest.mark.parametrize("model", ["seed", "dcgan"])
def test_mbstd_discriminator_sees_the_batch(model):
    """With --mbstd, one sample's logit depends on the other samples of its group."""
    D = build_discriminator(model, 32, 32, 3, 8, mbstd=4).eval()
    plain = build_discriminator(model, 32, 32, 3, 8).eval()
    x = torch.randn(4, 3, 32, 32)
    y = x.clone()
    y[1:] = x[0]  # the same first sample in a group of copies
    assert not torch.allclose(D(x)[0], D(y)[0])
    assert torch.allclose(plain(x)[0], plain(y)[0], atol=1e-6)


def test_coord_maps_hold_rows_and_columns():
    from gankit.models.common import coord_maps

    maps = coord_maps(5, 7, dtype=torch.bfloat16)
    assert maps.shape == (1, 2, 5, 7) and maps.dtype == torch.bfloat16
    rows, cols = maps[0, 0].float(), maps[0, 1].float()
    assert torch.equal(rows, rows[:, :1].expand(5, 7)) and torch.equal(cols, cols[:1].expand(5, 7))
    assert (rows[1:, 0] > rows[:-1, 0]).all() and (cols[0, 1:] > cols[0, :-1]).all()
    assert (rows[0, 0], rows[-1, 0], cols[0, 0], cols[0, -1]) == (-1, 1, -1, 1)


@pytest.mark.parametrize("kind", [torch.nn.Conv2d, torch.nn.ConvTranspose2d])
def test_coord_conv_is_a_conv_over_the_image_and_the_maps(kind):
    """CoordConv computes conv(x) + xy(maps) once per batch; that must equal
    one convolution over [x, rows, cols] with the two weights side by side."""
    from gankit.models.common import CoordConv, coord_maps

    torch.manual_seed(0)
    layer = CoordConv(kind(3, 4, 4, 2, 1))
    x = torch.randn(5, 3, 8, 8)
    joined = torch.cat([x, coord_maps(8, 8).expand(5, 2, 8, 8)], dim=1)  # (5, 5, 8, 8)
    dim = 1 if kind is torch.nn.Conv2d else 0  # Conv2d weight (out, in, k, k); transposed (in, out, k, k)
    weight = torch.cat([layer.conv.weight, layer.xy.weight], dim=dim)
    op = torch.nn.functional.conv2d if kind is torch.nn.Conv2d else torch.nn.functional.conv_transpose2d
    expected = op(joined, weight, layer.conv.bias, stride=2, padding=1)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    # channels_last input (the CPU presets) keeps its layout through the add, same numbers
    y = layer(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.allclose(y, expected, atol=1e-5)
    # and the output depends on where a pixel is: a flat image does not give a flat answer
    flat = layer(torch.ones(1, 3, 8, 8))[0, :, 1:-1, 1:-1]
    assert not torch.allclose(flat, flat[:, :1, :1].expand_as(flat))


@pytest.mark.parametrize("kind", [torch.nn.Conv2d, torch.nn.ConvTranspose2d])
@pytest.mark.parametrize("channels_last", [False, True])
def test_coord_conv_gradients_match_autograd(kind, channels_last):
    """CoordConv's add has a hand-written backward (the batch sum of the maps'
    gradient): first and second derivatives must be autograd's own, in float64."""
    from gankit.models.common import _AddOverBatch

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.randn(3, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(1, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    assert torch.autograd.gradcheck(_AddOverBatch.apply, (y, b))
    assert torch.autograd.gradgradcheck(_AddOverBatch.apply, (y, b))
    # inside a layer: weight gradients equal those of one convolution over [x, rows, cols]
    from gankit.models.common import CoordConv, coord_maps

    layer = CoordConv(kind(3, 4, 4, 2, 1)).double().to(memory_format=fmt)
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=fmt)
    joined = torch.cat([x, coord_maps(8, 8, dtype=torch.float64).expand(5, 2, 8, 8)], dim=1)
    w_conv = layer.conv.weight.detach().clone().requires_grad_()
    w_xy = layer.xy.weight.detach().clone().requires_grad_()
    op = torch.nn.functional.conv2d if kind is torch.nn.Conv2d else torch.nn.functional.conv_transpose2d
    dim = 1 if kind is torch.nn.Conv2d else 0
    target = torch.randn_like(layer(x))
    (op(joined, torch.cat([w_conv, w_xy], dim=dim), layer.conv.bias, stride=2, padding=1) * target).sum().backward()
    (layer(x) * target).sum().backward()
    assert torch.allclose(layer.xy.weight.grad, w_xy.grad) and torch.allclose(layer.conv.weight.grad, w_conv.grad)


@pytest.mark.parametrize("channels_last", [False, True])
def test_dense_layers_are_the_convolutions_they_replace(channels_last):
    """DCGAN's first G layer and last D layer run as matrix products: same
    outputs, gradients and state_dict as nn.ConvTranspose2d / nn.Conv2d, their
    weight stays a plain matrix under channels_last, other sizes fall back."""
    from gankit.models.common import DenseConv2d, DenseConvTranspose2d

    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    cases = [(DenseConv2d(6, 5, (4, 3), 1, 0), torch.nn.Conv2d(6, 5, (4, 3), 1, 0), (7, 6, 4, 3)),
             (DenseConvTranspose2d(6, 5, (4, 3), 1, 0, bias=False),
              torch.nn.ConvTranspose2d(6, 5, (4, 3), 1, 0, bias=False), (7, 6, 1, 1))]
    for dense, plain, shape in cases:
        dense, plain = dense.double(), plain.double()
        plain.load_state_dict(dense.state_dict())  # the same keys and shapes
        dense, plain = dense.to(memory_format=fmt), plain.to(memory_format=fmt)
        assert dense.weight.is_contiguous()
        x = torch.randn(shape, dtype=torch.float64).contiguous(memory_format=fmt)
        xd, xp = x.clone().requires_grad_(), x.clone().requires_grad_()
        yd, yp = dense(xd), plain(xp)
        assert yd.shape == yp.shape and torch.allclose(yd, yp)
        target = torch.randn_like(yp)
        (yd * target).sum().backward()
        (yp * target).sum().backward()
        assert torch.allclose(xd.grad, xp.grad) and torch.allclose(dense.weight.grad, plain.weight.grad)
        bigger = torch.randn(2, 6, shape[2] + 3, shape[3] + 2, dtype=torch.float64)
        assert torch.allclose(dense(bigger), plain(bigger))


@pytest.mark.parametrize("model", ["seed", "dcgan"])
def test_coord_conv_wraps_every_convolution_but_the_one_fed_z(model):
    from gankit.models.common import CoordConv

    for coords in (False, True):
        G = build_generator(model, 32, 32, 3, latent=8, width_g=4, coords=coords)
        D = build_discriminator(model, 32, 32, 3, width_d=4, coords=coords)
        for net in (G, D):
            convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
            wrapped = [m for m in net.modules() if isinstance(m, CoordConv)]
            fed_z = int(net is G and model == "dcgan")  # DCGAN G's first layer maps z (1x1) to the base map
            if coords:  # each CoordConv holds two convs: the layer's own and xy
                assert len(wrapped) >= 3 and len(convs) == 2 * len(wrapped) + fed_z
            else:
                assert not wrapped


def _dashes(n: int, cols: tuple[int, ...] = (0, 28)) -> torch.Tensor:
    """(n, 1, 32, 32) black frames with a white 2x4 dash at each of ``cols``, far apart (row 26)."""
    x = torch.full((n, 1, 32, 32), -1.0)
    for c in cols:
        x[:, :, 26:28, c:c + 4] = 1.0
    return x


@pytest.mark.parametrize("model", ["seed", "dcgan"])
def test_linear_head_scores_two_objects_as_the_sum_of_one(model):
    """Why --d-head exists.  With a linear last layer, D's logit for two far-apart
    objects is exactly the sum of what each adds alone: it can push G to draw
    more paddles or fewer, never to draw exactly one.  A hidden layer breaks that."""
    torch.manual_seed(0)
    none, a, b, both = (_dashes(1, cols).double() for cols in ((), (0,), (28,), (0, 28)))
    for head in (0, 32):
        D = build_discriminator(model, 32, 32, 1, 8, loss="wgan-gp", head=head).double()  # no BatchNorm
        with torch.no_grad():
            interaction = (D(both) - D(a) - D(b) + D(none)).abs().item()
            effect = (D(a) - D(none)).abs().item()  # what one dash alone changes
        assert effect > 1e-9
        if head:
            assert interaction > 0.01 * effect
        else:
            assert interaction < 1e-9 * effect


@pytest.mark.parametrize("model", ["seed", "dcgan"])
def test_d_head_adds_one_hidden_layer(model):
    plain = build_discriminator(model, 64, 64, 3, 8)
    mlp = build_discriminator(model, 64, 64, 3, 8, head=16)
    last = [m for m in mlp.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    assert (last.in_features if isinstance(last, torch.nn.Linear) else last.in_channels) == 16
    assert sum(p.numel() for p in mlp.parameters()) > sum(p.numel() for p in plain.parameters())
    assert mlp(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_self_attention_is_softmax_of_query_key_over_values():
    from gankit.models.common import SelfAttention

    torch.manual_seed(0)
    layer = SelfAttention(16)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(layer(x), x)  # gamma starts at 0: the layer starts as the identity
    with torch.no_grad():
        layer.gamma.fill_(0.5)
    q, k, v = (conv(x).flatten(2) for conv in (layer.query, layer.key, layer.value))  # (B, c, 64)
    weights = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, 64, 64): row i sums to 1
    expected = x + 0.5 * (v @ weights.transpose(1, 2)).view(2, 16, 8, 8)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5)
    # every position sees every other: a change in one corner reaches the opposite one
    y = x.clone()
    y[:, :, 0, 0] += 3.0
    assert (layer(y) - layer(x))[:, :, 7, 7].abs().max() > 1e-4


@pytest.mark.parametrize("model", ["seed", "dcgan"])
def test_generator_attention_sits_on_the_named_map(model):
    from gankit.models.common import SelfAttention

    seen = []
    G = build_generator(model, 64, 64, 3, 8, 4, attention=16)
    attn = [m for m in G.modules() if isinstance(m, SelfAttention)]
    assert len(attn) == 1
    attn[0].register_forward_hook(lambda m, inp, out: seen.append(tuple(out.shape)))
    assert G(torch.randn(2, 8)).shape == (2, 3, 64, 64)
    assert seen[0][0] == 2 and seen[0][2:] == (16, 16)
    assert not any(isinstance(m, SelfAttention) for m in build_generator(model, 64, 64, 3, 8, 4).modules())
    with pytest.raises(UsageError, match="--attention.*12"):
        build_generator(model, 64, 64, 3, 8, 4, attention=12)
