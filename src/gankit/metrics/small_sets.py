"""Which number to read first, and which numbers not to trust, for the set sizes given.

FID fits a Gaussian to each side and its estimate is biased upward by a term
that shrinks like 1/N (Chong & Forsyth 2020): two halves of one real set of
1,000 images already score far from 0, and the size of that floor depends on
N, so FIDs at different N cannot be compared.  KID (an unbiased MMD
estimate) has no such term, so below `KID_HEADLINE_BELOW` images a side it is
the headline: its mean ± standard deviation over subsets is the number to
read, and FID is shown beneath it, marked as biased.  docs/evaluation.md has
the measured bias (benchmarks/fid_bias.py).

`MIN_PER_SIDE` gives, for each metric, the set size below which `gankit eval`
warns; the reason for each is beside it.  They are warnings, not errors: a
small set is sometimes all there is, and KID stays usable there.
"""
from __future__ import annotations

from typing import Any

from gankit.metrics.prdc import DEFAULT_K

# Below this many images on either side KID is the headline (FID's 1/N bias
# is then more than ~10% of a typical generator's FID on our data sets).
KID_HEADLINE_BELOW = 5000

# metric -> (images a side below which it is unreliable, why)
MIN_PER_SIDE: dict[str, tuple[int, str]] = {
    # Measured: on the sprites a degraded set's FID is 2.7x its infinite-N value at 250 a side and
    # 1.5x at 774; on Breakout the bias is within 3% from 1000 a side on.
    "fid": (2000, "FID is biased upward by a term that grows like 1/N (on the sprite set a fixed degraded set "
                  "scores 1.5x its large-N FID at 774 a side; docs/evaluation.md), so read KID"),
    "kid": (200, "KID's subsets hold half the images; below 100 images a subset its spread over subsets is as "
                 "large as the differences worth reading"),
    # Measured (benchmarks/fid_bias.py, Breakout, two real halves): precision 0.96 at 250-500 a
    # side, 0.94 at 1000, 0.86 at 6000; recall alike.  k-NN balls shrink as N grows.
    "pr": (500, f"precision/recall use {DEFAULT_K}-nearest-neighbour balls, which are wider the fewer the "
                "images, so both read high (Breakout, two real halves: precision 0.96 at 500 a side, 0.86 at "
                "6000); compare them only at equal N"),
    "dc": (500, f"density/coverage use {DEFAULT_K}-nearest-neighbour balls, which are wider the fewer the "
                "images; compare them only at equal N"),
}


def size_warnings(metrics: list[str], num_real: int, num_fake: int) -> list[str]:
    """One line per requested metric that either set is too small for."""
    out = []
    for name in metrics:
        if name not in MIN_PER_SIDE:
            continue
        need, why = MIN_PER_SIDE[name]
        small = [f"{n} {side}" for side, n in (("real", num_real), ("generated", num_fake)) if n < need]
        if small:
            out.append(f"{name}: {' and '.join(small)} images, under the {need} a side it needs: {why}")
    return out


def headline(values: dict[str, float], num_real: int, num_fake: int) -> dict[str, Any] | None:
    """The number to read first: KID (mean ± std) below `KID_HEADLINE_BELOW`
    images a side when it was measured, else FID; None when neither was."""
    n = min(num_real, num_fake)
    if "kid_mean" in values and (n < KID_HEADLINE_BELOW or "fid" not in values):
        mean, std = values["kid_mean"], values["kid_std"]
        why = (f"{n} images a side, under {KID_HEADLINE_BELOW}: KID is unbiased at any N, FID is not"
               if n < KID_HEADLINE_BELOW else "FID was not asked for")
        return {"metric": "kid", "value": mean, "std": std, "why": why,
                "text": f"KID {1000 * mean:.2f} ± {1000 * std:.2f} (x1e-3, mean ± std over subsets)"}
    if "fid" in values:
        why = f"{n} images a side: FID's small-N bias is small here"
        if n < KID_HEADLINE_BELOW:
            why = f"only FID was measured, and at {n} images a side it is biased upward (add kid to --metrics)"
        return {"metric": "fid", "value": values["fid"], "std": None, "why": why, "text": f"FID {values['fid']:.4g}"}
    return None


def biased_fid(num_real: int, num_fake: int) -> bool:
    """Whether FID is to be shown as biased at these set sizes."""
    return min(num_real, num_fake) < KID_HEADLINE_BELOW
