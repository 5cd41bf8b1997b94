"""`gankit data`: make datasets (atari, folder, fetch) and look at them (show).

Flags are declared here and nothing else: each subcommand calls the Python
function of the same job (`collect_atari`, `import_folder`, `fetch_csv`,
`show_dataset`), so the CLI and the API cannot drift apart.  Value checks live
in argparse ``type=`` callables so a bad value exits 2 naming its flag before
any work starts; checks that need the emulator (the game name) raise
`UsageError`, which `gankit.cli.main` also turns into exit status 2.

The heavy modules (gymnasium, urllib, tqdm) are imported only when a
subcommand runs, so ``gankit --help`` stays fast.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from gankit.cli_helpers import HelpFormatter
from gankit.errors import UsageError

DATA_HELP = """Make a dataset (a folder with images.npy + manifest.json) and look at it.

  gankit data atari --game Breakout --frames 20000 --size 64 --out data/breakout
  gankit data atari --game Breakout,Pong,MsPacman --frames 4000 --out data/atari3
  gankit data folder SRC --size 64 --out data/cards
  gankit data folder pets/ --labels subdirs --out data/pets
  gankit data fetch cards.csv --column image_url --out data/cards-raw --to-dataset
  gankit data show data/breakout --out preview.png
  gankit data split data/cards --holdout 0.1          # set 10% aside: training skips them
"""


def _writes(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A full disk or a read-only/unwritable folder ends the command with one line
    (EnvironmentProblem, exit 1); the writers have already removed their temporary files."""

    def guarded(args: argparse.Namespace) -> int:
        from gankit.fsproblems import is_environment, os_error_in, problem

        try:
            return run(args)
        except OSError as err:
            cause = os_error_in(err)
            if cause is None or not is_environment(cause):
                raise
            raise problem(cause, cause.filename or getattr(args, "out", None), "cannot write") from None

    return guarded


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a parser raising UsageError into an argparse type (exit 2 + flag)."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _number(kind: type, low: float, inclusive: bool = True) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got "
                                             f"{text!r}") from None
        if value < low or (not inclusive and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {low:g}, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _size(text: str) -> tuple[int, int]:
    from gankit.parsing import parse_size

    return parse_size(text)


def _crop(text: str) -> tuple[int, int, int, int] | None:
    from gankit.data.imageops import parse_crop

    return parse_crop(text)


def _colour(text: str) -> str:
    from gankit.data.imageops import parse_color

    parse_color(text)
    return text


def _common(p: argparse.ArgumentParser, resize_default: str) -> None:
    from gankit.data.imageops import RESIZE_FILTERS

    p.add_argument("--size", type=_checked(_size), default="64", help="output size S (square) or HxW, e.g. 84x64")
    p.add_argument("--grayscale", action="store_true", help="one grey channel instead of RGB")
    p.add_argument("--resize", choices=list(RESIZE_FILTERS), default=resize_default,
                   help="resize filter (area, bilinear, bicubic and lanczos are antialiased)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--overwrite", action="store_true", help="replace a dataset already in the output folder")
    keep.add_argument("--append", action="store_true",
                      help="add to a dataset already in the output folder (same size and channels)")


def _fitting(p: argparse.ArgumentParser, when: str) -> None:
    """--fit and --background, for the commands that import image files (``when`` prefixes their help)."""
    from gankit.data.imageops import FITS

    p.add_argument("--fit", choices=FITS, default="crop",
                   help=f"{when}crop: centre crop to the output aspect; pad: fit inside, fill with --background; "
                        "stretch: ignore the aspect")
    p.add_argument("--background", type=_checked(_colour), default="white",
                   help=f"{when}colour under transparent pixels and padding")


def _existing(args: argparse.Namespace) -> str:
    """What to do with a dataset already at the output: refused unless a flag says otherwise."""
    return "overwrite" if args.overwrite else "append" if args.append else "refuse"


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="make and inspect datasets (atari, folder, fetch, show, split)",
                          description=DATA_HELP, formatter_class=HelpFormatter)
    data.set_defaults(_parser=data, func=lambda args: (data.print_help(), 2)[1])
    cmds = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for add in (_add_atari, _add_folder, _add_fetch, _add_show, _add_split):
        add(cmds)


def _command(cmds: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int], summary: str,
             description: str, operand: tuple[str, str] | None = None) -> argparse.ArgumentParser:
    """A `gankit data` sub-command: its parser, its help line, the function that
    runs it and its one positional argument (``operand``: metavar, help)."""
    p = cmds.add_parser(name, help=summary, description=description, formatter_class=HelpFormatter)
    p.set_defaults(func=_writes(run), _parser=p)
    if operand is not None:
        p.add_argument(operand[0].lower(), metavar=operand[0], help=operand[1])
    return p


def _add_atari(cmds: argparse._SubParsersAction) -> None:
    from gankit.data.atari import POLICIES

    p = _command(cmds, "atari", run_atari, "frames from an Atari game (ALE)",
                 "Play an Atari game in the Arcade Learning Environment and keep its frames.")
    p.add_argument("--game", default="Breakout",
                   help="ALE game name (Breakout, Pong, MsPacman, ...); several, comma-separated, give a dataset "
                        "labelled by game")
    p.add_argument("--frames", type=_number(int, 1), default=20000, help="number of frames to keep (per game)")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="dataset folder to write (required)")
    _common(p, "area")
    p.add_argument("--every", type=_number(int, 1), default=1, help="keep one emulator frame in K")
    p.add_argument("--policy", choices=POLICIES, default="agent",
                   help="agent follows the ball (Breakout, Pong; others: random); sticky repeats actions with p=0.25")
    p.add_argument("--seed", type=int, default=0, help="random seed (worker i uses seed+i)")
    p.add_argument("--crop", type=_checked(_crop), default=None,
                   help="top,bottom,left,right: source pixels removed from each edge before resizing, e.g. 32,14,8,8")
    p.add_argument("--workers", type=_number(int, 1), default=1, help="emulators run in parallel processes")


def _add_folder(cmds: argparse._SubParsersAction) -> None:
    from gankit.data.folder import LABEL_MODES

    p = _command(cmds, "folder", run_folder, "every image under a folder",
                 "Import every image under SRC (png, jpg, webp, bmp, gif); bad files are skipped "
                 "and listed.", ("SRC", "folder searched recursively (hidden files are ignored)"))
    p.add_argument("--out", required=True, default=argparse.SUPPRESS, help="dataset folder to write (required)")
    _common(p, "lanczos")
    _fitting(p, "")
    p.add_argument("--dedupe", action="store_true", help="drop files whose bytes duplicate an earlier file")
    p.add_argument("--workers", type=_number(int, 1), default=4, help="decoding threads")
    p.add_argument("--labels", choices=LABEL_MODES, default="none",
                   help="subdirs: each first-level sub-folder of SRC is a class (sorted names); files directly in SRC "
                        "are skipped")


def _add_fetch(cmds: argparse._SubParsersAction) -> None:
    p = _command(cmds, "fetch", run_fetch, "download the images listed in a CSV",
                 "Download every URL of one CSV column into OUT/images; OUT/fetch_report.csv says "
                 "what happened to each row.", ("CSV", "CSV file with a header row"))
    p.add_argument("--column", default="image_url", help="column holding the image URLs")
    p.add_argument("--label-column", default=None,
                   help="column holding each row's class (its distinct values, sorted, are the classes; rows with an "
                        "empty one fail); None: unlabelled")
    p.add_argument("--out", required=True, default=argparse.SUPPRESS,
                   help="folder for images/ and fetch_report.csv (required)")
    p.add_argument("--workers", type=_number(int, 1), default=8, help="concurrent downloads")
    p.add_argument("--timeout", type=_number(float, 0, inclusive=False), default=10.0,
                   help="seconds to connect / wait for data")
    p.add_argument("--deadline", type=_number(float, 0, inclusive=False), default=60.0,
                   help="seconds allowed per file, retries included")
    p.add_argument("--retries", type=_number(int, 0), default=3,
                   help="retries after 5xx, 429, timeouts, dropped connections")
    p.add_argument("--backoff", type=_number(float, 0), default=0.5,
                   help="first retry delay in seconds, doubled each retry")
    p.add_argument("--max-mb", type=_number(float, 0, inclusive=False), default=20.0,
                   help="largest file accepted, in MiB")
    p.add_argument("--to-dataset", action="store_true",
                   help="then import OUT/images as a dataset (like `gankit data folder`)")
    p.add_argument("--dataset-out", default=None,
                   help="dataset folder for --to-dataset; None means OUT without its '-raw' suffix (data/cards-raw -> "
                        "data/cards), else OUT/dataset")
    _common(p, "lanczos")
    _fitting(p, "--to-dataset: ")


def _add_show(cmds: argparse._SubParsersAction) -> None:
    p = _command(cmds, "show", run_show, "print statistics and write a preview grid",
                 "Print count, size, channels and per-channel mean/std (and images per class when "
                 "labelled); write a grid of random images (one row per class when labelled, at "
                 "most 16 classes).", ("DATASET", "dataset folder"))
    p.add_argument("--out", default="preview.png", help="preview image (PNG) to write")
    p.add_argument("--count", type=_number(int, 1), default=64, help="images in the grid (at most the dataset size)")
    p.add_argument("--seed", type=int, default=0, help="which random images are shown")


def _add_split(cmds: argparse._SubParsersAction) -> None:
    from gankit.data.split import parse_fraction

    p = _command(cmds, "split", run_split, "hold out part of a dataset (training skips it; memorization uses it)",
                 "Write DATASET/split.json: a seeded random share of the images (class by class when labelled) held "
                 "out of training, so `gankit eval --metrics memorization` can tell new images from copies.  Running "
                 "it again replaces the split.", ("DATASET", "dataset folder"))
    p.add_argument("--holdout", type=_checked(parse_fraction), required=True, default=argparse.SUPPRESS,
                   help="fraction of the images held out, between 0 and 1, e.g. 0.1 (required)")
    p.add_argument("--seed", type=int, default=0, help="which images are held out (the same seed picks the same ones)")


def run_atari(args: argparse.Namespace) -> int:
    from gankit.data.atari import collect_atari

    ds = collect_atari(args.game, args.frames, args.size, args.out, every=args.every, policy=args.policy,
                       seed=args.seed, grayscale=args.grayscale, crop=args.crop, resize=args.resize,
                       workers=args.workers, progress=not args.quiet, existing=_existing(args))
    info = ds.manifest["atari"]
    print(f"{ds.path}: {len(ds)} frames of {ds.manifest['params']['game']} {ds.height}x{ds.width}x{ds.channels}, "
          f"{info['frames_per_second']:.0f} frames/s, policy {info['policy_used']}, "
          f"{info['episodes_finished']} episodes finished, reward {info['reward_total']:g}")
    _print_classes(ds)
    return 0


def _print_classes(ds: Any) -> None:
    """Images per class, and a warning for a class that got none."""
    for name, n in zip(ds.classes, ds.class_counts):
        empty = "  (none: this class cannot be trained or sampled well)" if n == 0 else ""
        print(f"  class {name}: {n} images{empty}")


def run_folder(args: argparse.Namespace) -> int:
    from gankit.data.folder import import_folder

    ds = import_folder(args.src, args.size, args.out, fit=args.fit, background=args.background,
                       grayscale=args.grayscale, dedupe=args.dedupe, resize=args.resize,
                       workers=args.workers, progress=not args.quiet, labels=args.labels,
                       existing=_existing(args))
    skipped = ds.manifest["skipped"]
    print(f"{ds.path}: {len(ds)} images {ds.height}x{ds.width}x{ds.channels}, {len(skipped)} skipped")
    for item in skipped[:20]:
        print(f"  skipped {item['input']}: {item['reason']}")
    if len(skipped) > 20:
        print(f"  ... {len(skipped) - 20} more in {ds.path / 'manifest.json'}")
    _print_classes(ds)
    if len(ds) == 0:
        raise UsageError(f"SRC: no usable image in {args.src} (reasons in {ds.path / 'manifest.json'})")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from gankit.data.fetch import fetch_csv

    summary = fetch_csv(args.csv, args.column, args.out, workers=args.workers, timeout=args.timeout,
                        deadline=args.deadline, retries=args.retries, backoff=args.backoff,
                        max_bytes=int(args.max_mb * 2**20), to_dataset=args.to_dataset, size=args.size,
                        fit=args.fit, background=args.background, grayscale=args.grayscale, resize=args.resize,
                        dataset_out=args.dataset_out, progress=not args.quiet, label_column=args.label_column,
                        existing=_existing(args))
    print(f"{summary.rows} rows: {summary.ok} ok ({summary.downloaded} downloaded, {summary.cached} already there), "
          f"{summary.failed} failed; report: {summary.report}")
    reasons: dict[str, int] = {}
    for r in summary.results:
        if r.status != "ok":
            key = r.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n} x {reason}")
    if summary.dataset is not None:
        ds = summary.dataset
        print(f"dataset {ds.path}: {len(ds)} images {ds.height}x{ds.width}x{ds.channels}")
        _print_classes(ds)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from gankit.data.show import format_stats, show_dataset
    from gankit.inputs import expect_dataset

    stats = show_dataset(expect_dataset(args.dataset, "DATASET"), args.out, count=args.count, seed=args.seed)
    print(format_stats(stats))
    sys.stdout.flush()
    return 0


def run_split(args: argparse.Namespace) -> int:
    from gankit.data.split import split_dataset
    from gankit.inputs import expect_dataset

    for line in split_dataset(expect_dataset(args.dataset, "DATASET"), args.holdout, args.seed):
        print(line)
    return 0
