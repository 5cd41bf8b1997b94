"""RunMonitor writes real files: metrics.jsonl, TensorBoard events, health.jsonl,
sample PNGs, the progress GIF, plots and report.html; each is read back with
the tool a user would use (json, TensorBoard's EventAccumulator, PIL)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gankit.cli import main
from gankit.config import TrainConfig
from gankit.errors import UsageError
from gankit.monitor import RunMonitor
from gankit.monitor.events import load_records
from gankit.monitor.images import HEADER, MAX_GIF_FRAMES, MAX_GIF_SIDE
from test_monitor_health import SATURATED, healthy, record


def train_record(i: int, rng: random.Random) -> dict:
    rec = healthy(i, rng)
    rec["ada_p"] = min(1.0, i / 100)
    return rec


def images(value: float, n: int = 16, c: int = 3, size: int = 16) -> torch.Tensor:
    return torch.full((n, c, size, size), value)


def populate(run_dir, n: int = 40, saturate_from: int | None = None) -> RunMonitor:
    """A small two-epoch run: n training records, an eval, two snapshots."""
    (run_dir).mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(lr_d=3e-4)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    mon = RunMonitor(run_dir, cfg)
    rng = random.Random(0)
    g = torch.Generator().manual_seed(0)
    real = torch.rand(16, 3, 16, 16, generator=g) * 2 - 1
    for i in range(n):
        if saturate_from is not None and i >= saturate_from:
            rec = record(i, *SATURATED[i % len(SATURATED)])
        else:
            rec = train_record(i, rng)
        mon.log(rec)
        if i + 1 in (n // 2, n):
            epoch = 1 if i + 1 == n // 2 else 2
            fake = torch.tanh(torch.randn(16, 3, 16, 16, generator=g))
            mon.snapshot(epoch, rec["kimg"], real, fake, rec["step"])
            mon.check_diversity(fake, real, rec["step"], rec["kimg"])
        if i + 1 == n // 2:
            mon.log({"kind": "eval", "step": rec["step"], "kimg": rec["kimg"], "time": 1.0,
                     "fid": 80.5, "kid_mean": 0.05})
    mon.log({"kind": "eval", "step": (n + 1) * 10, "kimg": (n + 1) * 0.64, "time": 2.0, "fid": 60.25, "kid_mean": 0.03})
    return mon


def test_metrics_jsonl_and_tensorboard_read_back(tmp_path) -> None:
    run = tmp_path / "run"
    mon = populate(run)
    mon.close()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if "kind" not in r]
    assert len(train) == 40 and [r["step"] for r in train] == [(i + 1) * 10 for i in range(40)]
    rng = random.Random(0)
    expected = [train_record(i, rng) for i in range(40)]
    assert [r["loss_g"] for r in train] == pytest.approx([r["loss_g"] for r in expected])
    assert sum(1 for r in lines if r.get("kind") == "diversity") == 2

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "acc_real", "acc_fake", "lr_g", "lr_d",
                "grad_norm_g", "grad_norm_d", "kimg", "images_seen", "ada_p", "fid", "kid_mean", "diversity_ratio"):
        assert tag in tags["scalars"], tag
    assert "step" not in tags["scalars"]
    loss_d = acc.Scalars("loss_d")
    assert [e.step for e in loss_d] == [r["step"] for r in expected]
    assert [e.value for e in loss_d] == pytest.approx([r["loss_d"] for r in expected], rel=1e-6)
    assert [e.value for e in acc.Scalars("fid")] == pytest.approx([80.5, 60.25])
    assert "samples/real_vs_generated" in tags["images"]
    img = acc.Images("samples/real_vs_generated")
    assert [e.step for e in img] == [200, 400] and img[-1].width > img[-1].height


def test_health_events_reach_file_console_tensorboard_and_verdict(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    mon = populate(run, n=60, saturate_from=30)
    events = [e for e in mon.events if e.kind == "d_saturation"]
    assert len(events) == 1
    applied = mon.event("remedy_applied", events[0].step, events[0].kimg,
                        "--auto-remedy after d_saturation: set lr_d=0.0001", remedy={"lr_d": 1e-4}, applied=True)
    verdict = mon.close("finished")
    err = capsys.readouterr().err
    assert "WARNING [d_saturation]" in err and "--lr-d" in err
    stored = [json.loads(line) for line in (run / "health.jsonl").read_text().splitlines()]
    assert [s["kind"] for s in stored] == ["d_saturation", "remedy_applied"]
    assert stored[1]["applied"] is True and stored[1]["remedy"] == {"lr_d": 1e-4}
    assert stored[0]["step"] == events[0].step and applied.step == events[0].step
    assert "discriminator saturation" in verdict and f"step {events[0].step}" in verdict
    assert "lr_d to 0.0001" in verdict and verdict.startswith("Problems detected")
    acc = EventAccumulator(str(run / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    assert "health/d_saturation/text_summary" in acc.Tags()["tensors"]
    text = acc.Tensors("health/d_saturation/text_summary")[0]
    assert text.step == events[0].step
    assert b"discriminator wins" in text.tensor_proto.string_val[0]


def test_healthy_run_is_silent_and_says_so(tmp_path, capsys) -> None:
    mon = populate(tmp_path / "run", n=80)
    verdict = mon.close()
    assert mon.events == []
    assert (tmp_path / "run" / "health.jsonl").read_text() == ""
    assert "WARNING" not in capsys.readouterr().err
    assert verdict.startswith("Healthy") and "epoch 2" in verdict and "Last FID: 60.25" in verdict


def _column_means(img: Image.Image, x0: float, x1: float) -> tuple[float, float, float]:
    w, h = img.size
    crop = img.crop((int(w * x0), int(h * 0.3), int(w * x1), int(h * 0.9))).convert("RGB")
    px = list(crop.get_flattened_data())
    return tuple(sum(p[c] for p in px) / len(px) for c in range(3))


@pytest.mark.parametrize("channels", [1, 3])
def test_snapshot_real_left_fake_right(tmp_path, channels: int) -> None:
    mon = RunMonitor(tmp_path / "run", TrainConfig(tensorboard=False))
    real = images(1.0, c=channels)          # white
    fake = images(-1.0, c=channels)         # black
    if channels == 3:
        real[:, 1:] = -1.0                  # red
        fake[:, 2] = 1.0                    # blue
    path = mon.snapshot(7, 1.5, real, fake, 70)
    assert path == tmp_path / "run" / "samples" / "epoch_0007.png"
    with Image.open(path) as img:
        img.load()
    assert img.width > img.height >= 256
    left, right = _column_means(img, 0.05, 0.4), _column_means(img, 0.6, 0.95)
    if channels == 1:
        assert min(left) > 150 and max(right) < 40
    else:
        assert left[0] > 150 > left[2] and right[2] > 150 > right[0]
    mon.close()


def test_progress_gif_bounded_after_200_snapshots(tmp_path) -> None:
    run = tmp_path / "run"
    mon = RunMonitor(run, TrainConfig(tensorboard=False))
    real = images(0.0)
    g = torch.Generator().manual_seed(0)
    for epoch in range(1, 201):
        # the generated grid gets brighter epoch after epoch, so frames are distinguishable
        fake = (epoch / 100 - 1) + 0.05 * torch.randn(16, 3, 16, 16, generator=g)
        mon.snapshot(epoch, epoch * 0.5, real, fake, epoch * 10)
    mon.epoch_end(200)
    gif = run / "progress.gif"
    with Image.open(gif) as im:
        assert im.format == "GIF" and getattr(im, "is_animated", False)
        n = im.n_frames
        assert 2 <= n <= MAX_GIF_FRAMES
        assert max(im.size) <= MAX_GIF_SIDE + 30  # grid side bound plus the text strip
        im.seek(0)
        first = im.convert("L").crop((0, 40, im.width, im.height))
        im.seek(n - 1)
        last = im.convert("L").crop((0, 40, im.width, im.height))
    mean = lambda img: sum(img.get_flattened_data()) / (img.width * img.height)  # noqa: E731
    assert mean(last) > mean(first) + 60
    assert gif.stat().st_size < 4_000_000
    index = json.loads((run / "samples" / "frames" / "frames.json").read_text())
    assert index[0]["epoch"] == 1 and index[-1]["epoch"] == 200
    assert [f["step"] for f in index] == sorted(f["step"] for f in index)
    assert len(list((run / "samples" / "frames").glob("*.png"))) == len(index) == n
    mon.close()


def test_gif_frames_keep_their_colours(tmp_path) -> None:
    """Each GIF frame gets its own palette: a grid of 64 smooth colours reads back within a few levels."""
    from gankit.monitor.images import FrameStore, with_header

    store = FrameStore(tmp_path / "frames")
    g = torch.Generator().manual_seed(3)
    grids = []
    for step in (10, 20):
        base = torch.rand(64, 3, 1, 1, generator=g) * 2 - 1  # one colour per image ...
        ramp = torch.linspace(-0.3, 0.3, 16).view(1, 1, 1, 16)  # ... shaded left to right, as sprites are
        store.add((base + ramp).clamp(-1, 1).expand(64, 3, 16, 16), step // 10, step / 10, step)
        with Image.open(store.folder / store.frames[-1]["file"]) as im:
            grids.append(np.asarray(with_header(im.convert("RGB"), "x"), dtype=float))
    store.write_gif(tmp_path / "p.gif")
    with Image.open(tmp_path / "p.gif") as im:
        assert im.n_frames == 2
        for i, grid in enumerate(grids):
            im.seek(i)
            got = np.asarray(im.convert("RGB"), dtype=float)
            body = slice(HEADER, None)  # the caption strip differs by its text
            assert got.shape == grid.shape
            # 6 levels here; a shared palette or web colours drift 14-17, 64 colours 11
            assert np.abs(got[body] - grid[body]).mean() < 8.0, f"frame {i}: colours drifted"


def test_redraws_take_a_bounded_share_of_the_run(tmp_path, monkeypatch) -> None:
    """Plots and GIF are redrawn at most every REDRAW_EVERY_S, and a slow redraw
    waits long enough that redrawing stays at REDRAW_SHARE of the time."""
    from gankit.monitor import run_monitor

    clock, drawn = [0.0], []
    cost = {"s": 2.0}

    def timed_draw(records, folder):  # the real drawing, then the clock moves by a known cost
        drawn.append(clock[0])
        clock[0] += cost["s"]

    monkeypatch.setattr(run_monitor.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(run_monitor, "draw_all", timed_draw)
    mon = RunMonitor(tmp_path / "run", TrainConfig(tensorboard=False))
    for epoch in range(1, 101):  # 5-second epochs, 2-second redraws
        clock[0] += 5.0
        mon.epoch_end(epoch)
    gaps = np.diff(drawn)
    assert len(drawn) > 5 and gaps.min() >= cost["s"] / run_monitor.REDRAW_SHARE
    assert 2.0 * len(drawn) / clock[0] <= run_monitor.REDRAW_SHARE * 1.01
    drawn.clear()
    cost["s"] = 0.01  # a quick redraw: the floor of REDRAW_EVERY_S between two
    for epoch in range(101, 201):
        clock[0] += 5.0
        mon.epoch_end(epoch)
    gaps = np.diff(drawn)
    assert gaps.min() >= run_monitor.REDRAW_EVERY_S and gaps.max() <= run_monitor.REDRAW_EVERY_S + 5.01
    mon.close()


def test_resume_continues_files_and_drops_the_abandoned_timeline(tmp_path) -> None:
    run = tmp_path / "run"
    rng = random.Random(1)
    first = RunMonitor(run, TrainConfig())
    for epoch in (1, 2):
        for i in range((epoch - 1) * 10, epoch * 10):
            first.log(healthy(i, rng))
        first.snapshot(epoch, epoch * 1.0, images(0.0), images(epoch - 1.5), epoch * 100)
    # crash: no close(); a new process resumes from the checkpoint at step 100
    with pytest.raises(UsageError, match="--name"):
        RunMonitor(run, TrainConfig())
    second = RunMonitor(run, TrainConfig(), resume=True)
    for epoch in (2, 3):
        for i in range((epoch - 1) * 10, epoch * 10):
            second.log(healthy(i, rng))
        second.snapshot(epoch, epoch * 1.0, images(0.0), images(epoch / 10), epoch * 100)
    second.close()
    raw = (run / "metrics.jsonl").read_text().splitlines()
    assert len(raw) == 40  # nothing deleted from the file
    steps = [r["step"] for r in load_records(run / "metrics.jsonl")]
    assert steps == [(i + 1) * 10 for i in range(30)]
    with Image.open(run / "progress.gif") as im:
        assert im.n_frames == 3
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss_d")] == steps


def test_gankit_report_rebuilds_from_files_alone(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    mon = populate(run, n=60, saturate_from=30)
    mon.close("finished")
    built = {p.name: p.stat().st_size for p in (run / "plots").glob("*.png")}
    assert set(built) == {"losses.png", "d_accuracy.png", "d_outputs.png", "grad_norms.png", "ada.png",
                          "quality.png", "diversity.png"}
    for p in list((run / "plots").glob("*.png")) + [run / "progress.gif", run / "report.html"]:
        p.unlink()
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert "discriminator saturation" in out and str(run / "report.html") in out
    for name in built:
        with Image.open(run / "plots" / name) as img:
            assert img.format == "PNG" and img.width >= 600
    page = (run / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    assert page.count("data:image/png;base64,") == len(built) + 1  # plots + real|fake
    assert page.count("data:image/gif;base64,") == 1
    assert "discriminator saturation" in page and "status: finished" in page
    assert "0.0003" in page  # lr_d from config.yaml
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "RUN: no such run directory" in capsys.readouterr().err


def test_report_of_an_empty_run_is_still_a_page(tmp_path) -> None:
    mon = RunMonitor(tmp_path / "run", TrainConfig(tensorboard=False))
    verdict = mon.close("failed")
    page = (tmp_path / "run" / "report.html").read_text()
    assert "No sample grid yet" in page and "not complete" in verdict
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")


def test_gankit_report_while_the_run_is_still_going(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    mon = populate(run, n=20)  # not closed: training goes on
    assert main(["report", "--quiet", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report.html")
    page = (run / "report.html").read_text()
    assert "in progress" in page and "reached epoch 1, 12.8 kimg" in page
    with Image.open(run / "plots" / "losses.png") as img:
        assert img.format == "PNG"
    mon.log(train_record(20, random.Random(1)))  # the monitor keeps working afterwards
    assert "finished" in mon.close()
