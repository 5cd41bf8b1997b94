"""`gankit train --config FILE.yaml`: values from a YAML file with the keys of
a run's config.yaml, so a run's own config.yaml can be passed back.

Every key must be a TrainConfig field (or one of the extra keys a run
directory's config.yaml carries, such as ``image_shape``); an unknown key is a
UsageError naming it, with the nearest field name as a suggestion, so a typo
never silently trains with a default.
"""
from __future__ import annotations

import difflib
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

from gankit.config import CONFIG_FILE_EXTRAS, TrainConfig
from gankit.errors import UsageError


def load_config_file(path: str) -> dict[str, Any]:
    """The values of a YAML config file (a run's config.yaml will do); unknown keys are a UsageError."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--config: no such file {path}",
                         hint="a run's config.yaml, or a YAML file of flag names with _ for -")
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UsageError(f"--config: {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"--config: {path} must hold key: value pairs, not a {type(loaded).__name__}")
    known = {f.name: f for f in fields(TrainConfig)}
    for key, value in loaded.items():
        if key in CONFIG_FILE_EXTRAS:
            continue
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"--config: {path}: unknown key {key!r}{guess}",
                             hint="keys are the names of `gankit train`'s flags, with _ for - (e.g. lr_d: 0.0002)")
        loaded[key] = _typed(key, value, known[key].type, path)
    return {k: v for k, v in loaded.items() if k not in CONFIG_FILE_EXTRAS}


def _typed(key: str, value: Any, kind: Any, path: str) -> Any:
    kind = str(kind)
    if kind == "float" and isinstance(value, str):
        try:  # YAML 1.1 reads 2e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    ok = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}.get(kind, (object,))
    if isinstance(value, bool) and kind != "bool" or not isinstance(value, ok):
        raise UsageError(f"--config: {path}: {key} must be {'a number' if kind in ('int', 'float') else 'a ' + kind}, "
                         f"got {value!r}")
    return float(cast(Any, value)) if kind == "float" else value
