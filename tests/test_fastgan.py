"""The FastGAN-style model: shapes at every size, the skip-layer gates, and
the discriminator's reconstruction decoders."""
import pytest
import torch

from gankit.errors import UsageError
from gankit.models.common import plan_resolution
from gankit.models.fastgan import FastGANDiscriminator, FastGANGenerator, excitation_pairs


@pytest.mark.parametrize("image_layer", ["transposed", "upsample"])
@pytest.mark.parametrize("size", [(32, 32), (64, 64), (128, 128), (256, 256), (160, 128)])
def test_shapes_at_every_size(size, image_layer):
    H, W = size
    torch.manual_seed(0)
    G = FastGANGenerator(H, W, 3, 16, base=4, image_layer=image_layer)
    D = FastGANDiscriminator(H, W, 3, base=4, decoder_width=4)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, H, W)
    assert x.min() >= -1 and x.max() <= 1
    logits, rec = D(x, reconstruct=True)
    assert logits.shape == (3,) and rec.dim() == 0 and rec > 0
    assert torch.equal(D(x), logits)  # the same logits with or without reconstruction
    assert len(G.gates) == len(excitation_pairs(plan_resolution(H, W).doublings)) >= 1


def test_too_small_for_the_decoders_names_the_flag():
    with pytest.raises(UsageError, match="fastgan"):
        FastGANDiscriminator(16, 16, 3)


def test_the_gate_carries_the_coarse_map_to_the_fine_one():
    """Changing only the 8x8 map's contribution to the gate changes the output;
    a gate forced open (1) gives another image than the learned one."""
    torch.manual_seed(0)
    G = FastGANGenerator(64, 64, 3, 16, base=4).eval()
    z = torch.randn(2, 16)
    with torch.no_grad():
        gated = G(z)
        last = G.gates[0].net[-1]
        G.gates[0].net[-1] = torch.nn.Identity()  # remove the sigmoid: another gate value
        changed = G(z)
        G.gates[0].net[-1] = last
        assert not torch.allclose(gated, changed)
        assert torch.equal(G(z), gated)


def test_the_upsample_image_layer_draws_no_checkerboard():
    """From a feature map that is the same everywhere, the transposed conv draws a
    2x2-periodic pattern (each pixel of a cell has its own weights); nearest
    doubling and a 3x3 conv draw one flat colour away from the border."""
    for layer, periodic in (("transposed", True), ("upsample", False)):
        torch.manual_seed(0)
        G = FastGANGenerator(32, 32, 3, 16, base=4, image_layer=layer)
        conv = [m for m in G.to_image.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][0]
        with torch.no_grad():
            inner = G.to_image(torch.full((1, conv.in_channels, 16, 16), 0.5))[0, :, 2:-2, 2:-2]  # (3, 28, 28)
        spread = (inner - inner.mean(dim=(1, 2), keepdim=True)).abs().amax().item()
        assert (spread > 1e-3) == periodic, (layer, spread)
        assert torch.allclose(inner[:, :-2], inner[:, 2:], atol=1e-6)  # rows two apart agree: period 2 at most


def test_decoders_learn_to_reconstruct_a_fixed_batch():
    torch.manual_seed(0)
    D = FastGANDiscriminator(32, 32, 3, base=8, decoder_width=8)
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    opt = torch.optim.Adam(D.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        torch.manual_seed(1)  # the same quadrant every time: a fixed target
        _, rec = D(real, reconstruct=True)
        opt.zero_grad()
        rec.backward()
        opt.step()
        losses.append(rec.item())
    assert losses[-1] < 0.6 * losses[0]


def test_the_quadrant_follows_the_global_generator():
    D = FastGANDiscriminator(32, 32, 3, base=4, decoder_width=4)
    real = torch.rand(2, 3, 32, 32)
    torch.manual_seed(5)
    a = D(real, reconstruct=True)[1]
    torch.manual_seed(5)
    b = D(real, reconstruct=True)[1]
    assert torch.equal(a, b)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        seen.add(D(real, reconstruct=True)[1].item())
    assert len(seen) > 1  # several quadrants are drawn


# ------------------------------------------------------------- in training
TINY = dict(model="fastgan", width_g=4, width_d=4, latent=8, batch=8, log_every=8, num_samples=4,
            tensorboard=False, health=False, checkpoint_every=100)


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    from gankit.data import write_dataset

    from conftest import blobs

    return write_dataset(tmp_path_factory.mktemp("fg") / "ds", blobs(64, size=32), source="test-blobs")


def _train(data, out, name, **kw):
    import gankit
    from gankit.config import TrainConfig

    return gankit.train(TrainConfig.from_preset("", data=str(data.path), out=str(out), name=name, **{**TINY, **kw}))


def _state(run):
    from gankit.train import checkpoint as ckpt

    return torch.load(ckpt.latest_checkpoint(run / "checkpoints"), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("loss,extra", [("hinge", {"diffaugment": "color,translation"}), ("bce", {"ada": True}),
                                        ("wgan-gp", {"n_critic": 2}), ("lsgan", {"r1": 1.0})])
def test_trains_with_each_loss_and_its_decoders_learn(data32, tmp_path, loss, extra):
    run = _train(data32, tmp_path, loss, loss=loss, epochs=4, **extra)  # 8 iterations x 4
    first = torch.load(run / "checkpoints" / "ckpt-000000000.pt", map_location="cpu", weights_only=True)
    last = _state(run)
    assert last["counters"]["d_steps"] == 32
    moved = [k for k in last["D"] if k.startswith("decode_") and k.endswith("weight")
             and not torch.equal(first["D"][k], last["D"][k])]
    assert moved, "the reconstruction loss never reached the decoders"
    batchnorm = any(k.startswith("downs.") and "running_mean" in k for k in last["D"])
    assert batchnorm == (loss != "wgan-gp")  # a gradient penalty drops the BatchNorm of D's scoring path


def test_resume_is_bit_identical(data32, tmp_path):
    from gankit.cli import main

    straight = _train(data32, tmp_path, "straight", epochs=2)
    split = _train(data32, tmp_path, "split", epochs=1)
    assert main(["train", "--resume", str(split), "--epochs", "2"]) == 0
    a, b = _state(straight), _state(split)
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_options_it_lacks_are_named(data32, tmp_path):
    for flag, kw in (("--d-head", {"d_head": 16}), ("--coord-conv", {"coord_conv": True}), ("--mbstd", {"mbstd": 2})):
        with pytest.raises(UsageError, match=flag):
            _train(data32, tmp_path, flag.strip("-"), epochs=1, **kw)
    with pytest.raises(UsageError, match="conditional"):
        from gankit.models import build_generator

        build_generator("fastgan", 32, 32, 3, 8, 4, num_classes=3)


def test_the_image_layer_travels_with_the_run_and_the_exported_file(data32, tmp_path):
    """`--image-layer upsample` is part of the architecture: resume and export rebuild it,
    a file of the default layer keeps the header older gankit versions read, and a model
    without the option names the flag."""
    import gankit
    from gankit.cli import main
    from gankit.models.generator_file import read_header

    runs = {layer: _train(data32, tmp_path, layer, epochs=1, image_layer=layer) for layer in ("upsample", "transposed")}
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    for layer, run in runs.items():
        out = tmp_path / f"{layer}.safetensors"
        assert main(["export", str(run), "--format", "safetensors", "--out", str(out)]) == 0
        arch = read_header(out)["architecture"]
        assert arch.get("image_layer", "transposed") == layer and ("image_layer" in arch) == (layer != "transposed")
        from_file, from_run = gankit.load_generator(out), gankit.load_generator(run)
        assert isinstance(from_file.to_image, torch.nn.Sequential) == (layer == "upsample")
        assert torch.equal(from_file(z), from_run(z))
    assert main(["train", "--resume", str(runs["upsample"]), "--epochs", "2"]) == 0
    assert isinstance(gankit.load_generator(runs["upsample"]).to_image, torch.nn.Sequential)
    with pytest.raises(UsageError, match="--image-layer"):
        _train(data32, tmp_path, "dcgan", epochs=1, model="dcgan", image_layer="upsample")
