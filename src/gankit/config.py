"""Training configuration: one dataclass, named presets, and the CLI flags
generated from it, so the Python API and `gankit train` share every default.

Each field's ``help`` metadata is the one line shown by ``gankit train --help``.
Values are layered: the dataclass defaults, then a preset (``--preset``),
then a config file (``--config FILE.yaml``, the keys of a run's
``config.yaml``), then the flags typed on the command line.  The budget is
one rule (`BUDGET_RULE`): the first of epochs / kimg / minutes reached stops
the run, and a budget flag on the command line replaces the lower layers'
budget of the other kinds unless those are given too.  The resolved config is
written to ``runs/NAME/config.yaml``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import textwrap
from dataclasses import dataclass, field, fields
from typing import Any

from gankit.device import DEVICE_HELP, check_device_name
from gankit.errors import UsageError
from gankit.parsing import parse_list, parse_size

# --model, --loss, --extractor, --diffaugment and --ada-ops take the names these
# registries hold; the parts register themselves beside their code.
from gankit.registry import ADA_OPS, DIFFAUGMENT_OPS, EXTRACTORS, LOSSES, MODELS

# --resolution: the models need 8 pixels a side; beyond 1024 a run would not fit in memory
RESOLUTION_LIMITS = (8, 1024)

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
# --image-layer: how G draws the image from its last feature map (models/fastgan.py)
IMAGE_LAYERS = ("transposed", "upsample")
BUDGET = ("epochs", "kimg", "minutes")
DEFAULT_EPOCHS = 10  # the budget when none of BUDGET is set
BUDGET_RULE = ("the first of --epochs, --kimg and --minutes reached stops the run (none given: "
               f"{DEFAULT_EPOCHS} epochs); a budget flag on the command line replaces the preset's or "
               "config file's budget of the other kinds unless those are given too")
# keys a run's config.yaml holds besides the fields (written by train.rundir.write_config)
CONFIG_FILE_EXTRAS = ("image_shape",)


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- data and run ---
    data: str = _f("", "dataset folder written by `gankit data ...`")
    out: str = _f("runs", "parent folder of run directories")
    name: str = _f("", "run directory name (default: numbered NNNNN-preset)")
    preset: str = _f("", "preset the values came from (informational)")
    resolution: str = _f("", "train at HxW or S (default: the dataset's size); images are resized on load")
    # None until the trainer sees the data; the saved config holds the decision (docs/conditional.md)
    conditional: bool | None = _f(None, "class-conditional G and D on the dataset's labels (default: on when the "
                                  "dataset has labels of 2+ classes)")
    class_balance: bool = _f(False, "real batches drawn uniformly over classes, generated classes too (default: "
                             "both with the data's class frequencies)")
    # --- models ---
    model: str = _f("dcgan", "architecture: seed (upsample+conv G) or dcgan (transposed-conv G)", choices=MODELS)
    latent: int = _f(100, "size of the noise vector z")
    width_g: int = _f(64, "generator base channel count")
    width_d: int = _f(64, "discriminator base channel count")
    attention: int = _f(0, "self-attention (SAGAN) in G on the feature map this many pixels wide, e.g. 16 (0: none)")
    d_head: int = _f(0, "hidden units of an MLP on D's last features (0: one linear layer, as in DCGAN)")
    coord_conv: bool = _f(False, "CoordConv: every convolution also sees each pixel's row and column (G and D)")
    image_layer: str = _f("transposed", "how G's last layer draws the image (fastgan): transposed (a 4x4 "
                          "transposed conv) or upsample (nearest doubling, then a 3x3 conv: no checkerboard)",
                          choices=IMAGE_LAYERS)
    # --- loss and optimisation ---
    loss: str = _f("bce", "adversarial loss (bce: non-saturating)", choices=LOSSES)
    n_critic: int = _f(0, "D steps per G step (0: 1 for bce/hinge/lsgan, 5 for wgan/wgan-gp)")
    batch: int = _f(64, "global batch size (split across ranks under torchrun)")
    lr_g: float = _f(2e-4, "generator learning rate (Adam)")
    lr_d: float = _f(2e-4, "discriminator learning rate (Adam)")
    beta1: float = _f(0.5, "Adam beta1")
    beta2: float = _f(0.999, "Adam beta2")
    lr_steps: str = _f("", "learning-rate steps KIMG:FACTOR,...: from KIMG thousand images on, both rates are FACTOR "
                       "times those the run started with, e.g. 80:0.5,130:0.25 (docs/stability.md)")
    ema_kimg: float = _f(1.0, "half-life of the generator EMA in thousands of images (0 disables)")
    no_ema: bool = _f(False, "sample from the raw generator instead of its EMA")
    # --- stability ---
    mirror: bool = _f(False, "show each real image flipped left-right half of the time (x-flips, for pictures "
                      "with no handedness: a small set counts double)")
    diffaugment: str = _f("", "differentiable augmentation ops, comma-separated: color,translation,cutout "
                                  "(translation_x: horizontal shifts only)")
    ada: bool = _f(False, "adaptive augmentation probability driven by D's overfitting signal")
    ada_target: float = _f(0.6, "ADA target for r_t = E[sign(D(x_real))]")
    ada_kimg: float = _f(100.0, "images (thousands) for ADA's p to move from 0 to 1")
    ada_ops: str = _f("flip,translation,color", "operations ADA applies with probability p "
                                                "(flip,translation,color,cutout)")
    r1: float = _f(0.0, "R1 gradient penalty weight gamma on real images (0 disables)")
    r1_every: int = _f(16, "lazy regularisation: apply R1 every k D steps")
    r1_from_kimg: float = _f(0.0, "apply R1 only from this many thousand images on (0: from the start), so an "
                             "early phase can learn fast and a long run still holds D back (docs/remedies.md)")
    r1_follows_lr: bool = _f(False, "divide the R1 weight by the --lr-steps factor in force, so rate x weight "
                             "stays what it was as the rates fall (docs/stability.md)")
    spectral_norm: bool = _f(False, "spectral normalisation on every D weight")
    mbstd: int = _f(0, "minibatch standard deviation in D over groups of this many samples (ProGAN; 0 disables)")
    label_smoothing: float = _f(0.0, "one-sided label smoothing: real target = 1 - this (bce only)")
    instance_noise: float = _f(0.0, "std of Gaussian noise added to D inputs, annealed to 0 over training")
    # --- budget ---
    epochs: int = _f(0, "stop after this many passes over the dataset (0: no epoch limit)")
    kimg: float = _f(0.0, "stop after this many thousand images shown (0: no image limit)")
    minutes: float = _f(0.0, "stop after this many minutes of training (0: no time limit)")
    # --- logging, samples, checkpoints ---
    log_every: int = _f(50, "console line and metrics.jsonl record every N iterations")
    snapshot_kimg: float = _f(0.0, "also save a sample grid every K thousand images (0: per epoch only)")
    checkpoint_every: int = _f(1, "write a checkpoint every N epochs")
    keep: int = _f(3, "number of checkpoints kept")
    num_samples: int = _f(16, "fixed latents in the per-epoch sample grid")
    seed: int = _f(0, "random seed")
    # --- monitoring ---
    health: bool = _f(True, "watch for failure modes and write health.jsonl")
    auto_remedy: bool = _f(False, "apply the health monitor's advice automatically")
    tensorboard: bool = _f(True, "write TensorBoard events to runs/NAME/tb")
    # --- evaluation during training ---
    eval_every_kimg: float = _f(0.0, "compute --eval-metrics every K thousand images (0 disables)")
    eval_metrics: str = _f("fid,kid", "metrics computed during training")
    eval_num: int = _f(1000, "generated images per evaluation during training")
    extractor: str = _f("dataset", "feature extractor for evaluation", choices=EXTRACTORS)
    # --- hardware ---
    device: str = _f("auto", DEVICE_HELP)
    precision: str = _f("fp32", "fp32, bf16 (autocast, CPU or CUDA), fp16 (CUDA, gradient scaler), or auto "
                        "(bf16 where the hardware runs it natively, else fp16 on CUDA / fp32 on CPU)",
                        choices=PRECISIONS)
    channels_last: bool = _f(False, "channels_last memory format for the models")
    compile: bool = _f(False, "torch.compile the models")
    sync_bn: bool = _f(False, "synchronise BatchNorm statistics across ranks (torchrun)")
    threads: int = _f(0, "CPU threads for torch (0: leave torch's default)")

    # ---------------------------------------------------------------- helpers
    @classmethod
    def from_preset(cls, preset: str = "", **overrides: Any) -> TrainConfig:
        """The preset's values with ``overrides`` on top, by the budget rule (see BUDGET_RULE)."""
        return resolve(preset, overrides=overrides)[0]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def critic_steps(self) -> int:
        """D steps per G step: --n-critic, or the loss's own default when it is 0."""
        if self.n_critic > 0:
            return self.n_critic
        return int(LOSSES.get(self.loss).builder.default_critic_steps)

    @property
    def diffaugment_ops(self) -> list[str]:
        return parse_list(self.diffaugment, "--diffaugment", list(DIFFAUGMENT_OPS), "operation")

    @property
    def ada_op_list(self) -> list[str]:
        return parse_list(self.ada_ops, "--ada-ops", list(ADA_OPS), "operation")

    @property
    def lr_step_list(self) -> list[tuple[float, float]]:
        """--lr-steps as [(kimg, factor), ...], kimg strictly increasing; raises a UsageError naming the flag."""
        steps: list[tuple[float, float]] = []
        for item in filter(None, (part.strip() for part in self.lr_steps.split(","))):
            kimg_text, sep, factor_text = item.partition(":")
            try:
                kimg, factor = float(kimg_text), float(factor_text)
            except ValueError:
                kimg = factor = math.nan
            if not sep or not (kimg >= 0 and factor > 0 and math.isfinite(kimg) and math.isfinite(factor)):
                raise UsageError(f"--lr-steps: {item!r} is not KIMG:FACTOR with KIMG >= 0 and FACTOR > 0 "
                                 "(e.g. 80:0.5,130:0.25)")
            if steps and kimg <= steps[-1][0]:
                raise UsageError(f"--lr-steps: the kimg must increase from step to step, got {kimg:g} after "
                                 f"{steps[-1][0]:g}")
            steps.append((kimg, factor))
        return steps

    def lr_factor(self, kimg: float) -> float:
        """The factor --lr-steps sets after ``kimg`` thousand images (1 before its first step)."""
        factor = 1.0
        for start, value in self.lr_step_list:
            if kimg >= start:
                factor = value
        return factor

    @property
    def image_size(self) -> tuple[int, int] | None:
        """--resolution as (height, width); None when it is not set (the dataset's size)."""
        return parse_resolution(self.resolution) if self.resolution else None

    def validate(self) -> None:
        """Check values and combinations; raise UsageError naming the flag."""

        def bad(flag: str, why: str) -> None:
            raise UsageError(f"--{flag.replace('_', '-')}: {why}")

        for name in ("latent", "width_g", "width_d", "batch", "log_every", "keep", "num_samples", "r1_every",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                bad(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                bad(name, f"must be > 0, got {getattr(self, name)}")
        for name in ("epochs", "kimg", "minutes", "ema_kimg", "r1", "r1_from_kimg", "instance_noise", "snapshot_kimg",
                     "eval_every_kimg", "n_critic", "threads"):
            if getattr(self, name) < 0:
                bad(name, f"must be >= 0, got {getattr(self, name)}")
        if self.attention < 0:
            bad("attention", f"must be 0 (none) or a feature-map width such as 16, got {self.attention}")
        if self.d_head < 0:
            bad("d_head", f"must be 0 (a linear last layer) or a positive number of hidden units, got {self.d_head}")
        if self.mbstd < 0 or self.mbstd == 1:
            bad("mbstd", f"must be 0 (off) or a group size >= 2, got {self.mbstd}")
        if not 0.0 <= self.label_smoothing < 0.5:
            bad("label_smoothing", f"must be in [0, 0.5), got {self.label_smoothing}")
        if not 0.0 < self.ada_target < 1.0:
            bad("ada_target", f"must be in (0, 1), got {self.ada_target}")
        if self.ada_kimg <= 0:
            bad("ada_kimg", "must be > 0")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            bad("beta1", "betas must be in [0, 1)")
        check_device_name(self.device)
        for name, allowed in (("model", MODELS), ("loss", LOSSES), ("precision", PRECISIONS),
                              ("extractor", EXTRACTORS), ("image_layer", IMAGE_LAYERS)):
            if getattr(self, name) not in allowed:
                bad(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        _ = self.diffaugment_ops, self.ada_op_list, self.lr_step_list  # each raises a UsageError naming its flag
        loss = LOSSES.get(self.loss).builder  # what the loss declares it takes and does
        if self.label_smoothing and "label_smoothing" not in loss.options:
            takers = [n for n in LOSSES if "label_smoothing" in LOSSES.get(n).builder.options]
            bad("label_smoothing", f"applies to the {', '.join(takers)} loss only, not {self.loss}")
        if loss.clips_weights and self.spectral_norm:
            bad("spectral_norm", f"cannot be combined with --loss {self.loss} (weight clipping already constrains "
                                 "D); use wgan-gp or hinge")
        if loss.clips_weights and self.r1:
            bad("r1", f"cannot be combined with --loss {self.loss} (weight clipping); use wgan-gp")
        if self.conditional not in (None, True, False):
            bad("conditional", f"must be true or false, got {self.conditional!r}")
        if self.image_size:
            MODELS.get(self.model)["check_size"](*self.image_size)


def parse_resolution(text: str) -> tuple[int, int]:
    """--resolution: S or HxW within RESOLUTION_LIMITS, as (height, width)."""
    return parse_size(text, "--resolution", *RESOLUTION_LIMITS)


def resolve(preset: str = "", file_values: dict[str, Any] | None = None,
            overrides: dict[str, Any] | None = None) -> tuple[TrainConfig, list[str]]:
    """Defaults, then the preset, then a config file's values, then ``overrides``
    (the flags typed), by the budget rule; returns the config and one line per
    budget value the rule dropped (``--dry-run`` prints them)."""
    from gankit.presets import PRESETS

    values: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise UsageError(f"--preset: unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}",
                             hint="`gankit presets` lists them with what each is for")
        values.update(PRESETS[preset])
        values["preset"] = preset
    values.update(file_values or {})
    overrides = dict(overrides or {})
    where = (f"preset {preset}" if preset and not file_values else
             "config file" if not preset else "preset or config file")
    notes = apply_budget_rule(values, overrides, where)
    values.update(overrides)
    unknown = set(values) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise UsageError(f"unknown config keys: {', '.join(sorted(unknown))}")
    cfg = TrainConfig(**values)
    cfg.validate()
    return cfg, notes


def apply_budget_rule(values: dict[str, Any], typed: dict[str, Any], where: str = "saved config") -> list[str]:
    """If ``typed`` (the flags on the command line) sets any budget kind, zero
    the other kinds in ``values`` unless typed too; returns a line per value dropped.
    Resuming a run applies it to the run's saved config the same way."""
    given = [k for k in BUDGET if typed.get(k) is not None]
    notes = []
    for key in BUDGET if given else ():
        if typed.get(key) is None and values.get(key):
            notes.append(f"{_flag(key)} {values[key]:g} from the {where} dropped: {_flag(given[0])} was given "
                         f"(add {_flag(key)} {values[key]:g} to keep it)")
            values[key] = 0
    return notes


def budget_text(cfg: TrainConfig) -> str:
    """The budget in words, e.g. 'the first of 400 kimg and 8 minutes'."""
    parts = []
    if cfg.epochs or not (cfg.kimg or cfg.minutes):
        parts.append(f"{cfg.epochs or DEFAULT_EPOCHS} epochs")
    if cfg.kimg:
        parts.append(f"{cfg.kimg:g} kimg")
    if cfg.minutes:
        parts.append(f"{cfg.minutes:g} minutes")
    return parts[0] if len(parts) == 1 else "the first of " + ", ".join(parts[:-1]) + " and " + parts[-1]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def flag_help(f: Any, default: Any) -> str:
    """A flag's help line: what it does, its choices, and its default stated once."""
    text = f.metadata["help"]
    choices = f.metadata.get("choices")
    if choices:
        text += f"; one of: {', '.join(choices)}"
    if "(default:" not in text:
        text += f" (default: {default!r})" if default != "" else " (default: none)"
    return text


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, default None so presets can fill in.

    Booleans take both forms: ``--ada`` / ``--no-ada``.
    """
    defaults = TrainConfig()
    group = parser.add_argument_group("training options (override the preset and --config)",
                                      textwrap.fill(f"Budget: {BUDGET_RULE}.", 78))
    for f in fields(TrainConfig):
        if f.name == "preset":
            continue
        flag = _flag(f.name)
        help_text = flag_help(f, getattr(defaults, f.name))
        if f.type in ("bool", bool, "bool | None"):
            if f.name == "no_ema":
                group.add_argument(flag, dest=f.name, action="store_const", const=True, default=None,
                                   help=f.metadata["help"])
                continue
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type), str)
        choices = f.metadata.get("choices")
        group.add_argument(flag, dest=f.name, type=kind, default=None, metavar=f.name.upper(), help=help_text,
                           choices=list(choices) if choices else None)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig values typed on the command line (flags left out are None)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig)
            if f.name != "preset" and getattr(args, f.name, None) is not None}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return resolve_args(args)[0]


def resolve_args(args: argparse.Namespace) -> tuple[TrainConfig, list[str]]:
    from gankit.config_file import load_config_file

    file_values = load_config_file(args.config) if getattr(args, "config", None) else None
    return resolve(getattr(args, "preset", "") or "", file_values, flag_overrides(args))
