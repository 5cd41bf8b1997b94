"""Sample grids, the real | generated comparison and the progress GIF.

Why this shape: a user judges a GAN first by looking at it, so every epoch
writes real images next to generated ones (the same fixed latents each time),
large enough to see (small images are scaled up by whole pixels, never
blurred).  The GIF is built from a bounded set of frames kept on disk as
small PNGs plus an index, so it can be rebuilt after a resume or by
`gankit report`, and its size stays bounded however long the run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:  # pragma: no cover
    import torch

PAD = 2                 # pixels between images in a grid
MIN_GRID_SIDE = 256     # small grids are scaled up by an integer factor to at least this
MAX_GIF_SIDE = 320      # GIF frames are scaled down so their longer side is at most this
MAX_GIF_FRAMES = 60     # when exceeded, every other older frame is dropped
FRAME_MS = 400          # display time of each GIF frame
LAST_FRAME_MS = 2000    # the final state stays on screen a little longer
# PIL's default GIF palette (median cut) took ~0.2 s a frame, 10 s for 45 frames of a 64-image
# grid on a busy 2-core CPU; the fast octree takes ~3 ms (benchmarks/gif_writing.py)
GIF_QUANTIZE = Image.Quantize.FASTOCTREE
HEADER = 22             # height of the text strip above a grid
BACKGROUND = (24, 24, 24)
SEPARATOR = (80, 80, 80)  # grid lines: visible even between images with dark backgrounds
TEXT = (235, 235, 235)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) float in [-1, 1], C = 1 or 3 -> (B, H, W, 3) uint8."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images shaped (B, 1 or 3, H, W), got {tuple(images.shape)}")
    # numpy, not torch: tiny tensor ops pay torch's thread start-up on a busy CPU
    x = np.nan_to_num(images.detach().float().cpu().numpy(), nan=0.0)
    x = np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)  # (B, C, H, W)
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def make_grid(images: torch.Tensor, cols: int | None = None) -> Image.Image:
    """Tile a batch into a grid as an RGB image: ``cols`` columns (a conditional
    run's grid: one row per class), by default a near-square ceil(sqrt(B))."""
    arr = to_uint8(images)  # (B, H, W, 3)
    b, h, w, _ = arr.shape
    cols = max(1, cols or math.ceil(math.sqrt(b)))
    rows = max(1, math.ceil(b / cols))
    canvas = np.full((rows * (h + PAD) + PAD, cols * (w + PAD) + PAD, 3), SEPARATOR, dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, cols)
        y, x = PAD + r * (h + PAD), PAD + c * (w + PAD)
        canvas[y:y + h, x:x + w] = arr[i]
    return Image.fromarray(canvas)


def upscale(img: Image.Image, min_side: int = MIN_GRID_SIDE) -> Image.Image:
    """Scale up by a whole factor (nearest neighbour keeps pixels crisp) until min_side is reached."""
    factor = max(1, math.ceil(min_side / max(1, min(img.size))))
    factor = min(factor, 8)
    if factor == 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def fit(img: Image.Image, max_side: int) -> Image.Image:
    """Scale down (keeping the aspect ratio) so the longer side is at most max_side."""
    longest = max(img.size)
    if longest <= max_side:
        return img
    scale = max_side / longest
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def with_header(img: Image.Image, text: str) -> Image.Image:
    """Put a dark strip with a line of text above an image."""
    out = Image.new("RGB", (img.width, img.height + HEADER), BACKGROUND)
    out.paste(img, (0, HEADER))
    ImageDraw.Draw(out).text((6, 3), text, fill=TEXT, font=_font(14))
    return out


def side_by_side(real: torch.Tensor, fake: torch.Tensor, caption: str, cols: int | None = None) -> Image.Image:
    """Real grid on the left, generated grid on the right, each labelled, with a caption line on top
    (both ``cols`` wide when given: a row per class)."""
    left = upscale(make_grid(real, cols))
    right = upscale(make_grid(fake, cols))
    height = max(left.height, right.height)
    # Both grids drawn at the same height so they compare at a glance.
    if left.height != height:
        left = left.resize((round(left.width * height / left.height), height), Image.Resampling.NEAREST)
    if right.height != height:
        right = right.resize((round(right.width * height / right.height), height), Image.Resampling.NEAREST)
    left, right = with_header(left, "real"), with_header(right, "generated (fixed z)")
    gap = 12
    body = Image.new("RGB", (left.width + gap + right.width, left.height), BACKGROUND)
    body.paste(left, (0, 0))
    body.paste(right, (left.width + gap, 0))
    return with_header(body, caption)


class FrameStore:
    """The GIF's frames: PNGs in ``samples/frames/`` plus ``frames.json`` (epoch, kimg, step, file)."""

    def __init__(self, folder: Path, max_frames: int = MAX_GIF_FRAMES) -> None:
        self.folder = folder
        self.max_frames = max(2, max_frames)
        self.index_path = folder / "frames.json"
        self.frames: list[dict[str, Any]] = []
        if self.index_path.exists():
            try:
                loaded = json.loads(self.index_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, OSError):
                loaded = []
            self.frames = [f for f in loaded if (folder / str(f.get("file", ""))).exists()]

    def add(self, fake: torch.Tensor, epoch: int, kimg: float, step: int, cols: int | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # A resumed run may replay steps: frames from the abandoned timeline go.
        while self.frames and self.frames[-1]["step"] >= step:
            self._delete(self.frames.pop())
        grid = fit(upscale(make_grid(fake, cols), 192), MAX_GIF_SIDE)
        name = f"frame_{step:010d}.png"
        grid.save(self.folder / name)
        self.frames.append({"epoch": int(epoch), "kimg": float(kimg), "step": int(step), "file": name})
        if len(self.frames) > self.max_frames:
            newest = self.frames[-1]
            older = self.frames[:-1]
            keep = older[::2]
            for dropped in older[1::2]:
                self._delete(dropped)
            self.frames = keep + [newest]
        self._save_index()

    def _delete(self, frame: dict[str, Any]) -> None:
        (self.folder / frame["file"]).unlink(missing_ok=True)

    def _save_index(self) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.frames), encoding="utf-8")
        tmp.replace(self.index_path)

    def write_gif(self, path: Path) -> Path | None:
        """Write the animated GIF; None when there is no frame yet."""
        images = []
        for f in self.frames:
            try:
                with Image.open(self.folder / f["file"]) as im:
                    grid = im.convert("RGB")
            except OSError:
                continue
            images.append(with_header(grid, f"epoch {f['epoch']} | {f['kimg']:.1f} kimg"))
        if not images:
            return None
        durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
        tmp = path.with_name(path.name + ".tmp")
        save_gif(images, tmp, durations)
        tmp.replace(path)
        return path


def save_gif(frames: list[Image.Image], path: Path, duration: int | list[int]) -> None:
    """An endlessly looping GIF of RGB ``frames``, each given its own 256-colour palette
    by the fast octree (see GIF_QUANTIZE) before PIL writes it."""
    paletted = [f.convert("RGB").quantize(256, method=GIF_QUANTIZE) for f in frames]
    paletted[0].save(path, format="GIF", save_all=True, append_images=paletted[1:], duration=duration,
                     loop=0, optimize=False, disposal=1)
