"""`gankit eval` and evaluation during training, end to end on real Breakout
frames from the emulator, a real (tiny) training run and real PNG files."""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.config import TrainConfig
from gankit.data.atari import collect_atari
from gankit.metrics.training import TrainingEvaluator

from conftest import train_plots_once

KEYS = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"]
TINY = ["--model", "dcgan", "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32",
        "--log-every", "5", "--no-tensorboard"]


pytestmark = pytest.mark.usefixtures("quick_encoder")  # conftest: these tests check the plumbing


@pytest.fixture(scope="module")
def breakout(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return collect_atari("Breakout", 160, 32, root / "breakout", every=3, seed=3, progress=False)


@pytest.fixture(scope="module")
def trained_run(breakout, quick_encoder):
    """A tiny real training run that evaluates every 0.16 kimg with all metrics."""
    out = breakout.path.parent / "runs"
    argv = ["train", "--data", str(breakout.path), "--out", str(out), "--name", "r", "--kimg", "0.48", *TINY,
            "--eval-every-kimg", "0.16", "--eval-num", "64", "--eval-metrics", "fid,kid,pr,dc"]
    assert train_plots_once(argv) == 0
    return out / "r"


def _write_pngs(folder, images):
    folder.mkdir(parents=True)
    for i, arr in enumerate(images):
        Image.fromarray(arr).save(folder / f"{i:04d}.png")
    return folder


def test_training_logs_quality_and_keeps_the_best_checkpoint(trained_run):
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "fid" in r]
    assert evals, "no evaluation record in metrics.jsonl"
    for r in evals:
        assert all(math.isfinite(r[k]) for k in KEYS), r
        assert r["extractor"] == "dataset" and r["eval_seconds"] >= 0 and 0 <= r["eval_fraction"]
    assert "eval_setup_seconds" in evals[0]  # the encoder was trained (once) during the run
    best = torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"]["metric"] == "fid"
    assert best["best"]["score"] == pytest.approx(min(r["fid"] for r in evals))


def test_the_extractors_one_off_training_is_not_training_time(trained_run):
    """The first evaluation trains the dataset encoder (minutes on varied sets,
    once per dataset): that pause must not count against --minutes, or a run on
    a fresh dataset would train less than the next one.  The training clock in
    the records steps over it: the two train records around the first
    evaluation are closer in time than the setup took."""
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    at = next(i for i, r in enumerate(records) if "eval_setup_seconds" in r)
    setup = records[at]["eval_setup_seconds"]
    train = lambda rs: [r for r in rs if r.get("kind", "train") == "train"]  # noqa: E731
    before, after = train(records[:at])[-1], train(records[at + 1:])[0]
    assert setup > 0.2, setup  # the encoder really trained in the run
    assert after["time"] - before["time"] < setup, (before["time"], after["time"], setup)
    assert records[at]["time"] - before["time"] < setup


def test_small64_ranks_its_states_by_kid_and_keeps_the_lowest(breakout, tmp_path):
    """The `small64` preset scores KID alone during training (docs/presets/small64.md,
    "The best state"): with no FID in the records, best.pt must hold the state
    of the lowest `kid_mean`, and the last state must have been scored too."""
    from gankit.train.loop import Trainer

    cfg = TrainConfig.from_preset("small64", data=str(breakout.path), out=str(tmp_path), name="k", kimg=0.64,
                                  width_g=8, width_d=8, latent=16, log_every=5, tensorboard=False,
                                  eval_every_kimg=0.16, eval_num=64)
    assert (cfg.model, cfg.eval_metrics) == ("fastgan", "kid")
    run = Trainer(cfg).run()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) >= 4 and all("fid" not in r and r["score_metric"] == "kid_mean" for r in evals)
    assert evals[-1]["kimg"] == pytest.approx(0.64)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["best"]
    low = min(evals, key=lambda r: r["kid_mean"])
    assert best["metric"] == "kid_mean" and best["score"] == pytest.approx(low["kid_mean"])
    assert best["kimg"] == pytest.approx(low["kimg"])


def test_best_checkpoint_keeps_the_better_state_and_sample_uses_it(breakout, tmp_path, capsys):
    """After the first evaluation the generator is spoilt (every weight zero,
    the last bias large: one flat white image where Breakout is mostly black).
    The later, worse states must not replace best.pt;
    `gankit sample RUN` must draw from best.pt, `--checkpoint last` from the
    spoilt state, and summary.json must say which state is best and why."""
    from gankit.sample import generate, load_generator
    from gankit.train.loop import Trainer

    cfg = TrainConfig(data=str(breakout.path), out=str(tmp_path), name="b", kimg=0.64, model="dcgan", width_g=8,
                      width_d=8, latent=16, batch=32, log_every=5, tensorboard=False, eval_every_kimg=0.32,
                      eval_num=64, eval_metrics="fid")
    def spoil(t: Trainer) -> None:
        if t.evaluator is not None and t.evaluator.evaluations >= 1:
            with torch.no_grad():
                for model in (t.state.G, t.state.ema.model):
                    for p in model.parameters():
                        p.zero_()
                    [m for m in model.modules() if getattr(m, "bias", None) is not None][-1].bias.fill_(10.0)

    run = Trainer(cfg, callbacks=[spoil]).run()
    out = capsys.readouterr().out
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) >= 2 and evals[-1]["kimg"] == pytest.approx(0.64)  # the final state was scored too
    first, rest = evals[0], evals[1:]
    assert all(r["score"] > first["score"] for r in rest), [r["score"] for r in evals]
    summary = json.loads((run / "summary.json").read_text())["best"]
    assert summary["checkpoint"] == "checkpoints/best.pt" and summary["metric"] == "fid"
    assert summary["score"] == pytest.approx(first["score"]) and summary["kimg"] == pytest.approx(first["kimg"])
    assert f"at {first['kimg']:.1f} kimg" in out and "best checkpoint:" in out
    assert (run / "samples" / "best.png").is_file()

    # the default and --checkpoint best are the same state; last is the spoilt one
    best_images = generate(load_generator(run, "best"), 8, seed=0)
    assert torch.equal(generate(load_generator(run), 8, seed=0), best_images)
    last_images = generate(load_generator(run, "last"), 8, seed=0)
    assert last_images.min() > 0.99 and not torch.equal(last_images, best_images)
    from gankit.monitor.images import make_grid

    for extra, expected in (([], best_images), (["--checkpoint", "last"], last_images)):
        png = tmp_path / f"s{len(extra)}.png"
        assert main(["sample", str(run), "--num", "8", "--out", str(png), *extra]) == 0
        assert np.array_equal(np.asarray(Image.open(png)), np.asarray(make_grid(expected)))


def test_eval_a_run_prints_json_and_writes_eval_json(trained_run, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained_run), "--num", "64", "--json"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)  # stdout is exactly one JSON object
    assert list(printed) == KEYS and all(isinstance(v, float) for v in printed.values())
    assert "extractor: dataset" in captured.err
    record = json.loads((trained_run / "eval.json").read_text())
    assert record["metrics"] == printed and record["extractor"] == "dataset"
    assert record["num_fake"] == record["num_real"] == 64 and record["resolution"] == [32, 32]
    assert record["real_from_cache"], "training already extracted these real features"
    assert record["checkpoint"].endswith(".pt") and record["ema"] is True
    # the generator is scored through the same path as during training: the newest checkpoint's
    # metrics are deterministic, so a second call gives the same numbers
    assert main(["eval", str(trained_run), "--num", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == printed


def test_scoring_a_run_equals_scoring_its_saved_samples(trained_run, breakout, tmp_path, capsys):
    assert main(["sample", str(trained_run), "--num", "64", "--out", str(tmp_path / "samples")]) == 0
    capsys.readouterr()
    assert main(["eval", str(trained_run), "--num", "64", "--json"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert main(["eval", "--real", str(breakout.path), "--fake", str(tmp_path / "samples"),
                 "--num", "64", "--json"]) == 0
    from_pngs = json.loads(capsys.readouterr().out)
    for key in KEYS:  # same latents, same rounding; at most a pixel's rounding may differ
        assert from_pngs[key] == pytest.approx(from_run[key], rel=1e-3, abs=1e-6), key


def test_eval_table_for_chosen_metrics_and_checkpoint(trained_run, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained_run), "--num", "32", "--metrics", "fid,pr", "--checkpoint", "best.pt"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert names == ["fid", "precision", "recall"]
    assert "best.pt" in out and "extractor: dataset" in out
    assert json.loads((trained_run / "eval.json").read_text())["checkpoint"].endswith("best.pt")


def test_compare_a_dataset_with_folders_of_pngs(breakout, tmp_path, capsys):
    images = np.asarray(breakout.images)
    same = _write_pngs(tmp_path / "same", images)
    rng = np.random.default_rng(0)
    noisy = _write_pngs(tmp_path / "noisy", np.clip(images + rng.normal(0, 40, images.shape), 0, 255).astype(np.uint8))
    results = {}
    for name, fake in (("same", same), ("dataset", breakout.path), ("noisy", noisy)):
        capsys.readouterr()
        assert main(["eval", "--real", str(breakout.path), "--fake", str(fake), "--num", "1000", "--json",
                     "--out", str(tmp_path / f"{name}.json")]) == 0
        results[name] = json.loads(capsys.readouterr().out)
        assert json.loads((tmp_path / f"{name}.json").read_text())["num_fake"] == len(images)
    for name in ("same", "dataset"):  # every real image, once as PNG files, once as the dataset itself
        assert abs(results[name]["fid"]) < 1e-6, results[name]
        assert results[name]["precision"] == results[name]["recall"] == results[name]["coverage"] == 1.0
    assert results["noisy"]["fid"] > 0.01 and results["noisy"]["kid_mean"] > results["same"]["kid_mean"]
    assert results["noisy"]["precision"] < 0.5 and results["noisy"]["coverage"] < 0.5


@pytest.mark.parametrize("argv,message", [
    ([], "RUN: give a run directory"),
    (["{tmp}/missing"], "RUN: no such run directory"),
    (["{run}", "--fake", "{tmp}"], "--fake: give either a RUN or --fake"),
    (["--real", "{data}", "--fake", "{tmp}/empty"], "--fake: no images"),
    (["--real", "{data}", "--fake", "{tmp}/broken"], "--fake: cannot read"),
    (["--real", "{data}", "--fake", "{tmp}/few"], "--num: 3 generated/fake images are too few"),
    (["--real", "{tmp}/missing", "--fake", "{tmp}/few"], "dataset"),
    (["--real", "{data}", "--fake", "{tmp}/few", "--extractor", "inception"], "--inception-weights: the FID Inception"),
    (["{run}", "--checkpoint", "nope.pt"], "--checkpoint: no such checkpoint"),
    (["{run}", "--device", "cuda:0" if not torch.cuda.is_available() else "tpu"], "--device"),
])
def test_bad_input_exits_2_with_a_clear_message(argv, message, trained_run, breakout, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"<html>not a png</html>")
    _write_pngs(tmp_path / "few", np.asarray(breakout.images[:3]))
    argv = [a.format(tmp=tmp_path, run=trained_run, data=breakout.path) for a in argv]
    capsys.readouterr()
    assert main(["eval", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err, err


@pytest.mark.parametrize("flag,value",
                         [("--num", "0"), ("--metrics", "fid,is"), ("--batch", "x"), ("--extractor", "clip")])
def test_bad_flag_values_exit_2_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--real", "x", "--fake", "y", flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


class _TinyG(torch.nn.Module):
    """z (B, 8) -> (B, 3, 32, 32) in [-1, 1], with batch norm so train/eval mode matters."""

    latent = 8

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 3 * 32 * 32)
        self.bn = torch.nn.BatchNorm1d(3 * 32 * 32)

    def forward(self, z):
        return torch.tanh(self.bn(self.fc(z))).view(-1, 3, 32, 32)


def test_training_evaluator_keeps_to_its_time_budget(breakout, tmp_path):
    cfg = TrainConfig(data=str(breakout.path), eval_every_kimg=1.0, eval_metrics="fid,dc", eval_num=32)
    ev = TrainingEvaluator(cfg, breakout, "cpu", tmp_path)
    G = _TinyG().train()
    assert not ev.due(0.5) and ev.due(1.0)
    rng_before = torch.get_rng_state()
    first = ev.evaluate(G, 1.0)
    assert torch.equal(torch.get_rng_state(), rng_before), "evaluation must not move the training RNG"
    assert G.training, "the generator's mode is restored"
    assert set(first) >= {"fid", "density", "coverage", "eval_seconds", "eval_fraction", "eval_setup_seconds"}
    assert "kid_mean" not in first and "precision" not in first
    second = ev.evaluate(G, 2.0)
    assert second["fid"] == first["fid"], "the same latents and weights give the same score"
    assert "eval_setup_seconds" not in second
    # just after evaluating, with almost no training time since: the slot is skipped
    ev.started = time.perf_counter() - ev.eval_seconds - ev.setup_seconds
    assert not ev.due(3.0) and ev.skipped == 1
    assert not ev.due(3.5), "between slots nothing is due"
    # after plenty of training time the next slot runs
    ev.started -= 1000.0
    assert ev.due(4.2)
    assert ev.evaluate(G, 4.2)["eval_skipped"] == 1
