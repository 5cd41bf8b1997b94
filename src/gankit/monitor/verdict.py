"""The verdict: one paragraph that says whether a run learnt, read from its
records and health events alone.

Why apart from the report: the verdict is the judgement (which events count,
how many records a verdict needs, which evaluation is best), the report is
the page around it; the console, summary.json and report.html all print
this one text.
"""
from __future__ import annotations

import math
from collections import OrderedDict

from gankit.monitor.events import EVENT_TITLES, PROBLEM_KINDS, HealthEvent, train_records
from gankit.monitor.health import HealthThresholds

UNCLOSED = "in progress (or stopped without closing the monitor)"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _where(ev: HealthEvent) -> str:
    return f"step {ev.step} ({ev.kimg:.1f} kimg)"


def _progress(train: list[dict]) -> str:
    if not train:
        return "before its first logged record"
    last = train[-1]
    parts = []
    if "epoch" in last:
        parts.append(f"epoch {int(last['epoch'])}")
    parts.append(f"{float(last.get('kimg', 0)):.1f} kimg ({int(last.get('step', 0))} generator steps)")
    text = ", ".join(parts)
    if "time" in last:
        text += f" in {_duration(float(last['time']))}"
    return text


def _end_state(train: list[dict]) -> str:
    tail = train[-5:]

    def avg(key: str) -> float | None:
        vals = [float(r[key]) for r in tail if key in r]
        return sum(vals) / len(vals) if vals else None

    ar, af, dx, dgz = avg("acc_real"), avg("acc_fake"), avg("d_x"), avg("d_g_z1")
    bits = []
    if ar is not None and af is not None:
        bits.append(f"the discriminator was right on {ar:.0%} of real and {af:.0%} of generated images")
    if dx is not None and dgz is not None:
        bits.append(f"D(x) {dx:.2f}, D(G(z)) {dgz:.2f}")
    return "At the end " + "; ".join(bits) + "." if bits else ""


def evaluations(records: list[dict]) -> list[dict]:
    """The in-training evaluation records that carry a ranking score."""
    return [r for r in records if r.get("kind") == "eval" and isinstance(r.get("score"), (int, float))
            and math.isfinite(r["score"])]


def best_evaluation(records: list[dict]) -> dict | None:
    """The evaluation with the lowest score: the state the loop kept as checkpoints/best.pt."""
    found = evaluations(records)
    return min(found, key=lambda r: r["score"]) if found else None


def min_records(thresholds: HealthThresholds | None = None) -> int:
    """Training records the health checks need before they judge anything: the
    ignored warm-up plus one full window (13 with the defaults)."""
    t = thresholds or HealthThresholds()
    return t.warmup_records + t.window


STOP_WORDS = {"epochs": "the epoch limit ({:g} epochs)", "kimg": "the image limit ({:g} kimg)",
              "minutes": "the time limit ({:g} minutes)"}


def stop_text(stop: tuple[str, float] | None) -> str:
    """'the image limit (10 kimg)' for ("kimg", 10)."""
    if not stop or stop[0] not in STOP_WORDS:
        return ""
    return STOP_WORDS[stop[0]].format(stop[1])


def verdict(records: list[dict], events: list[HealthEvent], status: str, stop: tuple[str, float] | None = None) -> str:
    """One paragraph: what stopped the run, and healthy, too short to judge, or
    which failures happened, when, and what was done about them.  "Healthy"
    needs at least `min_records` training records: fewer were never checked."""
    train = train_records(records)
    limit = stop_text(stop) if status == "finished" else ""
    at = f"at {_progress(train)}" if train else _progress(train)
    if status == "interrupted":
        ending = f"Interrupted {at}."
    elif status in ("finished", "failed", "stopped"):
        ending = f"The run {status}" + (f", stopped by {limit}," if limit else "") + f" {at}."
    else:
        ending = f"The run is {status}; it reached {_progress(train)}."
    evals = [r for r in records if r.get("kind") == "eval" and "fid" in r]
    quality = f" Last FID: {float(evals[-1]['fid']):.2f}." if evals else ""
    best = best_evaluation(records)
    if best is not None:
        quality += (f" Best {best['score_metric']}: {float(best['score']):.2f} at {float(best['kimg']):.1f} kimg"
                    " (checkpoints/best.pt, what `gankit sample` uses).")
    by_kind: OrderedDict[str, list[HealthEvent]] = OrderedDict()
    for kind in PROBLEM_KINDS:
        found = [e for e in events if e.kind == kind]
        if found:
            by_kind[kind] = found
    if not by_kind:
        need = min_records()
        if len(train) < need:
            head = (f"Too short to judge: {len(train)} log record(s), and the health checks need {need} "
                    "(train longer, or log more often with --log-every).")
            if status == "failed":
                head = "It did not complete. " + head
            return " ".join(x for x in (ending, head) if x)
        if status == "failed":
            head = "No known failure pattern was detected, but the run did not complete."
        elif status == "interrupted":
            head = f"No failure was seen in the {len(train)} log records before that."
            return " ".join(x for x in (ending, head, _end_state(train) + quality) if x.strip())
        else:
            head = f"Healthy: no failure was detected in {len(train)} log records."
        return " ".join(x for x in (head, ending, _end_state(train) + quality) if x.strip())
    problems = []
    for kind, found in by_kind.items():
        text = f"{EVENT_TITLES[kind]} at {_where(found[0])}"
        if len(found) > 1:
            text += f", reported {len(found)} times up to step {found[-1].step}"
        problems.append(text)
    actions = []
    rollbacks = [e for e in events if e.kind == "rollback"]
    if rollbacks:
        actions.append(f"rolled back to a good checkpoint {len(rollbacks)} time(s)")
    for e in events:
        if e.applied and e.remedy:
            changes = ", ".join(f"{k} to {v:.3g}" for k, v in e.remedy.items())
            actions.append(f"set {changes} at step {e.step}")
    done = (" What was done: " + "; ".join(actions) + ".") if actions else \
        " No remedy was applied (run with --auto-remedy to let gankit apply its advice)."
    first_advice = next((e.advice for e in by_kind[next(iter(by_kind))] if e.advice), "")
    advice = f" Advice: {first_advice}" if first_advice else ""
    return (f"Problems detected: {'; '.join(problems)}.{done} {ending}{quality}{advice}").strip()


# ------------------------------------------------------------------- HTML
