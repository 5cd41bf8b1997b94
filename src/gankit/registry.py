"""Parts built by name: one small registry per kind (model, loss, augmentation).

A part registers itself beside its own code with a decorator and declares
what it needs as keyword information (a loss: its default D steps and whether
D may keep BatchNorm; a model: the sizes it can build).  Callers build by name
with keyword arguments; an unknown name is a `UsageError` that names the flag
and every valid name, so `--help`, the config check and the builders share
one list.

The registries live here, at the bottom of the layering beside `config` and
`errors`, so `config` can list and check names without importing the parts.
Each registry names the modules that hold its built-in parts and imports them
on the first lookup (as `gankit.metrics.registry` does for extractors): adding
a part to one of those modules is the only change needed.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gankit.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One registered part: its name, its builder and what it declared."""

    name: str
    builder: Any  # a class or a function; `Registry.build` calls it
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.info[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.info.get(key, default)


class Registry:
    """name -> `Entry`, filled by `register` and read by `names`, `get` and `build`."""

    def __init__(self, kind: str, flag: str, modules: tuple[str, ...] = ()):
        self.kind = kind  # "loss", "model", ...: used in error messages
        self.flag = flag  # the flag that picks a name, e.g. "--loss"
        self.modules = modules  # where the built-in parts register themselves
        self._entries: dict[str, Entry] = {}
        self._loaded = not modules

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        """Decorator: ``@DIFFAUGMENT_OPS.register("cutout")`` above a class or function."""

        def decorate(builder: T) -> T:
            self.add(name, builder, **info)
            return builder

        return decorate

    def add(self, name: str, builder: Any = None, **info: Any) -> None:
        """Register ``name``; ``info`` is what the part declares (read back with ``get(name)[key]``)."""
        entry = Entry(name, builder, dict(info))
        if self._entries.get(name, entry) != entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            if module.endswith(".*"):  # every module of the package: a new file registers itself
                package = importlib.import_module(module[:-2])
                for sub in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
                    importlib.import_module(f"{package.__name__}.{sub}")
            else:
                importlib.import_module(module)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        """Every registered name, in registration order."""
        self._load()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise UsageError(f"{self.flag}: unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}")
        return self._entries[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        """The part ``name`` built with ``kwargs``."""
        return self.get(name).builder(**kwargs)


class NamesFrom:
    """The names of a registry kept in a higher layer (the metrics' feature
    extractors), read through its ``names()`` function on first use."""

    def __init__(self, kind: str, flag: str, module: str):
        self.kind, self.flag, self.module = kind, flag, module

    def names(self) -> list[str]:
        return list(importlib.import_module(self.module).names())

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self.names()


# The registries of gankit's parts; each module named registers its built-in entries on import.
MODELS = Registry("model", "--model", ("gankit.models.*",))
LOSSES = Registry("loss", "--loss", ("gankit.losses",))
DIFFAUGMENT_OPS = Registry("DiffAugment operation", "--diffaugment", ("gankit.augment_ops",))
ADA_OPS = Registry("ADA operation", "--ada-ops", ("gankit.augment_ops",))
EXTRACTORS = NamesFrom("feature extractor", "--extractor", "gankit.metrics.registry")
