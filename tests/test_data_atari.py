"""`gankit data atari` with the real Arcade Learning Environment (small frame
counts): exact counts and shapes, crop/resize semantics, the agent policy
really playing, and determinism across worker processes."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import gankit.cli
from gankit.data import load_dataset
from gankit.data.atari import collect_atari


@pytest.fixture
def data_cli(monkeypatch):
    """`gankit data ...` through the real entry point, exit status returned."""
    monkeypatch.setattr(gankit.cli, "COMMANDS", {"data": "gankit.data.cli"})

    def run(*argv: str) -> int:
        try:
            return gankit.cli.main(["data", "atari", *argv])
        except SystemExit as exit_:
            return int(exit_.code)

    return run


def test_pong_300_frames_through_the_real_command(tmp_path):
    out = tmp_path / "pong"
    cmd = [sys.executable, "-m", "gankit", "data", "atari", "--game", "Pong", "--frames", "300", "--size", "64",
           "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ds = load_dataset(out)
    assert ds.images.shape == (300, 64, 64, 3) and ds.images.dtype == np.uint8
    assert ds.manifest["source"] == "atari" and ds.manifest["params"]["game"] == "Pong"
    assert ds.manifest["params"]["env_id"] == "ALE/Pong-v5"
    frames = np.asarray(ds.images)
    assert frames.std() > 10 and len({f.tobytes() for f in frames[::10]}) > 5, "frames change as the game runs"
    assert "frame/s" in done.stderr and "300/300" in done.stderr, "progress bar with frames and frames/s"
    assert "300 frames of Pong" in done.stdout


def test_unknown_game_lists_valid_names(tmp_path, data_cli, capsys):
    assert data_cli("--game", "Pongg", "--frames", "5", "--out", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert "--game" in err and "Pongg" in err and "Breakout" in err and "MsPacman" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "flag,value",
    [("--size", "0"), ("--size", "64x"), ("--crop", "1,2,3"), ("--crop", "200,20,0,0"), ("--every", "0"),
     ("--frames", "-5"), ("--workers", "0"), ("--policy", "smart"), ("--resize", "cubic")],
)
def test_bad_values_exit_2_naming_the_flag(tmp_path, data_cli, capsys, flag, value):
    assert data_cli("--game", "Pong", "--frames", "5", flag, value, "--out", str(tmp_path / "x")) == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_names_are_forgiving():
    from gankit.data.atari import resolve_game

    assert resolve_game("ms_pacman") == resolve_game("mspacman") == resolve_game("ALE/MsPacman-v5") == "MsPacman"


def test_crop_and_area_resize_follow_the_source_pixels(tmp_path):
    kw = dict(every=7, seed=1, policy="random", progress=False)
    native = np.asarray(collect_atari("Breakout", 12, "210x160", tmp_path / "n", **kw).images).astype(float)
    # crop 2 rows off the top: 208x160 -> 52x40 is an exact 4x4 area average
    small = collect_atari("Breakout", 12, "52x40", tmp_path / "s", crop=(2, 0, 0, 0), **kw)
    assert small.images.shape == (12, 52, 40, 3)
    expected = native[:, 2:].reshape(12, 52, 4, 40, 4, 3).mean(axis=(2, 4))
    assert np.abs(np.asarray(small.images) - expected).max() <= 1
    assert small.manifest["params"]["crop"] == [2, 0, 0, 0]

    grey = collect_atari("Breakout", 12, "84x64", tmp_path / "g", crop=(32, 14, 8, 8), grayscale=True, **kw)
    assert grey.images.shape == (12, 84, 64, 1)
    luma = native[:, 32:196, 8:152] @ np.array([0.299, 0.587, 0.114])  # (12, 164, 144)
    expected = np.stack([np.asarray(Image.fromarray(f.astype(np.float32)).resize((64, 84), Image.Resampling.BOX))
                         for f in luma])
    assert np.abs(np.asarray(grey.images)[..., 0] - expected).mean() < 1.0


def _bricks(frame: np.ndarray) -> int:
    """Non-black pixels in Breakout's brick rows (native 210x160 frames)."""
    return int((frame[57:93, 8:152].max(axis=2) > 0).sum())


def test_agent_plays_breakout_and_pong_better_than_random(tmp_path):
    kw = dict(every=100, seed=0, progress=False)
    runs = {}
    for game in ("Breakout", "Pong"):
        for policy in ("agent", "random"):
            ds = collect_atari(game, 40, "210x160", tmp_path / f"{game}-{policy}", policy=policy, **kw)
            runs[game, policy] = ds
            assert ds.manifest["atari"]["emulator_steps"] == 4000
    reward = {k: ds.manifest["atari"]["reward_total"] for k, ds in runs.items()}
    assert reward["Breakout", "agent"] >= 20 and reward["Breakout", "agent"] > 2 * max(1, reward["Breakout", "random"])
    assert reward["Pong", "agent"] > reward["Pong", "random"] + 5
    frames = np.asarray(runs["Breakout", "agent"].images)
    assert _bricks(frames[-1]) < 0.9 * _bricks(frames[0]), "later frames show broken bricks"
    assert runs["Breakout", "agent"].manifest["atari"]["policy_used"] == "agent"


def test_sticky_and_fallback_policies(tmp_path):
    sticky = collect_atari("Breakout", 5, 16, tmp_path / "s", policy="sticky", progress=False)
    assert sticky.manifest["params"]["repeat_action_probability"] == 0.25
    other = collect_atari("MsPacman", 5, 16, tmp_path / "m", policy="agent", progress=False)
    assert other.images.shape == (5, 16, 16, 3)
    assert other.manifest["atari"]["policy_used"] == "random", "agent only knows Breakout and Pong"


def test_workers_are_deterministic_and_concatenated_in_order(tmp_path):
    kw = dict(every=3, policy="agent", progress=False)
    both = collect_atari("Breakout", 61, 32, tmp_path / "w2", seed=5, workers=2, **kw)
    first = collect_atari("Breakout", 31, 32, tmp_path / "a", seed=5, **kw)
    second = collect_atari("Breakout", 30, 32, tmp_path / "b", seed=6, **kw)
    assert both.images.shape == (61, 32, 32, 3) and both.manifest["params"]["workers"] == 2
    np.testing.assert_array_equal(np.asarray(both.images), np.concatenate([first.images, second.images]))
    assert not np.array_equal(np.asarray(first.images[:30]), np.asarray(second.images)), "seeds differ"
    assert not [p.name for p in (tmp_path / "w2").iterdir() if p.name.startswith(".")], "no scratch files left"


def test_several_games_give_a_dataset_labelled_by_game(tmp_path, data_cli, capsys):
    games = ["Breakout", "Pong", "Freeway"]
    assert data_cli("--game", ",".join(games), "--frames", "5", "--size", "24x32", "--every", "20",
                    "--out", str(tmp_path / "three"), "--quiet") == 0
    printed = capsys.readouterr().out
    assert all(f"class {g}: 5 images" in printed for g in games), printed
    ds = load_dataset(tmp_path / "three")
    assert ds.images.shape == (15, 24, 32, 3)
    assert ds.classes == games and ds.class_counts == [5, 5, 5]
    np.testing.assert_array_equal(ds.labels, np.repeat(np.arange(3), 5))
    assert ds.manifest["params"]["games"] == games
    assert set(ds.manifest["atari"]["per_game"]) == set(games)
    assert ds.manifest["atari"]["emulator_steps"] == 3 * 5 * 20
    # each game's block is exactly what collecting that game alone gives
    pong = collect_atari("Pong", 5, "24x32", tmp_path / "pong", every=20, progress=False)
    np.testing.assert_array_equal(np.asarray(ds.images)[ds.labels == 1], np.asarray(pong.images))
    assert pong.labels is None and pong.classes == [], "one game stays unlabelled, as before"
    means = [np.asarray(ds.images)[ds.labels == c].mean() for c in range(3)]
    assert min(abs(a - b) for i, a in enumerate(means) for b in means[i + 1:]) > 5, "the games look different"


def test_several_games_with_worker_processes(tmp_path):
    both = collect_atari(["MsPacman", "SpaceInvaders"], 6, 16, tmp_path / "two", every=3, workers=2, progress=False)
    alone = collect_atari("SpaceInvaders", 6, 16, tmp_path / "si", every=3, workers=2, progress=False)
    assert both.classes == ["MsPacman", "SpaceInvaders"] and both.class_counts == [6, 6]
    np.testing.assert_array_equal(np.asarray(both.images)[both.labels == 1], np.asarray(alone.images))
    assert not [p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".")], "no scratch files left"


@pytest.mark.parametrize("games,word", [("Pong,pong", "twice"), ("Pong,Tetriss", "Tetriss"), (",", "no game")])
def test_bad_game_lists_exit_2(tmp_path, data_cli, capsys, games, word):
    assert data_cli("--game", games, "--frames", "5", "--out", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert "--game" in err and word in err
    assert not (tmp_path / "x").exists()
