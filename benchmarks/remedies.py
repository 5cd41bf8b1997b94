"""Does a remedy bring a failing run back?  Fork the run at one checkpoint,
continue each copy with one change, and compare the copies.

Why this exists: the health monitor advises (and with --auto-remedy applies)
a change when D saturates or samples collapse.  Advice is only worth giving
when it was measured to help on the failure it names, so this script makes
that measurement repeatable: every copy starts from the same checkpoint
(same weights, optimiser state and random streams) and differs only in the
flags of its variant; "none" (no change) is the baseline every remedy must
beat.

    python benchmarks/remedies.py runs/00003-dcgan --from-kimg 20 --kimg 10 \\
        --variant none= --variant lr_d_half="--lr-d 1e-4" --variant r1="--r1 1" --jobs 2
    python benchmarks/remedies.py /tmp/sat --from-kimg 250 --kimg 40 --variant none= --variant r1="--r1 0.2" \\
        --breakout        # also the paddle and ball figures of benchmarks/breakout_quality.py

Per copy it prints D's accuracy on real images (mean of the 8 logs before
the fork, then the largest 8-log mean after it and the last one), the
health events after the fork, and KID/FID with the `dataset` extractor of
its last state (EMA generator); with --breakout also the single-paddle
share, paddle-x W1 and ball share.  Changes a resume may make are those of
`gankit train --resume` (rates, R1, label smoothing, DiffAugment ops, ...).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

WINDOW = 8  # logs per window: the health monitor's window and issue 16's criterion


def fork(run: Path, from_kimg: float, dest: Path) -> float:
    """Copy ``run`` as it was at its last checkpoint at or before ``from_kimg`` into ``dest``; its kimg."""
    ckpts = sorted((int(p.stem.split("-")[1]), p) for p in (run / "checkpoints").glob("ckpt-*.pt"))
    chosen = [(n, p) for n, p in ckpts if n <= from_kimg * 1000]
    if not chosen:
        raise SystemExit(f"--from-kimg: {run} has no checkpoint at or before {from_kimg} kimg "
                         f"(it has {', '.join(f'{n / 1000:g}' for n, _ in ckpts) or 'none'})")
    images, ckpt = chosen[-1]
    if dest.exists():
        raise SystemExit(f"--out: {dest} exists; choose another --out or remove it")
    (dest / "checkpoints").mkdir(parents=True)
    shutil.copy2(ckpt, dest / "checkpoints" / ckpt.name)
    shutil.copy2(run / "config.yaml", dest / "config.yaml")
    for name in ("metrics.jsonl", "health.jsonl"):  # history up to the fork, so windows and reminders carry on
        src = run / name
        if src.is_file():
            keep = [line for line in src.read_text().splitlines()
                    if line.strip() and json.loads(line).get("kimg", 0) <= images / 1000 + 1e-9]
            (dest / name).write_text("".join(line + "\n" for line in keep))
    return images / 1000


def train(dest: Path, until_kimg: float, flags: str, threads: int) -> int:
    cmd = [sys.executable, "-m", "gankit", "train", "--resume", str(dest), "--minutes", "0", "--kimg",
           f"{until_kimg:g}", "--threads", str(threads), "--keep", "50", *shlex.split(flags)]
    with open(dest / "remedy.out", "w") as out:
        return subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode


def windows(values: list[float]) -> list[float]:
    return [statistics.fmean(values[i:i + WINDOW]) for i in range(len(values) - WINDOW + 1)]


def summarise(dest: Path, fork_kimg: float) -> dict[str, Any]:
    from gankit.monitor.events import load_events, load_records, train_records

    records = train_records(load_records(dest / "metrics.jsonl"))
    before = [r["acc_real"] for r in records if r["kimg"] <= fork_kimg][-WINDOW:]
    after = [r["acc_real"] for r in records if r["kimg"] > fork_kimg]
    wins = windows(after)
    return {
        "kimg": records[-1]["kimg"] if records else fork_kimg,
        "acc_real_before": statistics.fmean(before) if before else float("nan"),
        "acc_real_max_window": max(wins) if wins else float("nan"),
        "acc_real_last_window": wins[-1] if wins else float("nan"),
        "events": [f"{e.kind}@{e.kimg:.0f}" for e in load_events(dest / "health.jsonl")
                   if e.kimg > fork_kimg and e.kind != "resume_change"],
    }


def last_checkpoint(dest: Path) -> Path:
    """The copy's newest state (not best.pt: a remedy is judged by where it leads the run)."""
    return max((dest / "checkpoints").glob("ckpt-*.pt"), key=lambda p: int(p.stem.split("-")[1]))


def scores(dest: Path, data: Path, extractor: Any, num: int) -> dict[str, float]:
    """KID and FID of the copy's last state (EMA generator), as `gankit eval` computes them."""
    from gankit.data import load_dataset
    from gankit.metrics.evaluate import evaluate
    from gankit.metrics.image_sets import GeneratorImages
    from gankit.sample import load_generator

    real = load_dataset(data)
    G = load_generator(dest, checkpoint=last_checkpoint(dest), ema=True)
    count = min(num, len(real))
    return evaluate(real, GeneratorImages(G, count, seed=0), ["fid", "kid"], extractor, num_real=count).metrics


def breakout_figures(dest: Path, num: int) -> dict[str, float]:
    """breakout_quality.py's paddle and ball figures of the copy's last checkpoint."""
    from breakout_quality import evaluate_run

    rows = evaluate_run(dest, num, seed=0, only=last_checkpoint(dest).name, with_fid=False)["checkpoints"]
    return next(iter(rows.values()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="the run to fork (its checkpoints/ must hold one at or before --from-kimg)")
    p.add_argument("--from-kimg", type=float, required=True, help="fork at the last checkpoint at or before this")
    p.add_argument("--kimg", type=float, required=True, help="thousands of images each copy trains after the fork")
    p.add_argument("--variant", action="append", required=True, metavar="NAME=FLAGS",
                   help="a copy and its train flags, e.g. r1='--r1 1' (none= : no change)")
    p.add_argument("--out", type=Path, help="parent of the copies (default: RUN-remedies)")
    p.add_argument("--jobs", type=int, default=1, help="copies trained at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads per copy")
    p.add_argument("--eval-num", type=int, default=1000, help="images a side for KID/FID")
    p.add_argument("--breakout", action="store_true", help="also paddle and ball figures (breakout_quality.py)")
    p.add_argument("--summarise-only", action="store_true", help="skip training; read the copies in --out")
    args = p.parse_args(argv)
    variants = {}
    for text in args.variant:
        name, sep, flags = text.partition("=")
        if not sep or not name:
            p.error(f"--variant: {text!r} is not NAME=FLAGS")
        variants[name] = flags
    out = args.out or args.run.with_name(args.run.name + "-remedies")
    dests = {name: out / name for name in variants}
    if not args.summarise_only:
        fork_kimg = max(fork(args.run, args.from_kimg, d) for d in dests.values())
        (out / "fork.json").write_text(json.dumps({"run": str(args.run), "kimg": fork_kimg}))
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = dict(zip(variants, pool.map(lambda n: train(dests[n], fork_kimg + args.kimg, variants[n],
                                                                args.threads), variants)))
        for name, code in codes.items():
            if code:
                print(f"{name}: training exited {code}; see {dests[name] / 'remedy.out'}")
    else:
        fork_kimg = float(json.loads((out / "fork.json").read_text())["kimg"])

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gankit.train.rundir import read_config
    from small_data_eval import dataset_extractor

    data = Path(read_config(args.run)["data"])
    extractor = dataset_extractor(data)
    print(f"\nforked {args.run} at {fork_kimg:g} kimg, +{args.kimg:g} kimg each\n")
    cols = ["variant", "flags", "kimg", "acc_real before", "max 8-log after", "last 8-log", "events after fork",
            "KID x1000", "FID"] + (["single paddle", "paddle W1", "ball"] if args.breakout else [])
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for name, dest in dests.items():
        s = summarise(dest, fork_kimg)
        q = scores(dest, data, extractor, args.eval_num)
        cells = [name, variants[name] or "(none)", f"{s['kimg']:.0f}", f"{s['acc_real_before']:.3f}",
                 f"{s['acc_real_max_window']:.3f}", f"{s['acc_real_last_window']:.3f}",
                 ", ".join(s["events"]) or "none",
                 f"{q['kid_mean'] * 1000:.1f} ± {q['kid_std'] * 1000:.1f}", f"{q['fid']:.2f}"]
        if args.breakout:
            b = breakout_figures(dest, 500)
            cells += [f"{b['paddle']:.2f}", f"{b['paddle_w1']:.3f}", f"{b['ball']:.2f}"]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
