"""benchmarks/figure_ground.py: the pixel-counted shape statistics on drawn
images whose answers are known, and the script on a real split dataset with
a real (one-epoch) run."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from gankit.cli import main as gankit_main
from gankit.data import write_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import figure_ground as fg  # noqa: E402

S = 32


def _disc(r: float, colour=(200, 40, 40), bg=255, centre=(16, 16)) -> np.ndarray:
    img = np.full((S, S, 3), bg, np.uint8)
    ys, xs = np.mgrid[:S, :S]
    img[(ys - centre[0]) ** 2 + (xs - centre[1]) ** 2 <= r * r] = colour
    return img


def _spray(seed: int) -> np.ndarray:
    """Nine 2x2 fragments scattered on white: no piece is large."""
    rng = np.random.default_rng(seed)
    img = np.full((S, S, 3), 255, np.uint8)
    for y, x in rng.choice(np.arange(0, S - 2, 4), (9, 2)):
        img[y:y + 3, x:x + 3] = (40, 40, 200)
    return img


def test_one_disc_is_one_solid_piece():
    s = fg.image_stats(_disc(8))
    assert s["parts"] == 1 and s["specks"] == 0 and s["main"] == 1.0 and s["colours"] == 1
    assert s["area"] == pytest.approx(np.pi * 64 / S ** 2, rel=0.1)
    assert 3.0 < s["outline"] < 4.5  # a disc: its boundary over sqrt(area) ~ 2 sqrt(pi)


def test_pieces_specks_and_the_main_share():
    img = _disc(6)
    img[2:6, 26:30] = (10, 10, 10)  # a second piece of 16 px
    for y, x in ((30, 2), (2, 2), (29, 29)):  # three stray pixels
        img[y, x] = (0, 120, 0)
    s = fg.image_stats(img)
    disc = int(fg.figure_mask(_disc(6)).sum())
    assert s["parts"] == 2 and s["specks"] == 3
    assert s["main"] == pytest.approx(disc / (disc + 16))  # the specks stay out of the shares
    # and out of the outline: the same with or without them
    clean = _disc(6)
    clean[2:6, 26:30] = (10, 10, 10)
    assert s["outline"] == pytest.approx(fg.image_stats(clean)["outline"])


def test_background_is_read_from_the_border():
    white, black = fg.image_stats(_disc(8, colour=(90, 90, 90))), fg.image_stats(_disc(8, colour=(90, 90, 90), bg=0))
    assert white == black


def test_colour_families_cover_ninety_percent():
    img = np.full((S, S, 3), 255, np.uint8)
    img[4:28, 4:12] = (200, 0, 0)
    img[4:28, 12:20] = (0, 200, 0)
    img[4:28, 20:28] = (0, 0, 200)
    assert fg.image_stats(img)["colours"] == 3
    img[4:28, 20:21] = (0, 0, 200)  # still three
    img[4:28, 12:20] = (210, 10, 10)  # green -> the red family: two
    assert fg.image_stats(img)["colours"] == 2


def test_distances_tell_sprays_from_discs():
    rng = np.random.default_rng(0)
    real = fg.set_stats(np.stack([_disc(rng.uniform(6, 10)) for _ in range(60)]))
    same_kind = fg.set_stats(np.stack([_disc(rng.uniform(6, 10)) for _ in range(60)]))
    sprays = fg.set_stats(np.stack([_spray(i) for i in range(60)]))
    near, far = fg.distances(same_kind, real), fg.distances(sprays, real)
    assert fg.distances(real, real) == {k: 0.0 for k in (*fg.STATS, "shape")}
    assert near["parts"] == 0 and near["main"] == 0 and near["area"] < 0.5
    assert far["parts"] > 3 and far["outline"] > 3
    assert far["main"] > 0.7  # every disc is one piece (no spread): the distance stays in shares
    assert fg.summary(sprays)["share_fragmented"] == 1.0 and fg.summary(real)["share_fragmented"] == 0.0


def test_script_on_a_split_dataset_and_a_run(tmp_path, capsys):
    rng = np.random.default_rng(1)
    images = np.stack([_disc(rng.uniform(5, 11), colour=tuple(int(c) for c in rng.integers(0, 200, 3)),
                             centre=tuple(int(c) for c in rng.integers(12, 20, 2))) for _ in range(96)])
    ds = write_dataset(tmp_path / "discs", images, source="test-discs")
    with pytest.raises(SystemExit) as no_split:
        fg.main(["--data", str(ds.path)])
    assert no_split.value.code == 2 and "gankit data split" in capsys.readouterr().err
    assert gankit_main(["data", "split", str(ds.path), "--holdout", "0.25"]) == 0
    assert gankit_main(["train", "--data", str(ds.path), "--out", str(tmp_path), "--name", "run", "--model", "dcgan",
                        "--width-g", "8", "--width-d", "8", "--latent", "16", "--batch", "32", "--epochs", "1",
                        "--no-tensorboard"]) == 0
    capsys.readouterr()
    out = tmp_path / "f.json"
    assert fg.main(["--data", str(ds.path), str(tmp_path / "run"), "--num", "40", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    got = json.loads(out.read_text())
    assert set(got) == {"held out", "real (training sample)", "blur", "shuffle", "blobs", "run"}
    assert got["held out"]["num"] == 24 and got["run"]["num"] == 40
    # every held-out disc is one piece; their shuffled tiles are not; a one-epoch G is far from discs
    assert got["held out"]["share_fragmented"] == 0.0 and got["shuffle"]["share_fragmented"] > 0.5
    assert got["shuffle"]["d_main"] > got["real (training sample)"]["d_main"]
    assert got["blobs"]["median_outline"] < got["held out"]["median_outline"] + 1
    assert got["run"]["d_shape"] > got["real (training sample)"]["d_shape"]
    assert "| run | 40 |" in table
