"""The FID Inception port, checked without its real weights and offline.

The reference numbers below were produced once, outside this repository, by
pytorch-fid 0.3.0's own ``InceptionV3`` (its ``fid_inception_v3`` building
torchvision 0.29.1's ``Inception3`` and patching in the FID blocks, with
``load_state_dict_from_url`` handed the state dict made by `seeded_state`), and
cross-checked against torch-fidelity 0.4.0's ``FeatureExtractorInceptionV3``
fed the same file; docs/evaluation.md says how.  Here the port must load the
same seeded state strictly and reproduce those features.
"""
from __future__ import annotations

import hashlib
import http.server
import threading
import zlib

import numpy as np
import pytest
import torch

from gankit.errors import UsageError
from gankit.metrics import inception as inc

# sha256 of the sorted "key shape" lines of the reference's state dict
# (torchvision Inception3, num_classes=1008, aux_logits=False, FID blocks)
REFERENCE_KEYS_SHA256 = "760681d791cb624e1bf7a2e802a68933dd17aa5e3109fcf498d9dfa521bc10d7"
REFERENCE_NUM_KEYS = 566  # including the BatchNorm num_batches_tracked buffers
REFERENCE_NUM_PARAMS = 23_885_392  # weights, biases and running statistics
# pytorch-fid's 2048-d features of `probe_images()` under `seeded_state()`
REFERENCE_FIRST8 = [5.1392741203308105, 0.05297613516449928, 0.0, 0.43204420804977417, 2.30747127532959,
                    0.6794707179069519, 2.4128315448760986, 0.0]  # image 0, features 0..7
REFERENCE_EVERY256 = [5.023845195770264, 0.23025742173194885, 0.031780313700437546, 0.8375504612922668,
                      0.5180716514587402, 0.0, 0.7244844436645508, 0.8779006004333496]  # image 1, features 0, 256, ...
REFERENCE_SUMS = [1445.8385313409617, 1420.7372545891835]
REFERENCE_NORMS = [54.81043142017975, 53.82025618970042]


def seeded_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Deterministic, well-scaled random weights for every key of ``model``,
    each drawn from a generator seeded by the key's name (order-independent)."""
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        if key.endswith("conv.weight") or key == "fc.weight":
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith(("bn.weight", "bn.running_var")):
            state[key] = 0.75 + 0.5 * torch.rand(value.shape, generator=g)
        else:  # bn.bias, bn.running_mean, fc.bias
            state[key] = 0.1 * torch.randn(value.shape, generator=g)
    return state


def probe_images() -> torch.Tensor:
    """Two 64x64 RGB uint8 images (N, C, H, W) of smooth stripes and a square."""
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    imgs = np.zeros((2, 3, 64, 64))
    for n in range(2):
        for c in range(3):
            imgs[n, c] = 0.5 + 0.5 * np.sin(0.11 * (n + 1) * i + 0.07 * (c + 1) * j + n + 2 * c)
        imgs[n, :, 16 + 8 * n: 40, 20: 44 - 4 * n] = 0.9 - 0.6 * n
    return torch.from_numpy(np.round(imgs * 255).astype(np.uint8))


def key_fingerprint(state: dict[str, torch.Tensor]) -> str:
    lines = sorted(f"{k} {tuple(v.shape)}" for k, v in state.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.fixture(scope="module")
def seeded_port():
    net = inc.FIDInceptionV3()
    state = seeded_state(net)
    net.load_state_dict(state, strict=True)
    return inc.InceptionExtractor(net, "seeded"), state


def test_state_dict_layout_is_the_reference_one(seeded_port):
    ext, state = seeded_port
    full = ext.net.state_dict()
    assert key_fingerprint(full) == REFERENCE_KEYS_SHA256
    assert len(full) == REFERENCE_NUM_KEYS
    assert sum(v.numel() for k, v in full.items() if not k.endswith("num_batches_tracked")) == REFERENCE_NUM_PARAMS
    # strictness works both ways: a missing or an extra key is refused
    with pytest.raises(RuntimeError, match="Missing key"):
        missing_one = {k: v for k, v in state.items() if k != "Mixed_7c.branch_pool.conv.weight"}
        inc.FIDInceptionV3().load_state_dict(missing_one)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        inc.FIDInceptionV3().load_state_dict({**state, "AuxLogits.fc.weight": torch.zeros(1008, 768)})


def test_port_reproduces_pytorch_fid_features(seeded_port):
    ext, _ = seeded_port
    feats = ext(probe_images())  # uint8 64x64 -> resize 299 -> [-1, 1] -> 2048-d
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    tol = 1e-5 * max(REFERENCE_NORMS)
    np.testing.assert_allclose(feats[0, :8], REFERENCE_FIRST8, atol=tol)
    np.testing.assert_allclose(feats[1, ::256], REFERENCE_EVERY256, atol=tol)
    np.testing.assert_allclose(feats.sum(1), REFERENCE_SUMS, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), REFERENCE_NORMS, rtol=1e-5)


def test_batching_and_input_conventions_do_not_change_features(seeded_port):
    ext, _ = seeded_port
    u8 = probe_images()
    together = ext.features([u8])
    one_by_one = ext.features([u8[:1], u8[1:]])
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5, atol=1e-5)
    first = u8[:1]  # one image each below: this network is slow on a CPU
    as_float = ext(first.float() / 127.5 - 1)  # the generator convention, [-1, 1]
    as_numpy = ext(first.permute(0, 2, 3, 1).numpy())  # the dataset convention, NHWC
    np.testing.assert_allclose(as_float, together[:1], atol=1e-4)
    np.testing.assert_allclose(as_numpy, together[:1], rtol=1e-5, atol=1e-5)
    grey = ext(first[:, :1])  # one channel is repeated to three
    np.testing.assert_array_equal(grey, ext(first[:, :1].expand(-1, 3, -1, -1)))


def test_weights_are_found_in_the_hub_cache_and_hash_checked(seeded_port, tmp_path, monkeypatch):
    ext, state = seeded_port
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(UsageError) as err:
        inc.load_inception()
    msg = str(err.value)
    assert msg.startswith("--inception-weights:") and str(tmp_path / "th/hub/checkpoints" / inc.WEIGHTS_NAME) in msg
    assert "--download" in msg and "--extractor dataset" in msg
    path = inc.default_weights_path()
    assert path == tmp_path / "th/hub/checkpoints" / inc.WEIGHTS_NAME
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(UsageError, match=f"has sha256 {digest[:16]}.*expected 6726825d"):
        inc.load_inception()  # random weights are not the FID weights
    loaded = inc.load_inception(expected_prefix=digest[:8])
    np.testing.assert_array_equal(loaded(probe_images()[:1]), ext(probe_images()[:1]))
    assert loaded.id == f"inception-{digest[:16]}"
    other = tmp_path / "elsewhere.pth"
    other.write_bytes(path.read_bytes()[:1000])  # a truncated copy
    with pytest.raises(UsageError, match="--inception-weights: .*elsewhere.pth has sha256"):
        inc.load_inception(other)
    with pytest.raises(UsageError, match="--inception-weights: no such file"):
        inc.load_inception(tmp_path / "missing.pth")


class _Server:
    """A real HTTP server on 127.0.0.1 serving fixed bytes at /w.pth (404 elsewhere)."""

    def __init__(self, payload: bytes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path != "/w.pth":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_only_when_asked_hash_checked_and_atomic(tmp_path, monkeypatch):
    payload = np.random.default_rng(0).bytes(300_000)
    good = hashlib.sha256(payload).hexdigest()[:8]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    dest = inc.default_weights_path()
    with _Server(payload) as server:
        with pytest.raises(UsageError, match="not on this machine"):
            inc.resolve_weights(download=False, url=server.url + "/w.pth", expected_prefix=good)
        assert not dest.exists()
        with pytest.raises(UsageError, match="--download: .*sha256 .*expected 6726825d.*nothing was kept"):
            inc.download_weights(dest, server.url + "/w.pth")
        with pytest.raises(UsageError, match="--download: could not download .*/nothing.pth"):
            inc.download_weights(dest, server.url + "/nothing.pth")
        assert not dest.exists() and list(dest.parent.iterdir()) == []  # no partial files left
        monkeypatch.setenv(inc.URL_ENV, server.url + "/w.pth")  # a mirror
        path, digest = inc.resolve_weights(download=True, expected_prefix=good)
    assert path == dest and dest.read_bytes() == payload and digest.startswith(good)
    assert [p.name for p in dest.parent.iterdir()] == [inc.WEIGHTS_NAME]

