"""The "nearest neighbours" panel: generated images beside their nearest training images.

A copy score is a number; whether a generator copies is easiest to judge by
eye.  Each row of ``samples/neighbours.png`` holds one generated image
(framed red when it is closer to a training image than the copy threshold,
grey otherwise), a gap, then its nearest training images in the extractor's
feature space, nearest first.  The evaluation code (`gankit eval --metrics
...,memorization` and the in-training evaluations) picks the rows and writes
the file; the report only shows it, so `gankit report` needs no torch.
"""
from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from gankit.runpaths import RunDir

FILE = "neighbours.png"  # in RUN/samples/
MIN_TILE = 48  # small images are scaled up by whole pixels to at least this side
FRAME = 3  # pixels of the frame around each generated image
GAP = 12  # pixels between a generated image and its neighbours
PAD = 2
BACKGROUND = (24, 24, 24)
COPY = (220, 50, 47)  # frame of a generated image closer than the threshold
NEW = (110, 110, 110)


def panel_path(run_dir: str | Path) -> Path:
    return RunDir(run_dir).samples / FILE


def draw_panel(path: str | Path, generated: np.ndarray, nearest: Sequence[Sequence[np.ndarray]],
               copies: Sequence[bool]) -> Path:
    """Write the panel: row i = ``generated[i]`` ((n, H, W, C) uint8), framed by
    ``copies[i]``, then the (H, W, C) images of ``nearest[i]``.  Atomic (temporary + rename)."""
    n, h, w = generated.shape[:3]
    if n == 0 or len(nearest) != n or len(copies) != n:
        raise ValueError(f"draw_panel: {n} generated images, {len(nearest)} neighbour rows, {len(copies)} flags")
    k = max(len(row) for row in nearest)
    s = max(1, math.ceil(MIN_TILE / max(h, w)))
    th, tw = h * s, w * s
    row_h = th + 2 * FRAME + PAD
    width = PAD + (tw + 2 * FRAME) + GAP + k * (tw + PAD)
    canvas = np.full((PAD + n * row_h, width, 3), BACKGROUND, np.uint8)
    for i in range(n):
        y = PAD + i * row_h
        canvas[y:y + th + 2 * FRAME, PAD:PAD + tw + 2 * FRAME] = COPY if copies[i] else NEW
        canvas[y + FRAME:y + FRAME + th, PAD + FRAME:PAD + FRAME + tw] = _rgb(generated[i], s)
        x0 = PAD + tw + 2 * FRAME + GAP
        for j, image in enumerate(nearest[i]):
            x = x0 + j * (tw + PAD)
            canvas[y + FRAME:y + FRAME + th, x:x + tw] = _rgb(image, s)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    Image.fromarray(canvas).save(tmp)
    tmp.replace(path)
    return path


def _rgb(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 1|3) uint8 -> (H*scale, W*scale, 3), whole-pixel enlargement."""
    x = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    return x.repeat(scale, axis=0).repeat(scale, axis=1)


def neighbours_html(run_dir: str | Path, records: list[dict] | None, img: Callable[..., str]) -> list[str]:
    """The report's "Nearest neighbours" section (nothing when no panel was written);
    ``img(path, alt, pixel=True)`` embeds the PNG."""
    path = panel_path(run_dir)
    if not path.is_file():
        return []
    score = next((r for r in reversed(records or []) if r.get("kind") == "eval" and "memorization" in r), None)
    where = f"the evaluation at {float(score.get('kimg', 0)):.1f} kimg" if score else "the last evaluation"
    if score is None:  # written by `gankit eval RUN --metrics ...,memorization`
        try:
            score = json.loads(RunDir(run_dir).eval_record.read_text(encoding="utf-8")).get("metrics")
            where = "<code>gankit eval</code>"
        except (OSError, ValueError, AttributeError):
            score = None
    text = ""
    if score and "memorization" in score:
        text = (f" Copy score {float(score['memorization']):.3f} (share of generated images closer to a training "
                f"image than 95% of held-out real images are; about 0.05 when nothing is copied), from {where}.")
    return ["<h2>Nearest neighbours</h2>",
            f"<figure>{img(path, 'generated images and their nearest training images', pixel=True)}"
            "<figcaption>Each row: a generated image (red frame: closer to a training image than the copy "
            "threshold), then its 3 nearest training images in the extractor's feature space. Rows are the "
            f"generated images closest to the training set, the likeliest copies.{html.escape(text)}"
            "</figcaption></figure>"]
