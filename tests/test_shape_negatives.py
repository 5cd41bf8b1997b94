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
