"""Per-class ("intra-class") FID and KID of a conditional generator.

The overall FID of a conditional generator hides a generator that draws the
right mix of images under the wrong labels.  Each class k is therefore also
scored on its own: the generated images requested as class k against the
real images of class k.

A per-class FID means little without a scale, so each row carries a "wrong
class" reference: the same generated images of class k against the real
images of the *nearest other class* (the class whose real features have the
closest mean to class k's).  That is the hardest wrong answer, so a
generator that draws its classes well has each class's FID far below it,
and one that mixes classes up does not.  Only one such FID per class is
computed, so the cost stays linear in the number of classes.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gankit.metrics.fid import fid
from gankit.metrics.kid import kid

MIN_PER_CLASS = 10  # fewer images of a class on either side: no per-class figure (the estimates are noise)


def class_plan(count: int, weights: Sequence[float]) -> np.ndarray:
    """``count`` class indices in proportion to ``weights`` (largest remainder,
    ties to the lower class), sorted by class: exact and deterministic."""
    w = np.asarray(weights, np.float64)
    if len(w) == 0 or w.sum() <= 0:
        w = np.ones(max(len(w), 1))
    share = count * w / w.sum()
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: count - int(counts.sum())]] += 1
    return np.repeat(np.arange(len(w)), counts)


def _nearest_other(real_feats: np.ndarray, real_labels: np.ndarray, k: int, present: list[int]) -> int | None:
    means = {j: real_feats[real_labels == j].mean(axis=0) for j in present}
    others = [j for j in present if j != k]
    if not others:
        return None
    return min(others, key=lambda j: float(np.sum((means[j] - means[k]) ** 2)))


def per_class_metrics(real_feats: np.ndarray, real_labels: np.ndarray, fake_feats: np.ndarray,
                      fake_labels: np.ndarray, classes: Sequence[str], metrics: Sequence[str],
                      seed: int = 0) -> list[dict[str, Any]]:
    """One row per class: sizes, FID/KID of class k against real class k, and
    the same against the nearest other real class (``*_other``).  Rows of a
    class with fewer than `MIN_PER_CLASS` images on either side carry only sizes."""
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    scored = [k for k in range(len(classes))
              if min((real_labels == k).sum(), (fake_labels == k).sum()) >= MIN_PER_CLASS]
    rows = []
    for k, name in enumerate(classes):
        real_k, fake_k = real_feats[real_labels == k], fake_feats[fake_labels == k]
        row: dict[str, Any] = {"class": name, "num_real": int(len(real_k)), "num_fake": int(len(fake_k))}
        if k in scored:
            other = _nearest_other(real_feats, real_labels, k, scored)
            real_o = real_feats[real_labels == other] if other is not None else None
            if other is not None:
                row["nearest_other"] = classes[other]
            if "fid" in metrics:
                row["fid"] = fid(real_k, fake_k)
                if real_o is not None:
                    row["fid_other"] = fid(real_o, fake_k)
            if "kid" in metrics:
                row["kid_mean"], row["kid_std"] = kid(real_k, fake_k, seed=seed)
                if real_o is not None:
                    row["kid_other"] = kid(real_o, fake_k, seed=seed)[0]
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means over the scored classes: ``intra_fid`` / ``intra_kid`` (the usual
    "intra-class" figures) and the wrong-class references beside them."""
    out: dict[str, float] = {}
    for key, name in (("fid", "intra_fid"), ("fid_other", "intra_fid_other"),
                      ("kid_mean", "intra_kid"), ("kid_other", "intra_kid_other")):
        vals = [r[key] for r in rows if key in r]
        if vals:
            out[name] = float(np.mean(vals))
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """The console table: one line per class."""
    has_fid, has_kid = any("fid" in r for r in rows), any("kid_mean" in r for r in rows)
    head = f"  {'class':<16} {'real':>5} {'fake':>5}"
    head += f" {'FID':>9} {'FID other':>10}" if has_fid else ""
    head += f" {'KID':>10} {'KID other':>10}" if has_kid else ""
    head += "  nearest other class"
    lines = [head]

    def num(row: dict[str, Any], key: str, width: int) -> str:
        return f" {row[key]:>{width}.4g}" if key in row else f" {'-':>{width}}"

    for r in rows:
        line = f"  {str(r['class'])[:16]:<16} {r['num_real']:>5} {r['num_fake']:>5}"
        line += (num(r, "fid", 9) + num(r, "fid_other", 10)) if has_fid else ""
        line += (num(r, "kid_mean", 10) + num(r, "kid_other", 10)) if has_kid else ""
        line += f"  {r.get('nearest_other', '(too few images)' if 'fid' not in r and 'kid_mean' not in r else '-')}"
        lines.append(line)
    return "\n".join(lines)
