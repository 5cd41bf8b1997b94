import pytest

from gankit.cli import main
from gankit.config import TrainConfig, parse_size
from gankit.errors import UsageError
from gankit.presets import PRESETS


def test_presets_resolve_and_flags_override():
    for name in PRESETS:
        cfg = TrainConfig.from_preset(name)
        assert cfg.preset == name
    cfg = TrainConfig.from_preset("breakout", lr_d=1e-4)
    assert cfg.lr_d == 1e-4
    assert cfg.critic_steps == 1
    assert TrainConfig(loss="wgan-gp").critic_steps == 5


@pytest.mark.parametrize("overrides, flag", [
    (dict(lr_g=-1.0), "--lr-g"),
    (dict(batch=0), "--batch"),
    (dict(diffaugment="color,zoom"), "--diffaugment"),
    (dict(loss="wgan", spectral_norm=True), "--spectral-norm"),
    (dict(loss="hinge", label_smoothing=0.1), "--label-smoothing"),
    (dict(resolution="30"), "--resolution"),
])
def test_bad_values_name_their_flag(overrides, flag):
    with pytest.raises(UsageError, match=flag):
        TrainConfig.from_preset("", **overrides)


def test_parse_size():
    assert parse_size("64") == (64, 64)
    assert parse_size("84x64") == (84, 64)
    with pytest.raises(UsageError):
        parse_size("big")


def test_cli_bad_flag_exits_2_naming_it(capsys):
    assert main(["train", "--data", "x", "--lr-g", "-3", "--dry-run"]) == 2
    assert "--lr-g" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--batch", "many"])
    assert exc.value.code == 2
    assert "--batch" in capsys.readouterr().err


def test_dry_run_prints_resolved_config(capsys):
    import yaml

    assert main(["train", "--preset", "breakout", "--lr-d", "5e-5", "--dry-run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["lr_d"] == 5e-5
    assert cfg["preset"] == "breakout"
    assert cfg["model"] == PRESETS["breakout"]["model"]


def test_train_help_states_each_default_once(capsys):
    """Train flags default to None so presets can fill them; help must show
    the config's default, not argparse's None, and only once."""
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo line wrapping
    assert "(default: None)" not in text
    assert "--lr-g LR_G" in text and f"(default: {TrainConfig().lr_g!r})" in text
    for flag in ("--seed SEED", "--kimg KIMG", "--diffaugment DIFFAUGMENT"):
        after = text.split(flag, 2)[-1]  # the flag's own help line onward
        assert after.split(" --", 1)[0].count("(default:") == 1, flag
