"""The speed tools run and report sane numbers: `gankit bench`, `gankit train
--benchmark` and benchmarks/train_throughput.py (tiny sizes; the real figures
are in benchmarks/README.md)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import blobs

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"([0-9]+(?:\.[0-9]+)?)"


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


def _figure(text: str, label: str) -> float:
    match = re.search(rf"^{re.escape(label)}:\s+{NUMBER}", text, re.M)
    assert match, f"no '{label}:' line in\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def data16(tmp_path_factory):
    from gankit.data import write_dataset

    return write_dataset(tmp_path_factory.mktemp("bench") / "d", blobs(64, size=16), source="test-blobs").path


@pytest.mark.parametrize("command", [["bench", "--iters", "3", "--warmup", "1"], ["train", "--benchmark"]])
def test_gankit_bench_prints_consistent_rates(data16, command):
    proc = _run([sys.executable, "-m", "gankit", *command, "--data", str(data16), "--batch", "8",
                 "--width-g", "8", "--width-d", "8", "--latent", "8", "--precision", "bf16", "--channels-last"])
    assert proc.returncode == 0, proc.stderr
    ms, steps, images = (_figure(proc.stdout, k) for k in ("ms/step", "steps/s", "images/s"))
    assert ms > 0 and steps > 0 and images > 0
    # images/s counts the batch of each step; tolerances cover the printed rounding
    assert images == pytest.approx(8 * steps, rel=0.001, abs=8 * 0.005 + 0.05)
    assert steps == pytest.approx(1000 / ms, rel=0.001 + 0.05 / ms, abs=0.005)
    assert "precision: bf16" in proc.stdout and "channels_last: True" in proc.stdout
    assert not list(Path(ROOT).glob("bench"))  # the throw-away run lives in a temporary folder


def test_gankit_bench_rejects_bad_iters(data16):
    proc = _run([sys.executable, "-m", "gankit", "bench", "--data", str(data16), "--iters", "0"])
    assert proc.returncode == 2
    assert "--iters" in proc.stderr


def test_throughput_script_reports_ratio_flops_and_train_check():
    proc = _run([sys.executable, "benchmarks/train_throughput.py", "--iters", "1", "--rounds", "2", "--warmup", "1",
                 "--batch", "8", "--images", "16", "--ref-workers", "0", "--train-iters", "4", "--frames", "64"])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    lines = out.strip().splitlines()
    assert re.fullmatch(r"ratio: [0-9]+\.[0-9]{2}", lines[-1])
    ratio = float(lines[-1].split()[1])
    rounds = re.findall(rf"gankit {NUMBER} img/s, reference {NUMBER} img/s, ratio {NUMBER}", out)
    assert len(rounds) == 2
    per_round = sorted(float(r[2]) for r in rounds)
    assert ratio > 0 and per_round[0] - 0.01 <= ratio <= per_round[1] + 0.01  # the median of the rounds
    flops = re.search(rf"reference recipe {NUMBER} GFLOP, gankit {NUMBER} GFLOP", out)
    ref_flops, fast_flops = float(flops.group(1)), float(flops.group(2))
    assert 0 < fast_flops < ref_flops  # gankit skips D's weight gradients in the G step
    for name, per_image in (("gankit", fast_flops), ("reference", ref_flops)):
        rate, achieved = re.search(rf"{name}:\s+{NUMBER} images/s .*?{NUMBER} GFLOP/s achieved", out).groups()
        assert float(rate) > 0
        assert float(achieved) == pytest.approx(float(rate) * per_image, rel=0.02, abs=0.15)
    # The train check ran both settings on real Breakout frames and judged them.
    checks = re.findall(r"^  (gankit|reference) \((\w+)\)[^:]*: final D accuracy ([0-9.]+) "
                        r"\(D\(x\) ([0-9.]+), D\(G\(z\)\) ([0-9.]+)\), monitor (.+)$", out, re.M)
    from gankit.train.hardware import pick_precision

    auto = pick_precision("auto", torch.device("cpu"))  # gankit's setting is what --precision auto picks here
    assert [(c[0], c[1]) for c in checks] == [("gankit", auto), ("gankit", auto), ("reference", "fp32")], out
    for *_, acc, d_x, d_g_z, health in checks:
        assert all(0.0 <= float(v) <= 1.0 for v in (acc, d_x, d_g_z))
        assert health == "healthy" or health.startswith("problems: ")


def test_auto_precision_reads_the_cpu_flags(tmp_path):
    """`--precision auto` picks bf16 on the CPU only when it has bf16 units:
    oneDNN's own check also says yes on plain AVX-512, where bf16 is slower."""
    import torch

    from gankit.train.hardware import BF16_CPU_FLAGS, cpu_flags, pick_precision

    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n\n")
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert "avx512bw" in cpu_flags(str(plain)) and "avx512_bf16" not in cpu_flags(str(plain))
    assert "amx_bf16" in cpu_flags(str(amx)) and "bf16" in cpu_flags(str(arm))
    assert cpu_flags(str(tmp_path / "missing")) is None
    assert pick_precision("fp32", torch.device("cpu")) == "fp32"
    flags = cpu_flags()
    got = pick_precision("auto", torch.device("cpu"))
    if flags is not None and not flags & BF16_CPU_FLAGS:
        assert got == "fp32"
