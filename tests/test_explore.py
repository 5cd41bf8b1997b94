"""`gankit explore`: the real server in a subprocess, its API over HTTP, and the page in headless Chromium
(views opened by URL and dumped or photographed; the controls clicked through the DevTools pipe)."""
from __future__ import annotations

import base64
import http.client
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.error import HTTPError

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.models import build_generator
from gankit.models.generator_file import save_generator_file
from gankit.monitor.images import to_uint8
from gankit.sample import generate, load_generator
from test_monitor_browser import CHROMIUM, chromium

ARCH = {"height": 16, "width": 16, "channels": 3, "latent": 8, "width_g": 8, "coords": True, "attention": 0}


def _generator(model: str, path):
    """An untrained G whose BatchNorm statistics are those of its own activations
    (as after training): then, as in a trained one, z decides what it draws."""
    torch.manual_seed(0)
    G = build_generator(model, **ARCH).requires_grad_(False)
    for m in G.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batch
    G.train()(torch.randn(256, ARCH["latent"]))
    last = [m for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    last.weight.mul_(10)  # and images that use the range: std ~0.05 -> ~0.5
    G.eval()
    save_generator_file(G, {"model": model, **ARCH}, path)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`gankit explore` serving two generator files on a free port; yields (base URL, {name: file})."""
    root = tmp_path_factory.mktemp("explore")
    files = {"alpha": _generator("dcgan", root / "alpha.safetensors"),
             "beta": _generator("seed", root / "beta.safetensors")}
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "explore", *map(str, files.values()), "--port", "0",
                             "--device", "cpu", "--max-batch", "32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=root)
    line = proc.stdout.readline()  # the first line says where it listens
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    yield match.group(0).rstrip("/"), files
    proc.terminate()
    proc.wait(timeout=10)


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except HTTPError as err:
        return err.code, dict(err.headers), err.read()


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB")).astype(int)


def expected(file, seed: int, psi: float) -> np.ndarray:
    return to_uint8(generate(load_generator(file), 1, seed=seed, truncation=psi))[0].astype(int)


def test_tiles_are_batched_cached_and_right(server):
    base, files = server
    status, _, body = get(f"{base}/api/info")
    info = json.loads(body)
    assert status == 200 and [r["name"] for r in info["runs"]] == ["alpha", "beta"]
    assert info["runs"][0]["classes"] is None and info["max_batch"] == 32
    stats0 = json.loads(get(f"{base}/api/stats")[2])
    first = json.loads(get(f"{base}/api/tiles?seeds=100,101,102,103&psi=0.8&run=beta")[2])
    assert (first["generated"], first["cached"]) == (4, 0)
    again = json.loads(get(f"{base}/api/tiles?seeds=102,103,104,105&psi=0.8&run=beta")[2])
    assert (again["generated"], again["cached"]) == (2, 2)  # only the new seeds were rendered
    assert [t["seed"] for t in again["tiles"]] == [102, 103, 104, 105]
    assert again["tiles"][0]["png"] == first["tiles"][2]["png"]
    stats1 = json.loads(get(f"{base}/api/stats")[2])
    assert stats1["batches"] - stats0["batches"] == 2 and stats1["generated"] - stats0["generated"] == 6
    for t in first["tiles"]:  # each tile is that seed's first image from `gankit sample`, truncated
        got = pixels(base64.b64decode(t["png"]))
        assert got.shape == (16, 16, 3) and np.abs(got - expected(files["beta"], t["seed"], 0.8)).max() <= 1
    # a seed large, as a download
    status, headers, png = get(f"{base}/api/image?seed=101&psi=0.8&run=beta&scale=4&download=1")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert 'attachment; filename="gankit-seed101-psi0.8.png"' == headers["Content-Disposition"]
    big = pixels(png)
    assert big.shape == (64, 64, 3)
    assert np.array_equal(big[::4, ::4], pixels(base64.b64decode(first["tiles"][1]["png"])))
    # the walk between two seeds starts at one and ends at the other
    a, b = (pixels(get(f"{base}/api/image?seed={s}&psi=1")[2]) for s in (7, 9))
    ends = [pixels(get(f"{base}/api/lerp?a=7&b=9&t={t}&psi=1")[2]) for t in (0, 0.5, 1)]
    assert np.abs(ends[0] - a).max() <= 1 and np.abs(ends[2] - b).max() <= 1
    assert np.abs(ends[1] - a).max() > 10 and np.abs(ends[1] - b).max() > 10


BAD = [
    ("/api/tiles?seeds=1,x", 400, "seed: expected an integer"),
    ("/api/tiles?seeds=" + ",".join(map(str, range(33))), 413, "batch too large"),
    ("/api/tiles?seeds=", 400, "at least one seed"),
    ("/api/tiles?seeds=1&psi=nan", 400, "psi: must be a number between 0"),
    ("/api/tiles?seeds=1&psi=1.5", 400, "psi: must be a number between 0"),
    ("/api/tiles?seeds=-3", 400, "seed: must be an integer between 0"),
    ("/api/tiles?seeds=1&run=gamma", 404, "unknown run 'gamma'"),
    ("/api/tiles?seeds=1&class=0", 400, "not conditional"),
    ("/api/image?seed=1&scale=99", 400, "scale: must be an integer between 1 and 16"),
    ("/api/image?seed=1&seed=2", 400, "given 2 times"),
    ("/api/lerp?a=1&b=2", 400, "missing parameter 't'"),
    ("/api/nothing?seed=1", 404, "no such page"),
    ("/static/../api.py", 404, "no such file"),
    ("/api/tiles?seeds=" + "1" * 9000, 414, "request line longer"),
]


def test_bad_requests_get_a_4xx_and_a_message(server):
    base, _ = server
    host, port = base.rsplit("//", 1)[1].split(":")
    # a client that connects and says nothing must not block anyone else
    idle = socket.create_connection((host, int(port)))
    try:
        for path, status, message in BAD:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)  # raw: no URL normalisation
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
            conn.close()
            assert r.status == status, (path, r.status, body)
            assert message in json.loads(body)["error"] and "Traceback" not in body, (path, body)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/api/tiles?seeds=1", body=b"x")
        r = conn.getresponse()
        assert r.status == 405 and "read-only" in json.loads(r.read())["error"]
        start = time.monotonic()
        assert get(f"{base}/api/info")[0] == 200 and time.monotonic() - start < 10  # still answering
    finally:
        idle.close()


def _dom(tmp_path, url: str) -> str:
    done = chromium(tmp_path, "--virtual-time-budget=15000", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'id="grid"' in done.stdout
    return done.stdout


def _tiles(dom: str) -> dict[int, bytes]:
    found = re.findall(r'data-seed="(\d+)"[^>]*><img src="data:image/png;base64,([^"]+)"', dom)
    return {int(s): base64.b64decode(b) for s, b in found}


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium at /usr/bin/chromium")
def test_page_in_headless_chromium(server, tmp_path):
    base, files = server
    # first view: nine seeds from 0, no truncation
    dom = _dom(tmp_path, f"{base}/?run=alpha&n=9&start=0&psi=1")
    tiles = _tiles(dom)
    assert sorted(tiles) == list(range(9)) and 'data-ready="1"' in dom
    assert np.array_equal(pixels(tiles[3]), pixels(get(f"{base}/api/image?seed=3&psi=1&run=alpha")[2]))
    # re-roll: the button moves `start` on by `n` in the page's URL; that URL shows the next seeds
    dom = _dom(tmp_path, f"{base}/?run=alpha&n=9&start=9&psi=1")
    rerolled = _tiles(dom)
    assert sorted(rerolled) == list(range(9, 18))
    assert not any(np.array_equal(pixels(rerolled[9 + i]), pixels(tiles[i])) for i in range(9))
    # the same view again: every tile from the server's cache
    assert re.search(r"9 tiles: 0 generated, 9 from cache", _dom(tmp_path, f"{base}/?run=alpha&n=9&start=9&psi=1"))
    # truncation slider at 0 and the walk slider at t = 0.25: every tile is the mean latent's image
    view = f"{base}/?run=alpha&n=9&start=9&psi=0&sel=9&a=9&b=12&t=0.25"
    dom = _dom(tmp_path, view)
    flat = [pixels(p) for p in _tiles(dom).values()]
    assert len(flat) == 9 and all(np.array_equal(flat[0], f) for f in flat[1:])
    assert 'data-psi="0"' in dom and "run-pick" in dom and 'id="class-pick" hidden' in dom
    lerp = re.search(r'id="lerp-img"[^>]*src="([^"]+)"|src="([^"]+)"[^>]*id="lerp-img"', dom)
    src = (lerp.group(1) or lerp.group(2)).replace("&amp;", "&")
    assert "a=9" in src and "b=12" in src and "t=0.25" in src and "psi=0" in src
    walk = pixels(get(base + src)[2])
    assert walk.shape == (256, 256, 3)  # 16 px enlarged to the page's 256
    # a screenshot of that view: the page was drawn, images included
    shot = tmp_path / "explore.png"
    done = chromium(tmp_path, "--virtual-time-budget=15000", f"--screenshot={shot}", "--window-size=1000,700",
                    f"{base}/?run=alpha&n=9&start=0&psi=1&sel=4&a=4&b=7&t=0.5")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (700, 1000, 3)
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    background = (np.abs(img - [22, 22, 22]).sum(axis=2) < 10).mean()
    assert colours > 200 and 0.2 < background < 0.95  # generated tiles drawn on the dark page


class TwoClassG(torch.nn.Module):
    """A stand-in conditional generator (gankit has none yet): the class picks the colour."""

    latent, height, width, channels = 4, 8, 8, 3
    classes = ["red", "blue"]

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, z, labels=None):
        assert labels is not None, "a conditional generator needs labels"
        base = torch.tanh(z[:, :1, None, None] * self.scale).expand(-1, 3, 8, 8).clone()  # (B, 3, 8, 8)
        base[:, 0] += (labels == 0).float()[:, None, None]
        base[:, 2] += (labels == 1).float()[:, None, None]
        return base.clamp(-1, 1)


def test_class_picker_for_a_conditional_generator(tmp_path):
    import threading

    from gankit.explore.api import Explorer
    from gankit.explore.server import serve

    server = serve(Explorer({"cond": TwoClassG().eval()}), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert json.loads(get(f"{base}/api/info")[2])["runs"][0]["classes"] == ["red", "blue"]
        red, blue = (pixels(get(f"{base}/api/image?seed=1&class={k}")[2]) for k in (0, 1))
        assert red[..., 0].mean() > red[..., 2].mean() and blue[..., 2].mean() > blue[..., 0].mean()
        status, _, body = get(f"{base}/api/image?seed=1&class=2")
        assert status == 400 and "class: must be an integer between 0 and 1" in json.loads(body)["error"]
        if CHROMIUM is not None:  # the page offers the picker, and its choice reaches the tiles
            dom = _dom(tmp_path, f"{base}/?n=4&class=1")
            assert 'id="class-pick" hidden' not in dom and '<option value="1">blue</option>' in dom
            tiles = [pixels(p) for p in _tiles(dom).values()]
            assert len(tiles) == 4 and all(t[..., 2].mean() > t[..., 0].mean() for t in tiles)
    finally:
        server.shutdown()
        server.server_close()


class DevTools:
    """Headless Chromium driven over --remote-debugging-pipe (JSON messages ended by NUL on fds 3
    and 4): clicks and slider moves on the real page, with no websocket or driver package."""

    def __init__(self, tmp_path):
        import os

        profile = tmp_path / "cdp-profile"
        profile.mkdir(exist_ok=True)
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        def fds() -> None:  # in the child: Chromium reads commands on 3 and writes answers on 4
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                                     preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.session = b"", 0, None
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def call(self, method: str, **params):
        import os
        import select

        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:
                    assert "error" not in reply, reply
                    return reply["result"]
            ready, _, _ = select.select([self._from_r], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"no answer to {method}"
            chunk = os.read(self._from_r, 1 << 16)
            assert chunk, "Chromium closed the pipe"
            self._buf += chunk

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait(self, condition: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        # false, not an error, while the page is still loading
        while not self.js(f"(() => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }})()"):
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.1)

    def close(self) -> None:
        import os

        self.proc.terminate()
        self.proc.wait(timeout=10)
        os.close(self._to_w)
        os.close(self._from_r)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium at /usr/bin/chromium")
def test_clicks_and_sliders_in_chromium(server, tmp_path):
    """The page's own controls: re-roll, the truncation slider, picking two seeds, the walk slider."""
    base, _ = server
    page = DevTools(tmp_path)
    try:
        page.call("Page.navigate", url=f"{base}/?run=beta&n=4&start=20")
        ready = "document.getElementById('grid').dataset.ready === '1'"
        page.wait(f"{ready} && document.querySelectorAll('.tile').length === 4")
        seeds = "[...document.querySelectorAll('.tile')].map(t => Number(t.dataset.seed))"
        assert page.js(seeds) == [20, 21, 22, 23]
        page.js("document.getElementById('reroll').click()")
        page.wait(f"{ready} && document.getElementById('grid').dataset.start === '24'")
        assert page.js(seeds) == [24, 25, 26, 27] and "start=24" in page.js("location.search")
        page.js("const p = document.getElementById('psi'); p.value = 0; p.dispatchEvent(new Event('input'))")
        page.wait(f"{ready} && document.getElementById('grid').dataset.psi === '0'")
        srcs = page.js("[...document.querySelectorAll('.tile img')].map(i => i.src)")
        assert len(set(srcs)) == 1  # psi 0: the mean latent's image in every tile
        page.js("document.querySelector('.tile[data-seed=\"25\"]').click()")
        page.js("document.querySelector('.tile[data-seed=\"27\"]').click()")
        page.js("const t = document.getElementById('t'); t.value = 0.75; t.dispatchEvent(new Event('input'))")
        src = page.js("document.getElementById('lerp-img').getAttribute('src')")
        assert all(f in src for f in ("a=25", "b=27", "t=0.75", "psi=0", "run=beta")), src
        page.wait("document.getElementById('lerp-img').complete && document.getElementById('lerp-img').naturalWidth")
        assert page.js("document.getElementById('lerp-img').naturalWidth") == 256
        query = page.js("location.search")
        assert all(f in query for f in ("sel=27", "a=25", "b=27", "t=0.75", "psi=0")), query
        assert page.js("document.getElementById('large-download').getAttribute('href')").endswith("&download=1")
    finally:
        page.close()
