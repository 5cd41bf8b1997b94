"""--aux-class (AC-GAN's auxiliary classifier on D's features): shapes, init, errors, and that it learns."""
from __future__ import annotations

import pytest
import torch

from gankit.errors import UsageError
from gankit.models import build_discriminator


@pytest.mark.parametrize("model", ["dcgan", "seed"])
def test_classifier_is_added_last_and_reads_the_features(model):
    torch.manual_seed(0)
    plain = build_discriminator(model, 16, 16, 3, 8, mbstd=2, num_classes=3)
    torch.manual_seed(0)
    aux = build_discriminator(model, 16, 16, 3, 8, mbstd=2, num_classes=3, classifier=True)
    shared = plain.state_dict()
    for name, value in shared.items():  # the classifier changes no other initial weight
        assert torch.equal(aux.state_dict()[name], value), name
    assert set(aux.state_dict()) - set(shared) == {"classifier.linear.weight", "classifier.linear.bias"}
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    logits, classes = aux(x, y, classify=True)
    assert logits.shape == (4,) and classes.shape == (4, 3)
    assert torch.allclose(logits, aux(x, y))  # the adversarial logit is the same with or without classify
    with pytest.raises(TypeError, match="no auxiliary classifier"):
        plain(x, y, classify=True)


def test_classifier_needs_classes():
    with pytest.raises(UsageError, match="--aux-class"):
        build_discriminator("dcgan", 16, 16, 3, 8, classifier=True)


def test_classifier_learns_a_class_told_only_by_a_small_object():
    """Two classes of noise frames that differ only by a 2x2 bright dot somewhere: the
    classifier's loss must fall well below chance (log 2) in a few hundred steps."""
    torch.manual_seed(0)
    D = build_discriminator("dcgan", 16, 16, 3, 8, num_classes=2, classifier=True)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(1)

    def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.rand(n, 3, 16, 16, generator=gen) * 0.4 - 1
        y = torch.randint(0, 2, (n,), generator=gen)
        for i in torch.nonzero(y).flatten().tolist():
            r, c = torch.randint(0, 15, (2,), generator=gen).tolist()
            x[i, :, r:r + 2, c:c + 2] = 1.0
        return x, y

    losses = []
    for _ in range(300):
        x, y = batch()
        loss = torch.nn.functional.cross_entropy(D(x, y, classify=True)[1], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[:3]) / 3 > 0.6  # chance: log 2 = 0.69
    assert sum(losses[-50:]) / 50 < 0.3
