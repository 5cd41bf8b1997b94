"""--d-presence: D's detectors of small objects, max-pooled over the frame (docs/stability.md)."""
import subprocess
import sys

import pytest
import torch

from gankit.errors import UsageError
from gankit.models import build_discriminator


def found(D: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the detectors report: their largest response over the frame, (B, presence)."""
    return D.detectors(D.net[: D.first_at](x)).amax(dim=(2, 3))


def test_presence_reports_the_strongest_match_wherever_it_is():
    torch.manual_seed(0)
    D = build_discriminator("dcgan", 32, 32, 3, 8, head=16, presence=4).eval()
    blank = torch.full((1, 3, 32, 32), -1.0)
    a, b = blank.clone(), blank.clone()
    a[0, 0, 10, 12] = 1.0
    b[0, 0, 20, 26] = 1.0  # the same dot moved by an even number of pixels (the first level has stride 2)
    assert torch.equal(found(D, a), found(D, b))
    assert not torch.equal(found(D, a), found(D, blank))
    # and the logit reads it: a dot's gradient reaches D's input through the detectors
    a.requires_grad_(True)
    (D.detected(found(D, a))).sum().backward()
    assert a.grad[0, 0, 10, 12] != 0
    assert D(a).shape == (1,)


def test_presence_with_classes_keeps_the_projection():
    torch.manual_seed(0)
    D = build_discriminator("dcgan", 32, 32, 3, 8, head=16, num_classes=3, presence=2)
    x = torch.randn(4, 3, 32, 32)
    y0, y1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    with torch.no_grad():
        D.projection.embed.weight[1] += 1.0
    assert D(x, y0).shape == (4,)
    assert not torch.allclose(D(x, y0), D(x, y1))  # the class term is still added


def test_presence_default_builds_the_plain_discriminator():
    torch.manual_seed(0)
    plain = build_discriminator("dcgan", 32, 32, 3, 8, head=16)
    torch.manual_seed(0)
    zero = build_discriminator("dcgan", 32, 32, 3, 8, head=16, presence=0)
    assert not hasattr(zero, "detectors")
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(plain(x), zero(x))


def test_models_without_detectors_refuse_them():
    with pytest.raises(UsageError, match="--d-presence"):
        build_discriminator("seed", 32, 32, 3, 8, presence=2)


def test_a_negative_count_exits_2_naming_the_flag(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "gankit", "train", "--data", str(tmp_path), "--d-presence", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--d-presence" in proc.stderr
