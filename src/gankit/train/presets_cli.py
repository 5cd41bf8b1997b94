"""`gankit presets [NAME]`: what each preset is for, and each value with why.

The values come from gankit.presets (the same dict `--preset` applies) and the
defaults from TrainConfig, so this listing cannot drift from what training
uses.  Torch is not imported.
"""
from __future__ import annotations

import argparse

from gankit.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter

    p = sub.add_parser("presets", help="list the presets, or show one preset's values and why",
                       formatter_class=HelpFormatter,
                       description="Without NAME: every preset and what it is for. With NAME: each value it sets,\n"
                                   "the default it replaces, and one line of why.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a preset to show in full")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from gankit.presets import DOCS, PRESETS, SUMMARIES

    if not args.name:
        width = max(map(len, PRESETS))
        for name in sorted(PRESETS):
            print(f"{name:<{width}}  {SUMMARIES[name]}")
        print("\n`gankit presets NAME` shows a preset's values and why; `gankit train --preset NAME` uses it.")
        return 0
    if args.name not in PRESETS:
        raise UsageError(f"NAME: unknown preset {args.name!r}; choose from {', '.join(sorted(PRESETS))}",
                         hint="`gankit presets` lists them")
    print(show(args.name))
    if args.name in DOCS:
        print(f"\nmeasurements behind these values: {DOCS[args.name]}")
    return 0


def show(name: str) -> str:
    """A table: flag, the preset's value, the default it replaces, why."""
    from gankit.config import TrainConfig
    from gankit.presets import PRESETS, REASONS, SUMMARIES

    defaults = TrainConfig()
    rows = [(f"--{key.replace('_', '-')}", _text(value), _text(getattr(defaults, key)), REASONS[name].get(key, ""))
            for key, value in PRESETS[name].items()]
    widths = [max(len(r[i]) for r in rows + [("flag", "value", "default", "")]) for i in range(3)]
    lines = [f"{name}: {SUMMARIES[name]}", "",
             f"{'flag':<{widths[0]}}  {'value':<{widths[1]}}  {'default':<{widths[2]}}  why"]
    lines += [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {why}" for a, b, c, why in rows]
    return "\n".join(lines)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value or "''"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
