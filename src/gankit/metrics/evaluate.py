"""Compare two image sets: the one place where images become metrics.

Both sides go through the same steps: uint8 images at one resolution (the
generated one; real images are resized to it the way training resized them),
the extractor, then FID / KID / precision-recall / density-coverage on the
float64 features.  Generated images are rounded to uint8 first, exactly as
if they had been saved as PNGs, so ``gankit eval RUN`` and ``gankit eval
--fake DIR`` on that run's saved samples give the same numbers.

Real features come from the stats cache (see `stats_cache`), so only the
generated side costs time after the first evaluation on a dataset.  The real
side is the whole dataset, or with ``real_part`` one part of its split
(`holdout.real_part`): training images or held-out ones.

When both sides carry class labels (a labelled dataset, and a conditional
generator or a labelled --fake dataset), each class is also scored on its own
(`per_class`) and, with ``agreement`` among the metrics, a linear probe says
whether the generated images show their requested class (`agreement`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from gankit.data.dataset import ImageDataset, fingerprint
from gankit.errors import UsageError
from gankit.metrics import agreement as agree
from gankit.metrics import per_class, small_sets
from gankit.metrics.fid import fid
from gankit.metrics.holdout import PART_WORDS, memorization_of
from gankit.metrics.holdout import real_part as choose_real
from gankit.metrics.image_sets import DatasetImages, ImageSet, features_of
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
    "agreement": ("agreement", "agreement_ceiling"),  # labelled data + conditional generator only
    # a split dataset only (gankit data split); see gankit.metrics.memorization
    "memorization": ("memorization", "memorization_threshold", "memorization_nn_ratio"),
}
DEFAULT_METRICS = "fid,kid,pr,dc,agreement"  # agreement is skipped where there are no classes
MIN_IMAGES = 2 * (DEFAULT_K + 2)  # below this k-NN radii and KID subsets are meaningless


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
    real_part: str = "all"  # which real images: all, or the split's train / heldout part (--real-part)
    real_split: dict[str, Any] | None = None  # for a part: the split's description and digest, the part's size

    def to_dict(self) -> dict[str, Any]:
        """The record; without classes it has exactly the keys it had before classes existed."""
        out = asdict(self)
        for key in ("per_class", "agreement", "memorization", "real_split"):
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
             probe_extractor: FeatureExtractor | None = None, require_classes: bool = False,
             real_part: str = "all") -> EvalResult:
    """Compare ``fake`` with up to ``num_real`` images of the dataset ``real``:
    of all of it, or (``real_part`` "train" / "heldout") of one part of its
    split (`gankit data split`; a `UsageError` without one).

    With labels on both sides, per-class FID/KID are added; ``agreement``
    (among ``metrics``) needs ``probe_extractor`` (the `dataset` extractor;
    ``extractor`` itself when that is one).  Without labels agreement is
    skipped, or a `UsageError` when ``require_classes`` (it was asked for)."""
    start = time.perf_counter()
    count = min(num_real or fake.count, len(real))
    side = choose_real(real, real_part, count, fake.resolution, seed, extractor.id)
    real_images = side.images
    for what, n in (("generated/fake", fake.count), (f"{PART_WORDS.get(real_part, 'real')} real", real_images.count)):
        if n < MIN_IMAGES:
            more = "--holdout in `gankit data split`" if real_part == "heldout" and n < count else "--num"
            raise UsageError(f"--num: {n} {what} images are too few to evaluate (need at least {MIN_IMAGES}; "
                             f"raise {more} or give more images)")
    fake_labels, why = class_labels(real, fake)
    if fake_labels is None and require_classes and "agreement" in metrics:
        raise UsageError(f"--metrics: agreement needs class labels on both sides: {why}")
    real_feats, cached = cached_real_features(real, side.cache_id, fake.resolution, real_images.count, seed,
                                              lambda: features_of(extractor, real_images, batch))
    fake_feats = features_of(extractor, fake, batch)
    values = compute_metrics(real_feats, fake_feats, metrics, seed=seed)
    memo = None
    if "memorization" in metrics:  # nearest training images vs the held-out split (gankit.metrics.holdout)
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
        real_part=real_part, real_split=side.record(),
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
