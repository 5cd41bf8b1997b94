"""The verdict paragraph and report.html, rebuilt from the run directory alone.

`build_outputs` is the single path that turns a run directory's files
(metrics.jsonl, health.jsonl, samples/, config.yaml) into plots, the GIF,
the verdict and the report; both `RunMonitor.close` and `gankit report` call
it, so a report made after the fact is the same as one made at the end.

The verdict's words are `gankit.monitor.verdict`'s.  The page embeds every
image as a data URI and carries its own CSS, so it can be mailed, archived or
opened offline as a single file.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import yaml

from gankit.monitor.events import PROBLEM_KINDS, HealthEvent, load_events, load_records, train_records
from gankit.monitor.images import FrameStore
from gankit.monitor.neighbours import neighbours_html
from gankit.monitor.plots import draw_all
from gankit.monitor.verdict import STOP_WORDS, UNCLOSED, best_evaluation, evaluations, min_records, verdict
from gankit.runpaths import RunDir

PLOT_ORDER = ("losses", "d_accuracy", "d_outputs", "grad_norms", "diversity", "ada", "quality")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d232b}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}
h2{margin:28px 0 10px;font-size:19px;border-bottom:1px solid #d4d8de;padding-bottom:4px}
.sub{color:#5b6573;margin:0 0 16px}
.verdict{padding:14px 18px;border-radius:8px;font-size:15px;line-height:1.5}
.ok{background:#e5f5e9;border-left:6px solid #2f9a4b} .bad{background:#fdecea;border-left:6px solid #c8372d}
img{max-width:100%;height:auto;border-radius:4px;background:#181818}
.pixel{image-rendering:pixelated}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:14px}
figure{margin:0;background:#fff;padding:8px;border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
figcaption{font-size:13px;color:#5b6573;margin-top:4px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #dde1e6;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef0f3} tr.problem td:first-child{color:#b3261e;font-weight:600}
tr.action td:first-child{color:#1f5fa8;font-weight:600}
.cfg{columns:2;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.cfg div{break-inside:avoid}
.muted{color:#5b6573}
"""


def data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".gif": "image/gif"}[path.suffix.lower()]
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _config(run_dir: Path) -> dict[str, Any]:
    path = RunDir(run_dir).config
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _img(path: Path, alt: str, pixel: bool = False) -> str:
    cls = ' class="pixel"' if pixel else ""
    return f'<img{cls} alt="{html.escape(alt)}" src="{data_uri(path)}">'


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def per_class_html(run_dir: Path, records: list[dict] | None = None) -> list[str]:
    """The "Per-class quality" section: the per-class table of RUN/eval.json (written
    by `gankit eval` on a conditional run) and the last in-training class agreement;
    nothing when neither exists."""
    esc = html.escape
    try:
        ev = json.loads(RunDir(run_dir).eval_record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        ev = {}
    rows = ev.get("per_class") if isinstance(ev, dict) else None
    agree = ev.get("agreement") if isinstance(ev, dict) else None
    trained = [r for r in records or [] if r.get("kind") == "eval" and "agreement" in r]
    if not rows and not trained:
        return []
    parts = ["<h2>Per-class quality</h2>"]
    if trained:
        last = trained[-1]
        parts.append(f"<p>During training, at {float(last.get('kimg', 0)):.1f} kimg: class agreement "
                     f"{_fmt(last['agreement'])} (ceiling {_fmt(last.get('agreement_ceiling'))}).</p>")
    if rows:
        shares = (agree or {}).get("per_class") or [None] * len(rows)
        body = "".join(
            f"<tr><td>{esc(str(r.get('class')))}</td><td>{r.get('num_fake', '-')}</td><td>{_fmt(r.get('fid'))}</td>"
            f"<td>{_fmt(r.get('fid_other'))}</td><td>{_fmt(r.get('kid_mean'))}</td><td>{_fmt(r.get('kid_other'))}</td>"
            f"<td>{esc(str(r.get('nearest_other', '-')))}</td><td>{_fmt(a)}</td></tr>" for r, a in zip(rows, shares))
        parts.append(
            f"<p>From <code>gankit eval</code> ({esc(str(ev.get('checkpoint', 'eval.json')))}, "
            f"{esc(str(ev.get('time', '')))}): "
            "each class's generated images against the real images of that class, and against the real images of "
            "the nearest other class (what a mixed-up class would score)."
            + (f" Class agreement {_fmt(agree.get('agreement'))}, ceiling {_fmt(agree.get('agreement_ceiling'))}."
               if agree else "") + "</p>"
            "<table><tr><th>class</th><th>generated</th><th>FID</th><th>FID vs other class</th><th>KID</th>"
            "<th>KID vs other class</th><th>nearest other class</th><th>agreement</th></tr>" + body + "</table>")
    return parts


def render_html(run_dir: Path, verdict_text: str, status: str, events: list[HealthEvent],
                records: list[dict] | None = None) -> str:
    esc = html.escape
    problem = any(e.kind in PROBLEM_KINDS for e in events) or status == "failed"
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>gankit report: {esc(run_dir.name)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>gankit run {esc(run_dir.name)}</h1><p class=\"sub\">status: {esc(status)}</p>",
             f'<div class="verdict {"bad" if problem else "ok"}" id="verdict">{esc(verdict_text)}</div>']
    files = RunDir(run_dir)
    samples = sorted(files.samples.glob("epoch_*.png"))
    samples = [p for p in samples if not p.name.endswith(".tmp.png")]
    gif = files.gif
    parts.append("<h2>Real vs generated</h2>")
    if samples:
        parts.append(f"<figure>{_img(samples[-1], 'real vs generated', pixel=True)}"
                     f"<figcaption>{esc(samples[-1].name)}: real images on the left, "
                     "generated from fixed latents on the right"
                     "</figcaption></figure>")
    else:
        parts.append('<p class="muted">No sample grid yet.</p>')
    best_png = files.best_samples
    if best_png.exists():
        parts.append(f"<h2>Best state</h2><figure>{_img(best_png, 'best state', pixel=True)}"
                     "<figcaption>best.png: the fixed latents drawn by checkpoints/best.pt, the state with the best "
                     "evaluation score (what <code>gankit sample</code> uses)</figcaption></figure>")
    if gif.exists():
        parts.append(f"<h2>Progress</h2><figure>{_img(gif, 'progress animation', pixel=True)}"
                     "<figcaption>the same latents after each snapshot</figcaption></figure>")
    plots = [files.plots / f"{name}.png" for name in PLOT_ORDER]
    plots = [p for p in plots if p.exists()]
    parts.append("<h2>Training curves</h2>")
    if plots:
        parts.append('<div class="grid">' + "".join(
            f"<figure>{_img(p, p.stem)}<figcaption>{esc(p.name)}</figcaption></figure>" for p in plots) + "</div>")
    else:
        parts.append('<p class="muted">No metrics logged yet.</p>')
    parts.extend(per_class_html(run_dir, records))
    parts.extend(neighbours_html(run_dir, records, _img))
    parts.extend(_health_html(events))
    parts.extend(_config_html(run_dir))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _health_html(events: list[HealthEvent]) -> list[str]:
    """The health timeline: each event, what to try and the remedy (applied or suggested)."""
    esc = html.escape
    parts = ["<h2>Health timeline</h2>"]
    if events:
        rows = []
        for e in events:
            cls = "problem" if e.kind in PROBLEM_KINDS else "action"
            remedy = ", ".join(f"{k}={v:.3g}" for k, v in e.remedy.items())
            if remedy:
                remedy += " (applied)" if e.applied else " (suggested)"
            rows.append(f'<tr class="{cls}"><td>{esc(e.title)}</td><td>{e.step}</td><td>{e.kimg:.1f}</td>'
                        f"<td>{esc(e.message)}</td><td>{esc(e.advice)}</td><td>{esc(remedy)}</td></tr>")
        parts.append("<table><tr><th>event</th><th>step</th><th>kimg</th><th>what happened</th>"
                     "<th>what to try</th><th>remedy</th></tr>" + "".join(rows) + "</table>")
    else:
        parts.append('<p class="muted">No health events: nothing went wrong that the monitor can see.</p>')
    return parts


def _config_html(run_dir: Path) -> list[str]:
    """The run's config.yaml, one field a line."""
    esc = html.escape
    cfg = _config(run_dir)
    parts = ["<h2>Configuration</h2>"]
    if cfg:
        parts.append('<div class="cfg">' + "".join(
            f"<div><b>{esc(str(k))}</b>: {esc(json.dumps(v) if not isinstance(v, str) else v)}</div>"
            for k, v in cfg.items()) + "</div>")
    else:
        parts.append('<p class="muted">config.yaml not found in the run directory.</p>')
    return parts


def build_outputs(run_dir: Path, status: str | None = None, stop: tuple[str, float] | None = None) -> str:
    """Redraw plots and GIF, write report.html and summary.json; return the verdict.

    ``status`` None keeps the status and stopping limit recorded by the last
    close (or says the run has not closed).  ``stop`` is the budget limit that
    ended a finished run, e.g. ("kimg", 10.0)."""
    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    summary_path = files.summary
    if status is None:
        try:
            old = json.loads(summary_path.read_text(encoding="utf-8"))
            status = str(old.get("status") or UNCLOSED)
            if old.get("stopped_by") in STOP_WORDS:
                stop = (str(old["stopped_by"]), float(old.get("limit") or 0))
        except (OSError, json.JSONDecodeError, AttributeError, TypeError, ValueError):
            status = UNCLOSED
    records = load_records(files.metrics)
    events = load_events(files.health)
    draw_all(records, files.plots)
    FrameStore(files.frames).write_gif(files.gif)
    text = verdict(records, events, status, stop)
    page = files.report
    tmp = page.with_name(page.name + ".tmp")
    tmp.write_text(render_html(run_dir, text, status, events, records), encoding="utf-8")
    tmp.replace(page)
    train = train_records(records)
    summary: dict[str, Any] = {"status": status, "stopped_by": stop[0] if stop and status == "finished" else status,
               "limit": stop[1] if stop and status == "finished" else None,
               "kimg": float(train[-1].get("kimg", 0)) if train else 0.0, "log_records": len(train),
               "judged": len(train) >= min_records(), "verdict": text}
    best = best_evaluation(records)
    if best is not None and files.best.is_file():
        summary["best"] = {"checkpoint": files.best.relative_to(files.path).as_posix(), "metric": best["score_metric"],
                           "score": best["score"], "kimg": best["kimg"], "step": best.get("step"),
                           "why": f"lowest {best['score_metric']} of {len(evaluations(records))} evaluations"}
    tmp_summary = summary_path.with_name(summary_path.name + ".tmp")
    tmp_summary.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    tmp_summary.replace(summary_path)
    return text
