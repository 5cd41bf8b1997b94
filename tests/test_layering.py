"""The layers of docs/architecture.md hold: no module imports a higher layer.

Every ``import gankit...`` in src/gankit is read with ``ast``, at module level
and inside functions alike (a lazy import is still a dependency).  A module
may import its own layer and those below.  The layer map is `LAYERS`, the
one place it is written in code; docs/architecture.md draws it.
"""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first.  A module belongs to the longest prefix listed (a package name covers its modules).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("gankit.errors", "gankit.config", "gankit.config_file", "gankit.presets", "gankit.device",
              "gankit.fsproblems", "gankit.inputs", "gankit.runpaths", "gankit.registry", "gankit.parsing",
              "gankit.cli_helpers")),
    ("data", ("gankit.data",)),
    ("models", ("gankit.models",)),
    ("parts", ("gankit.losses", "gankit.augment", "gankit.augment_ops", "gankit.regularize")),
    ("training", ("gankit.train", "gankit.monitor", "gankit.metrics")),
    # The commands, and what they run on a trained run; the package itself is the lazy API facade.
    ("commands", ("gankit", "gankit.__main__", "gankit.cli", "gankit.sample", "gankit.export", "gankit.project",
                  "gankit.explore", "gankit.data.cli", "gankit.train.cli", "gankit.train.presets_cli",
                  "gankit.metrics.cli", "gankit.monitor.cli", "gankit.monitor.runs")),
]

# Upward imports that exist today, each with the reason it is tolerated until it is removed.
KNOWN: set[tuple[str, str]] = set()  # (none today; config -> models.common went with the registries)


def layer_of(module: str) -> int:
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"{module} is in no layer: add it to LAYERS"
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The gankit modules a file imports (``from gankit.train import checkpoint`` names gankit.train.checkpoint;
    ``from gankit import __version__`` names nothing: the version is no dependency)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gankit"}
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] == "gankit"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if _is_module(sub):
                    found.add(sub)
                elif alias.name != "__version__":
                    found.add(node.module)
    return found


def _is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def upward_imports() -> set[tuple[str, str]]:
    bad = set()
    for path in sorted((SRC / "gankit").rglob("*.py")):
        me = module_name(path)
        for dep in imports_of(path):
            if layer_of(dep) > layer_of(me):
                bad.add((me, dep))
    return bad


def test_no_module_imports_a_higher_layer():
    bad = upward_imports() - KNOWN
    assert not bad, "upward imports (see docs/architecture.md): " + ", ".join(f"{a} -> {b}" for a, b in sorted(bad))


def test_known_exceptions_still_exist():
    """A removed exception must leave KNOWN too, so the list never hides a new one."""
    assert KNOWN <= upward_imports(), sorted(KNOWN - upward_imports())


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check can fail: a lazy import of the CLI inside a data module is caught."""
    fake = tmp_path / "probe.py"
    fake.write_text("def f():\n    from gankit.train import checkpoint\n    import gankit.cli\n")
    found = imports_of(fake)
    assert found == {"gankit.train.checkpoint", "gankit.cli"}
    assert all(layer_of(dep) > layer_of("gankit.data.dataset") for dep in found)
    assert layer_of("gankit.train.cli") > layer_of("gankit.train.loop") > layer_of("gankit.losses")
