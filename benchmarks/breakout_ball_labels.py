"""Telling the Breakout GAN which frames have a ball: label, classify, score.

breakout_probe.py finds that D never weighs the ball.  These three commands
test whether labels help: a conditional run (projection D) on frames
labelled "ball" / "no ball", and runs with an auxiliary classifier that
must tell the two apart on real frames (``--aux-class``, which exists only
at commit 006421c).

    label DATA OUT          a copy of the dataset (images.npy linked, not copied) with
                            labels.npy: 1 where `breakout_quality.ball_at` sees one ball
    classify DATA           the run's D architecture trained as a plain classifier of those
                            labels on real frames alone (--batch, --steps); held-out accuracy
    score RUN --checkpoint A.pt,B.pt
                            the quality figures of each checkpoint with the generated classes
                            drawn at the data's frequencies, and the ball share per class

    python benchmarks/breakout_ball_labels.py label data/breakout data/breakout_ballc
    python benchmarks/breakout_ball_labels.py classify data/breakout_ballc --batch 16 --steps 4000
    python benchmarks/breakout_ball_labels.py score RUN --checkpoint ckpt-000048000.pt,ckpt-000080000.pt

Measured in docs/presets/breakout.md ("Telling D which frames have a ball").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakout_probe import to_tensor  # noqa: E402
from breakout_quality import FID, ball_at, compare, positions  # noqa: E402


def label(data: Path, out: Path) -> None:
    images = np.load(data / "images.npy", mmap_mode="r")
    labels = np.array([ball_at(np.asarray(f)) is not None for f in images], dtype=np.int64)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["classes"] = ["no ball", "ball"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    np.save(out / "labels.npy", labels)
    if not (out / "images.npy").exists():
        (out / "images.npy").symlink_to((data / "images.npy").resolve())
    print(f"{len(labels)} frames, ball share {labels.mean():.3f} -> {out}")


def classify(data: Path, batch: int, steps: int, lr: float) -> None:
    """The breakout preset's D trunk (width 16, CoordConv, mbstd 4) with a linear
    layer on its mean-pooled last features, trained on the labels alone."""
    from gankit.models.dcgan import DCGANDiscriminator

    torch.manual_seed(0)
    x, y = np.load(data / "images.npy"), np.load(data / "labels.npy")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    test, train = order[:1000], order[1000:]
    D = DCGANDiscriminator(64, 64, 3, 16, mbstd=4, coords=True, head=256)
    trunk = D.net[: D.head_at]  # (B, 3, 64, 64) -> (B, 129, 4, 4)
    linear = torch.nn.Linear(129, 2)
    opt = torch.optim.Adam([*trunk.parameters(), *linear.parameters()], lr=lr, betas=(0.5, 0.999))

    def class_logits(idx: np.ndarray) -> torch.Tensor:
        return linear(trunk(to_tensor(x[idx])).mean((2, 3)))  # (B, 2)

    majority = max(y[test].mean(), 1 - y[test].mean())
    for step in range(1, steps + 1):
        idx = rng.choice(train, batch)
        loss = torch.nn.functional.cross_entropy(class_logits(idx), torch.from_numpy(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % max(steps // 10, 1) == 0:
            with torch.no_grad():  # batch statistics, as in training: BatchNorm's running means lag
                acc = (class_logits(test).argmax(1).numpy() == y[test]).mean()
            print(f"step {step:5d} ({step * batch / 1000:.1f} kimg): held-out accuracy {acc:.3f} "
                  f"(majority {majority:.3f})", flush=True)


def score(run: Path, names: list[str], num: int, seed: int) -> None:
    from gankit.data import load_dataset
    from gankit.monitor.images import to_uint8
    from gankit.sample import generate, load_generator
    from gankit.train.rundir import read_config

    dataset = load_dataset(read_config(run)["data"])
    if dataset.labels is None:
        raise SystemExit(f"{run} was trained on unlabelled data")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), 2 * num, replace=False)
    real_a, real_b = (np.asarray(dataset.images[np.sort(part)]) for part in (idx[:num], idx[num:]))
    ref, fid = positions(real_a), FID(dataset, real_a, real_b)
    floor = {k: round(v, 3) for k, v in compare(positions(real_b), ref).items()}
    print(f"real/real: {floor}, fid {fid.floor:.3f}; real ball share {np.mean(dataset.labels):.3f}")
    y = np.asarray(dataset.labels)[rng.choice(len(dataset), num)]  # the data's class frequencies
    for name in names:
        G = load_generator(run, checkpoint=run / "checkpoints" / name)
        fake = to_uint8(generate(G, num, seed=seed, classes=y.tolist()))
        row = {k: round(v, 3) for k, v in compare(positions(fake), ref).items()}
        row["fid"] = round(fid.score(fake), 3)
        has = np.array([ball_at(f) is not None for f in fake])
        print(f"{name}: {row}; ball share when asked for a ball {has[y == 1].mean():.2f}, "
              f"when asked for none {has[y == 0].mean():.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("label")
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("classify")
    p.add_argument("data", type=Path)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--threads", type=int, default=1)
    p = sub.add_parser("score")
    p.add_argument("run", type=Path)
    p.add_argument("--checkpoint", required=True, help="comma-separated checkpoint names")
    p.add_argument("--num", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "label":
        label(args.data, args.out)
    elif args.command == "classify":
        torch.set_num_threads(args.threads)
        classify(args.data, args.batch, args.steps, args.lr)
    else:
        score(args.run, args.checkpoint.split(","), args.num, args.seed)


if __name__ == "__main__":
    main()
