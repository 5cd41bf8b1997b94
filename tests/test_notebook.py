"""Runs examples/GAN.ipynb top to bottom with tiny settings so it never rots.

The notebook is executed for real (nbclient, an IPython kernel on this
interpreter, the real Atari emulator, a real 2-epoch training run); only its
parameters cell is replaced.  The kernel gets a private kernelspec pointing
at ``sys.executable``, so it uses the same virtualenv as pytest whatever
kernels the machine has installed, and pip is told to stay offline in case
the install cell ever decides to run.
"""
from __future__ import annotations

import ast
import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "GAN.ipynb"
KERNEL = "gankit-test-python"


def tiny_parameters(tmp_path: Path) -> dict[str, object]:
    return {
        "GANKIT_SOURCE": str(NOTEBOOK.parents[1]),
        "WORKDIR": str(tmp_path / "work"),
        "FRAMES": 256,
        "EVERY": 2,
        "SIZE": 32,
        "EPOCHS": 2,  # two epochs: the GIF must show two frames
        "MINUTES": 0,
        "WIDTH": 8,
        "BATCH": 32,
        "SEED": 3,
        "N_SHOW": 9,
    }


def assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def private_kernelspec(root: Path) -> Path:
    """A kernelspec for this interpreter in its own JUPYTER_PATH entry."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gankit test (this interpreter)",
        "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "PIP_NO_INDEX": "1"},
    }))
    return root


def images_shown(nb: nbformat.NotebookNode, mime: str) -> dict[str, list[Image.Image]]:
    """Images of type ``mime`` displayed by each cell, decoded with PIL, keyed by cell id."""
    shown: dict[str, list[Image.Image]] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if mime in data:
                img = Image.open(io.BytesIO(base64.b64decode(data[mime])))
                img.load()
                shown.setdefault(cell.id, []).append(img)
    return shown


def stdout_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    tiny = tiny_parameters(tmp_path)
    # Every parameter the notebook defines must be shrunk here, or a new one would run at full size.
    assert assigned_names(params[0].source) == set(tiny)
    params[0].source = "\n".join(f"{k} = {v!r}" for k, v in tiny.items())

    monkeypatch.setenv("JUPYTER_PATH", str(private_kernelspec(tmp_path / "jupyter")))
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=120, startup_timeout=60,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell on the first error

    cells = {c.id: c for c in nb.cells}
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert "already installed" in stdout_of(cells["install"])  # nothing was pip-installed

    runs = [p for p in (tmp_path / "work" / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    run = runs[0]
    samples = sorted((run / "samples").glob("epoch_*.png"))
    assert len(samples) >= 2  # one per epoch
    for path in [*samples, run / "plots" / "losses.png", run / "plots" / "d_accuracy.png"]:
        with Image.open(path) as img:
            assert img.format == "PNG" and min(img.size) > 32
    with Image.open(run / "progress.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames >= 2

    png = images_shown(nb, "image/png")
    assert {"show-real", "compare", "curves"} <= set(png)  # real frames, real | generated, the plots
    assert len(png["curves"]) >= 2  # losses and discriminator accuracy
    real_vs_fake = png["compare"][0]
    assert real_vs_fake.width > real_vs_fake.height  # two grids side by side
    gifs = images_shown(nb, "image/gif")
    assert getattr(gifs["gif"][0], "n_frames", 1) >= 2

    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["verdict"] in stdout_of(cells["health"])
    assert str(run) in "".join(str(o.get("data", {}).get("text/plain", "")) for o in cells["train"].outputs)


def install_part(nb: nbformat.NotebookNode) -> str:
    """The install cell up to its first third-party import (stdlib only)."""
    source = next(c.source for c in nb.cells if c.get("id") == "install")
    return source.split("import numpy")[0]


@pytest.mark.parametrize("source, expected", [
    (None, "gankit is not installed here. Set GANKIT_SOURCE"),
    ("/no/such/gankit", "GANKIT_SOURCE '/no/such/gankit' is neither an existing folder or wheel nor a pip address"),
])
def test_install_cell_installs_only_what_is_named(source, expected):
    """Run where gankit is not importable (python -S: no site-packages) from inside
    the checkout's examples/ folder: with no source named it must refuse, never
    walk up to the checkout and pip-install it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = f"GANKIT_SOURCE = {source!r}\n" + install_part(nb)
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=NOTEBOOK.parent, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PIP_NO_INDEX": "1"})
    assert proc.returncode == 1
    assert f"RuntimeError: {expected}" in proc.stderr
    assert "installing gankit" not in proc.stdout


def test_notebook_text_matches_what_it_runs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(c.source for c in nb.cells)
    assert "upsample-and-convolve" not in text  # the breakout preset's G is a transposed-convolution DCGAN
    assert "<owner>" not in text and ".parents" not in text
    from gankit.presets import PRESETS

    assert PRESETS["breakout"]["model"] == "dcgan" and "transposed-convolution generator" in text
    params = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(params, values)  # the defaults: 2 training minutes, so ~3 minutes in all on a 2-core CPU
    assert values["MINUTES"] == 2 and values["GANKIT_SOURCE"] is None
