"""The `dataset` extractor: a small encoder trained on the real dataset itself.

Inception features need a 100 MB download and were learnt on ImageNet photos,
not on 64x64 game frames.  This extractor needs neither: a small
convolutional encoder (five layers since version 3) is trained with a contrastive loss (SimCLR's NT-Xent:
two augmented views of an image must be closer to each other than to the
other images of the batch) on the real images, on the CPU, seeded, in a few
seconds.  Its augmentations are whole-pixel shifts, brightness/contrast
jitter and small erased boxes; deliberately no blur and no noise, so the
features stay sensitive to exactly the artefacts a generator produces.

Contrast alone learns what tells images apart most cheaply, which on sprites
or cards is the colour histogram: version 1 scored colour blobs as precise
as real sprites.  Since version 2 each step also shows copies of the batch
that keep every colour and lose the shape (blurred, patch-shuffled, painted
as blobs: `shape_negatives`), as extra negatives and with a margin loss that
keeps them outside the real images' nearest-neighbour balls.  On varied sets
(sprites) 150 steps do not get the blobs out; since version 4 that recipe is a
pilot, and when its `shape_margin` is too small a longer, wider one is trained
instead (minutes instead of about one, once per dataset), whose views also
turn each image's colours a little, so that a palette alone names no image.

The weights are cached beside the dataset
(``<dataset>/.gankit/encoder-<fingerprint>-v<version>-<recipe>-<weights hash>.pt``), so
every run and every evaluation on that dataset is scored by the same
features, and the stats cache keys on the extractor id
(``dataset-v<version>-<weights hash>``), so statistics of two recipes never mix.  Training always
happens on the CPU with its own RNG, so it does not disturb the caller's
random state.  Progress goes to stderr: stdout may carry ``--json``.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import sys
import time
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gankit.data.dataset import ImageDataset, load_dataset
from gankit.metrics.registry import FeatureExtractor, register
from gankit.metrics.shape_negatives import DESTROYERS, destroyed
from gankit.metrics.stats_cache import cache_dir, dataset_fingerprint, remove_stale

# Changing any value here trains (and caches) a new encoder.
# Version 2 (issue 21): half a batch of shape-destroyed negatives (shape_negatives), kept at
# least 1.5 mean k-NN radii from the nearest real image (margin, weight 2: 1 left patch shuffles
# at precision 0.30 on the sprites); version 1 had neither and
# scored colour blobs as precise as real sprites.  Version 3: real views and destroyed copies
# share one batch-norm pass, and layers down to a 2x2 map (five at 64 px, where version 2 stopped
# at 4x4; blobs' precision on the sprites 0.77 -> 0.50; version 2 at 64 px is
# {"version": 2, "last_map": 4, "one_pass": false}).  Version 4: when the version 3 encoder (the
# pilot) leaves some kind of destroyed copy within 2 ball radii of real at 64 px, the "long" recipe
# is trained instead: 4x the steps, width 24, and views whose colours turn by up to 30 degrees, so
# that a palette alone identifies no image (sprites: blobs' precision 0.50 -> 0.15; Breakout passes
# the pilot, 33+ radii, and keeps version 3's weights and cost).  See docs/small-data.md.
RECIPE = {"version": 4, "width": 16, "dim": 128, "last_map": 2, "one_pass": True, "steps": 150, "batch": 128,
          "lr": 2e-3, "temperature": 0.2, "max_images": 4096, "seed": 0, "negatives": 0.5, "margin": 2.0,
          "margin_ratio": 1.5, "hue": 0.0, "long_below": 2.0, "long": {"width": 24, "steps": 600, "hue": 30.0}}


def input_size(height: int, width: int) -> int:
    """The encoder's square input side: 32 for small datasets, else 64."""
    return 32 if max(height, width) <= 32 else 64


def num_layers(size: int, recipe: dict[str, Any]) -> int:
    """Stride-2 layers from ``size`` down to the recipe's last map: 5 for 64 px
    and 4 for 32 px at a 2x2 map, where each output cell sees nearly the whole image."""
    return int(math.log2(size // recipe["last_map"]))


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size), antialiased when shrinking."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


class Encoder(nn.Module):
    """(N, C, S, S) in [0, 1] -> (N, dim) features; ``head`` is used only in training."""

    def __init__(self, channels: int, width: int, dim: int, depth: int) -> None:
        super().__init__()
        widths = [channels] + [width * 2 ** i for i in range(depth - 1)] + [dim]  # 64 px: 3, 16, 32, 64, 128, dim
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):  # each halves S, down to the recipe's last map
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(2 * x - 1).mean(dim=(2, 3))  # (N, dim)


def rotate_hue(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) [0, 1] with each image's colours turned by ``degrees`` (B,)
    about the grey axis: greys (a white background) stay, 120 degrees is RGB -> BRG."""
    k = torch.full((3,), 3 ** -0.5)
    theta = torch.deg2rad(degrees)[:, None, None]  # (B, 1, 1)
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    rot = torch.cos(theta) * torch.eye(3) + torch.sin(theta) * cross + (1 - torch.cos(theta)) * torch.outer(k, k)
    return torch.einsum("bij,bjhw->bihw", rot, x).clamp(0, 1)


def augment(x: torch.Tensor, g: torch.Generator, hue: float = 0.0) -> torch.Tensor:
    """One random view of each image in (B, C, S, S) [0, 1]: a shift by whole
    pixels (edges repeated), brightness/contrast jitter, an erased box and,
    for RGB with ``hue`` > 0, colours turned by up to ``hue`` degrees."""
    B, C, S, _ = x.shape
    if hue and C == 3:
        x = rotate_hue(x, hue * (2 * torch.rand(B, generator=g) - 1))
    pad = S // 8
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, B), generator=g)
    rows = (dy[:, None] + torch.arange(S)[None, :])[:, None, :, None].expand(B, C, S, S + 2 * pad)
    shifted = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(S)[None, :])[:, None, None, :].expand(B, C, S, S)
    out = shifted.gather(3, cols)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.8 + 0.4 * torch.rand(B, 1, 1, 1, generator=g)
    brightness = 0.2 * torch.rand(B, 1, 1, 1, generator=g) - 0.1
    out = ((out - mean) * contrast + mean + brightness).clamp(0, 1)
    side = S // 4
    y0, x0 = torch.randint(0, S - side + 1, (2, B), generator=g)
    ys, xs = torch.arange(S)[None, :, None], torch.arange(S)[None, None, :]
    top, left = y0[:, None, None], x0[:, None, None]
    box = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
    box &= (torch.rand(B, generator=g) < 0.5)[:, None, None]
    return torch.where(box[:, None], mean, out)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float,
            negatives: torch.Tensor | None = None) -> torch.Tensor:
    """SimCLR loss for two views (B, d) of the same B images; ``negatives``
    (M, d), if given, are in every image's denominator and never anyone's match."""
    z = F.normalize(torch.cat([a, b]), dim=1)  # (2B, d)
    others = z if negatives is None else torch.cat([z, F.normalize(negatives, dim=1)])
    sim = z @ others.T / temperature
    sim.fill_diagonal_(float("-inf"))
    B = a.shape[0]
    target = torch.cat([torch.arange(B, 2 * B), torch.arange(B)])
    return F.cross_entropy(sim, target)


def outside_margin(real: torch.Tensor, fake: torch.Tensor, ratio: float, k: int = 3) -> torch.Tensor:
    """How far the shape-destroyed features ``fake`` come inside ``ratio``
    times the real features' mean k-th-neighbour distance (the ball radius
    precision uses) of their nearest real feature: mean relu(ratio - nearest / radius)."""
    radius = torch.cdist(real, real).topk(k + 1, dim=1, largest=False).values[:, k].mean().detach()  # 0: itself
    nearest = torch.cdist(fake, real).min(dim=1).values
    return F.relu(ratio - nearest / radius).mean()


def training_images(ds: ImageDataset, size: int, limit: int, seed: int) -> torch.Tensor:
    """Up to ``limit`` images picked with ``seed``, resized: uint8 (N, C, size, size)."""
    n = len(ds)
    idx = np.arange(n) if n <= limit else np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    out = []
    for start in range(0, len(idx), 512):
        chunk = np.asarray(ds.images[idx[start:start + 512]])
        x = torch.from_numpy(chunk).permute(0, 3, 1, 2).float() / 255
        out.append((resize(x, size) * 255).round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def shape_margin(model: Encoder, data: torch.Tensor, seed: int, num: int = 256) -> float:
    """How far the encoder keeps shape-destroyed copies from real images: for each
    kind (blur, shuffled patches, blobs) of copies of up to ``num`` of the uint8
    images ``data``, the median distance to the nearest real feature in units of
    the real features' mean 3rd-neighbour radius (the ball precision uses); the
    smallest of the three.  Below ~1 a generator of that kind would score as precise as real."""
    g = torch.Generator().manual_seed(seed + 2)  # its own stream: the training's draws are untouched
    x = data[:num].float() / 255
    was_training = model.training
    model.eval()
    with torch.no_grad():
        real = model(x)
        radius = torch.cdist(real, real).topk(4, dim=1, largest=False).values[:, 3].mean()  # 0: itself
        ratios = [float((torch.cdist(model(kind(x, g)), real).min(dim=1).values / radius).median())
                  for kind in DESTROYERS]
    model.train(was_training)
    return min(ratios)


def train_encoder(ds: ImageDataset, recipe: dict[str, Any] = RECIPE, log: bool = True) -> Encoder:
    """Train the encoder on ``ds`` (CPU, deterministic given the recipe's seed).

    The recipe's base values train a pilot; if at 64 px its `shape_margin` is under
    ``long_below``, the recipe's ``long`` values replace them and the encoder is trained
    again from the start (at 32 px the long recipe did not help; docs/small-data.md)."""
    size = input_size(ds.height, ds.width)
    data = training_images(ds, size, recipe["max_images"], recipe["seed"])
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # Convolutions this small scale badly: on a shared 2-core machine two
    # threads ran 4x slower than one.  Use about a quarter of the cores.
    torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) // 4)))
    try:
        model, loss = _fit(data, ds.channels, recipe)
        if recipe.get("long") and size == 64:
            margin = shape_margin(model, data, recipe["seed"])
            if margin < recipe["long_below"]:
                if log:
                    print(f"the pilot encoder keeps shape-destroyed copies only {margin:.2f} ball radii from real "
                          f"images (< {recipe['long_below']}): training the long recipe {recipe['long']} "
                          f"(several minutes, once)", file=sys.stderr, flush=True)
                model, loss = _fit(data, ds.channels, {**recipe, **recipe["long"]})
    finally:
        torch.set_num_threads(threads)
    if log:
        print(f"trained the dataset encoder on {len(data)} images in {time.perf_counter() - start:.1f} s "
              f"(final contrastive loss {loss:.3f})", file=sys.stderr, flush=True)
    return model.eval()


def _fit(data: torch.Tensor, channels: int, recipe: dict[str, Any]) -> tuple[Encoder, float]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe["seed"])
        model = Encoder(channels, recipe["width"], recipe["dim"], num_layers(data.shape[-1], recipe))
        g = torch.Generator().manual_seed(recipe["seed"] + 1)
        opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe["steps"])
        batch = min(recipe["batch"], len(data))
        model.train()
        hue = recipe.get("hue", 0.0)  # absent from recipes before version 4
        for _ in range(recipe["steps"]):
            pick = torch.randperm(len(data), generator=g)[:batch]
            x = data[pick].float() / 255
            views = [augment(x, g, hue), augment(x, g, hue)]
            if recipe["negatives"]:  # shape-destroyed copies: negatives of every image, kept outside the real balls
                views.append(augment(destroyed(x[: max(3, int(recipe["negatives"] * batch))], g), g, hue))
            if recipe["one_pass"]:  # one set of batch statistics: the destroyed batch cannot be told by its own
                f = model(torch.cat(views))
                fa, fb, fn = f[:batch], f[batch:2 * batch], (f[2 * batch:] if recipe["negatives"] else None)
            else:
                fa, fb = model(views[0]), model(views[1])
                fn = model(views[2]) if recipe["negatives"] else None
            loss = nt_xent(model.head(fa), model.head(fb), recipe["temperature"],
                           None if fn is None else model.head(fn))
            if fn is not None:
                loss = loss + recipe["margin"] * outside_margin(fa, fn, recipe["margin_ratio"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model, float(loss.item())


class DatasetExtractor(FeatureExtractor):
    """The `dataset` extractor: features of the encoder trained on one dataset."""

    name = "dataset"

    def __init__(self, encoder: Encoder, channels: int, size: int, weights_hash: str, version: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.channels = channels
        self.size = size
        self.dim = cast(nn.Linear, encoder.head[0]).in_features  # head starts with a Linear (see Encoder)
        # the recipe version in the id: statistics (keyed on the id) and records say which training made them
        self.id = f"dataset-v{version}-{weights_hash}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(resize(x, self.size))


def _state_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_or_train(dataset: ImageDataset | str | os.PathLike[str], device: torch.device | str = "cpu",
                  recipe: dict[str, Any] = RECIPE, log: bool = True) -> DatasetExtractor:
    """The cached encoder of ``dataset``, trained first if there is none."""
    ds = dataset if isinstance(dataset, ImageDataset) else load_dataset(dataset)
    fp = dataset_fingerprint(ds)
    recipe_key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    folder = cache_dir(ds)
    size = input_size(ds.height, ds.width)
    stem = f"encoder-{fp}-v{recipe['version']}-{recipe_key}"
    found = sorted(folder.glob(f"{stem}-*.pt"))
    state = None
    if found:
        blob = found[0].read_bytes()
        if hashlib.sha256(blob).hexdigest().startswith(found[0].stem.rsplit("-", 1)[-1]):
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        else:  # damaged: retrain
            found[0].unlink(missing_ok=True)
    if state is None:
        if log:
            print(f"training the dataset encoder for {ds.path} (once; cached in {folder})",
                  file=sys.stderr, flush=True)
        model = train_encoder(ds, recipe, log)
        state = model.state_dict()
        blob = _state_bytes(state)
        digest = hashlib.sha256(blob).hexdigest()[:12]
        remove_stale(folder, "encoder", fp)
        path = folder / f"{stem}-{digest}.pt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        found = [path]
    digest = found[0].stem.rsplit("-", 1)[-1]
    width = state["body.0.weight"].shape[0]  # the recipe's base width, or its long one (see train_encoder)
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        model = Encoder(ds.channels, width, recipe["dim"], num_layers(size, recipe))
    model.load_state_dict(state)
    return DatasetExtractor(model, ds.channels, size, digest, recipe["version"]).to(device)


def _factory(dataset: ImageDataset | str | None = None, device: torch.device | str = "cpu", log: bool = True,
             **_: Any) -> DatasetExtractor:
    if dataset is None:
        raise ValueError("the dataset extractor needs the real dataset it is trained on")
    return load_or_train(dataset, device, log=log)


register("dataset", _factory)
