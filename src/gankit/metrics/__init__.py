"""Image-quality metrics: FID, KID, precision/recall, density/coverage.

Metrics compare feature clouds, so they are split from the networks that make
the features: `registry` (the `FeatureExtractor` base class and the names
``dataset`` and ``inception``), `fid`, `kid`, `prdc` (pure float64 NumPy),
`evaluate` (image sets -> metrics), `stats_cache` (real features kept beside
the dataset), `per_class` (intra-class FID/KID of conditional generators),
`agreement` (the linear probe that checks generated images show their
requested class), `training` (`TrainingEvaluator`, used by the training loop)
and `cli` (`gankit eval`).

    from gankit.metrics import get_extractor, compute_metrics
    ext = get_extractor("dataset", dataset="data/breakout")
    scores = compute_metrics(ext(real_uint8_nhwc), ext(fake_tensor), ["fid", "kid", "pr", "dc"])
"""
from gankit.metrics.evaluate import METRIC_KEYS, compute_metrics, evaluate, parse_metrics
from gankit.metrics.fid import fid, frechet_distance, gaussian_stats
from gankit.metrics.kid import kid
from gankit.metrics.prdc import prdc
from gankit.metrics.registry import FeatureExtractor, get_extractor, names, register

__all__ = ["METRIC_KEYS", "FeatureExtractor", "compute_metrics", "evaluate", "fid", "frechet_distance",
           "gaussian_stats", "get_extractor", "kid", "names", "parse_metrics", "prdc", "register"]
