"""`gankit export`: every format read back by its own loader, compared with PyTorch on the same z."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.export import portable
from gankit.models import build_generator
from gankit.models.generator_file import read_header

from conftest import blobs

TINY = ["--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32", "--no-tensorboard",
        "--epochs", "1", "--coord-conv", "--attention", "8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A dcgan run trained one epoch with every export-hostile part on: CoordConv and attention."""
    from gankit.data import write_dataset

    root = tmp_path_factory.mktemp("export")
    ds = write_dataset(root / "data", blobs(64), source="test-blobs")  # two steps: weights and BN stats move
    assert main(["train", "--data", str(ds.path), "--out", str(root), "--name", "run", "--model", "dcgan", *TINY]) == 0
    return root / "run"


def _busy(G: torch.nn.Module) -> torch.nn.Module:
    """Untrained G with non-trivial BN statistics and an open attention gate, so no part is a no-op."""
    g = torch.Generator().manual_seed(1)
    for m in G.modules():
        if hasattr(m, "gamma"):
            m.gamma.data.fill_(0.7)
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return G.eval().requires_grad_(False)


@pytest.mark.parametrize("model", ["seed", "dcgan"])
@pytest.mark.parametrize("coords,attention", [(False, 0), (True, 8)])
def test_portable_copy_gives_the_same_images(model, coords, attention):
    G = _busy(build_generator(model, 16, 16, 3, 8, 8, coords=coords, attention=attention))
    P = portable(G)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    names = {type(m).__name__ for m in P.modules()}
    assert "CoordConv" not in names  # the autograd Function is gone
    assert ("_FixedCoordConv" in names) == coords
    assert torch.allclose(P(z), G(z), atol=1e-6, rtol=0)


def test_safetensors_round_trip_without_pickle(run_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / "g.safetensors"
    assert main(["export", str(run_dir), "--format", "safetensors", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote {out}") and printed[1].startswith("use it: ")
    G = gankit.load_generator(run_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while reading a .safetensors generator")

    for target, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(target, name, refuse)
    G2 = gankit.load_generator(out)
    monkeypatch.undo()
    z = torch.randn(6, 16)
    assert torch.equal(G2(z), G(z))
    header = read_header(out)
    assert header["architecture"] == {"model": "dcgan", "height": 16, "width": 16, "channels": 3, "latent": 16,
                                      "width_g": 8, "coords": True, "attention": 8}
    assert header["gankit_version"] == gankit.__version__ and header["classes"] is None
    assert header["source"]["ema"] is True and header["source"]["images_seen"] == 64
    assert "[-1, 1]" in header["normalisation"]["output"]
    # the raw bytes: an 8-byte length, then the JSON header; no pickle protocol marker anywhere
    blob = out.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    assert json.loads(blob[8:8 + n])["__metadata__"]["gankit"]
    assert b"\x80\x04\x95" not in blob and b"\x80\x02" not in blob[:8 + n]


@pytest.mark.slow
def test_commands_accept_the_safetensors_file(run_dir, tmp_path, capsys, monkeypatch):
    from gankit.metrics import dataset_encoder

    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 40)  # eval's encoder: a third of the recipe is enough here
    out = tmp_path / "g.safetensors"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    from gankit.sample import generate

    assert main(["sample", str(out), "--num", "4", "--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert main(["sample", str(run_dir), "--num", "4", "--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    for i in range(4):  # the same four images from the file and from the run
        assert (tmp_path / "a" / f"{i:05d}.png").read_bytes() == (tmp_path / "b" / f"{i:05d}.png").read_bytes()
    assert main(["interpolate", str(out), "--points", "2", "--steps", "2", "--out", str(tmp_path / "w.gif")]) == 0
    assert (tmp_path / "w.gif").stat().st_size > 0
    assert torch.equal(generate(gankit.load_generator(out), 3), generate(gankit.load_generator(run_dir), 3))
    # eval finds the dataset through the file's header and scores the same images as from the run
    scores = []
    for source in (out, run_dir):
        assert main(["eval", str(source), "--metrics", "fid", "--num", "64", "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["fid"])
    assert scores[0] == scores[1] and np.isfinite(scores[0])
    assert json.loads(out.with_suffix(".eval.json").read_text())["checkpoint"] == str(out)
    # flags that make no sense for a one-generator file are refused, not ignored
    assert main(["export", str(out), "--no-ema", "--out", str(tmp_path / "x.safetensors")]) == 2


def test_onnx_matches_pytorch_at_any_batch(run_dir, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "g.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "opset 18" in printed and "onnxruntime" in printed
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["opset"] == "18" and json.loads(meta["gankit"])["architecture"]["latent"] == 16
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic: any batch size
    G = gankit.load_generator(run_dir)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        z = torch.randn(batch, 16, generator=torch.Generator().manual_seed(batch))
        got = session.run(None, {"z": z.numpy()})[0]
        assert got.shape == (batch, 3, 16, 16)
        assert np.abs(got - G(z).numpy()).max() <= 1e-4


def test_torchscript_loads_without_gankit(run_dir, tmp_path):
    out = tmp_path / "g.pt"
    assert main(["export", str(run_dir), "--format", "torchscript", "--out", str(out)]) == 0
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    torch.save(z, tmp_path / "z.pt")
    # -I: no user site, no PYTHONPATH; gankit blocked in sys.modules, since the
    # editable install would still find it.  The child proves it cannot import it.
    code = ("import sys; sys.modules['gankit'] = None\n"
            "import torch\n"
            "try:\n    import gankit\nexcept ImportError:\n    pass\nelse:\n    sys.exit('gankit importable')\n"
            f"G = torch.jit.load({str(out)!r})\n"
            f"z = torch.load({str(tmp_path / 'z.pt')!r}, weights_only=True)\n"
            f"torch.save(G(z), {str(tmp_path / 'y.pt')!r})\n"
            "assert not any(m.startswith('gankit') and sys.modules[m] is not None for m in sys.modules)\n")
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = torch.load(tmp_path / "y.pt", weights_only=True)
    assert torch.allclose(got, gankit.load_generator(run_dir)(z), atol=1e-6, rtol=0)


def test_unsupported_combinations_exit_2(run_dir, tmp_path, capsys):
    # one real process for the exit status and the one-line message ...
    done = subprocess.run([sys.executable, "-m", "gankit", "export", str(run_dir), "--format", "onnx", "--out",
                           str(tmp_path / "g.pt")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "must end in .onnx" in done.stderr and "Traceback" not in done.stderr
    # ... and the other refusals in this one
    cases = [
        (["--format", "torchscript", "--opset", "18"], "--opset applies to --format onnx only"),
        (["--format", "onnx", "--opset", "11"], "opsets 18 to 23"),
        (["--checkpoint", "best"], "no best.pt"),
    ]
    for flags, reason in cases:
        assert main(["export", str(run_dir), *flags]) == 2
        err = capsys.readouterr().err
        assert reason in err, (flags, err)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    assert main(["sample", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a safetensors file" in capsys.readouterr().err
    from safetensors.torch import save_file

    odd = tmp_path / "odd.safetensors"  # a real safetensors file whose header lacks the architecture's size
    save_file({"w": torch.zeros(1)}, str(odd), metadata={"gankit": json.dumps(
        {"format": "gankit-generator/1", "architecture": {"model": "dcgan"}})})
    assert main(["sample", str(odd), "--out", str(tmp_path / "x.png")]) == 2
    assert "must name exactly model, height" in capsys.readouterr().err
    save_file({"w": torch.zeros(1)}, str(odd))  # and one that is not a gankit generator at all
    assert main(["sample", str(odd), "--out", str(tmp_path / "x.png")]) == 2
    assert "not a gankit generator" in capsys.readouterr().err
    assert not list(tmp_path.glob("g.*")) and not list(Path.cwd().glob("generator.*"))
    assert not (tmp_path / "x.png").exists()
