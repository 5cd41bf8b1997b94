"""The two flag formats several commands share: image sizes and option lists.

One reading each, so ``--size``, ``--resolution``, ``--diffaugment``,
``--ada-ops`` and ``--game`` accept the same spellings and fail the same
way: a `UsageError` that names the flag and shows what was expected.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from gankit.errors import UsageError

MAX_SIDE = 4096  # the largest image side any command accepts


def _flag(flag: str) -> str:
    return flag if flag.startswith("-") else "--" + flag.replace("_", "-")


def parse_size(text: str | int, flag: str = "--size", low: int = 1, high: int = MAX_SIDE) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"84x64"`` (or ``84*64``) -> (84, 64), always
    (height, width); each side must lie in [low, high]."""
    parts = str(text).strip().lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise UsageError(f"{_flag(flag)}: expected S or HxW (e.g. 64 or 84x64), got {text!r}")
    if not all(low <= v <= high for v in values):
        raise UsageError(f"{_flag(flag)}: sides must be between {low} and {high}, got {text!r}")
    return values[0], values[1]


def parse_list(text: str | Iterable[str], flag: str, allowed: Sequence[str] | None = None,
               what: str = "value") -> list[str]:
    """``"color, cutout"`` (or a sequence of names) -> ``["color", "cutout"]``:
    stripped, empty items dropped, order kept.  With ``allowed``, an unknown
    item is a UsageError naming the flag, the item (a ``what``) and the valid names."""
    items = [str(p).strip() for p in (text.split(",") if isinstance(text, str) else text)]
    items = [p for p in items if p]
    if allowed is not None:
        unknown = [p for p in items if p not in allowed]
        if unknown:
            raise UsageError(f"{_flag(flag)}: unknown {what} {unknown[0]!r}; choose from {', '.join(allowed)}")
    return items
