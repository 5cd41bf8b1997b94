"""`gankit project`: latents found for images the generator made itself (known z) and for real ones."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.metrics import dataset_encoder
from gankit.models import build_generator
from gankit.models.generator_file import save_generator_file
from gankit.project import project
from gankit.sample import load_generator

from conftest import blobs

ARCH = {"model": "dcgan", "height": 16, "width": 16, "channels": 3, "latent": 16, "width_g": 8, "coords": False,
        "attention": 0}
# A uint8 PNG cannot hold a generated image exactly: rounding alone leaves an RMSE of
# 1/255/sqrt(12) = 0.0011 (in [0, 1] units).  The best of 64 random latents is ~0.2
# away; 0.01 (2.5 grey levels) means the projection found the image, not a look-alike.
THRESHOLD = 0.01


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A generator file naming a real dataset (for the perceptual loss's encoder)."""
    from gankit.data import write_dataset

    root = tmp_path_factory.mktemp("project")
    ds = write_dataset(root / "data", blobs(256), source="test-blobs")
    torch.manual_seed(0)
    G = build_generator(**ARCH).requires_grad_(False)
    for m in G.modules():  # BatchNorm statistics of its own activations, as after training
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    G.train()(torch.randn(256, ARCH["latent"]))
    last = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    last.weight.mul_(10)  # images that use the range: std ~0.05 -> ~0.5
    path = root / "g.safetensors"
    save_generator_file(G.eval(), ARCH, path, source={"data": str(ds.path)})
    return root, path, ds


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    # the encoder's recipe trains 150 steps; 40 give features good enough to
    # steer a projection, in a third of the time (the recipe is cached per value)
    monkeypatch.setitem(dataset_encoder.RECIPE, "steps", 40)
    # 16x16 convolutions are too small to share: two threads on a busy 2-core machine took 4.5x longer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_projects_its_own_images_back(setup, tmp_path, capsys):
    root, gfile, _ = setup
    assert main(["sample", str(gfile), "--num", "2", "--seed", "5", "--out", str(tmp_path / "made")]) == 0
    images = [str(tmp_path / "made" / f"{i:05d}.png") for i in range(2)]
    out = tmp_path / "proj"
    assert main(["project", str(gfile), *images, "--steps", "150", "--lr", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "distances.json").read_text())
    assert sorted(record) == ["00000", "00001"]
    z_true = torch.randn(2, ARCH["latent"], generator=torch.Generator().manual_seed(5))  # what sample drew
    for i, stem in enumerate(record):
        assert record[stem]["rmse"] <= THRESHOLD, record
        assert f"{stem}: pixel RMSE {record[stem]['rmse']:.4f}" in printed
        z = np.load(out / f"{stem}.npy")
        assert z.shape == (ARCH["latent"],) and z.dtype == np.float32
        # the latent found draws the image: re-render it and compare with the PNG
        again = load_generator(gfile)(torch.from_numpy(z)[None])[0]
        target = torch.from_numpy(np.asarray(Image.open(images[i]), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1
        assert float((again - target).square().mean().sqrt() / 2) <= THRESHOLD
        # the generator is not injective everywhere, so z itself is only reported
        with capsys.disabled():
            print(f"\n{stem}: RMSE {record[stem]['rmse']:.4f}, |z - z_true| = "
                  f"{float((torch.from_numpy(z) - z_true[i]).norm()):.3f} (|z_true| {float(z_true[i].norm()):.2f})")
        with Image.open(out / f"{stem}-projection.png") as pair:
            assert pair.width > pair.height  # target | projection
    # --resume-latent from that folder: with a step too small to move, the same images come back
    again_out = tmp_path / "again"
    assert main(["project", str(gfile), *images, "--steps", "1", "--lr", "1e-9", "--resume-latent", str(out),
                 "--out", str(again_out)]) == 0
    resumed = json.loads((again_out / "distances.json").read_text())
    for stem in record:
        assert abs(resumed[stem]["rmse"] - record[stem]["rmse"]) < 1e-4
    assert main(["project", str(gfile), images[0], "--resume-latent", str(tmp_path / "none.npy")]) == 2
    assert "--resume-latent" in capsys.readouterr().err


def test_held_out_real_images(setup, tmp_path, capsys):
    """Real images the generator never saw: the error is reported, and the search improves on its start."""
    root, gfile, ds = setup
    G = load_generator(gfile)
    real = torch.from_numpy(blobs(2, seed=99)).permute(0, 3, 1, 2).float() / 127.5 - 1
    extractor = dataset_encoder.load_or_train(ds, log=False)
    start = project(G, real, extractor, steps=0)
    found = project(G, real, extractor, steps=50, lr=0.1)
    # the search lowers what it minimises (pixel MSE in [-1, 1] units + feature distance) on every
    # image; an untrained generator cannot draw these, so pixels alone may stand still on one of them
    objective = [[(2 * r) ** 2 + f for r, f in zip(p.rmse, p.features)] for p in (start, found)]
    assert all(f < s for s, f in zip(*objective)), (start, found)
    assert np.mean(found.rmse) < np.mean(start.rmse), (start.rmse, found.rmse)
    with capsys.disabled():
        print(f"\nheld-out real images: RMSE {np.round(start.rmse, 3)} at the start, {np.round(found.rmse, 3)} "
              "after 50 steps (an untrained generator cannot draw them)")
    # bad inputs exit 2 with a message
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["project", str(gfile), str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["project", str(gfile), str(tmp_path / "missing.png")]) == 2
