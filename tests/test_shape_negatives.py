"""The shape-destroyed negatives the `dataset` encoder learns to keep away
from real images, the loss that keeps them away, and the versioned cache."""
from __future__ import annotations

import numpy as np
import torch

from gankit.metrics import dataset_encoder as de
from gankit.metrics import shape_negatives as sn

from conftest import blobs


def _creatures(n: int = 6, size: int = 32) -> torch.Tensor:
    """White images with a dark-outlined coloured box: float (n, 3, size, size) in [0, 1]."""
    rng = np.random.default_rng(0)
    x = np.full((n, size, size, 3), 255, np.uint8)
    for img in x:
        y0, x0 = rng.integers(2, size // 3, 2)
        img[y0:y0 + size // 2, x0:x0 + size // 2] = 0
        img[y0 + 1:y0 + size // 2 - 1, x0 + 1:x0 + size // 2 - 1] = rng.integers(30, 220, 3)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


def _pixels(img: torch.Tensor) -> list[tuple[float, ...]]:
    return sorted(map(tuple, img.reshape(img.shape[0], -1).T.tolist()))


def test_blobs_and_shuffles_keep_every_pixel_and_move_them():
    x = _creatures()
    for fn in (sn.colour_blobs, sn.shuffle_patches):
        out = fn(x, torch.Generator().manual_seed(1))
        assert out.shape == x.shape
        for a, b in zip(x, out):
            assert _pixels(a) == _pixels(b)  # the colour histogram, exactly
        assert (out != x).flatten(1).any(dim=1).all()  # every image's layout changed
        again = fn(x, torch.Generator().manual_seed(1))
        assert torch.equal(out, again), "deterministic given the generator"


def test_a_blob_is_one_round_region_around_its_centre():
    out = sn.colour_blobs(_creatures(4), torch.Generator().manual_seed(0))
    for img in out:
        inside = (img < 0.99).any(dim=0)  # not the white background
        ys, xs = torch.nonzero(inside, as_tuple=True)
        cy, cx = ys.float().mean(), xs.float().mean()
        radius = torch.hypot(ys - cy, xs - cx).max()
        assert inside.sum() > 0.35 * np.pi * radius ** 2  # filled, not scattered (ellipses up to 1.7:1)


def test_blur_keeps_the_mean_colour_and_removes_edges():
    x = _creatures()
    out = sn.blur(x, torch.Generator().manual_seed(0))
    assert (out.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).abs().max() < 0.03
    step = lambda t: (t[..., 1:] - t[..., :-1]).abs().amax()  # noqa: E731  (the sharpest step)
    assert step(out) < 0.5 * step(x)


def test_destroyed_mixes_the_kinds_in_the_given_shares():
    x = _creatures(10)
    out = sn.destroyed(x, torch.Generator().manual_seed(0), [0.2, 0.3, 0.5])
    kept = [_pixels(a) == _pixels(b) for a, b in zip(x, out)]
    assert kept == [False] * 2 + [True] * 8  # blurred ones change colours; shuffles and blobs keep them


def test_outside_margin_is_zero_only_when_fakes_are_far_from_every_real_ball():
    real = torch.randn(64, 8)
    assert de.outside_margin(real, real[:16].clone(), 1.5) > 0.5  # fakes on real points: deep inside
    far = real[:16] + 100.0
    assert de.outside_margin(real, far, 1.5) == 0


def test_the_cache_and_the_id_carry_the_recipe_version(tmp_path):
    from gankit.data import write_dataset

    ds = write_dataset(tmp_path / "d", blobs(24, size=16), source="test")
    quick = {**de.RECIPE, "steps": 2}
    first = de.load_or_train(ds, recipe=quick, log=False)
    assert first.id.startswith(f"dataset-v{quick['version']}-")
    older = de.load_or_train(ds, recipe={**quick, "version": 1}, log=False)
    assert older.id.startswith("dataset-v1-") and older.id != first.id
    names = sorted(p.name for p in (ds.path / ".gankit").glob("encoder-*.pt"))
    assert len(names) == 2 and {n.split("-")[2] for n in names} == {"v1", f"v{quick['version']}"}
    assert de.load_or_train(ds, recipe=quick, log=False).id == first.id  # each version finds its own file


def test_destroyed_copies_share_one_batch_norm_pass_with_the_real_views(monkeypatch):
    """Version 3: with separate passes each batch is normalised by its own
    statistics, so the margin could be met by "which batch did this come
    from" instead of by shape; one pass holds both views and the copies."""
    sizes: list[int] = []
    forward = de.Encoder.forward
    monkeypatch.setattr(de.Encoder, "forward", lambda self, x: sizes.append(len(x)) or forward(self, x))
    data = (_creatures(20) * 255).to(torch.uint8)
    recipe = {**de.RECIPE, "steps": 2, "batch": 8, "negatives": 0.5}
    de._fit(data, 3, recipe)
    assert sizes == [8 + 8 + 4] * 2
    sizes.clear()
    de._fit(data, 3, {**recipe, "one_pass": False})  # version 2: three passes a step
    assert sizes == [8, 8, 4] * 2


def test_the_encoder_reads_out_one_vector_per_image_at_either_input_size():
    for depth in (4, 5):
        enc = de.Encoder(3, 4, 16, depth).eval()
        for size in (32, 64):
            assert enc(torch.rand(3, 3, size, size)).shape == (3, 16)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in de.Encoder(3, 4, 16, 5).modules()) == 5
    # version 3 stops at a 2x2 map at either size (a 1x1 map at 32 px told classes apart worse)
    assert [de.num_layers(s, de.RECIPE) for s in (32, 64)] == [4, 5]
    assert de.num_layers(64, {"last_map": 4}) == 4  # version 2's depth at 64 px


class _MeanColour(torch.nn.Module):
    """A colour-only "encoder": each image's mean colour.  Blobs keep every
    pixel, so they land exactly on their real image (margin 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class _Layout(torch.nn.Module):
    """A layout-only "encoder": where each image's dark outline pixels lie, on a
    4x4 grid.  Every destroyed copy moves or loses them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dark = (x.max(dim=1, keepdim=True).values < 0.1).float()
        return torch.nn.functional.adaptive_avg_pool2d(dark, 4).flatten(1) * 10


def test_shape_margin_tells_a_colour_encoder_from_a_shape_encoder():
    data = (_creatures(64) * 255).to(torch.uint8)
    colour = de.shape_margin(_MeanColour(), data, seed=0)  # type: ignore[arg-type]
    layout = de.shape_margin(_Layout(), data, seed=0)  # type: ignore[arg-type]
    assert colour < 0.05 < 1.0 < layout, (colour, layout)


def _sprites(tmp_path, size: int):
    from gankit.data import write_dataset

    x = (_creatures(48, size) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return write_dataset(tmp_path / f"s{size}", x, source="test")


def test_a_pilot_that_sees_colour_only_is_replaced_by_the_long_recipe(tmp_path):
    """Version 4: at 64 px, a pilot encoder whose margin is under `long_below`
    is retrained from the start with the `long` values (here a narrower net, so
    the swap shows in the weights); one that clears it is kept as it is; at
    32 px the pilot is always kept.  The cache reloads the long encoder."""
    from gankit.data import load_dataset

    quick = {**de.RECIPE, "steps": 2, "batch": 16, "long": {"width": 8, "steps": 3}}
    ds64 = load_dataset(_sprites(tmp_path, 64).path)
    width = lambda enc: enc.body[0].out_channels  # noqa: E731
    assert width(de.train_encoder(ds64, {**quick, "long_below": 1e9}, log=False)) == 8  # two steps: no margin
    kept = de.train_encoder(ds64, {**quick, "long_below": 0.0}, log=False)
    pilot, _ = de._fit(de.training_images(ds64, 64, quick["max_images"], quick["seed"]), 3, quick)
    assert width(kept) == 16 and all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(),
                                                                        pilot.state_dict().values()))
    ds32 = load_dataset(_sprites(tmp_path, 32).path)
    assert width(de.train_encoder(ds32, {**quick, "long_below": 1e9}, log=False)) == 16
    first = de.load_or_train(ds64, recipe={**quick, "long_below": 1e9}, log=False)
    again = de.load_or_train(ds64, recipe={**quick, "long_below": 1e9}, log=False)  # from the cache
    assert width(again.encoder) == 8 and again.id == first.id
    x = torch.rand(4, 3, 64, 64)
    assert torch.equal(first.embed(x), again.embed(x))


def test_hue_turns_colours_about_the_grey_axis_and_leaves_greys():
    """The long recipe's views (version 4): a palette turned by up to ``hue``
    degrees, so a colour histogram alone stops naming an image; white
    backgrounds and dark outlines stay, and 120 degrees is a channel rotation."""
    x = _creatures(4)
    turned = de.rotate_hue(x, torch.tensor([120.0, -120.0, 30.0, 0.0]))
    assert torch.allclose(turned[0], x[0][[2, 0, 1]], atol=1e-5)  # R -> G -> B -> R
    assert torch.allclose(turned[1], x[1][[1, 2, 0]], atol=1e-5)
    assert torch.allclose(turned[3], x[3], atol=1e-6)
    grey = (x[2].max(dim=0).values - x[2].min(dim=0).values) < 1e-6  # background and outline
    assert grey.float().mean() > 0.5
    assert torch.allclose(turned[2][:, grey], x[2][:, grey], atol=1e-5)
    assert (turned[2][:, ~grey] - x[2][:, ~grey]).abs().max() > 0.05  # the fill changed colour
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    plain, hued = de.augment(x, g(), 0.0), de.augment(x, g(), 30.0)
    assert not torch.allclose(plain, hued)
    chroma = lambda v: v.max(dim=1).values - v.min(dim=1).values  # noqa: E731
    share_grey = [float((chroma(v) < 1e-4).float().mean()) for v in (plain, hued)]
    assert share_grey[0] > 0.5 and abs(share_grey[0] - share_grey[1]) < 0.02  # the white ground stays white
