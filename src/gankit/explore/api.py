"""What the explorer computes: generators by name, batched rendering, an LRU
cache of PNGs, and the checking of every request parameter.

Each image is keyed by (run, class, what it is, psi); a tile that is already
cached is never rendered again, and the tiles a request still lacks are made
in one forward pass.  Every parameter is parsed here with its limits, so a
bad request becomes a `BadRequest` (a 4xx and a message) before any tensor
is touched.
"""
from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gankit.parsing import parse_list

MAX_BATCH = 64  # seeds per /api/tiles request: a 8x8 grid; ~0.1 s for a 64x64 generator on a CPU
MAX_SCALE = 16  # nearest-neighbour enlargement of /api/image: a 64x64 image up to 1024x1024
CACHE_SIZE = 4096  # PNGs kept (~5 KB each at 64x64): a few hundred grids
MAX_SEED = 2 ** 32 - 1  # what the page's random re-roll draws from


class BadRequest(Exception):
    """A request the API refuses: answered with ``status`` and the message, never a traceback."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Explorer:
    """Named generators, an LRU cache of rendered PNGs and counters."""

    def __init__(self, generators: dict[str, nn.Module], max_batch: int = MAX_BATCH, cache_size: int = CACHE_SIZE):
        if not generators:
            raise ValueError("no generator")
        self.generators = generators
        self.max_batch = max_batch
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.cache_size = cache_size
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "batches": 0, "generated": 0, "cache_hits": 0}

    def info(self) -> dict[str, Any]:
        runs = []
        for name, G in self.generators.items():
            classes = getattr(G, "classes", None)
            runs.append({"name": name, "latent": G.latent, "height": G.height, "width": G.width,
                         "channels": G.channels, "classes": list(classes) if classes else None})
        return {"runs": runs, "max_batch": self.max_batch, "max_scale": MAX_SCALE}

    def generator(self, name: str | None) -> tuple[str, nn.Module]:
        if name is None:
            name = next(iter(self.generators))
        if name not in self.generators:
            raise BadRequest(f"unknown run {name!r}; this explorer serves {', '.join(self.generators)}", 404)
        return name, self.generators[name]

    def _cached(self, key: tuple) -> bytes | None:
        with self.lock:
            png = self.cache.get(key)
            if png is not None:
                self.cache.move_to_end(key)
                self.stats["cache_hits"] += 1
            return png

    def _store(self, key: tuple, png: bytes) -> None:
        with self.lock:
            self.cache[key] = png
            self.cache.move_to_end(key)
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)

    def render(self, run: str | None, keys: list[tuple], make_z: Callable[[nn.Module, list[tuple]], torch.Tensor],
               cls: int | None) -> tuple[list[bytes], int]:
        """PNGs for ``keys`` (one per image), and how many had to be made: cached
        ones are reused, the rest made in one forward pass."""
        name, G = self.generator(run)
        full = [(name, cls, *k) for k in keys]
        found = [self._cached(k) for k in full]
        missing = [i for i, png in enumerate(found) if png is None]
        if missing:
            from gankit.monitor.images import to_uint8

            with self.lock, torch.no_grad():
                z = make_z(G, [keys[i] for i in missing]).to(next(G.parameters()).device)
                images = G(z) if cls is None else G(z, torch.full((len(z),), cls, device=z.device))
                self.stats["batches"] += 1
                self.stats["generated"] += len(missing)
            for i, arr in zip(missing, to_uint8(images.float().cpu())):
                png = _png(arr if G.channels == 3 else arr[..., 0])
                found[i] = png
                self._store(full[i], png)
        return found, len(missing)  # type: ignore[return-value]


def _png(arr: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def enlarge(png: bytes, scale: int) -> bytes:
    if scale == 1:
        return png
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        big = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    return buf.getvalue()


def seed_keys_z(G: nn.Module, keys: list[tuple]) -> torch.Tensor:
    from gankit.sample import seed_latents

    psi = keys[0][1]  # one psi per request
    return seed_latents(G, [k[0] for k in keys], psi)


def lerp_keys_z(G: nn.Module, keys: list[tuple]) -> torch.Tensor:
    from gankit.sample import seed_latents, slerp

    rows = []
    for a, b, t, psi in keys:
        za, zb = seed_latents(G, [a, b], psi)
        rows.append(slerp(za[None], zb[None], t)[0])
    return torch.stack(rows)


# --- request parameters: each parsed with its limits, or a BadRequest naming it

def one(query: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values:
        if default is None:
            raise BadRequest(f"missing parameter {name!r}")
        return default
    if len(values) > 1:
        raise BadRequest(f"parameter {name!r} given {len(values)} times")
    return values[0]


def _bounded(query: dict[str, list[str]], name: str, kind: type, what: str, lo: float, hi: float,
             default: float | None) -> float:
    """One query parameter parsed as ``kind`` and checked to lie in [lo, hi] (NaN and inf refused)."""
    text = one(query, name, None if default is None else str(default))
    try:
        value = kind(text)
    except ValueError:
        raise BadRequest(f"{name}: expected {what}, got {text[:40]!r}") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadRequest(f"{name}: must be {what} between {lo} and {hi}, got {text[:40]!r}")
    return value


def integer(query: dict[str, list[str]], name: str, lo: int, hi: int, default: int | None = None) -> int:
    return int(_bounded(query, name, int, "an integer", lo, hi, default))


def number(query: dict[str, list[str]], name: str, lo: float, hi: float, default: float | None = None) -> float:
    return _bounded(query, name, float, "a number", lo, hi, default)


def seeds(query: dict[str, list[str]], max_batch: int) -> list[int]:
    parts = parse_list(one(query, "seeds"), "seeds")
    if not parts:
        raise BadRequest("seeds: give at least one seed, e.g. seeds=0,1,2")
    if len(parts) > max_batch:
        raise BadRequest(f"seeds: batch too large ({len(parts)} seeds; at most {max_batch} per request)", 413)
    return [integer({"seed": [p]}, "seed", 0, MAX_SEED) for p in parts]


def class_index(query: dict[str, list[str]], G: nn.Module) -> int | None:
    """The ``class`` parameter, checked against the generator's classes (none: refused);
    a conditional generator asked for no class draws class 0."""
    if "class" not in query:
        return 0 if getattr(G, "num_classes", 0) else None
    classes = getattr(G, "classes", None)
    if not classes:
        raise BadRequest("class: this generator is not conditional")
    return integer(query, "class", 0, len(classes) - 1)
