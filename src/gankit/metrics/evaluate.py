"""Compare two image sets: the one place where images become metrics.

Both sides go through the same steps: uint8 images at one resolution (the
generated one; real images are resized to it the way training resized them),
the extractor, then FID / KID / precision-recall / density-coverage on the
float64 features.  Generated images are rounded to uint8 first, exactly as
if they had been saved as PNGs, so ``gankit eval RUN`` and ``gankit eval
--fake DIR`` on that run's saved samples give the same numbers.

Real features come from the stats cache (see `stats_cache`), so only the
generated side costs time after the first evaluation on a dataset.

When both sides carry class labels (a labelled dataset, and a conditional
generator or a labelled --fake dataset), each class is also scored on its own
(`per_class`) and, with ``agreement`` among the metrics, a linear probe says
whether the generated images show their requested class (`agreement`).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from gankit.data.dataset import ImageDataset, fingerprint
from gankit.errors import UsageError
from gankit.metrics import agreement as agree
from gankit.metrics import per_class, small_sets
from gankit.metrics.fid import fid
from gankit.metrics.kid import kid, subset_size_for
from gankit.metrics.prdc import DEFAULT_K, prdc
from gankit.metrics.registry import FeatureExtractor
from gankit.metrics.stats_cache import cached_real_features
from gankit.models.common import latent_size

# --metrics names -> the keys they produce
METRIC_KEYS = {
    "fid": ("fid",),
    "kid": ("kid_mean", "kid_std"),
    "pr": ("precision", "recall"),
    "dc": ("density", "coverage"),
    "agreement": ("agreement", "agreement_ceiling"),  # labelled data + conditional generator only
    # a split dataset only (gankit data split); see gankit.metrics.memorization
    "memorization": ("memorization", "memorization_threshold", "memorization_nn_ratio"),
}
DEFAULT_METRICS = "fid,kid,pr,dc,agreement"  # agreement is skipped where there are no classes
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
    labels: np.ndarray | None  # (count,) class index of each image in batch order, or None
    classes: list[str]         # the names those indices refer to ([] when unlabelled)

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
        self.labels = None if self.ds.labels is None else np.asarray(self.ds.labels[self.indices])
        self.classes = self.ds.classes

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
        self.labels: np.ndarray | None = None  # image files carry no class
        self.classes: list[str] = []
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


def num_classes(generator: torch.nn.Module) -> int:
    """The generator's number of classes (0: unconditional; older models lack the attribute)."""
    return int(getattr(generator, "num_classes", 0) or 0)


@dataclass
class GeneratorImages:
    """``count`` images of a generator from latents drawn with ``seed``,
    rounded to uint8 as if saved.  The generator's train/eval mode is restored.

    A conditional generator (``num_classes`` > 0) draws class ``labels[i]``
    for image i; None: as many of each class as ``class_weights`` (the real
    data's class counts, so the overall mix matches the real one) allows,
    equal numbers when that is None.  ``classes`` names the indices."""

    generator: torch.nn.Module
    count: int
    seed: int = 0
    resolution: tuple[int, int] = (0, 0)
    labels: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    class_weights: list[int] | None = None

    def __post_init__(self) -> None:
        k = num_classes(self.generator)
        if k and self.labels is None:
            weights = self.class_weights if self.class_weights and len(self.class_weights) == k else [1] * k
            self.labels = per_class.class_plan(self.count, weights)
        if not k:
            self.labels, self.classes = None, []
        elif not self.classes:
            self.classes = [str(i) for i in range(k)]
        first = self._run(torch.zeros(1, latent_size(self.generator)),
                          None if self.labels is None else self.labels[:1])
        self.resolution = (int(first.shape[-2]), int(first.shape[-1]))

    def _run(self, z: torch.Tensor, y: np.ndarray | None) -> torch.Tensor:
        G = self.generator
        was_training = G.training
        G.eval()
        device = next(G.parameters()).device
        try:
            with torch.no_grad():
                if y is None:
                    out = G(z.to(device))
                else:
                    out = G(z.to(device), torch.as_tensor(y, dtype=torch.int64, device=device))
                x = torch.nan_to_num(out.float(), nan=0.0)
        finally:
            G.train(was_training)
        return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        z = torch.randn(self.count, latent_size(self.generator), generator=torch.Generator().manual_seed(self.seed))
        for start in range(0, self.count, batch):
            y = None if self.labels is None else self.labels[start:start + batch]
            yield self._run(z[start:start + batch], y)


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
    per_class: list[dict[str, Any]] | None = None  # one row per class (see per_class.per_class_metrics)
    agreement: dict[str, Any] | None = None  # the probe's verdict per class and its ceiling (see agreement)
    memorization: dict[str, Any] | None = None  # threshold, sizes and the panel's rows (see holdout.memorization)
    headline: dict[str, Any] | None = None  # the number to read first (KID on small sets; see small_sets)
    warnings: list[str] = field(default_factory=list)  # one line per metric a set is too small for

    def to_dict(self) -> dict[str, Any]:
        """The record; without classes it has exactly the keys it had before classes existed."""
        out = asdict(self)
        for key in ("per_class", "agreement", "memorization"):
            if out[key] is None:
                del out[key]
        return out


def class_labels(real: ImageDataset, fake: ImageSet) -> tuple[np.ndarray | None, str]:
    """The fake side's labels as indices into the real dataset's classes, or
    (None, why not): the real data is unlabelled, the fake side draws no
    classes, or their classes differ."""
    if real.labels is None:
        return None, (f"the real dataset {real.path} has no class labels (label it with `gankit data folder SRC "
                      "--labels subdirs`, `gankit data fetch --label-column` or `gankit data atari --game A,B`)")
    if fake.labels is None:
        return None, "the generated/fake images have no classes (an unconditional generator or a folder of images)"
    missing = [c for c in fake.classes if c not in real.classes]
    if missing and len(fake.classes) == len(real.classes) and all(c.isdigit() for c in fake.classes):
        return np.asarray(fake.labels), ""  # a generator that knows its classes only by index: the same indices
    if missing:
        return None, (f"the generator/fake classes {', '.join(missing)} are not classes of {real.path} "
                      f"({', '.join(real.classes)})")
    lookup = np.array([real.classes.index(c) for c in fake.classes], np.int64)
    return lookup[np.asarray(fake.labels)], ""


def evaluate(real: ImageDataset, fake: ImageSet, metrics: list[str], extractor: FeatureExtractor,
             num_real: int | None = None, batch: int = 64, seed: int = 0,
             probe_extractor: FeatureExtractor | None = None, require_classes: bool = False) -> EvalResult:
    """Compare ``fake`` with up to ``num_real`` images of the dataset ``real``.

    With labels on both sides, per-class FID/KID are added; ``agreement``
    (among ``metrics``) needs ``probe_extractor`` (the `dataset` extractor;
    ``extractor`` itself when that is one).  Without labels agreement is
    skipped, or a `UsageError` when ``require_classes`` (it was asked for)."""
    start = time.perf_counter()
    count = min(num_real or fake.count, len(real))
    for what, n in (("generated/fake", fake.count), ("real", count)):
        if n < MIN_IMAGES:
            raise UsageError(f"--num: {n} {what} images are too few to evaluate (need at least {MIN_IMAGES}; "
                             "raise --num or give more images)")
    fake_labels, why = class_labels(real, fake)
    if fake_labels is None and require_classes and "agreement" in metrics:
        raise UsageError(f"--metrics: agreement needs class labels on both sides: {why}")
    real_images = DatasetImages(real, count, fake.resolution, seed=seed)
    real_feats, cached = cached_real_features(real, extractor.id, fake.resolution, real_images.count, seed,
                                              lambda: features_of(extractor, real_images, batch))
    fake_feats = features_of(extractor, fake, batch)
    values = compute_metrics(real_feats, fake_feats, metrics, seed=seed)
    memo = None
    if "memorization" in metrics:  # nearest training images vs the held-out split (gankit.metrics.holdout)
        from gankit.metrics.holdout import memorization_of

        memo_values, memo = memorization_of(real, extractor, fake.resolution, fake_feats, count, batch)
        values.update(memo_values)
    rows = verdict = None
    if fake_labels is not None:
        assert real_images.labels is not None
        rows = per_class.per_class_metrics(real_feats, real_images.labels, fake_feats, fake_labels, real.classes,
                                           metrics, seed=seed)
        values.update(per_class.summary(rows))
        if "agreement" in metrics:
            probe_ext = probe_extractor or extractor
            if probe_ext.name != "dataset":
                raise ValueError("agreement needs the dataset extractor's features (pass probe_extractor)")
            verdict = _agreement(real, fake, fake_labels, probe_ext, fake_feats if probe_ext is extractor else None,
                                 batch)
            values.update({k: verdict[k] for k in METRIC_KEYS["agreement"]})
    return EvalResult(
        metrics=values, extractor=extractor.name, extractor_id=extractor.id, feature_dim=int(real_feats.shape[1]),
        num_real=int(len(real_feats)), num_fake=int(len(fake_feats)), resolution=list(fake.resolution),
        real_from_cache=cached, seconds=round(time.perf_counter() - start, 3),
        kid_subset_size=subset_size_for(min(len(real_feats), len(fake_feats))) if "kid" in metrics else None,
        real_fingerprint=fingerprint(real), per_class=rows, agreement=verdict, memorization=memo,
        headline=small_sets.headline(values, len(real_feats), len(fake_feats)),
        warnings=small_sets.size_warnings(metrics, len(real_feats), len(fake_feats)),
    )


def class_probe(real: ImageDataset, extractor: FeatureExtractor, resolution: tuple[int, int],
                batch: int = 64) -> tuple[agree.Probe, bool]:
    """The cached linear probe of ``real`` on ``extractor``'s features at ``resolution``."""
    def real_features(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        images = DatasetImages(real, count, resolution, seed=seed)
        feats, _ = cached_real_features(real, extractor.id, resolution, images.count, seed,
                                        lambda: features_of(extractor, images, batch))
        assert images.labels is not None
        return feats, images.labels

    return agree.cached_probe(real, extractor.id, resolution, real_features)


def _agreement(real: ImageDataset, fake: ImageSet, fake_labels: np.ndarray, extractor: FeatureExtractor,
               fake_feats: np.ndarray | None, batch: int) -> dict[str, Any]:
    probe, cached = class_probe(real, extractor, fake.resolution, batch)
    feats = fake_feats if fake_feats is not None else features_of(extractor, fake, batch)
    return {**agree.agreement(probe, feats, fake_labels), "probe_from_cache": cached,
            "probe_train": probe.num_train, "probe_holdout": probe.num_holdout}
