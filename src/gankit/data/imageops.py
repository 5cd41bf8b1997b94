"""Image helpers shared by every data source: parse crop/colour flags,
decode untrusted bytes safely, normalise colour modes, fit and resize.

Why one module: Atari frames, image folders and downloaded files must end up
with the same conventions (H x W order, RGB or grey, the same resize filters),
and the same decoding rules must decide what counts as "an image" for both
`gankit data folder` and the content check of `gankit data fetch`.

Decoding never trusts a file: empty files, HTML or text saved under an image
name, unsupported formats, truncated or corrupt data and decompression bombs
(a tiny file declaring billions of pixels) all raise `ImageRejected` with a
human-readable reason instead of crashing the caller.
"""
from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageColor, ImageOps, UnidentifiedImageError

from gankit.errors import UsageError

# --resize choices -> PIL filter.  PIL's BOX filter is an exact area average
# when shrinking, i.e. the antialiased "area" resize; it is also the fastest.
RESIZE_FILTERS = {
    "area": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}
FITS = ("crop", "pad", "stretch")
# decoded format -> file extension; anything else is rejected as unsupported
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}

# Image.open consults a process-wide warnings filter for decompression bombs;
# the lock keeps our temporary "warning -> error" filter from racing between
# decoding threads, and catch_warnings restores the filters afterwards.
_OPEN_LOCK = threading.Lock()


class ImageRejected(Exception):
    """An input that is not a usable image; ``str(err)`` is the reason."""


def parse_crop(text: str | None, flag: str = "--crop") -> tuple[int, int, int, int] | None:
    """``"32,14,8,8"`` -> pixels removed from the top, bottom, left, right."""
    if text is None or str(text).strip() in ("", "none"):
        return None
    parts = str(text).split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise UsageError(
            f"{flag}: expected four non-negative integers top,bottom,left,right "
            f"(pixels removed from each edge), got {text!r}"
        )
    return values  # type: ignore[return-value]


def check_crop(crop: Sequence[int] | None, height: int, width: int, flag: str = "--crop") -> tuple[slice, slice]:
    """Row and column slices of a crop on an image of height x width."""
    if crop is None:
        return slice(0, height), slice(0, width)
    top, bottom, left, right = crop
    if top + bottom >= height or left + right >= width:
        raise UsageError(
            f"{flag}: {','.join(map(str, crop))} leaves nothing of a {height}x{width} (HxW) frame"
        )
    return slice(top, height - bottom), slice(left, width - right)


def parse_color(text: str, flag: str = "--background") -> tuple[int, int, int]:
    """A colour name or #rrggbb -> (r, g, b)."""
    try:
        rgb = ImageColor.getrgb(str(text))
    except ValueError:
        raise UsageError(f"{flag}: not a colour: {text!r} (use a name like white or #rrggbb)") from None
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def resize_array(arr: np.ndarray, size: tuple[int, int], method: str = "area") -> np.ndarray:
    """Resize a (H, W) or (H, W, C) uint8 array to (h, w) with a --resize filter."""
    h, w = size
    if arr.shape[0] == h and arr.shape[1] == w:
        return arr
    img = Image.fromarray(np.ascontiguousarray(arr))
    return np.asarray(img.resize((w, h), RESIZE_FILTERS[method]))


def _why_not_an_image(data: bytes) -> str:
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "HTML page, not an image"
    if head.startswith((b"<?xml", b"<svg")):
        return "XML/SVG document, not a raster image"
    sample = data[:4096]
    try:
        sample.decode("utf-8")
        return "text file, not an image"
    except UnicodeDecodeError:
        pass
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in sample)
    if printable > 0.95 * len(sample):
        return "text file, not an image"
    return "not a recognised image format"


def _broken(part: str, err: Exception) -> str:
    detail = f"{type(err).__name__}: {err}"
    return f"truncated {part}: {detail}" if "truncated" in str(err).lower() else f"corrupt {part}: {detail}"


def decode_image(data: bytes, max_pixels: int | None = None) -> Image.Image:
    """Decode untrusted bytes into a fully loaded PIL image (first frame,
    EXIF orientation applied) or raise `ImageRejected` with the reason.

    ``max_pixels`` defaults to PIL's ``Image.MAX_IMAGE_PIXELS``; an image
    declaring more is a decompression bomb and is rejected before decoding.
    """
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected(f"decompression bomb: {err}") from None
    except UnidentifiedImageError:
        raise ImageRejected(_why_not_an_image(data)) from None
    except Exception as err:  # PIL raises many types on hostile headers
        raise ImageRejected(_broken("image header", err)) from None
    if img.format not in FORMATS:
        raise ImageRejected(f"unsupported image format {img.format} (accepted: {', '.join(FORMATS)})")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRejected(f"image has no pixels ({width}x{height})")
    if limit and width * height > limit:
        raise ImageRejected(f"decompression bomb: declares {width}x{height} pixels (limit {limit})")
    try:
        img.load()
    except Exception as err:
        raise ImageRejected(_broken("image data", err)) from None
    try:
        rotated = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF block: keep the pixels as stored
        rotated = None
    if rotated is not None:
        rotated.format = img.format
        img = rotated
    return img


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    arr = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8), "L")


def normalise_mode(img: Image.Image, grayscale: bool, background: tuple[int, int, int]) -> Image.Image:
    """Any PIL mode -> "RGB" (or "L" if ``grayscale``): transparency is
    composited on ``background``, palette/CMYK/16-bit inputs are converted."""
    if img.mode.startswith("I;16") or img.mode == "I":
        img = _sixteen_bit_to_l(img)  # PNG 16-bit grey: scale 0..65535 -> 0..255
    elif img.mode == "F":
        img = Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8), "L")
    elif img.mode == "1":
        img = img.convert("L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*background, 255))
        img = Image.alpha_composite(base, rgba).convert("RGB")
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
    if grayscale and img.mode != "L":
        img = img.convert("L")
    elif not grayscale and img.mode != "RGB":
        img = img.convert("RGB")
    return img


def fit_image(
    img: Image.Image,
    size: tuple[int, int],
    fit: str = "crop",
    background: tuple[int, int, int] = (255, 255, 255),
    method: str = "lanczos",
) -> Image.Image:
    """Resize to exactly (h, w): ``crop`` centre-crops to the target aspect
    first, ``pad`` fits inside and fills with ``background``, ``stretch``
    ignores the aspect ratio."""
    h, w = size
    src_w, src_h = img.size
    resample = RESIZE_FILTERS[method]
    if fit == "stretch":
        return img.resize((w, h), resample) if (src_w, src_h) != (w, h) else img
    if fit == "crop":
        # largest box of aspect w:h centred in the source
        if src_w * h > src_h * w:
            box_w, box_h = src_h * w / h, float(src_h)
        else:
            box_w, box_h = float(src_w), src_w * h / w
        left, top = (src_w - box_w) / 2, (src_h - box_h) / 2
        return img.resize((w, h), resample, box=(left, top, left + box_w, top + box_h))
    if fit == "pad":
        scale = min(w / src_w, h / src_h)
        new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
        fill = background if img.mode == "RGB" else Image.new("RGB", (1, 1), background).convert("L").getpixel((0, 0))
        canvas = Image.new(img.mode, (w, h), fill)
        canvas.paste(img.resize((new_w, new_h), resample), ((w - new_w) // 2, (h - new_h) // 2))
        return canvas
    raise UsageError(f"--fit: expected one of {', '.join(FITS)}, got {fit!r}")


def image_to_array(img: Image.Image) -> np.ndarray:
    """An "RGB" or "L" image -> uint8 (H, W, C) with C = 3 or 1."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def load_image_array(
    data: bytes,
    size: tuple[int, int],
    fit: str = "crop",
    background: tuple[int, int, int] = (255, 255, 255),
    grayscale: bool = False,
    method: str = "lanczos",
) -> np.ndarray:
    """Untrusted bytes -> uint8 (h, w, C) ready for a dataset, or `ImageRejected`."""
    img = decode_image(data)
    img = normalise_mode(img, grayscale, background)
    return image_to_array(fit_image(img, size, fit, background, method))
