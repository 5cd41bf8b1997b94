"""The FID Inception-v3, written here without torchvision.

FID and KID numbers are only comparable between papers and tools when they
come from one network: the TensorFlow Inception graph of 2015-12-05, ported to
PyTorch as ``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid; the same
file, same hash, is torch-fidelity's).  That graph differs from torchvision's
Inception-v3 in three places, reproduced below: the average pools inside the
A, C and first E blocks ignore padded zeros, and the last E block pools with
max instead of average.  Module names follow the weights file's keys so it
loads with ``strict=True``; the 1008-way ``fc`` layer is kept only for that
reason (features are the 2048-d pool output).

Preprocessing is pytorch-fid's: bilinear resize to 299x299
(``align_corners=False``, no antialiasing), then [0, 1] -> [-1, 1].

Weights are found in this order: ``--inception-weights PATH``, then
``$TORCH_HOME/hub/checkpoints/`` (default ``~/.cache/torch``), then a download
that happens only when asked for (``--download``).  Every file's sha256 must
start with ``6726825d``, as torch hub checks, so a truncated or wrong file is
refused instead of producing plausible but wrong numbers.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import UsageError
from gankit.metrics.registry import FeatureExtractor, register

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
URL_ENV = "GANKIT_INCEPTION_URL"  # a mirror, for places where github.com is not reachable
INPUT_SIZE = 299


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (eps 1e-3, as TensorFlow) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 3x3 'SAME' average pool divides by the number of real pixels
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _row(c_in: int, c_out: int) -> BasicConv2d:  # 1x3 / 1x7 style factorised convs
    return BasicConv2d(c_in, c_out, (1, 3), padding=(0, 1))


def _col(c_in: int, c_out: int) -> BasicConv2d:
    return BasicConv2d(c_in, c_out, (3, 1), padding=(1, 0))


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | pool-1x1 -> 224 + pool_features channels."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionB(nn.Module):
    """35x35 -> 17x17 reduction: 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions -> 768 channels."""

    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([a, b, c, d], 1)


class InceptionD(nn.Module):
    """17x17 -> 8x8 reduction."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b = layer(b)
        return torch.cat([a, b, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 outputs -> 2048 channels.  ``pool`` is
    'avg' in Mixed_7b and 'max' in Mixed_7c (a quirk of the 2015 graph)."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.pool = _tf_avg_pool if pool == "avg" else _max_pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = _row(384, 384)
        self.branch3x3_2b = _col(384, 384)
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _row(384, 384)
        self.branch3x3dbl_3b = _col(384, 384)
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        d = self.branch_pool(self.pool(x))
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """(N, 3, 299, 299) in [-1, 1] -> (N, 2048) pool features."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)  # unused: present so the weights file loads strictly

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, 3, stride=2)  # (N, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (N, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # (N, 2048)


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> (N, 3, 299, 299) in [-1, 1], as pytorch-fid."""
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2 * x - 1


class InceptionExtractor(FeatureExtractor):
    """The `inception` extractor: 2048-d pool features of the FID network."""

    name = "inception"
    dim = 2048
    channels = 3

    def __init__(self, net: FIDInceptionV3, weights_id: str) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.id = f"inception-{weights_id}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(preprocess(x))


# ------------------------------------------------------------------ weights
def torch_home() -> Path:
    explicit = os.environ.get("TORCH_HOME")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "torch"


def default_weights_path() -> Path:
    return torch_home() / "hub" / "checkpoints" / WEIGHTS_NAME


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _missing_message() -> str:
    return (f"--inception-weights: the FID Inception weights are not on this machine. Put {WEIGHTS_NAME} "
            f"at {default_weights_path()} (the torch hub cache; set TORCH_HOME to move it) or pass "
            f"--inception-weights PATH; or add --download to fetch it from {os.environ.get(URL_ENV) or WEIGHTS_URL}. "
            "Without any download, use --extractor dataset.")


def download_weights(dest: Path, url: str | None = None, expected_prefix: str = WEIGHTS_SHA256_PREFIX,
                     timeout: float = 60.0) -> Path:
    """Fetch the weights to ``dest``: written to a temporary file beside it,
    hash-checked, then renamed, so ``dest`` is never a partial file."""
    url = url or os.environ.get(URL_ENV) or WEIGHTS_URL
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        got = digest.hexdigest()
        if not got.startswith(expected_prefix):
            raise UsageError(f"--download: {url} gave a file with sha256 {got[:16]}..., expected {expected_prefix}...: "
                             "a corrupted or wrong download; nothing was kept")
        os.replace(tmp_name, dest)
    except OSError as err:  # URLError, HTTPError and socket timeouts are OSErrors
        raise UsageError(f"--download: could not download {url}: {err}. Download {WEIGHTS_NAME} by hand and put it "
                         f"at {dest}") from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return dest


def resolve_weights(path: str | os.PathLike[str] | None = None, download: bool = False, url: str | None = None,
                    expected_prefix: str = WEIGHTS_SHA256_PREFIX) -> tuple[Path, str]:
    """The weights file to use and its sha256, checked against ``expected_prefix``."""
    flag = "--inception-weights"
    if path:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise UsageError(f"{flag}: no such file {chosen}")
    else:
        flag = "--download"
        chosen = default_weights_path()
        if not chosen.is_file():
            if not download:
                raise UsageError(_missing_message())
            print(f"downloading {WEIGHTS_NAME} to {chosen} (--download)", file=sys.stderr, flush=True)
            download_weights(chosen, url, expected_prefix)
    digest = sha256_of(chosen)
    if not digest.startswith(expected_prefix):
        raise UsageError(f"{flag}: {chosen} has sha256 {digest[:16]}..., expected {expected_prefix}...: "
                         f"not {WEIGHTS_NAME}, or a damaged copy; replace it")
    return chosen, digest


def load_inception(path: str | os.PathLike[str] | None = None, download: bool = False,
                   device: torch.device | str = "cpu", url: str | None = None,
                   expected_prefix: str = WEIGHTS_SHA256_PREFIX) -> InceptionExtractor:
    """The `inception` extractor with its weights loaded strictly."""
    chosen, digest = resolve_weights(path, download, url, expected_prefix)
    try:
        state = torch.load(chosen, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # only reachable for a file whose hash matched: a known file, safe to unpickle
        state = torch.load(chosen, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many kinds of errors for a bad file
        raise UsageError(f"--inception-weights: cannot read {chosen}: {err}") from None
    with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
        net = FIDInceptionV3()
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first_line = str(err).splitlines()[0]
        raise UsageError(f"--inception-weights: {chosen} does not fit the FID Inception: {first_line}") from None
    return InceptionExtractor(net, digest[:16]).to(device)


def _factory(weights: str | None = None, download: bool = False, device: torch.device | str = "cpu",
             **_: Any) -> InceptionExtractor:
    return load_inception(weights, download, device)


register("inception", _factory)
