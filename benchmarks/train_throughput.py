"""Training throughput: gankit's loop against the plain DCGAN recipe.

Why this exists: gankit claims to train faster than the code a user would
write themselves.  This script measures both in one process, on the same
device, for the same model (DCGAN 64x64, width 64, batch 64, BCE):

- gankit: ``TrainingParts.step`` (D step + G step, Adam, EMA, device-side
  statistics) on batches gathered from the memory-mapped uint8 dataset, with
  its fast settings: the precision `--precision auto` picks (bf16 on a GPU
  and on CPUs with bf16 units, else fp32) and channels_last, the
  dataset resident on the GPU, optionally ``torch.compile``;
- reference: the canonical recipe (pytorch/examples' DCGAN), written out
  below: a DataLoader over uint8 images converted to float per batch, fp32,
  Adam, BCEWithLogits, three D calls per iteration, ``.item()`` every step.

The two run in alternating short blocks (gankit, reference, gankit, ...)
so that other work on a shared machine slows both alike; the ratio is the
median of the per-round ratios.  The model FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode``.  A second part trains for
``--train-iters`` iterations on Atari Breakout frames: gankit's setting, the
same with DiffAugment, and the reference; it reports the discriminator's
final accuracy and the health monitor's verdict, so a faster setting cannot
hide a broken one.

    python benchmarks/train_throughput.py                    # everything (~30 min on 2 busy CPU cores)
    python benchmarks/train_throughput.py --skip-train-check # speed only (~2 min)
    python benchmarks/train_throughput.py --only-train-check

The last line is ``ratio: X.XX`` (gankit images/s over reference images/s).
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from gankit.config import TrainConfig
from gankit.data import write_dataset

LATENT = 100


# ----------------------------------------------------------------- reference
class RefGenerator(nn.Module):
    """The recipe's generator: z (B, 100, 1, 1) -> (B, 3, 64, 64).  Its output layer has
    a bias, as gankit's has, so that both train the very same architecture."""

    def __init__(self, nz: int = LATENT, ngf: int = 64, nc: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8),
                                   nn.ReLU(True)]
        for c_in, c_out in ((ngf * 8, ngf * 4), (ngf * 4, ngf * 2), (ngf * 2, ngf)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class RefDiscriminator(nn.Module):
    """The recipe's discriminator, ending in a logit (BCEWithLogits) instead of a Sigmoid."""

    def __init__(self, ndf: int = 64, nc: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for c_in, c_out in ((ndf, ndf * 2), (ndf * 2, ndf * 4), (ndf * 4, ndf * 8)):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        layers += [nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def ref_init(m: nn.Module) -> None:
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class UInt8Images(Dataset):
    """Items straight from the dataset's images.npy: (H, W, C) uint8 tensors."""

    def __init__(self, folder: Path):
        self.images = np.load(Path(folder) / "images.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(np.array(self.images[i]))


class Reference:
    """One canonical DCGAN iteration per ``step()``; returns the recipe's printed numbers."""

    def __init__(self, data: Path, device: torch.device, batch: int, workers: int, seed: int = 0):
        torch.manual_seed(seed)
        self.device, self.batch = device, batch
        self.G = RefGenerator().to(device)
        self.D = RefDiscriminator().to(device)
        self.G.apply(ref_init)
        self.D.apply(ref_init)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.criterion = nn.BCEWithLogitsLoss()
        self.loader = DataLoader(UInt8Images(data), batch_size=batch, shuffle=True, num_workers=workers,
                                 drop_last=True, persistent_workers=workers > 0)
        self._batches = self._forever()

    def _forever(self):
        while True:
            yield from self.loader

    def step(self) -> dict[str, float]:
        real = next(self._batches).to(self.device).permute(0, 3, 1, 2).float().div(127.5).sub(1).contiguous()
        B = real.shape[0]
        ones = torch.ones(B, device=self.device)
        zeros = torch.zeros(B, device=self.device)
        self.D.zero_grad()
        out_real = self.D(real)
        err_real = self.criterion(out_real, ones)
        err_real.backward()
        fake = self.G(torch.randn(B, LATENT, 1, 1, device=self.device))
        out_fake = self.D(fake.detach())
        err_fake = self.criterion(out_fake, zeros)
        err_fake.backward()
        self.opt_d.step()
        self.G.zero_grad()
        out_g = self.D(fake)
        err_g = self.criterion(out_g, ones)
        err_g.backward()
        self.opt_g.step()
        return {"loss_d": (err_real + err_fake).item(), "loss_g": err_g.item(),
                "d_x": torch.sigmoid(out_real).mean().item(), "d_g_z1": torch.sigmoid(out_fake).mean().item(),
                "d_g_z2": torch.sigmoid(out_g).mean().item(),
                "acc_real": (out_real > 0).float().mean().item(), "acc_fake": (out_fake < 0).float().mean().item()}


# -------------------------------------------------------------------- gankit
def gankit_config(data: Path, out: Path, device: torch.device, compile_: bool, batch: int) -> TrainConfig:
    from gankit.train.hardware import pick_precision

    # what `--precision auto` picks: bf16 emulated on a CPU without bf16 units ran at 1/20 of fp32 (AVX2 EPYC)
    precision = pick_precision("auto", device)
    return TrainConfig.from_preset("dcgan", data=str(data), out=str(out), device=device.type, batch=batch,
                                   width_g=64, width_d=64, latent=LATENT, precision=precision,
                                   channels_last=True, compile=compile_, tensorboard=False)


class Gankit:
    def __init__(self, cfg: TrainConfig):
        from gankit.train.parts import TrainingParts
        from gankit.train.step import StepStats

        self.parts = TrainingParts(cfg)  # what the loop steps with, no run directory
        self.order = self.parts.batches.order(1)
        self.stats = StepStats.zeros(self.parts.device)  # accumulated on the device, as the loop does
        self.i = 0

    def step(self) -> None:
        j = self.i % self.parts.batches.iters
        self.i += 1
        self.stats.add(self.parts.step(*self.parts.batch_of(self.order, j)))


# ------------------------------------------------------------------ measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step: Callable[[], object], n: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return time.perf_counter() - t0


def flops_per_image(step: Callable[[], object], batch: int) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch


def synthetic_frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a bright rectangle on a dark background (content does not affect speed)."""
    rng = np.random.default_rng(seed)
    out = np.full((n, size, size, 3), 16, np.uint8)
    for i in range(n):
        y, x = rng.integers(0, size - 16, 2)
        out[i, y:y + 16, x:x + 16] = rng.integers(96, 255, 3)
    return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def throughput(args: argparse.Namespace, device: torch.device, tmp: Path) -> float:
    data = write_dataset(tmp / "synthetic", synthetic_frames(args.images), source="benchmark").path
    fast = Gankit(gankit_config(data, tmp / "runs", device, args.compile, args.batch))
    ref = Reference(data, device, args.batch, args.ref_workers)
    state = fast.parts.state
    n_g = sum(p.numel() for p in state.G.parameters()) + sum(p.numel() for p in state.D.parameters())
    n_r = sum(p.numel() for p in ref.G.parameters()) + sum(p.numel() for p in ref.D.parameters())
    assert n_g == n_r, f"architectures differ: gankit {n_g} parameters, reference {n_r}"
    cfg = fast.parts.cfg
    cpu = device.type == "cpu"
    where = f"{cpu_name()}, {torch.get_num_threads()} threads" if cpu else torch.cuda.get_device_name(device)
    print(f"device: {device} ({where}); torch {torch.__version__}")
    print(f"model: dcgan 64x64, width 64, batch {args.batch}, bce; {n_r / 1e6:.2f} M parameters")
    print(f"gankit: {cfg.precision} autocast, channels_last, batches from the uint8 memory map"
          f"{' (resident on the GPU)' if fast.parts.batches.resident is not None else ''}, "
          f"D frozen in the G step{', torch.compile' if cfg.compile else ''}")
    print(f"reference: fp32, DataLoader(num_workers={args.ref_workers}), Adam, BCEWithLogits")
    # Flush-to-zero of subnormals is one of gankit's settings (TrainingParts turns it on); the
    # reference runs with torch's default, so it is switched per block.
    modes = {"gankit": (fast.step, True), "reference": (ref.step, False)}
    for step, ftz in modes.values():
        torch.set_flush_denormal(ftz)
        for _ in range(args.warmup):
            step()
    torch.set_flush_denormal(False)
    ref_flops = flops_per_image(ref.step, args.batch)
    torch.set_flush_denormal(True)
    fast_flops = flops_per_image(fast.step, args.batch)
    rates: dict[str, list[float]] = {"gankit": [], "reference": []}
    for r in range(args.rounds):
        for name, (step, ftz) in modes.items():
            torch.set_flush_denormal(ftz)
            rates[name].append(args.iters * args.batch / timed(step, args.iters, device))
        print(f"round {r + 1}/{args.rounds}: gankit {rates['gankit'][-1]:.1f} img/s, "
              f"reference {rates['reference'][-1]:.1f} img/s, ratio {rates['gankit'][-1] / rates['reference'][-1]:.2f}",
              flush=True)
    g, ref_rate = statistics.median(rates["gankit"]), statistics.median(rates["reference"])
    print(f"FLOPs per image per training step: reference recipe {ref_flops / 1e9:.3f} GFLOP, "
          f"gankit {fast_flops / 1e9:.3f} GFLOP (no D weight gradients in the G step)")
    for name, rate, flops in (("gankit", g, fast_flops), ("reference", ref_rate, ref_flops)):
        print(f"{name:>9}: {rate:8.1f} images/s  {rate / args.batch:6.2f} steps/s  "
              f"{rate * flops / 1e9:7.1f} GFLOP/s achieved  ({rate * ref_flops / 1e9:.1f} GFLOP/s in recipe FLOPs)")
    ratios = sorted(a / b for a, b in zip(rates["gankit"], rates["reference"]))
    print(f"per-round ratios: min {ratios[0]:.2f}, median {statistics.median(ratios):.2f}, max {ratios[-1]:.2f}")
    return statistics.median(ratios)


# ---------------------------------------------------------------- train check
def breakout_frames(frames: int, out: Path) -> Path:
    from gankit.data.atari import collect_atari

    return collect_atari("Breakout", frames, 64, out, policy="agent", progress=False).path


def verdict(run_dir: Path) -> str:
    """Final D accuracy (last 5 records), D(x), D(G(z)) and the monitor's problems, from the run's files."""
    from gankit.monitor.events import PROBLEM_KINDS, load_events, load_records

    last = [r for r in load_records(run_dir / "metrics.jsonl") if r.get("kind", "train") == "train"][-5:]
    acc = statistics.mean((r["acc_real"] + r["acc_fake"]) / 2 for r in last)
    d_x, d_g_z = (statistics.mean(r[k] for r in last) for k in ("d_x", "d_g_z1"))
    problems = sorted({e.kind for e in load_events(run_dir / "health.jsonl") if e.kind in PROBLEM_KINDS})
    health = "healthy" if not problems else "problems: " + ", ".join(problems)
    return f"final D accuracy {acc:.2f} (D(x) {d_x:.2f}, D(G(z)) {d_g_z:.2f}), monitor {health}"


def train_check(args: argparse.Namespace, device: torch.device, tmp: Path) -> None:
    from gankit.monitor import RunMonitor
    from gankit.train.loop import train

    try:
        data = breakout_frames(args.frames, tmp / "breakout")
    except Exception as err:  # noqa: BLE001 - report and go on: the speed figures stand alone
        print(f"train check skipped: could not collect Breakout frames ({type(err).__name__}: {err})")
        return
    iters = args.train_iters
    every = min(10, iters)  # log interval: enough records for the monitor's windows
    print(f"train check: {iters} iterations of each setting on {args.frames} Breakout frames (64x64)", flush=True)
    cfg = gankit_config(data, tmp / "check", device, args.compile, args.batch)
    torch.set_flush_denormal(True)
    log = tmp / "check" / "gankit-console.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    # The plain recipe, then the same with DiffAugment (the `breakout` preset's stabiliser):
    # the recipe itself lets D win on Breakout, whatever the precision.
    for label, extra in (("", {}), (" + DiffAugment translation,cutout", {"diffaugment": "translation,cutout"})):
        with open(log, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            run = train(cfg.replace(name=f"gankit{len(extra)}", epochs=0, kimg=iters * args.batch / 1000,
                                    log_every=every, checkpoint_every=10**6, **extra))
        print(f"  gankit ({cfg.precision}){label}: {verdict(run)}", flush=True)

    torch.set_flush_denormal(False)
    ref = Reference(data, device, args.batch, args.ref_workers, seed=cfg.seed)
    run = tmp / "check" / "reference"
    fixed_z = torch.randn(16, LATENT, 1, 1, device=device)
    batch = next(iter(DataLoader(UInt8Images(data), batch_size=16, shuffle=True)))
    real = batch.permute(0, 3, 1, 2).float() / 127.5 - 1
    with open(log.with_name("reference-console.txt"), "w") as fh, contextlib.redirect_stderr(fh), \
            RunMonitor(run, cfg.replace(precision="fp32", channels_last=False)) as monitor:
        window: list[dict[str, float]] = []
        for i in range(1, iters + 1):
            window.append(ref.step())
            if i % every == 0:
                record = {k: statistics.mean(w[k] for w in window) for k in window[0]}
                monitor.log({"step": i, "kimg": i * args.batch / 1000, "lr_g": 2e-4, "lr_d": 2e-4, **record})
                window = []
            if i % max(1, iters // 2) == 0:
                with torch.no_grad():
                    ref.G.eval()
                    fake = ref.G(fixed_z).float().cpu()
                    ref.G.train()
                monitor.check_diversity(fake, real, i, i * args.batch / 1000)
    print(f"  reference (fp32): {verdict(run)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--iters", type=int, default=0, help="timed iterations per block (0: 2 on a CPU, 25 on a GPU)")
    p.add_argument("--rounds", type=int, default=0,
                   help="alternating blocks of each setting (0: 15 on a CPU, 5 on a GPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations of each setting first")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--images", type=int, default=2048, help="synthetic 64x64 images for the throughput part")
    p.add_argument("--ref-workers", type=int, default=2, help="reference DataLoader workers (pytorch/examples uses 2)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile gankit's models (pays on GPUs, not on this CPU)")
    p.add_argument("--skip-train-check", action="store_true", help="only measure speed")
    p.add_argument("--only-train-check", action="store_true", help="only run the train check")
    p.add_argument("--train-iters", type=int, default=300, help="iterations per setting in the train check")
    p.add_argument("--frames", type=int, default=4000, help="Breakout frames collected for the train check")
    args = p.parse_args(argv)
    for name in ("iters", "rounds", "warmup", "batch", "train_iters", "frames"):
        if getattr(args, name) < (0 if name in ("iters", "rounds", "warmup") else 1):
            p.error(f"--{name.replace('_', '-')}: must be >= 1")
    if args.images < args.batch:
        p.error("--images: must be at least --batch")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    # Short blocks on a CPU: a busy neighbour then slows both settings of a round alike.
    # Longer ones on a GPU, whose queue must stay full for the timing to mean anything.
    args.iters = args.iters or (2 if device.type == "cpu" else 25)
    args.rounds = args.rounds or (15 if device.type == "cpu" else 5)
    with tempfile.TemporaryDirectory(prefix="gankit-bench-") as tmp:
        if not args.only_train_check:
            ratio = throughput(args, device, Path(tmp))
        if not args.skip_train_check:
            train_check(args, device, Path(tmp))
    if not args.only_train_check:
        print(f"ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
