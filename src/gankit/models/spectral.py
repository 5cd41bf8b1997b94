"""Spectral normalisation (Miyato et al. 2018) of a network's weights.

It lives with the models because the discriminator factory applies it
(`gankit.models.config_discriminator`); `gankit.regularize` re-exports it
beside the other tools that keep D from winning too easily.
"""
from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from gankit.errors import UsageError

SPECTRAL_NORM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
                        nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def apply_spectral_norm(module: nn.Module, n_power_iterations: int = 1) -> nn.Module:
    """Spectral-normalise the weight of every Linear and (transposed) conv
    layer of ``module`` in place, and return it.

    Uses the ``torch.nn.utils.parametrizations`` API: the raw weight lives at
    ``<layer>.parametrizations.weight.original`` next to the power-iteration
    vectors ``_u``/``_v``, all plain tensors in the state_dict, so checkpoints
    load with ``weights_only=True`` into a model wrapped the same way, and
    ``copy.deepcopy`` works.  Each training-mode forward pass runs
    ``n_power_iterations`` steps of power iteration; eval mode reuses the
    last estimate.  Layers already normalised are left alone.
    """
    found = 0
    for layer in module.modules():
        if isinstance(layer, SPECTRAL_NORM_LAYERS) and getattr(layer, "weight", None) is not None:
            found += 1
            if not parametrize.is_parametrized(layer, "weight"):
                spectral_norm(layer, n_power_iterations=n_power_iterations)
    if not found:
        raise UsageError("--spectral-norm: the discriminator has no Linear or convolution layer to normalise")
    return module
