"""Compare two image sets: the one place where images become metrics.

Both sides go through the same steps: uint8 images at one resolution (the
generated one; real images are resized to it the way training resized them),
the extractor, then FID / KID / precision-recall / density-coverage on the
float64 features.  Generated images are rounded to uint8 first, exactly as
if they had been saved as PNGs, so ``gankit eval RUN`` and ``gankit eval
--fake DIR`` on that run's saved samples give the same numbers.

Real features come from the stats cache (see `stats_cache`), so only the
generated side costs time after the first evaluation on a dataset.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.dataset import ImageDataset, fingerprint
from gankit.errors import UsageError
from gankit.metrics.fid import fid
from gankit.metrics.kid import kid, subset_size_for
from gankit.metrics.prdc import DEFAULT_K, prdc
from gankit.metrics.registry import FeatureExtractor
from gankit.metrics.stats_cache import cached_real_features

# --metrics names -> the keys they produce
METRIC_KEYS = {
    "fid": ("fid",),
    "kid": ("kid_mean", "kid_std"),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
}
MIN_IMAGES = 2 * (DEFAULT_K + 2)  # below this k-NN radii and KID subsets are meaningless
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def parse_metrics(text: str, flag: str = "--metrics") -> list[str]:
    """'fid,kid,pr,dc' -> ['fid', 'kid', 'pr', 'dc'] (order kept, duplicates dropped)."""
    names: list[str] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part not in METRIC_KEYS:
            raise UsageError(f"{flag}: unknown metric {part!r}; choose from {', '.join(METRIC_KEYS)}")
        if part not in names:
            names.append(part)
    if not names:
        raise UsageError(f"{flag}: name at least one metric ({', '.join(METRIC_KEYS)})")
    return names


def compute_metrics(real: np.ndarray, fake: np.ndarray, metrics: list[str], seed: int = 0) -> dict[str, float]:
    """The requested metrics between two (N, D) feature sets."""
    out: dict[str, float] = {}
    if "fid" in metrics:
        out["fid"] = fid(real, fake)
    if "kid" in metrics:
        out["kid_mean"], out["kid_std"] = kid(real, fake, seed=seed)
    if "pr" in metrics or "dc" in metrics:
        scores = prdc(real, fake)
        for group in ("pr", "dc"):
            if group in metrics:
                out.update({k: scores[k] for k in METRIC_KEYS[group]})
    return out


# ------------------------------------------------------------------ image sets
class ImageSet(Protocol):
    """uint8 (B, C, H, W) batches of one resolution."""

    count: int
    resolution: tuple[int, int]

    def batches(self, batch: int) -> Iterator[torch.Tensor]: ...


def resize_u8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (B, C, H, W) -> (B, C, *size): area when shrinking, bilinear
    otherwise, as training's batch loader does."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    f = x.float()
    shrinking = f.shape[-2] >= size[0] and f.shape[-1] >= size[1]
    f = F.interpolate(f, size=size, mode="area") if shrinking else F.interpolate(
        f, size=size, mode="bilinear", align_corners=False)
    return f.round().clamp(0, 255).to(torch.uint8)


@dataclass
class DatasetImages:
    """``count`` images of a dataset picked with ``seed`` (read in index order)."""

    ds: ImageDataset
    count: int
    resolution: tuple[int, int] = (0, 0)
    seed: int = 0

    def __post_init__(self) -> None:
        self.count = min(self.count, len(self.ds))
        if self.resolution == (0, 0):
            self.resolution = (self.ds.height, self.ds.width)
        n = len(self.ds)
        rng = np.random.default_rng(self.seed)
        self.indices = np.arange(n) if self.count == n else np.sort(rng.choice(n, self.count, replace=False))

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.count, batch):
            chunk = np.ascontiguousarray(self.ds.images[self.indices[start:start + batch]])
            yield resize_u8(torch.from_numpy(chunk).permute(0, 3, 1, 2), self.resolution)


@dataclass
class FolderImages:
    """The first ``count`` image files (sorted by path) of a folder; every
    image is resized to the first one's size."""

    path: Path
    count: int
    channels: int = 3
    files: list[Path] = field(default_factory=list)
    resolution: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.is_dir():
            raise UsageError(f"--fake: no such folder {self.path}")
        found = sorted(p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise UsageError(f"--fake: no images ({', '.join(IMAGE_SUFFIXES)}) in {self.path}")
        self.files = found[: self.count]
        self.count = len(self.files)
        first = self._load(self.files[0])
        self.resolution = (first.shape[0], first.shape[1])

    def _load(self, path: Path) -> np.ndarray:
        from gankit.data.imageops import decode_image, image_to_array, normalise_mode

        try:
            img = normalise_mode(decode_image(path.read_bytes()), self.channels == 1, (0, 0, 0))
        except Exception as err:  # PIL raises many kinds; the message names the file
            raise UsageError(f"--fake: cannot read {path}: {err}") from None
        return image_to_array(img).copy()  # writable, as torch.from_numpy wants

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, self.count, batch):
            arrs = [torch.from_numpy(self._load(p)).permute(2, 0, 1)[None] for p in self.files[start:start + batch]]
            yield torch.cat([resize_u8(a, self.resolution) for a in arrs])


@dataclass
class GeneratorImages:
    """``count`` images of a generator from latents drawn with ``seed``,
    rounded to uint8 as if saved.  The generator's train/eval mode is restored."""

    generator: torch.nn.Module
    count: int
    seed: int = 0
    resolution: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        first = self._run(torch.zeros(1, self.generator.latent))
        self.resolution = (int(first.shape[-2]), int(first.shape[-1]))

    def _run(self, z: torch.Tensor) -> torch.Tensor:
        G = self.generator
        was_training = G.training
        G.eval()
        try:
            with torch.no_grad():
                x = torch.nan_to_num(G(z.to(next(G.parameters()).device)).float(), nan=0.0)
        finally:
            G.train(was_training)
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        z = torch.randn(self.count, self.generator.latent, generator=torch.Generator().manual_seed(self.seed))
        for start in range(0, self.count, batch):
            yield self._run(z[start:start + batch])


def features_of(extractor: FeatureExtractor, images: ImageSet, batch: int) -> np.ndarray:
    return extractor.features(images.batches(batch))


# ------------------------------------------------------------------ results
@dataclass
class EvalResult:
    metrics: dict[str, float]
    extractor: str
    extractor_id: str
    feature_dim: int
    num_real: int
    num_fake: int
    resolution: list[int]
    real_from_cache: bool
    seconds: float
    kid_subset_size: int | None = None
    real_fingerprint: dict[str, Any] | None = None  # which real data the score is against (count, shape, manifest hash)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(real: ImageDataset, fake: ImageSet, metrics: list[str], extractor: FeatureExtractor,
             num_real: int | None = None, batch: int = 64, seed: int = 0) -> EvalResult:
    """Compare ``fake`` with up to ``num_real`` images of the dataset ``real``."""
    start = time.perf_counter()
    count = min(num_real or fake.count, len(real))
    for what, n in (("generated/fake", fake.count), ("real", count)):
        if n < MIN_IMAGES:
            raise UsageError(f"--num: {n} {what} images are too few to evaluate (need at least {MIN_IMAGES}; "
                             "raise --num or give more images)")
    real_images = DatasetImages(real, count, fake.resolution, seed=seed)
    real_feats, cached = cached_real_features(real, extractor.id, fake.resolution, real_images.count, seed,
                                              lambda: features_of(extractor, real_images, batch))
    fake_feats = features_of(extractor, fake, batch)
    values = compute_metrics(real_feats, fake_feats, metrics, seed=seed)
    return EvalResult(
        metrics=values, extractor=extractor.name, extractor_id=extractor.id, feature_dim=int(real_feats.shape[1]),
        num_real=int(len(real_feats)), num_fake=int(len(fake_feats)), resolution=list(fake.resolution),
        real_from_cache=cached, seconds=round(time.perf_counter() - start, 3),
        kid_subset_size=subset_size_for(min(len(real_feats), len(fake_feats))) if "kid" in metrics else None,
        real_fingerprint=fingerprint(real),
    )
