"""`gankit eval`: score a trained run, or compare any two image sets.

Flags are checked by argparse ``type=`` callables, so a bad value exits 2
naming its flag before anything is loaded; problems found later (a missing
run, missing Inception weights) are `UsageError`s, which also exit 2.  The
heavy imports (torch, the extractors) happen only when the command runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gankit.cli_helpers import positive_int
from gankit.errors import UsageError
from gankit.runpaths import RunDir

EVAL_HELP = """Measure image quality with FID, KID, precision/recall and density/coverage;
for a conditional run on a labelled dataset also per-class FID/KID and class agreement.

  gankit eval runs/00003-breakout                      # best checkpoint (else newest), dataset extractor
  gankit eval runs/00003-breakout --extractor inception --json
  gankit eval runs/00003-breakout --checkpoint last    # the newest state instead of the best one
  gankit eval --real data/breakout --fake samples/     # any two image sets (DIR of PNGs or a dataset)

Extractors: `dataset` (default) trains a small encoder on the real dataset once
(cached beside it; no download).  `inception` is the standard FID network:
its weights file pt_inception-2015-12-05-6726825d.pth must be in
$TORCH_HOME/hub/checkpoints/ (default ~/.cache/torch), given with
--inception-weights, or fetched with --download.

Small sets: with fewer than 5,000 images a side, KID (mean ± std over
subsets) is the headline, printed first and stored as `headline` in the
record, and FID is marked as biased (its bias grows like 1/N).  A warning
names each metric that either set is too small for.  See docs/evaluation.md.

Training vs held-out (after `gankit data split DATASET --holdout 0.1`):
--real-part train scores against the images the generator trained on,
--real-part heldout against the ones it never saw; a gap between the two is a
sign of copying.  See docs/evaluation.md.

Class agreement (`agreement`) labels the generated images with a linear probe
fitted on the real labelled images (dataset-extractor features; cached) and
reports the share showing their requested class, beside the probe's accuracy
on held-out real images (its ceiling).  See docs/conditional-eval.md.
"""


def _metrics(text: str) -> list[str]:
    from gankit.metrics.evaluate import parse_metrics

    try:
        return parse_metrics(text, "--metrics")
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter, add_generator_flags

    p = sub.add_parser("eval", help="FID, KID, precision/recall, density/coverage of a run or of two image sets",
                       description=EVAL_HELP, formatter_class=HelpFormatter)
    p.add_argument("run", nargs="?", help="run directory (uses its config.yaml's dataset as the real set)")
    p.add_argument("--real", default=None, help="real dataset folder; None: the dataset named in RUN/config.yaml")
    p.add_argument("--fake", default=None, help="instead of a run: a folder of images or a dataset folder")
    p.add_argument("--metrics", type=_metrics, default=None,
                   help="comma-separated: fid,kid,pr,dc,agreement,memorization (needs `gankit data split`); "
                        "None: all of them (agreement only where there are classes)")
    p.add_argument("--num", type=positive_int, default=5000, help="images per side (real: at most the dataset's size)")
    # the names of holdout.REAL_PARTS, spelt out: importing it here would load torch for --help
    p.add_argument("--real-part", choices=("all", "train", "heldout"), default="all",
                   help="real images to compare with: all, or the training / held-out part of `gankit data split`")
    p.add_argument("--extractor", choices=("dataset", "inception"), default="dataset", help="feature extractor")
    add_generator_flags(p, verb="score")
    p.add_argument("--inception-weights", default=None, metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--download", action="store_true", help="download the Inception weights if they are missing")
    p.add_argument("--batch", type=positive_int, default=64, help="images per forward pass")
    p.add_argument("--seed", type=int, default=0, help="seed of the latents and of the real-image subset")
    p.add_argument("--json", action="store_true", help="print one JSON object, metric -> value")
    p.add_argument("--out", default=None,
                   help="file for the full result record; None: RUN/eval.json (nothing without a RUN)")
    p.set_defaults(func=run, _parser=p)


def _device(text: str) -> Any:
    from gankit.device import resolve_device

    return resolve_device(text)


def _is_generator_file(run: str) -> bool:
    return Path(run).suffix == ".safetensors" and Path(run).is_file()


def _real_path(args: argparse.Namespace) -> str:
    if args.real:
        return args.real
    if not args.run:
        raise UsageError("--real: give the real dataset (or a RUN whose config names it)")
    if _is_generator_file(args.run):  # gankit export's file: its header says which dataset it learnt
        from gankit.models.generator_file import read_header

        data = read_header(args.run).get("source", {}).get("data")
        if not data or not Path(data).is_dir():
            raise UsageError(f"--real: {args.run} does not name a dataset found here; pass --real DATASET")
        return str(data)
    from gankit.train.rundir import read_config

    run = RunDir.of(args.run)  # a run directory, or the run of a checkpoint file
    config_file = run.config
    if not config_file.is_file():
        raise UsageError(f"RUN: {args.run} is not a run directory (no {run.CONFIG})")
    data = (read_config(run.path) or {}).get("data")
    if not data:
        raise UsageError(f"RUN: {config_file} names no dataset; pass --real DATASET")
    if not Path(data).is_dir():
        raise UsageError(f"RUN: the run's dataset {data} is not here (moved?); pass --real DATASET")
    return str(data)


def _fake_set(args: argparse.Namespace, real: Any, device: Any) -> tuple[Any, dict[str, Any]]:
    from gankit.data.dataset import MANIFEST, load_dataset
    from gankit.metrics.image_sets import DatasetImages, FolderImages, GeneratorImages

    if args.fake:
        fake = Path(args.fake)
        if (fake / MANIFEST).is_file():
            return DatasetImages(load_dataset(fake), args.num, seed=args.seed), {"fake": str(fake)}
        return FolderImages(fake, args.num, real.channels), {"fake": str(fake)}
    from gankit.sample import find_checkpoint, load_generator

    ckpt = find_checkpoint(args.run, args.checkpoint)
    G = load_generator(args.run, ckpt, ema=not args.no_ema, device=device)
    classes = _generator_classes(ckpt) or (real.classes if len(real.classes) == getattr(G, "num_classes", 0) else [])
    images = GeneratorImages(G, args.num, seed=args.seed, classes=list(classes),
                             class_weights=real.class_counts or None)
    return images, {"run": str(args.run), "checkpoint": str(ckpt),
                                                            "ema": not args.no_ema}


def _generator_classes(checkpoint: Path) -> list[str]:
    """The class names a conditional checkpoint stores ([] for other checkpoints and exported files)."""
    if _is_generator_file(str(checkpoint)):
        return []
    from gankit.train.checkpoint import load_checkpoint

    return [str(c) for c in load_checkpoint(Path(checkpoint)).get("classes") or []]


def _trained_on(source: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset fingerprint stored in the evaluated checkpoint (None for older ones)."""
    if "checkpoint" not in source or _is_generator_file(source["checkpoint"]):
        return None  # an exported generator file carries no fingerprint
    from gankit.train.checkpoint import load_checkpoint

    return load_checkpoint(Path(source["checkpoint"])).get("data") or None


def _table(values: dict[str, float], notes: dict[str, str] | None = None) -> str:
    width = max([10, *(len(name) for name in values)])  # intra_fid_other, agreement_ceiling are longer
    notes = notes or {}
    return "\n".join(f"  {name:<{width}} {value:>12.6g}" + (f"  ({notes[name]})" if name in notes else "")
                     for name, value in values.items())


def _headline_and_warnings(result: Any, say: Any) -> dict[str, str]:
    """The headline line (the first one printed), one stderr line per size
    warning, and the notes for the table (FID marked as biased at small N)."""
    from gankit.metrics.small_sets import biased_fid

    if result.headline:
        say(f"headline: {result.headline['text']} ({result.headline['why']})")
    for line in result.warnings:
        print(f"gankit eval: WARNING: {line}", file=sys.stderr, flush=True)
    if biased_fid(result.num_real, result.num_fake):
        return {"fid": f"biased upward at {min(result.num_real, result.num_fake)} images a side; read KID"}
    return {}


def _class_report(result: Any) -> str:
    """The per-class table and the agreement line under the overall figures."""
    from gankit.metrics.per_class import table

    lines = ["per class (generated images of a class vs real images of that class; 'other': vs the real "
             "images of the nearest other class):", table(result.per_class)]
    if result.agreement:
        a = result.agreement
        lines.append(f"class agreement: {a['agreement']:.3f} of generated images show their requested class "
                     f"(ceiling {a['agreement_ceiling']:.3f}: the probe's accuracy on held-out real images)")
        lines.append("  per class: " + ", ".join(
            f"{row['class']} {v:.2f}" for row, v in zip(result.per_class, a["per_class"]) if v is not None))
    return "\n".join(lines)


def _check_args(args: argparse.Namespace) -> None:
    """RUN or --fake, not both and not neither; a RUN that is a run directory (or generator file)."""
    if args.run and args.fake:
        raise UsageError("--fake: give either a RUN or --fake, not both")
    if not args.run and not args.fake:
        raise UsageError("RUN: give a run directory, or --real DATASET --fake DIR|DATASET")
    if args.run and not _is_generator_file(args.run):
        from gankit.inputs import expect_run

        expect_run(args.run)


def _provenance(record: dict[str, Any], source: dict[str, Any], result: Any, real: Any) -> None:
    """Note in ``record`` what the run trained on, and warn when the score is
    against other data, or judges copies (or calls images held out) by a split
    the run did not train under."""
    trained_on = _trained_on(source)
    real_fp = result.real_fingerprint
    assert real_fp is not None  # evaluate() always records the real data's fingerprint
    if trained_on is None:
        return
    record["trained_on"] = trained_on
    if any(trained_on.get(k) != real_fp.get(k) for k in ("count", "shape", "manifest_sha256")):
        from gankit.data.dataset import describe_fingerprint

        print(f"gankit eval: WARNING: the run trained on {trained_on.get('path')} "
              f"({describe_fingerprint(trained_on)}); "
              f"this score is against {real.path} ({describe_fingerprint(real_fp)})",
              file=sys.stderr, flush=True)
    heldout = result.real_split if result.real_part == "heldout" else None
    hurt = [why for details, why in ((result.memorization, "the copy score undercounts copies"),
                                     (heldout, "--real-part heldout is not all unseen images"))
            if details and trained_on.get("split") != details["split_digest"]]
    if hurt:
        print("gankit eval: WARNING: the run did not train under this split of the dataset (gankit data split came "
              f"later, or was redone): its generator saw some held-out images, so {' and '.join(hurt)}",
              file=sys.stderr, flush=True)


def _record_path(args: argparse.Namespace) -> Path | None:
    """Where eval.json goes: --out, else the run's eval record, else beside a generator file."""
    if args.out:
        return Path(args.out)
    if not args.run:
        return None
    if _is_generator_file(args.run):
        return Path(args.run).with_suffix(".eval.json")  # beside the file, not inside it
    return RunDir(args.run).eval_record


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    from gankit.data.dataset import load_dataset
    from gankit.inputs import expect_dataset
    from gankit.metrics.evaluate import DEFAULT_METRICS, class_labels, evaluate
    from gankit.metrics.registry import get_extractor

    explicit = args.metrics is not None
    metrics = args.metrics if isinstance(args.metrics, list) else _metrics(args.metrics or DEFAULT_METRICS)
    device = _device(args.device)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    real = load_dataset(expect_dataset(_real_path(args), "--real"))
    fake, source = _fake_set(args, real, device)
    fake_labels, why = class_labels(real, fake)
    if explicit and "agreement" in metrics and fake_labels is None:  # before any encoder is trained
        raise UsageError(f"--metrics: agreement needs class labels on both sides: {why}")
    from gankit.metrics.holdout import require_split

    if "memorization" in metrics:  # also before any encoder is trained: it needs `gankit data split`
        require_split(real)
    if args.real_part != "all":
        require_split(real, "--real-part", args.real_part)
    extractor = get_extractor(args.extractor, dataset=real, device=device, weights=args.inception_weights,
                              download=args.download, log=True)
    probe_extractor = None
    if "agreement" in metrics and args.extractor != "dataset" and fake_labels is not None:
        probe_extractor = get_extractor("dataset", dataset=real, device=device, log=True)
    result = evaluate(real, fake, metrics, extractor, num_real=args.num, batch=args.batch, seed=args.seed,
                      probe_extractor=probe_extractor, require_classes=explicit, real_part=args.real_part)
    record = {**result.to_dict(), **source, "real": str(real.path), "metric_names": metrics,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _provenance(record, source, result, real)
    out = _record_path(args)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
    _report(args, result, source, real, fake, extractor, say)
    say(f"{result.seconds:.1f} s" + (f"; wrote {out}" if out is not None else ""))
    return 0


def _report(args: argparse.Namespace, result: Any, source: dict[str, Any], real: Any, fake: Any, extractor: Any,
            say: Callable[[str], None]) -> None:
    """The console: headline and warnings, what was compared, the table, then
    the per-class table and the copy score (with the report's neighbours panel)."""
    what, kind = (source["checkpoint"], "generated") if "checkpoint" in source else (source["fake"], "fake")
    notes = _headline_and_warnings(result, say)
    say(f"{what} vs {real.path}: {result.num_fake} {kind} vs {result.num_real} real images at "
        f"{result.resolution[0]}x{result.resolution[1]}")
    if result.real_split:
        from gankit.metrics.holdout import PART_WORDS

        s = result.real_split
        say(f"real: {result.num_real} {PART_WORDS[s['part']]} images of {real.path} (of {s['part_size']} in that "
            f"part; split {s['split_digest']}: {s['split']})")
    say(f"extractor: {extractor.describe()}" + (" (real features from cache)" if result.real_from_cache else ""))
    if args.json:
        print(json.dumps(result.metrics))
    else:
        print(_table(result.metrics, notes))
    if result.per_class:
        say(_class_report(result))
    if result.memorization:  # and the nearest-neighbours panel for a run's report
        from gankit.metrics.holdout import describe, write_neighbours
        from gankit.monitor.neighbours import panel_path

        run_dir = RunDir.of(args.run).path if args.run and not _is_generator_file(args.run) else None
        panel = write_neighbours(panel_path(run_dir), real, fake, result.memorization) if run_dir else None
        say(describe(result.memorization, panel))
