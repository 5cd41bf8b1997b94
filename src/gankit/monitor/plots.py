"""The training plots, drawn from metrics.jsonl records with matplotlib (Agg).

Each plot answers one question a user asks about a GAN: are the losses
moving (losses.png), who is winning (d_accuracy.png, d_outputs.png), is
anything learning at all (grad_norms.png), is augmentation kicking in
(ada.png), is quality improving (quality.png), are samples varied
(diversity.png).  The x-axis is the generator step everywhere so the plots
line up with each other and with the health timeline.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure  # no pyplot: drawing never touches the user's backend (notebooks)

from gankit.monitor.events import records_of, train_records  # noqa: E402

DPI = 100
SIZE = (8, 4)
EVAL_SKIP = {"step", "kimg", "time", "epoch", "epochs", "images_seen", "iter", "iters"}


def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing); non-finite values are skipped."""
    out, avg, n = [], 0.0, 0
    for v in values:
        if math.isfinite(v):
            avg = weight * avg + (1 - weight) * v
            n += 1
        out.append(avg / (1 - weight ** n) if n else float("nan"))
    return out


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        if key in r and isinstance(r[key], (int, float)):
            xs.append(float(r.get("step", 0)))
            ys.append(float(r[key]))
    return xs, ys


def _finish(fig: Any, ax: Any, title: str, path: Path) -> Path:
    ax.set_title(title)
    ax.set_xlabel("generator step")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)
    return path


def _line_plot(rows: list[dict], keys: dict[str, str], title: str, ylabel: str, path: Path,
               hline: float | None = None, hline_label: str = "", log: bool = False,
               ylim: tuple[float, float] | None = None) -> Path | None:
    series = {label: _series(rows, key) for key, label in keys.items()}
    if not any(xs for xs, _ in series.values()):
        return None
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    for label, (xs, ys) in series.items():
        if xs:
            ax.plot(xs, ys, label=label, linewidth=1.2)
    if hline is not None:
        ax.axhline(hline, color="gray", linestyle="--", linewidth=1, label=hline_label or f"{hline:.0%}")
    if log and all(y > 0 for _, ys in series.values() for y in ys if math.isfinite(y)):
        ax.set_yscale("log")
    if ylim:
        ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    return _finish(fig, ax, title, path)


def plot_losses(rows: list[dict], path: Path) -> Path | None:
    xs_g, g = _series(rows, "loss_g")
    xs_d, d = _series(rows, "loss_d")
    if not xs_g and not xs_d:
        return None
    fig = Figure(figsize=SIZE)
    ax = fig.subplots()
    for xs, ys, label, color in ((xs_g, g, "G", "tab:blue"), (xs_d, d, "D", "tab:orange")):
        if xs:
            ax.plot(xs, ys, color=color, alpha=0.3, linewidth=0.8, label=f"{label} loss")
            ax.plot(xs, smooth(ys), color=color, linewidth=1.8, label=f"{label} loss (smoothed)")
    ax.set_ylabel("loss")
    return _finish(fig, ax, "Generator and discriminator losses", path)


def plot_quality(rows: list[dict], path: Path) -> Path | None:
    evals = [r for r in records_of(rows, "eval") if "fid" in r]
    if not evals:
        return None
    keys = [k for k in evals[-1] if k not in EVAL_SKIP and k != "kind" and isinstance(evals[-1][k], (int, float))
            and not k.endswith("_std")]
    keys = ["fid"] + [k for k in keys if k != "fid"]
    fig = Figure(figsize=(SIZE[0], 2.6 * len(keys)))
    axes = fig.subplots(len(keys), 1, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        xs, ys = _series(evals, key)
        ax.plot(xs, ys, marker="o", linewidth=1.5)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0, 0].set_title("Sample quality (lower FID/KID is better)")
    axes[-1, 0].set_xlabel("generator step")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def draw_all(records: list[dict], plots_dir: Path) -> list[Path]:
    """Redraw every plot the records allow; returns the files written."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    train = train_records(records)
    written = [
        plot_losses(train, plots_dir / "losses.png"),
        _line_plot(train, {"acc_real": "on real images", "acc_fake": "on generated images"},
                   "Discriminator accuracy", "accuracy", plots_dir / "d_accuracy.png", hline=0.5, ylim=(-0.02, 1.02)),
        _line_plot(train, {"d_x": "D(x) real", "d_g_z1": "D(G(z)) before D step", "d_g_z2": "D(G(z)) after D step"},
                   "Discriminator outputs", "mean sigmoid(D)", plots_dir / "d_outputs.png", ylim=(-0.02, 1.02)),
        _line_plot(train, {"grad_norm_g": "G", "grad_norm_d": "D"}, "Gradient norms", "L2 norm",
                   plots_dir / "grad_norms.png", log=True),
        _line_plot(train, {"ada_p": "augmentation probability p"}, "Adaptive augmentation", "p",
                   plots_dir / "ada.png"),
        _line_plot(records_of(records, "diversity"),
                   {"diversity_ratio": "pairwise distance",
                    "variety_ratio": "pairwise distance / contrast"},
                   "Variety of generated images vs real ones (1 = as varied)", "generated / real",
                   plots_dir / "diversity.png", hline=0.25, hline_label="collapse threshold"),
        plot_quality(records, plots_dir / "quality.png"),
    ]
    return [p for p in written if p is not None]
