"""Parts built by name: the registries of models, losses and augmentation
operations, what each part declares, and the builders that read it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gankit.augment import AdaptiveAugment, diff_augment
from gankit.cli import main
from gankit.config import TrainConfig
from gankit.errors import UsageError
from gankit.losses import GANLoss, HingeLoss, WGANGPLoss, WGANLoss, build_loss, config_loss, register_loss
from gankit.models import build_discriminator, build_generator, config_discriminator, config_generator
from gankit.models.seed import SeedDiscriminator, SeedGenerator
from gankit.registry import ADA_OPS, DIFFAUGMENT_OPS, LOSSES, MODELS, Registry

SRC = Path(__file__).parents[1] / "src" / "gankit"


@pytest.fixture
def scratch_registries(monkeypatch):
    """Parts a test registers vanish with it (the registries are module-wide)."""
    for registry in (MODELS, LOSSES):
        registry.names()  # load the built-in parts first
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))


@pytest.mark.parametrize("build, flag", [
    (lambda: build_loss("softmax"), "--loss"),
    (lambda: build_generator("stylegan9", 32, 32, 3, 8, 8), "--model"),
    (lambda: build_discriminator("stylegan9", 32, 32, 3, 8), "--model"),
    (lambda: diff_augment(torch.zeros(1, 3, 8, 8), "color,zoom"), "--diffaugment"),
    (lambda: AdaptiveAugment(ops=("flip", "zoom")), "--ada-ops"),
    (lambda: TrainConfig.from_preset("", loss="softmax"), "--loss"),
    (lambda: TrainConfig.from_preset("", model="stylegan9"), "--model"),
    (lambda: TrainConfig.from_preset("", ada_ops="flip,zoom"), "--ada-ops"),
])
def test_unknown_names_are_usage_errors_naming_flag_and_valid_names(build, flag):
    with pytest.raises(UsageError) as err:
        build()
    text = str(err.value)
    assert text.startswith(flag)
    registry = {"--loss": LOSSES, "--model": MODELS, "--diffaugment": DIFFAUGMENT_OPS, "--ada-ops": ADA_OPS}[flag]
    assert all(name in text for name in registry.names())


def test_builtin_names_in_registration_order():
    assert LOSSES.names() == ["bce", "wgan", "wgan-gp", "hinge", "lsgan"]
    assert set(MODELS.names()) == {"seed", "dcgan", "fastgan"}
    assert DIFFAUGMENT_OPS.names() == ["color", "translation", "translation_x", "cutout"]
    assert ADA_OPS.names() == ["flip", "translation", "color", "cutout"]
    for name in LOSSES:
        assert build_loss(name).name == name


def test_a_loss_declares_its_critic_steps():
    # the class attribute is the one source: config, builders and --n-critic 0 read it
    assert TrainConfig(loss="wgan").critic_steps == WGANLoss.default_critic_steps == 5
    assert TrainConfig(loss="wgan-gp").critic_steps == WGANGPLoss.default_critic_steps == 5
    assert TrainConfig(loss="hinge").critic_steps == HingeLoss.default_critic_steps == 1
    assert TrainConfig(loss="wgan", n_critic=2).critic_steps == 2


def test_option_checks_follow_what_the_loss_declares(scratch_registries):
    @register_loss
    class Clipped(GANLoss):
        name = "clipped"
        clips_weights = True

    with pytest.raises(UsageError, match="^--spectral-norm: cannot be combined with --loss clipped"):
        TrainConfig.from_preset("", loss="clipped", spectral_norm=True)
    with pytest.raises(UsageError, match="^--r1: cannot be combined with --loss clipped"):
        TrainConfig.from_preset("", loss="clipped", r1=1.0)
    with pytest.raises(UsageError, match="^--label-smoothing: applies to the bce loss only, not clipped"):
        TrainConfig.from_preset("", loss="clipped", label_smoothing=0.1)
    assert TrainConfig.from_preset("", loss="bce", label_smoothing=0.1, spectral_norm=True, r1=1.0)


def _has_batchnorm(D: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in D.modules())


def test_a_new_loss_is_one_registered_class(scratch_registries, capsys):
    @register_loss
    class Patient(GANLoss):
        name = "patient"
        default_critic_steps = 3
        d_keeps_batchnorm = False

        def d_loss(self, real_logits, fake_logits):
            return fake_logits.mean() - real_logits.mean()

        def g_loss(self, fake_logits):
            return -fake_logits.mean()

    cfg = TrainConfig.from_preset("", loss="patient")  # the config accepts it
    assert cfg.critic_steps == 3
    assert isinstance(config_loss(cfg), Patient)
    assert not _has_batchnorm(config_discriminator(cfg, (3, 32, 32)))  # its BatchNorm rule reaches D
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "patient" in " ".join(capsys.readouterr().out.split())  # and --help lists it


@pytest.mark.parametrize("loss, spectral_norm, batchnorm", [
    ("bce", False, True), ("hinge", False, True), ("wgan-gp", False, False), ("hinge", True, False),
])
def test_dcgan_d_keeps_batchnorm_only_where_loss_and_spectral_norm_allow(loss, spectral_norm, batchnorm):
    cfg = TrainConfig(model="dcgan", loss=loss, spectral_norm=spectral_norm, width_d=8)
    D = config_discriminator(cfg, (3, 32, 32))
    assert _has_batchnorm(D) == batchnorm
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(parametrize.is_parametrized(m, "weight") == spectral_norm for m in layers)


def test_spectral_norm_applied_once_by_the_factory():
    D = build_discriminator("seed", 32, 32, 3, 8, loss="hinge", spectral_norm=True)
    from gankit.regularize import apply_spectral_norm

    before = {k: v.clone() for k, v in D.state_dict().items()}
    assert apply_spectral_norm(D) is D  # the loop's old second call changes nothing
    assert D.state_dict().keys() == before.keys()


def test_a_new_model_is_one_registration(scratch_registries):
    calls = []

    def only_square(height: int, width: int) -> None:
        calls.append((height, width))
        if height != width:
            raise UsageError(f"--resolution: square only, got {height}x{width}")

    MODELS.add("square-seed", generator=SeedGenerator, discriminator=SeedDiscriminator, d_norm=False,
               check_size=only_square)
    cfg = TrainConfig.from_preset("", model="square-seed", resolution="32", width_g=8, width_d=8, latent=4)
    assert calls == [(32, 32)]
    assert isinstance(config_generator(cfg, (3, 32, 32)), SeedGenerator)
    assert isinstance(config_discriminator(cfg, (3, 32, 32)), SeedDiscriminator)
    with pytest.raises(UsageError, match="square only"):
        TrainConfig.from_preset("", model="square-seed", resolution="64x32")


def test_registering_a_name_twice_is_refused():
    reg = Registry("thing", "--thing")
    reg.add("a", int, size=1)
    reg.add("a", int, size=1)  # the same entry again (a module imported twice) is harmless
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("a", float)
    assert reg.names() == ["a"] and reg.get("a")["size"] == 1
    with pytest.raises(UsageError, match="--thing: unknown thing 'b'; choose from a"):
        reg.build("b")


def test_config_module_imports_no_part_and_no_torch():
    code = ("import sys, gankit.config\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('gankit.models', 'gankit.losses', "
            "'gankit.augment', 'gankit.metrics', 'gankit.train'))]\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# layer of each module (see docs/architecture.md): a module imports only from its layer or below
LAYERS = {
    "errors": 0, "registry": 0, "parsing": 0, "device": 0, "config": 0, "config_file": 0, "presets": 0,
    "cli_helpers": 0, "data": 1, "models": 1, "losses": 2, "augment": 2, "augment_ops": 2, "regularize": 2,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 and parts[0] == "gankit" else None


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if _layer(
    "gankit." + ".".join(p.relative_to(SRC).with_suffix("").parts)) is not None), ids=lambda p: p.name)
def test_lower_layers_never_import_upward(path):
    """config, errors and the parsers at the bottom; data and models; losses,
    augment and regularize: not even a lazy import reaches a higher layer
    (TYPE_CHECKING imports for annotations aside)."""
    if path.name == "cli.py":
        pytest.skip("command modules are CLIs, on top")
    own = _layer("gankit." + ".".join(path.relative_to(SRC).with_suffix("").parts))
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                layer = 0 if name == "gankit" else _layer(name)  # the package itself: __version__, lazy facade
                if name.startswith("gankit.") and layer is None:
                    layer = 9  # train, monitor, metrics, sample, the CLIs ...
                assert layer is None or layer <= own, f"{path.name} imports {name}"
