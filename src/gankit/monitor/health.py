"""The health checks: spot the classic GAN failures from the logged numbers.

GAN losses oscillate while a model improves, so no single record means much;
every check takes the median over a window of the last few logged records, ignores
the first records (early training swings wildly and recovers on its own),
and reports a failure once when it appears, then again only as a reminder
if it is still there much later (or after it cleared and came back).  A
healthy run must stay silent: the thresholds were chosen so normal DCGAN
training does not cross them, and each is a named field below.

The D(x)/D(G(z)) checks read D's output as a probability, which only the bce
loss defines; for hinge and lsgan the same failures are read from the
accuracies (sign of the logit), and for wgan/wgan-gp (a critic whose logit
has no fixed zero) they are skipped.

For a conditional generator the collapse check also runs within each class
(`class_diversities`): a generator that draws one image per class looks
varied across the whole batch, because the classes differ, yet it has
collapsed; comparing each class's generated images with the real images of
the same class catches it.  The measures themselves are in `gankit.monitor.diversity`.

Memorisation is watched on the evaluation records (`memorization_event`):
a copy score (`gankit.metrics.memorization`) that climbs means the
generator has begun to reproduce its training images.  That is the
opposite failure to mode collapse (its images may be as varied as the real
ones: they are the real ones), so it has its own event and its own advice,
and no automatic remedy: a learning-rate change is not known to cure it.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gankit.monitor.diversity import ClassDiversity, class_diversities, contrast, diversity, variety_ratio
from gankit.monitor.events import HealthEvent


@dataclass
class HealthThresholds:
    window: int = 8              # logged records a condition is judged over (their median)
    warmup_records: int = 5      # first logged records are ignored (early transients)
    remind_every: int = 40       # a condition still present is reported again after this many records
    sat_d_x: float = 0.95        # saturation: mean D(x) above this ...
    sat_d_g_z: float = 0.05      # ... and mean D(G(z)) before the D step below this ...
    sat_loss_g: float = 2.5      # ... while the G loss is high (-log 0.08): G gets no useful push
    sat_acc: float = 0.99        # or D right on at least this share of real AND fake (the only test for non-bce)
    over_d_g_z: float = 0.9      # G overpowers D: mean D(G(z)) before and after the D step above this
    over_acc_fake: float = 0.05  # non-bce: D calls nearly every fake real
    vanish_ratio: float = 0.01   # vanishing: G grad norm below this share of its earlier median
    history: int = 200           # records kept for that median (bounded memory and time)
    collapse_ratio: float = 0.25  # mode collapse: fake diversity below this share of the real one, also
                                  # once both are divided by the images' own contrast (see variety_ratio)
    collapse_remind: int = 3     # diversity checks between reminders of a lasting collapse
    class_min_images: int = 4    # per-class collapse: a class is judged with at least this many generated and
                                 # real images (fewer pairs make the mean distance too noisy to call collapse)
    memo_score: float = 0.2      # memorisation: copy score at least this (4x the 0.05 of a generator that copies
                                 # nothing, see gankit.metrics.memorization) ...
    memo_rise: int = 3           # ... and risen over the last this many evaluations ...
    memo_climb: float = 0.05     # ... by at least this much (a flat score is sampling noise, not a trend)
    memo_high: float = 0.5       # or at least this, risen or not: half the images are copies


class _Latch:
    """Once-per-episode reporting: fire when a condition appears, remind after
    `remind` more evaluations if it persists, re-arm after it has been absent
    for `clear` consecutive evaluations."""

    def __init__(self, remind: int, clear: int) -> None:
        self.remind, self.clear = max(1, remind), max(1, clear)
        self.active = False
        self.since_fire = 0
        self.absent = 0

    def update(self, holds: bool) -> bool:
        if not holds:
            self.absent += 1
            if self.absent >= self.clear:
                self.active = False
            return False
        self.absent = 0
        if not self.active:
            self.active, self.since_fire = True, 0
            return True
        self.since_fire += 1
        if self.since_fire >= self.remind:
            self.since_fire = 0
            return True
        return False


def _typical(rows: list[dict], key: str) -> float | None:
    """Median over the window: a one-record spike neither raises nor clears a condition."""
    vals = [float(r[key]) for r in rows if key in r]
    return statistics.median(vals) if vals else None


R1_REMEDY = 1.0  # the first R1 weight the saturation remedy turns on: better than 0.2 on Breakout (docs/remedies.md)


def next_r1(r1: float) -> float:
    """The R1 weight the saturation remedy sets: `R1_REMEDY` when R1 is off, else twice the weight in use."""
    return R1_REMEDY if r1 <= 0 else 2 * r1


def _fmt_lr(value: float) -> str:
    return f"{value:.2g}"


class HealthChecker:
    """Turns the stream of metric records into `HealthEvent`s."""

    def __init__(self, loss: str, lr_g: float, lr_d: float, thresholds: HealthThresholds | None = None) -> None:
        self.t = thresholds or HealthThresholds()
        self.loss = loss
        self.lr = {"lr_g": lr_g, "lr_d": lr_d}
        self.r1 = 0.0  # R1 weight in use (from the records)
        self.history: list[dict] = []      # finite training records after the warm-up
        self.seen = 0                      # training records seen, warm-up included
        self.last_finite = True
        t = self.t
        self.latches = {
            kind: _Latch(t.remind_every, t.window)
            for kind in ("d_saturation", "g_overpowers_d", "vanishing_g_grad")
        }
        self.collapse_latch = _Latch(t.collapse_remind, 1)
        self.latches["memorization"] = _Latch(t.collapse_remind, 1)  # judged per evaluation, not per log record
        self.copy_scores: list[tuple[float, float]] = []  # (kimg, copy score) of the evaluations so far

    # ------------------------------------------------------------- records
    def observe(self, record: dict) -> list[HealthEvent]:
        step, kimg = int(record.get("step", 0)), float(record.get("kimg", 0.0))
        for key in ("lr_g", "lr_d"):
            if key in record and math.isfinite(float(record[key])):
                self.lr[key] = float(record[key])
        self.r1 = float(record.get("r1", 0.0))  # the trainer logs the R1 weight while it is on
        bad = [k for k, v in record.items() if isinstance(v, (int, float)) and not math.isfinite(v)]
        if bad:
            events = [] if not self.last_finite else [self._non_finite(step, kimg, bad)]
            self.last_finite = False
            return events
        self.last_finite = True
        # After a roll-back the loop replays steps: forget the abandoned timeline.
        while self.history and int(self.history[-1].get("step", 0)) >= step:
            self.history.pop()
        self.seen += 1
        if self.seen <= self.t.warmup_records:
            return []
        self.history.append(record)
        del self.history[:-self.t.history]
        if len(self.history) < self.t.window:
            return []
        window = self.history[-self.t.window:]
        events = []
        for kind, check in self._checks().items():
            event = check(window, step, kimg)
            if self.latches[kind].update(event is not None) and event is not None:
                events.append(event)
        return events

    def _checks(self) -> dict[str, Callable[[list[dict], int, float], HealthEvent | None]]:
        return {
            "d_saturation": self._saturation,
            "g_overpowers_d": self._overpowers,
            "vanishing_g_grad": self._vanishing,
        }

    def _non_finite(self, step: int, kimg: float, keys: list[str]) -> HealthEvent:
        return HealthEvent(
            "non_finite", step, kimg,
            message=f"non-finite values (NaN or infinity) in {', '.join(sorted(keys))}: the weights may be ruined.",
            advice=("gankit rolls back to the last good checkpoint and lowers the learning rates; "
                    "if it keeps happening, lower --lr-g and --lr-d, use --precision fp32, "
                    "or add --spectral-norm / --r1 10."),
        )

    def _saturation(self, window: list[dict], step: int, kimg: float) -> HealthEvent | None:
        t = self.t
        if self.loss in ("wgan", "wgan-gp"):
            return None
        loss_g = _typical(window, "loss_g")
        if self.loss == "bce":
            dx, dgz = _typical(window, "d_x"), _typical(window, "d_g_z1")
            ar, af = _typical(window, "acc_real"), _typical(window, "acc_fake")
            if dx is None or dgz is None or loss_g is None:
                return None
            # D right on (nearly) every image is saturation even while its mean
            # D(G(z)) still sits at 0.05-0.1: in the forced dcgan-on-Breakout run
            # that lasted ~20 records, and waiting for it delayed the report.
            by_acc = ar is not None and af is not None and ar >= t.sat_acc and af >= t.sat_acc
            if not (dx > t.sat_d_x and (dgz < t.sat_d_g_z or by_acc) and loss_g > t.sat_loss_g):
                return None
            seen = (f"D(x) was typically {dx:.3f} and D(G(z)) {dgz:.3f} "
                    f"while the generator loss stayed near {loss_g:.2f}")
            if by_acc:
                seen += f", and D was right on {ar:.0%} of real and {af:.0%} of generated images"
        else:
            ar, af = _typical(window, "acc_real"), _typical(window, "acc_fake")
            if ar is None or af is None or ar < t.sat_acc or af < t.sat_acc:
                return None
            seen = f"D classified {ar:.0%} of real and {af:.0%} of generated images correctly"
        gamma = next_r1(self.r1)
        return HealthEvent(
            "d_saturation", step, kimg,
            message=(f"the discriminator wins: over the last {len(window)} logs {seen}; "
                     "the generator gets almost no useful signal and its samples stop improving."),
            advice=(f"penalise D's gradient at real images: --r1 {gamma:g} (resume the run with it, or use "
                    "--auto-remedy); on Breakout it pulled D back to ~55% where halving --lr-d made D win more. "
                    "On a small data set (a few thousand images) start again with --preset small64: no change "
                    "mid-run helped there (docs/remedies.md)."),
            remedy={"r1": gamma},
        )

    def _overpowers(self, window: list[dict], step: int, kimg: float) -> HealthEvent | None:
        t, lr_g = self.t, self.lr["lr_g"]
        if self.loss in ("wgan", "wgan-gp"):
            return None
        if self.loss == "bce":
            z1, z2 = _typical(window, "d_g_z1"), _typical(window, "d_g_z2")
            if z1 is None or z1 <= t.over_d_g_z or (z2 is not None and z2 <= t.over_d_g_z):
                return None
            after = f" and {z2:.3f} after it" if z2 is not None else ""
            seen = f"D(G(z)) was typically {z1:.3f} before the discriminator's update{after}"
        else:
            af = _typical(window, "acc_fake")
            if af is None or af >= t.over_acc_fake:
                return None
            seen = f"D called {1 - af:.0%} of generated images real"
        return HealthEvent(
            "g_overpowers_d", step, kimg,
            message=(f"the discriminator no longer tells generated images from real ones: over the last "
                     f"{len(window)} logs {seen}. D has broken down (often after a too-large step), "
                     "so the generator is no longer being taught anything."),
            advice=(f"lower the generator learning rate (--lr-g {_fmt_lr(lr_g / 2)}), stabilise D with --spectral-norm "
                    "or --loss hinge, and check the images are scaled to [-1, 1]; if it does not recover, "
                    "restart from an earlier checkpoint."),
            remedy={"lr_g": lr_g / 2},
        )

    def _vanishing(self, window: list[dict], step: int, kimg: float) -> HealthEvent | None:
        t = self.t
        earlier = [float(r["grad_norm_g"]) for r in self.history[:-t.window] if "grad_norm_g" in r]
        now = [float(r["grad_norm_g"]) for r in window if "grad_norm_g" in r]
        if len(earlier) < t.window or not now:
            return None
        reference, current = statistics.median(earlier), statistics.median(now)
        if reference <= 0 or current >= t.vanish_ratio * reference:
            return None
        dx = _typical(window, "d_x")
        d_wins = dx is not None and dx > 0.9
        gamma = next_r1(self.r1)
        return HealthEvent(
            "vanishing_g_grad", step, kimg,
            message=(f"the generator's gradient norm fell to {current:.2e}, {current / reference:.2%} of its "
                     f"earlier median {reference:.2e}: the generator has almost stopped learning."),
            advice=(f"this usually follows a saturated discriminator: add --r1 {gamma:g} (docs/remedies.md), "
                    "--diffaugment color,translation, or switch to --loss hinge or wgan-gp."),
            remedy={"r1": gamma} if d_wins else {},
        )

    # ------------------------------------------------------------ resume
    def state_dict(self) -> dict:
        """The checker's memory (history, counters, latches) as plain values, stored
        in checkpoints so a resumed run judges and reminds as an unbroken one would."""
        latches = {k: [latch.active, latch.since_fire, latch.absent] for k, latch in self.latches.items()}
        collapse = self.collapse_latch
        latches["mode_collapse"] = [collapse.active, collapse.since_fire, collapse.absent]
        return {"history": [dict(r) for r in self.history], "seen": self.seen, "last_finite": self.last_finite,
                "lr": dict(self.lr), "latches": latches, "copy_scores": [list(p) for p in self.copy_scores]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [dict(r) for r in state.get("history", [])]
        self.seen = int(state.get("seen", 0))
        self.last_finite = bool(state.get("last_finite", True))
        self.lr.update({k: float(v) for k, v in state.get("lr", {}).items()})
        self.copy_scores = [(float(k), float(v)) for k, v in state.get("copy_scores", [])]
        for kind, (active, since_fire, absent) in state.get("latches", {}).items():
            latch = self.collapse_latch if kind == "mode_collapse" else self.latches.get(kind)
            if latch is not None:
                latch.active, latch.since_fire, latch.absent = bool(active), int(since_fire), int(absent)

    # ------------------------------------------------------------ diversity
    def diversity_event(self, fake_div: float, real_div: float, step: int, kimg: float,
                        fake_contrast: float | None = None, real_contrast: float | None = None,
                        per_class: Sequence[ClassDiversity] | None = None) -> HealthEvent | None:
        """Mode collapse: generated images far less varied than real ones, and not merely
        because they are faint (an untrained generator draws faint but varied images).
        With ``per_class`` the same holds for any one class's images against that
        class's real ones (a conditional generator drawing one image per class)."""
        t = self.t
        ratio = fake_div / real_div if real_div > 0 else 1.0
        relative = ratio
        if fake_contrast is not None and real_contrast is not None:
            relative = variety_ratio(fake_div, fake_contrast, real_div, real_contrast)
        overall = ratio < t.collapse_ratio and relative < t.collapse_ratio
        collapsed = [c for c in per_class or () if c.collapsed(t.collapse_ratio)]
        holds = (overall or bool(collapsed)) and self.seen > t.warmup_records
        if not self.collapse_latch.update(holds):
            return None
        lr_g = self.lr["lr_g"]
        if overall:
            message = (f"the generated images look alike: their mean pairwise distance is {fake_div:.3f}, only "
                       f"{ratio:.0%} of the real images' {real_div:.3f}; the generator makes the same few images "
                       "whatever its input.")
        else:
            named = ", ".join(f"{c.name} ({c.ratio:.0%} of its real images' spread)" for c in collapsed)
            message = (f"within {len(collapsed)} of {len(per_class or ())} classes the generated images look alike: "
                       f"{named}. Across classes they still differ (overall {ratio:.0%} of the real spread), but "
                       "for those classes the generator draws about one image whatever its input.")
        return HealthEvent(
            "mode_collapse", step, kimg,
            message=message,
            advice=(f"if the discriminator saturated first (a d_saturation warning), --r1 {next_r1(self.r1):g} is the "
                    "measured cure (docs/remedies.md); a collapse in the first ~20 kimg of a small-data run has "
                    "passed by itself (docs/presets/cards64.md). Not measured on a collapse, so not applied: "
                    f"--diffaugment color,translation, --spectral-norm, a lower --lr-g ({_fmt_lr(lr_g / 2)})."),
            remedy={},  # halving lr_g was never shown to end a collapse (docs/remedies.md)
        )


    # ------------------------------------------------------- memorisation
    def memorization_event(self, record: dict) -> HealthEvent | None:
        """Memorisation from an evaluation record holding ``memorization`` (the copy
        score): at least `memo_score` and risen by `memo_climb` over the last
        `memo_rise` evaluations, or at least `memo_high`."""
        t = self.t
        value, kimg = record.get("memorization"), float(record.get("kimg", 0.0))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        while self.copy_scores and self.copy_scores[-1][0] >= kimg:  # a roll-back or resume replays evaluations
            self.copy_scores.pop()
        self.copy_scores.append((kimg, float(value)))
        del self.copy_scores[:-t.history]
        recent = [v for _, v in self.copy_scores[-t.memo_rise:]]
        rising = len(recent) >= t.memo_rise and recent[-1] - min(recent[:-1]) >= t.memo_climb
        holds = value >= t.memo_high or (value >= t.memo_score and rising)
        if not self.latches["memorization"].update(holds):
            return None
        start = self.copy_scores[-len(recent)]
        trend = (f"rose from {start[1]:.2f} at {start[0]:.1f} kimg to {value:.2f}" if rising
                 else f"is {value:.2f}")
        return HealthEvent(
            "memorization", int(record.get("step", 0)), kimg,
            message=(f"the copy score {trend}: that share of generated images is closer to a training image than "
                     "95% of the held-out real images are (about 0.05 when nothing is copied). The generator is "
                     "reproducing its training images; unlike mode collapse its images may look varied, because "
                     "they are the training set's."),
            advice=("keep a checkpoint from before the rise (`gankit sample RUN --checkpoint ckpt-...pt`; best.pt is "
                    "chosen by FID/KID, which do not penalise copies), add augmentation (--diffaugment "
                    "color,translation,cutout or --ada), or train on more images; compare the images in the "
                    "report's nearest-neighbours panel (samples/neighbours.png)."),
        )


__all__ = ["HealthChecker", "HealthThresholds", "ClassDiversity", "class_diversities", "contrast", "diversity",
           "variety_ratio"]
