"""`gankit runs` and `gankit presets`, read back from real run directories and
the preset table; `gankit.sample` and friends after a bare `import gankit`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gankit.cli import main
from gankit.presets import DOCS, PRESETS, REASONS


def gankit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gankit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})


def fake_run(root: Path, name: str, kimgs: list[float], summary: dict | None, fids: list[float] = ()) -> Path:
    """A run directory as training leaves it: config.yaml, metrics.jsonl, maybe summary.json."""
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("data: data/x\n")
    lines = [json.dumps({"step": i + 1, "kimg": k, "loss_d": 1.0}) for i, k in enumerate(kimgs)]
    lines += [json.dumps({"kind": "eval", "step": 100 + i, "kimg": 1.0, "fid": f}) for i, f in enumerate(fids)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_runs_lists_status_kimg_best_and_last_change(tmp_path):
    out = tmp_path / "runs"
    fake_run(out, "00000-dcgan", [0.5, 1.0, 1.5], {"status": "finished", "stopped_by": "kimg"},
             fids=[80.5, 61.25, 70.0])
    old = fake_run(out, "00001-breakout", [0.2, 0.4], None)
    long_ago = time.time() - 3 * 3600
    for path in [old, *old.iterdir()]:
        os.utime(path, (long_ago, long_ago))
    fake_run(out, "00002-cards64", [0.1], {"status": "interrupted", "stopped_by": "interrupted"})
    (out / "notes").mkdir()  # not a run: left out
    proc = gankit("runs", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["run", "status", "kimg", "best", "last", "change"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == ["00000-dcgan", "00001-breakout", "00002-cards64"]
    assert "finished (kimg)" in rows["00000-dcgan"] and " 1.5 " in rows["00000-dcgan"]
    assert "FID 61.25" in rows["00000-dcgan"]  # the best of its evaluations
    assert "stopped (not closed)" in rows["00001-breakout"] and "3h ago" in rows["00001-breakout"]
    assert "interrupted" in rows["00002-cards64"]
    assert gankit("runs", "--out", str(tmp_path / "none")).stderr.splitlines()[0] == \
        f"gankit runs: error: --out: no such folder {tmp_path / 'none'}"


def test_presets_lists_them_and_shows_each_value_with_why(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PRESETS)
    for name in PRESETS:
        assert main(["presets", name]) == 0
        shown = capsys.readouterr().out
        for key in PRESETS[name]:
            row = next(line for line in shown.splitlines() if line.startswith(f"--{key.replace('_', '-')} "))
            assert REASONS[name][key] in row
        if name in DOCS:
            assert (Path(__file__).parents[1] / DOCS[name]).is_file()
    assert main(["presets", "nope"]) == 2


def test_submodules_are_attributes_after_a_bare_import():
    code = ("import gankit; "
            "print(gankit.sample.generate.__name__, gankit.data.load_dataset.__name__, gankit.metrics.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["generate", "load_dataset", "gankit.metrics"]
