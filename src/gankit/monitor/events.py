"""Health events and the JSON-lines files they and the metrics live in.

Everything the monitor shows (plots, GIF, report, verdict) is rebuilt from the
files in the run directory, so `gankit report RUN` works after a crash or while
a run is still going.  This module is the one place that reads and writes
those files.

A resumed run appends to ``metrics.jsonl``; if it resumed from a checkpoint
older than the last record, the records after that checkpoint were written by
a timeline that no longer exists.  `load_records` drops them so the plots show
one continuous history.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# event kind -> short human title, used by the console line, report and verdict
EVENT_TITLES = {
    "d_saturation": "discriminator saturation",
    "g_overpowers_d": "generator overpowers the discriminator",
    "vanishing_g_grad": "vanishing generator gradients",
    "mode_collapse": "mode collapse",
    "memorization": "memorisation (copying training images)",
    "non_finite": "non-finite loss",
    "rollback": "rolled back to the last good checkpoint",
    "remedy_applied": "remedy applied",
}

# kinds that describe a training problem (the others report what the loop did)
PROBLEM_KINDS = ("d_saturation", "g_overpowers_d", "vanishing_g_grad", "mode_collapse", "non_finite", "memorization")


@dataclass
class HealthEvent:
    """One thing worth telling the user about a run, in plain words."""

    kind: str
    step: int
    kimg: float
    message: str
    advice: str
    remedy: dict[str, float] = field(default_factory=dict)
    applied: bool = False

    @property
    def title(self) -> str:
        return EVENT_TITLES.get(self.kind, self.kind.replace("_", " "))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HealthEvent:
        return cls(
            kind=str(values.get("kind", "")),
            step=int(values.get("step", 0)),
            kimg=float(values.get("kimg", 0.0)),
            message=str(values.get("message", "")),
            advice=str(values.get("advice", "")),
            remedy={str(k): float(v) for k, v in (values.get("remedy") or {}).items()},
            applied=bool(values.get("applied", False)),
        )

    def console_line(self) -> str:
        label = "WARNING" if self.kind in PROBLEM_KINDS else "NOTE"
        text = f"gankit: {label} [{self.kind}] step {self.step} ({self.kimg:.1f} kimg): {self.message}"
        if self.advice:
            text += f" Advice: {self.advice}"
        if self.remedy:
            changes = ", ".join(f"{k}={v:.3g}" for k, v in self.remedy.items())
            text += f" [{'applied' if self.applied else 'remedy'}: {changes}]"
        return text


def _json_value(value: Any) -> Any:
    # Tensors and numpy scalars arrive from the loop; store plain numbers.
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    return value


def dump_line(record: dict[str, Any]) -> str:
    """One JSON object on one line; NaN/inf are written as NaN/Infinity (Python's json reads them back)."""
    return json.dumps({k: _json_value(v) for k, v in record.items()}, allow_nan=True)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON-lines file, skipping a torn last line (a run killed mid-write)."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def load_records(path: Path) -> list[dict[str, Any]]:
    """The metrics records of one timeline, oldest first.

    Training records (no ``kind``) and other kinds (``eval``, ``diversity``)
    are each cut back independently: when a record's step is not after the
    previous one of the same kind, the run was resumed from an earlier
    checkpoint, and the records it supersedes are dropped.
    """
    kept: dict[str, list[dict[str, Any]]] = {}
    for rec in read_jsonl(path):
        kind = str(rec.get("kind", "train"))
        seq = kept.setdefault(kind, [])
        step = rec.get("step", 0)
        while seq and _num(seq[-1].get("step", 0)) >= _num(step):
            seq.pop()
        seq.append(rec)
    # Re-merge the kinds in step order (stable, so equal steps keep file order).
    merged = [r for seq in kept.values() for r in seq]
    merged.sort(key=lambda r: _num(r.get("step", 0)))
    return merged


def load_events(path: Path) -> list[HealthEvent]:
    return [HealthEvent.from_dict(obj) for obj in read_jsonl(path)]


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def train_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if "kind" not in r or r.get("kind") == "train"]


def records_of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == kind]
