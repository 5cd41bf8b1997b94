"""The copy score: how many generated images sit closer to a training image
than unseen real images do.

FID, KID and precision/recall reward a generator that reproduces its
training set: a copy is as "real" as an image can be.  On a few hundred or
thousand images a GAN can learn to do exactly that, so a low FID alone does
not say the generator generalises.  The held-out part of the dataset (`gankit
data split`) gives the yardstick: real images the generator never saw, which
are exactly as close to the training images as new images of that kind
naturally are.

In the extractor's feature space (Euclidean distance):

- for each held-out image, the distance to its nearest training image; the
  ``PERCENTILE``-th percentile of those is the threshold: closer than this
  is closer than 95 % of unseen real images come;
- for each generated image, the distance to its nearest training image;
- the copy score is the share of generated images closer than the threshold.

A held-out image with an exact twin among the training images (the same
picture stored twice: sprite sets list alternate forms with one picture,
Atari frames repeat) is not unseen: its distance is 0 and would pull the
threshold to 0, so that only exact copies counted.  Such twins (distance
below ``TWIN_RTOL`` x the features' typical length) are left out of the
threshold and of ``nn_ratio``, and counted in ``heldout_twins``.

A generator that draws new images like the held-out ones scores about
PERCENTILE / 100 (0.05) by construction; one that returns training images
scores about 1.  ``nn_ratio`` (median generated-to-training distance over the
median held-out-to-training distance) is the same comparison without a
threshold: below 1, generated images are nearer the training set than unseen
real images are.  Pure NumPy/torch on feature arrays, so the maths is tested
on its own; which images and features feed it is `gankit.metrics.holdout`'s job.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# The 5th percentile: a lower one rests on too few held-out images (10 % of a
# 1,000-image set is 100; its 1st percentile is one image), a higher one makes
# the no-copying baseline (= the percentile) too close to a real signal.
PERCENTILE = 5.0
# Exact duplicates come out ~1e-8 of the features' length apart (float rounding
# in `nearest`); any real difference between two pictures is far above 1e-5.
TWIN_RTOL = 1e-5
NEIGHBOURS = 3  # nearest training images kept per generated image (the report's panel shows them)
CHUNK = 1024  # query rows per distance block: bounded memory on 5k x 5k sets


def nearest(query: np.ndarray, reference: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(distances (n, k), indices (n, k) into ``reference``) of each query row's
    ``k`` nearest reference rows, nearest first; float64 Euclidean."""
    if len(reference) == 0:
        raise ValueError("nearest: the reference set is empty")
    k = min(k, len(reference))
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float64))
    dists, idx = [], []
    for start in range(0, len(query), CHUNK):
        q = torch.from_numpy(np.ascontiguousarray(query[start:start + CHUNK], dtype=np.float64))
        # |q - r|^2 expanded; clamp: rounding can make an exact copy's square slightly negative
        sq = (q * q).sum(1, keepdim=True) - 2 * q @ ref.T + (ref * ref).sum(1)[None]
        d, i = torch.topk(sq.clamp_min_(0.0), k, dim=1, largest=False)
        dists.append(d.sqrt().numpy())
        idx.append(i.numpy())
    if not dists:
        return np.zeros((0, k)), np.zeros((0, k), np.int64)
    return np.concatenate(dists), np.concatenate(idx).astype(np.int64)


@dataclass
class CopyScore:
    score: float  # share of generated images closer to a training image than the threshold
    threshold: float  # the PERCENTILE-th percentile of held-out-to-nearest-training distances
    nn_ratio: float  # median generated-to-training distance / median held-out-to-training distance
    percentile: float
    heldout_twins: int  # held-out images left out: an exact twin is among the training images
    distances: np.ndarray  # (n_fake, k) distances of each generated image's nearest training images
    nearest: np.ndarray  # (n_fake, k) their rows in the training features, nearest first

    def values(self) -> dict[str, float]:
        """The numbers a metrics record carries."""
        return {"memorization": self.score, "memorization_threshold": self.threshold,
                "memorization_nn_ratio": self.nn_ratio}


def copy_score(fake: np.ndarray, train: np.ndarray, heldout: np.ndarray, percentile: float = PERCENTILE,
               k: int = NEIGHBOURS) -> CopyScore:
    """The copy score of generated features ``fake`` against the ``train``
    features, with the threshold from the ``heldout`` features (all (N, D))."""
    if len(fake) == 0 or len(heldout) == 0:
        raise ValueError("copy_score needs generated and held-out features")
    held_d = nearest(heldout, train, 1)[0][:, 0]
    scale = float(np.sqrt(np.mean(np.square(train, dtype=np.float64)) * train.shape[1]))  # RMS feature length
    twin = held_d <= TWIN_RTOL * scale
    if twin.all():  # nothing unseen is left: the threshold is 0 and holdout.describe says why
        twin[:] = False
        held_d = np.zeros_like(held_d)
    unseen = held_d[~twin]
    threshold = float(np.percentile(unseen, percentile))
    fake_d, fake_i = nearest(fake, train, k)
    score = float(np.mean(fake_d[:, 0] < threshold))
    typical = float(np.median(unseen))
    ratio = float(np.median(fake_d[:, 0]) / typical) if typical > 0 else float("nan")
    return CopyScore(score, threshold, ratio, float(percentile), int(twin.sum()), fake_d, fake_i)
