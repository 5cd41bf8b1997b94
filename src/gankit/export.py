"""`gankit export`: a trained generator as a file other programs can use.

Three formats, one job each:

- ``safetensors``: weights and a JSON header, no pickle (see
  `gankit.models.generator_file`); `gankit.load_generator(FILE)` and every
  command that takes a RUN read it back.
- ``onnx``: for onnxruntime, TensorRT, browsers.  Written with torch's
  torch.export-based ("dynamo") exporter: it is the maintained one (the
  TorchScript-based exporter is deprecated), and it takes the batch size as a
  symbolic dimension, so one file serves any batch.
- ``torchscript``: ``torch.jit.load`` in any Python with torch, or libtorch
  from C++, with no gankit.  Chosen over ``torch.export`` (.pt2) because its
  loader is stable across torch releases and in C++.

The two graph formats cannot hold gankit's training-speed tricks (CoordConv's
batch-sum autograd Function, the cached coordinate maps), so `portable`
rebuilds the generator with plain operations first; tests check it gives the
same images.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from gankit.errors import UsageError
from gankit.models.common import CoordConv, class_count, coord_maps, latent_size
from gankit.models.generator_file import SUFFIX, architecture, read_header, save_generator_file

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
OPSET = 18  # ONNX opset: onnxruntime >= 1.14 and TensorRT 8.6+ run it; the dynamo exporter's lowest


class _FixedCoordConv(nn.Module):
    """CoordConv for export: conv(x) + a constant offset, the coordinate part
    xy(maps) computed once for the one input size a generator layer sees."""

    def __init__(self, conv: nn.Module, offset: torch.Tensor):
        super().__init__()
        self.conv = conv
        self.register_buffer("offset", offset.detach().clone())  # (1, c_out, h', w')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.offset


@torch.no_grad()
def portable(G: nn.Module) -> nn.Module:
    """A copy of G made of plain operations only (same outputs), on the CPU, in eval mode."""
    G = copy.deepcopy(G).cpu().eval()
    offsets: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in G.named_modules():
        if isinstance(m, CoordConv):
            def grab(mod: nn.Module, inputs: tuple, output: torch.Tensor, name: str = name) -> None:
                x = inputs[0]
                maps = coord_maps(x.shape[2], x.shape[3], x.device, x.dtype)
                offsets[name] = cast(CoordConv, mod).xy(maps)  # (1, c_out, h', w')
            hooks.append(m.register_forward_hook(grab))
    G(*example_inputs(G, 1))  # one forward finds each CoordConv's input size
    for h in hooks:
        h.remove()
    for name, offset in offsets.items():
        parent_name, _, child = name.rpartition(".")
        parent = G.get_submodule(parent_name) if parent_name else G
        setattr(parent, child, _FixedCoordConv(getattr(parent, child).conv, offset))
    return G.requires_grad_(False)


def example_inputs(G: nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
    """(z,) for an unconditional generator, (z, y) with y (batch,) int64 classes for a conditional one."""
    z = torch.randn(batch, latent_size(G))
    if not class_count(G):
        return (z,)
    return z, torch.arange(batch, dtype=torch.int64) % class_count(G)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Hide the exporters' chatter (deprecation notices of torch internals, torchvision
    ops it skips) so that the command prints what it wrote and nothing else."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_onnx(G: nn.Module, out: Path, opset: int = OPSET, header: dict[str, Any] | None = None) -> None:
    """Write an ONNX model: input ``z`` (batch, latent), output ``images``; dynamic batch."""
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError("--format onnx needs the onnx and onnxscript packages: "
                         "pip install 'gankit[export]'") from None
    model = portable(G)
    batch = torch.export.Dim("batch", min=1, max=4096)
    inputs = example_inputs(G, 2)
    names = ["z", "y"][: len(inputs)]  # y: (batch,) int64 classes of a conditional generator
    dynamic = {"z": {0: batch}, "y": {0: batch}} if len(inputs) == 2 else {"z": {0: batch}}
    with _quiet():
        program = torch.onnx.export(model, inputs, input_names=names, output_names=["images"], opset_version=opset,
                                    dynamo=True, dynamic_shapes=dynamic, verbose=False)
    proto = program.model_proto  # type: ignore[union-attr]  # a fresh copy on every access: take it once
    for key, value in {"gankit": json.dumps(header or {}, sort_keys=True), "opset": str(opset)}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(out))


def export_torchscript(G: nn.Module, out: Path, header: dict[str, Any] | None = None) -> None:
    """Write a traced TorchScript module: (B, latent) -> (B, C, H, W); any batch size."""
    model = portable(G)
    # The tracer warns about the shape tests in DenseConvTranspose2d: they
    # depend only on the fixed spatial sizes, and check_inputs re-runs the
    # trace at another batch size to prove the batch stays free.
    with _quiet():
        traced = torch.jit.trace(model, example_inputs(G, 2), check_inputs=[example_inputs(G, 5)])
    out.parent.mkdir(parents=True, exist_ok=True)
    with _quiet():  # torch 2.13 marks torch.jit.save deprecated; see the module docstring for why we still use it
        torch.jit.save(traced, str(out), _extra_files={"gankit.json": json.dumps(header or {}, sort_keys=True)})


def _load(run: str, checkpoint: str | None, ema: bool) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(G, its architecture, where it came from) for a run, a checkpoint or a .safetensors file."""
    from gankit.sample import find_checkpoint, load_generator
    from gankit.train import checkpoint as ckpt

    if Path(run).suffix == SUFFIX:
        if checkpoint or not ema:
            raise UsageError(f"--checkpoint/--no-ema: {run} holds one generator already; drop the flag")
        header = read_header(run)
        return load_generator(run), header["architecture"], header.get("source", {})
    path = find_checkpoint(run, checkpoint)  # best / last / a file, as for gankit sample
    from gankit.config import TrainConfig

    state = ckpt.load_checkpoint(path)
    arch = architecture(TrainConfig.from_dict(state["config"]), tuple(state["shape"]), len(state.get("classes") or []))
    source = {"run": str(Path(run).resolve()), "checkpoint": path.name, "ema": ema,
              "images_seen": int(state.get("counters", {}).get("images_seen", 0)),
              "data": state["config"].get("data", "")}
    return load_generator(run, path, ema=ema), arch, source


USAGE = {
    "safetensors": "python -c \"import gankit, torch; G = gankit.load_generator('{out}'); "
                   "x = G(torch.randn(4, G.latent))\"   (or: gankit sample {out} --out grid.png)",
    "onnx": "python -c \"import onnxruntime as ort, numpy as np; s = ort.InferenceSession('{out}'); "
            "x = s.run(None, {{'z': np.random.randn(4, {latent}).astype('float32')}})[0]\"",
    "torchscript": "python -c \"import torch; G = torch.jit.load('{out}'); x = G(torch.randn(4, {latent}))\"",
}


def run(args: argparse.Namespace) -> int:
    fmt = args.format
    out = Path(args.out) if args.out else Path("generator" + FORMATS[fmt])
    if out.suffix != FORMATS[fmt]:
        raise UsageError(f"--out: a {fmt} file must end in {FORMATS[fmt]}, got {out.name}")
    if args.opset is not None and fmt != "onnx":
        raise UsageError(f"--opset applies to --format onnx only, not {fmt}")
    opset = args.opset or OPSET
    if not 18 <= opset <= 23:
        raise UsageError(f"--opset: torch's exporter writes opsets 18 to 23, got {opset}")
    G, arch, source = _load(args.run, args.checkpoint, not args.no_ema)
    from gankit import __version__

    classes = list(getattr(G, "classes", None) or []) or None  # conditional: class names in index order
    header = {"architecture": arch, "source": source, "gankit_version": __version__, "classes": classes}
    if fmt == "safetensors":
        save_generator_file(G, arch, out, source=source, classes=classes)
        what = "weights + JSON header, no pickle"
    elif fmt == "onnx":
        export_onnx(G, out, opset, header)
        what = f"opset {opset}, input z (batch, {arch['latent']}), output images (batch, " \
               f"{arch['channels']}, {arch['height']}, {arch['width']}) in [-1, 1], dynamic batch"
    else:
        export_torchscript(G, out, header)
        what = f"traced TorchScript, z (batch, {arch['latent']}) -> images in [-1, 1], any batch"
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({fmt}, {size:.1f} MB; {what})")
    print("use it: " + USAGE[fmt].format(out=out, latent=arch["latent"]))
    if classes:
        listed = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
        print(f"conditional: call it with z and y, (batch,) int64 class indices ({listed})")
    return 0


DESCRIPTION = """Write a run's generator (EMA by default) as a file other programs can use:
safetensors (weights + JSON header, no pickle; every gankit command takes it as RUN),
onnx (onnxruntime & co., dynamic batch) or torchscript (torch.jit.load, no gankit needed).

  gankit export runs/00003-breakout --out breakout.safetensors
  gankit export runs/00003-breakout --format onnx --out breakout.onnx
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter, add_generator_flags

    p = sub.add_parser("export", help="write the generator as safetensors, ONNX or TorchScript",
                       description=DESCRIPTION, formatter_class=HelpFormatter)
    p.add_argument("run", help="run directory, checkpoint file or .safetensors generator file")
    p.add_argument("--format", choices=tuple(FORMATS), default="safetensors", help="file format")
    p.add_argument("--out", default=None, help="output file (default: generator.safetensors/.onnx/.pt here)")
    add_generator_flags(p, verb="export", device=None)
    p.add_argument("--opset", type=int, default=None, help=f"ONNX opset (default: {OPSET})")
    p.set_defaults(func=run, _parser=p)
