"""Quality measured while training: `TrainingEvaluator`, called by the loop.

The training loop asks ``due(kimg)`` after every step and, when it says yes,
calls ``evaluate(G, kimg)`` and writes the returned numbers to metrics.jsonl
(the monitor plots them; the loop keeps ``checkpoints/best.pt`` by FID).

Evaluation must not eat the training budget: an evaluation slot (every
``--eval-every-kimg``) is skipped when the evaluations so far plus one more
(estimated by the dearest one so far) would take more than 10 % of the training
time so far.  The one-off setup (training the dataset encoder, extracting the
real features; both cached for later runs) is reported as
``eval_setup_seconds`` and left out of that budget, because the next run on
the same dataset does not pay it.  Each record carries ``eval_seconds`` and
``eval_fraction`` (evaluation / training time) so the cost stays visible.

Generated images come from latents drawn with a fixed seed, the same at every
evaluation, so successive numbers differ because the generator changed, not
because other latents were drawn.

Each record also names its ``score`` (lower is better: FID when computed, else
KID): the number by which the loop keeps ``checkpoints/best.pt``, so `gankit
sample RUN` draws from the run's best state, not from wherever the budget
happened to stop it.

A conditional generator draws its classes in the real data's proportions;
with ``agreement`` among the metrics (a labelled dataset only) each record
also carries the class agreement and its ceiling (see `agreement`); the
probe is fitted once, during setup.

With ``memorization`` among the metrics (a dataset split by `gankit data
split`; refused before training starts otherwise) each record carries the
copy score (`gankit.metrics.memorization`), the health monitor watches it
climb, and ``samples/neighbours.png`` is redrawn for the report.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gankit.data.dataset import ImageDataset
from gankit.errors import UsageError
from gankit.metrics import agreement as agree
from gankit.metrics import holdout
from gankit.metrics.evaluate import class_probe, compute_metrics, parse_metrics
from gankit.metrics.image_sets import DatasetImages, GeneratorImages, features_of, num_classes
from gankit.metrics.registry import FeatureExtractor, get_extractor
from gankit.metrics.stats_cache import cached_real_features

MAX_FRACTION = 0.10
LATENT_SEED = 2024
BATCH = 128
SCORE_KEYS = ("fid", "kid_mean")  # what ranks checkpoints, first found wins; lower is better


class TrainingEvaluator:
    def __init__(self, config: Any, dataset: ImageDataset, device: torch.device | str, run_dir: str | Path,
                 max_fraction: float = MAX_FRACTION) -> None:
        self.metrics = parse_metrics(config.eval_metrics, "--eval-metrics")
        self.every = float(config.eval_every_kimg)
        self.num = int(config.eval_num)
        self.extractor_name = config.extractor
        self.dataset = dataset
        self.device = torch.device(device)
        self.run_dir = Path(run_dir)
        self.max_fraction = max_fraction
        self.next_kimg = self.every
        self.started = time.perf_counter()
        self.eval_seconds = 0.0  # recurring evaluation time (the budgeted part)
        self.setup_seconds = 0.0
        self.max_cost = 0.0  # the dearest evaluation so far: the estimate of the next one
        self.evaluations = 0
        self.last_kimg: float | None = None  # when the last evaluation ran
        self.skipped = 0
        self._extractor: FeatureExtractor | None = None
        self._real: np.ndarray | None = None
        self._probe: tuple[FeatureExtractor, agree.Probe] | None = None
        self._parts: holdout.PartFeatures | None = None  # the split's features, for memorization
        # checked now, not at the first evaluation: a run must not train for an hour and then refuse
        self.split = holdout.require_split(dataset, "--eval-metrics") if "memorization" in self.metrics else None
        if "agreement" in self.metrics:
            if dataset.labels is None:
                raise UsageError(f"--eval-metrics: agreement needs a labelled dataset; {dataset.path} has no classes")
            if getattr(config, "conditional", True) is False:
                raise UsageError("--eval-metrics: agreement needs a conditional run "
                                 "(it was started with --no-conditional)")
        if self.extractor_name == "inception":
            from gankit.metrics.inception import resolve_weights

            resolve_weights()  # fail before training starts, with where to put the file

    def training_seconds(self) -> float:
        return max(time.perf_counter() - self.started - self.eval_seconds - self.setup_seconds, 1e-9)

    def due(self, kimg: float) -> bool:
        """True when an evaluation slot has been reached and the budget allows it."""
        if self.every <= 0 or kimg < self.next_kimg:
            return False
        while self.next_kimg <= kimg:
            self.next_kimg += self.every
        if self.evaluations and self.eval_seconds + self.max_cost > self.max_fraction * self.training_seconds():
            self.skipped += 1
            return False
        return True

    def _setup(self, resolution: tuple[int, int]) -> None:
        extractor = get_extractor(self.extractor_name, dataset=self.dataset, device=self.device)
        self._extractor = extractor
        real = DatasetImages(self.dataset, self.num, resolution)
        self._real, _ = cached_real_features(self.dataset, extractor.id, resolution, real.count, 0,
                                             lambda: features_of(extractor, real, BATCH))
        if self.split is not None:
            self._parts = holdout.part_features(self.dataset, self.split, extractor, resolution, self.num, BATCH)
        if "agreement" in self.metrics:
            ext = extractor if extractor.name == "dataset" else get_extractor(
                "dataset", dataset=self.dataset, device=self.device)
            self._probe = ext, class_probe(self.dataset, ext, resolution, BATCH)[0]

    def evaluate(self, generator: torch.nn.Module, kimg: float) -> dict[str, Any]:
        """The chosen metrics for ``generator`` now; keys among fid, kid_mean,
        kid_std, precision, recall, density, coverage, memorization,
        memorization_threshold, memorization_nn_ratio (agreement and
        agreement_ceiling for a conditional generator), plus timing fields."""
        start = time.perf_counter()
        self.last_kimg = kimg
        conditional = num_classes(generator) == self.dataset.num_classes > 0
        fake = GeneratorImages(generator, self.num, seed=LATENT_SEED,
                               classes=self.dataset.classes if conditional else [],
                               class_weights=self.dataset.class_counts or None)
        record: dict[str, Any] = {}
        if self._extractor is None:
            self._setup(fake.resolution)
            self.setup_seconds = time.perf_counter() - start
            record["eval_setup_seconds"] = round(self.setup_seconds, 3)
        begin = time.perf_counter()
        assert self._extractor is not None and self._real is not None
        fake_feats = features_of(self._extractor, fake, BATCH)
        record.update(compute_metrics(self._real, fake_feats, self.metrics))
        if self._probe is not None and conditional and fake.labels is not None:
            ext, probe = self._probe
            feats = fake_feats if ext is self._extractor else features_of(ext, fake, BATCH)
            scores = agree.agreement(probe, feats, fake.labels)
            record.update({k: scores[k] for k in ("agreement", "agreement_ceiling")})
        if self._parts is not None:
            from gankit.monitor.neighbours import panel_path

            values, details = holdout.memorization(self._parts, fake_feats)
            record.update(values)
            holdout.write_neighbours(panel_path(self.run_dir), self.dataset, fake, details)
        cost = time.perf_counter() - begin
        self.eval_seconds += cost
        self.max_cost = max(self.max_cost, cost)
        self.evaluations += 1
        record["eval_seconds"] = round(time.perf_counter() - start, 3)
        record["eval_fraction"] = round(self.eval_seconds / self.training_seconds(), 4)
        record["eval_skipped"] = self.skipped
        record["extractor"] = self._extractor.name
        record["extractor_id"] = self._extractor.id  # name + version + weights: scores compare only within one id
        for key in SCORE_KEYS:
            if key in record:
                record["score"], record["score_metric"] = record[key], key
                break
        return record
