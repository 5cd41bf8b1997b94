"""Images that keep a real image's colours and lose its shape: the negatives
the `dataset` encoder is trained to keep away from real images.

Why: a contrastive encoder trained only on augmented views of real images
learns whatever tells one image from another most cheaply, and on sprites or
cards that is the colour histogram.  Its features then rank a generator that
paints blobs in the right colours as precise as real pictures (issue 21).
Showing it, at every step, copies of the batch whose colours are kept exactly
and whose shapes are destroyed (a heavy blur, shuffled patches, the pixels
re-placed as a blob) and asking it to tell them from real images forces the
features to carry shape.

Every function takes and returns float (B, C, S, S) images in [0, 1] and
draws its randomness from the generator it is given, so training stays
deterministic.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def blur(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A Gaussian blur with one sigma per call, between 1/24 and 1/10 of the side (edges repeated)."""
    S, C = x.shape[-1], x.shape[1]
    sigma = S * (1 / 24 + (1 / 10 - 1 / 24) * float(torch.rand(1, generator=g)))
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    out = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)


def shuffle_patches(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image's tiles in a random order; the tile side (S/16, S/8 or S/4) is drawn per call."""
    B, C, S, _ = x.shape
    p = S // (4, 8, 16)[int(torch.randint(0, 3, (1,), generator=g))]
    n = S // p
    tiles = x.reshape(B, C, n, p, n, p).permute(0, 2, 4, 1, 3, 5).reshape(B, n * n, C, p, p)
    order = torch.rand(B, n * n, generator=g).argsort(dim=1)
    tiles = tiles.gather(1, order[:, :, None, None, None].expand_as(tiles))
    return tiles.reshape(B, n, n, C, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, C, S, S)


def colour_blobs(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image's own pixels re-placed by distance from a random centre (an
    ellipse of random aspect): the most common colour (8 levels a channel)
    outermost, the other colours in rings, in order of frequency for half the
    images and in a random order for the rest.  The pixel values are kept exactly."""
    B, C, S, _ = x.shape
    flat = x.reshape(B, C, S * S)
    levels = (flat * 7.999).long().clamp(0, 7)
    bins = sum(levels[:, c] * 8 ** c for c in range(C))  # (B, S*S) colour bin of each pixel
    counts = torch.zeros(B, 8 ** C).scatter_add_(1, bins, torch.ones_like(bins, dtype=torch.float32))
    background = counts.argmax(dim=1, keepdim=True)
    score = counts / (S * S)  # common colours nearest the centre ...
    shuffled = torch.rand(B, 1, generator=g) < 0.5
    score = torch.where(shuffled, torch.rand(B, 8 ** C, generator=g), score)  # ... or in a random order
    key = -score.gather(1, bins) + 2.0 * (bins == background) + bins / (8 ** C * 1e3)  # one colour stays together
    pixel_order = key.argsort(dim=1)
    centre = 0.3 + 0.4 * torch.rand(B, 2, 1, generator=g)
    aspect = 0.6 + 0.8 * torch.rand(B, 1, generator=g)
    ys, xs = torch.meshgrid(torch.arange(S) / S, torch.arange(S) / S, indexing="ij")
    dist = (ys.reshape(1, -1) - centre[:, 0]) ** 2 + ((xs.reshape(1, -1) - centre[:, 1]) * aspect) ** 2
    place_order = dist.argsort(dim=1)  # the k-th nearest place gets the k-th pixel of pixel_order
    out = torch.empty_like(flat)
    out.scatter_(2, place_order[:, None].expand(B, C, -1), flat.gather(2, pixel_order[:, None].expand(B, C, -1)))
    return out.reshape(B, C, S, S)


DESTROYERS = (blur, shuffle_patches, colour_blobs)


def destroyed(x: torch.Tensor, g: torch.Generator, shares: list[float] | None = None) -> torch.Tensor:
    """A shape-destroyed copy of each image: blur, shuffled patches and blobs
    in proportion to ``shares`` (equal when None)."""
    out = torch.empty_like(x)
    w = torch.tensor(shares or [1.0] * len(DESTROYERS))
    bounds = (torch.cumsum(w, 0) / w.sum() * len(x)).round().long()
    kind = torch.bucketize(torch.arange(len(x)), bounds, right=True)
    for i, fn in enumerate(DESTROYERS):
        pick = kind == i
        if pick.any():
            out[pick] = fn(x[pick], g)
    return out
