"""DiffAugment and adaptive augmentation: shapes, ranges, gradients, seeds,
what each operation does to an image, and ADA's control of p."""
import io
import math

import pytest
import torch

from gankit.augment import AdaptiveAugment, diff_augment
from gankit.errors import UsageError
from gankit.models import DCGANDiscriminator, DCGANGenerator

OPS = ["color", "translation", "cutout"]
SHAPES = [(4, 3, 16, 16), (4, 1, 12, 20), (3, 3, 24, 16)]


def images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gen(seed):
    return torch.Generator().manual_seed(seed)


def coded(B, H, W):
    """(B, 1, H, W) images whose pixel values name their position, all > 0."""
    v = (torch.arange(H * W, dtype=torch.float64) + 1) / (H * W)
    return v.view(1, 1, H, W).repeat(B, 1, 1, 1)


# ------------------------------------------------------------- DiffAugment
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ops", [["color"], ["translation"], ["translation_x"], ["cutout"], OPS])
def test_shape_dtype_and_change(shape, ops):
    x = images(shape)
    y = diff_augment(x, ops, generator=gen(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    changed = (y - x).flatten(1).abs().amax(dim=1) > 0
    # translation may draw a zero shift for an image; over a batch something moves
    assert changed.any()
    if ops not in (["translation"], ["translation_x"]):
        assert changed.all()


def test_comma_string_and_bf16_keep_dtype():
    x = images((2, 3, 16, 16)).bfloat16()
    y = diff_augment(x, "color, translation,cutout", generator=gen(0))
    assert y.dtype == torch.bfloat16 and y.shape == x.shape


@pytest.mark.parametrize("shape", SHAPES)
def test_identity_at_zero_strength_and_no_ops(shape):
    x = images(shape)
    assert torch.equal(diff_augment(x, OPS, strength=0.0, generator=gen(3)), x)
    assert torch.equal(diff_augment(x, [], generator=gen(3)), x)


def test_strength_scales_the_change():
    x = images((32, 3, 16, 16))
    small = (diff_augment(x, ["color"], 0.1, gen(5)) - x).abs().mean()
    large = (diff_augment(x, ["color"], 1.0, gen(5)) - x).abs().mean()
    assert 0 < small < large / 3


def test_deterministic_given_seed_and_seeds_differ():
    x = images((8, 3, 16, 16))
    a = diff_augment(x, OPS, generator=gen(7))
    b = diff_augment(x, OPS, generator=gen(7))
    c = diff_augment(x, OPS, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("ops", [["color"], ["translation"], ["translation_x"], ["cutout"], OPS])
def test_gradients_match_finite_differences(ops):
    """Every op is differentiable w.r.t. the images (checked numerically)."""
    x = images((2, 3, 6, 8)).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: diff_augment(t, ops, generator=gen(11)), (x,))


def test_generator_gradients_flow_through_augmented_d():
    G, D = DCGANGenerator(16, 16, 3, latent=8, base=8), DCGANDiscriminator(16, 16, 3, base=8)
    fake = G(torch.randn(4, 8, generator=gen(0)))
    D(diff_augment(fake, OPS, generator=gen(1))).mean().backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("op", ["translation", "translation_x"])
def test_translation_is_a_zero_padded_integer_shift(op):
    B, H, W = 16, 16, 24
    x = coded(B, H, W)
    y = diff_augment(x, [op], generator=gen(2))
    shifts = set()
    for b in range(B):
        nz = y[b, 0].nonzero()
        src = (y[b, 0][nz[:, 0], nz[:, 1]] * H * W).round().long() - 1
        dy, dx = nz[:, 0] - src // W, nz[:, 1] - src % W
        assert (dy == dy[0]).all() and (dx == dx[0]).all()  # one rigid shift per image
        assert abs(int(dy[0])) <= H // 8 and abs(int(dx[0])) <= W // 8
        assert int((y[b, 0] == 0).sum()) == H * W - (H - abs(int(dy[0]))) * (W - abs(int(dx[0])))
        shifts.add((int(dy[0]), int(dx[0])))
    assert len(shifts) > 3  # shifts are drawn per image
    vertical = {dy for dy, _ in shifts}
    if op == "translation_x":  # rows stay where they are: no edge row is pushed out
        assert vertical == {0}
    else:
        assert len(vertical) > 1


def test_cutout_zeros_one_rectangle_of_at_most_half_each_side():
    B, H, W = 16, 16, 24
    x = coded(B, H, W)
    y = diff_augment(x, ["cutout"], generator=gen(4))
    for b in range(B):
        hole = y[b, 0] == 0
        assert hole.any()
        rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
        assert int(rows.numel()) <= H // 2 and int(cols.numel()) <= W // 2
        assert hole.sum() == rows.numel() * cols.numel()  # a filled rectangle
        assert torch.equal(y[b, 0][~hole], x[b, 0][~hole])  # the rest untouched
    centres = {tuple(map(int, (y[b, 0] == 0).nonzero().float().mean(0))) for b in range(B)}
    assert len(centres) > 3


def test_color_range_bound():
    """Colour in [-1, 1] is bounded by its parameters' extremes: brightness
    +-0.5; saturation x2 moves a pixel at most 4/3 beyond the brightened range
    (a channel differs from its 3-channel mean by <= 2 * 2/3); contrast x1.5
    adds half the resulting width (14/3) on each side: 1 + 0.5 + 4/3 + 7/3 =
    31/6.  One channel has no saturation: 1 + 0.5 + 1 = 2.5."""
    x = torch.randint(0, 2, (512, 3, 8, 8), generator=gen(0)).float() * 2 - 1  # extreme pixels
    y = diff_augment(x, ["color"], generator=gen(1))
    assert y.abs().max() <= 31 / 6 + 1e-5
    assert y.abs().max() > 1.0  # it does leave [-1, 1]
    y1 = diff_augment(x[:, :1], ["color"], generator=gen(1))
    assert y1.abs().max() <= 2.5 + 1e-5


def test_color_keeps_one_channel_images_affine():
    """Brightness and contrast are per-image affine maps of the pixel values."""
    x = images((6, 1, 10, 14))
    y = diff_augment(x, ["color"], generator=gen(6))
    for b in range(6):
        a = torch.stack([x[b].flatten(), torch.ones(140)], 1)
        coef = torch.linalg.lstsq(a, y[b].flatten()[:, None]).solution
        assert torch.allclose(a @ coef, y[b].flatten()[:, None], atol=1e-5)
        assert not torch.allclose(coef.flatten(), torch.tensor([1.0, 0.0]), atol=1e-3)


def test_bad_input_is_rejected():
    with pytest.raises(UsageError, match="--diffaugment"):
        diff_augment(images((2, 3, 8, 8)), ["blur"])
    with pytest.raises(ValueError, match="strength"):
        diff_augment(images((2, 3, 8, 8)), OPS, strength=-1)
    with pytest.raises(ValueError, match="B, C, H, W"):
        diff_augment(torch.zeros(3, 8, 8), OPS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_images_with_cpu_generator():
    x = images((4, 3, 16, 16))
    y_cpu = diff_augment(x, OPS, generator=gen(9))
    y_gpu = diff_augment(x.cuda(), OPS, generator=gen(9))
    assert y_gpu.device.type == "cuda"
    assert torch.allclose(y_gpu.cpu(), y_cpu, atol=1e-5)
    ada = AdaptiveAugment(p=0.5)
    assert torch.allclose(ada(x.cuda(), gen(3)).cpu(), ada(x, gen(3)), atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_step_calls_never_wait_for_the_gpu():
    x = images((8, 3, 16, 16)).cuda()
    ada = AdaptiveAugment(interval=2, batch=8)
    ada(x)  # first call moves p to the device
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(4):
            y = ada(diff_augment(x, OPS))
            ada.accumulate(y.mean(dim=(1, 2, 3)))
            ada.update(8)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert 0.0 <= ada.p <= 1.0


# -------------------------------------------------------------------- ADA
def feed(ada, logits_value, steps, batch=32):
    for _ in range(steps):
        ada.accumulate(torch.full((batch,), logits_value))
        ada.update(batch)


def test_p_rises_when_d_is_always_right_and_falls_when_not():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=4, batch=32)
    assert ada.p == 0.0 and math.isnan(ada.r_t)
    feed(ada, 2.0, 3)
    assert ada.p == 0.0  # no adjustment before `interval` steps
    feed(ada, 2.0, 1)
    assert ada.p == pytest.approx(4 * 32 / 1000) and ada.r_t == 1.0
    feed(ada, 2.0, 16)
    assert ada.p == pytest.approx(5 * 128 / 1000)
    feed(ada, 2.0, 40)
    assert ada.p == 1.0  # clamped
    feed(ada, -1.0, 8)
    assert ada.p == pytest.approx(1 - 2 * 128 / 1000) and ada.r_t == -1.0
    feed(ada, -1.0, 100)
    assert ada.p == 0.0


def test_p_follows_the_fraction_of_positive_logits():
    ada = AdaptiveAugment(target=0.6, speed_kimg=1.0, interval=1, batch=10, p=0.5)
    half = torch.tensor([1.0] * 9 + [-1.0])  # r_t = 0.8 > 0.6
    ada.accumulate(half)
    ada.update(10)
    assert ada.p == pytest.approx(0.51) and ada.r_t == pytest.approx(0.8)
    ada.accumulate(torch.tensor([1.0] * 7 + [-1.0] * 3))  # r_t = 0.4 < 0.6
    ada.update(10)
    assert ada.p == pytest.approx(0.50)


def test_state_dict_roundtrip_continues_identically():
    a = AdaptiveAugment(target=0.6, speed_kimg=2.0, interval=4, batch=16)
    feed(a, 1.0, 10, batch=16)  # two adjustments and two steps pending
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = AdaptiveAugment(target=0.6, speed_kimg=2.0, interval=4, batch=16)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.p == a.p > 0 and b.r_t == a.r_t
    feed(a, 1.0, 2, batch=16)
    feed(b, 1.0, 2, batch=16)
    assert b.p == pytest.approx(a.p) and a.p == pytest.approx(3 * 64 / 2000)
    with pytest.raises(ValueError, match="'p'"):
        b.load_state_dict({})


def test_apply_identity_at_p0_and_everything_at_p1():
    x = images((16, 3, 16, 16))
    assert torch.equal(AdaptiveAugment(p=0.0)(x, gen(0)), x)
    y = AdaptiveAugment(p=1.0)(x, gen(0))
    assert y.shape == x.shape
    assert ((y - x).flatten(1).abs().amax(1) > 0).all()


def test_flip_probability_is_p():
    x = images((400, 1, 4, 6))
    y = AdaptiveAugment(p=0.3, ops=("flip",))(x, gen(1))
    flipped = (y == x.flip(3)).flatten(1).all(1)
    kept = (y == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each image either flipped or not
    assert 0.22 < flipped.float().mean() < 0.38


def test_translation_uses_mirrored_borders_and_no_flip_when_not_asked():
    x = coded(8, 16, 16).float()
    y = AdaptiveAugment(p=1.0, ops=("translation",))(x, gen(2))
    assert (y > 0).all()  # mirrored, not zero padded
    assert not torch.equal(y, x)
    # colour only: every image stays an affine map of itself, nothing moves
    z = AdaptiveAugment(p=1.0, ops=("color",))(x, gen(3))
    for b in range(8):
        a = torch.stack([x[b].flatten(), torch.ones(256)], 1)
        coef = torch.linalg.lstsq(a, z[b].flatten()[:, None]).solution
        assert torch.allclose(a @ coef, z[b].flatten()[:, None], atol=1e-4)


def test_ada_is_differentiable_and_deterministic():
    ada = AdaptiveAugment(p=0.7, ops=("flip", "translation", "color", "cutout"))
    x = images((2, 3, 6, 8)).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ada(t, gen(4)), (x,))
    x = images((8, 3, 16, 16))
    assert torch.equal(ada(x, gen(5)), ada(x, gen(5)))
    assert not torch.equal(ada(x, gen(5)), ada(x, gen(6)))


def test_ada_bad_settings():
    with pytest.raises(UsageError, match="--ada-target"):
        AdaptiveAugment(target=1.5)
    with pytest.raises(UsageError, match="--ada-kimg"):
        AdaptiveAugment(speed_kimg=0)
    with pytest.raises(UsageError, match="unknown operation 'rotate'"):
        AdaptiveAugment(ops=("rotate",))
