"""`gankit explore RUN...`: the HTTP server of the explorer page.

Why the standard library's ``http.server``: the explorer serves one person on
127.0.0.1 a few requests per second; a web framework would be one more
dependency (with its own) for nothing the page needs.  ``ThreadingHTTPServer``
keeps the page and its static files answering while a batch renders (a lock
in `api.Explorer` serialises the generator), and a socket timeout stops a
stalled client from holding a thread for ever.

API (GET only; errors are 4xx with ``{"error": "..."}``, never a traceback):

- ``/api/info``: the generators (name, latent, image size, classes: null
  unless conditional) and the limits;
- ``/api/tiles?seeds=1,2,3&psi=0.7[&run=NAME][&class=K]``: JSON, a base64 PNG
  per seed, and how many were generated vs taken from the cache;
- ``/api/image?seed=S&psi=P[&scale=K][&download=1]``: one PNG;
- ``/api/lerp?a=S&b=S&t=0.25&psi=P[&scale=K][&download=1]``: the image at t
  on the great-circle path between two seeds' latents;
- ``/api/stats``: requests, batches, images generated, cache hits.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gankit.errors import UsageError
from gankit.explore.api import (
    MAX_SCALE,
    MAX_SEED,
    BadRequest,
    Explorer,
    class_index,
    enlarge,
    integer,
    lerp_keys_z,
    number,
    seed_keys_z,
    seeds,
)

STATIC = Path(__file__).with_name("static")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".png": "image/png"}
MAX_URL = 8192  # longer request lines are refused: 64 seeds of 10 digits fit in 1 KB


class Handler(BaseHTTPRequestHandler):
    explorer: Explorer  # set on the subclass `serve` makes
    timeout = 30  # seconds a client may take to send its request
    server_version = "gankit-explore"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: one line per tile would bury the URL the command printed

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if ctype.startswith("application/json") else "max-age=3600")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        self.explorer.stats["requests"] += 1
        try:
            if len(self.path) > MAX_URL:
                raise BadRequest(f"request line longer than {MAX_URL} characters", 414)
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            self._route(url.path, query)
        except BadRequest as err:
            self._json(err.status, {"error": str(err)})
        except (ConnectionError, TimeoutError):
            pass  # the page moved on (a newer slider position): nothing to answer
        except Exception as err:  # a bug must not kill the server or show a traceback to the page
            print(f"gankit explore: {self.path}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            self._json(500, {"error": f"internal error: {type(err).__name__}"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        self._json(405, {"error": "the explorer API is read-only: use GET"})

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        ex = self.explorer
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/info":
            return self._json(200, ex.info())
        if path == "/api/stats":
            return self._json(200, dict(ex.stats, cached=len(ex.cache)))
        run = query.get("run", [None])[0]
        _, G = ex.generator(run)
        psi = number(query, "psi", 0.0, 1.0, 1.0)
        cls = class_index(query, G)
        if path == "/api/tiles":
            wanted = seeds(query, ex.max_batch)
            pngs, made = ex.render(run, [(s, psi) for s in wanted], seed_keys_z, cls)
            tiles = [{"seed": s, "png": base64.b64encode(p).decode()} for s, p in zip(wanted, pngs)]
            return self._json(200, {"tiles": tiles, "psi": psi, "generated": made, "cached": len(wanted) - made})
        scale = integer(query, "scale", 1, MAX_SCALE, 1)
        if path == "/api/image":
            seed = integer(query, "seed", 0, MAX_SEED)
            png = ex.render(run, [(seed, psi)], seed_keys_z, cls)[0][0]
            name = f"gankit-seed{seed}-psi{psi:g}.png"
        elif path == "/api/lerp":
            a, b = integer(query, "a", 0, MAX_SEED), integer(query, "b", 0, MAX_SEED)
            t = number(query, "t", 0.0, 1.0)
            png = ex.render(run, [(a, b, t, psi)], lerp_keys_z, cls)[0][0]
            name = f"gankit-seed{a}-to-{b}-t{t:g}-psi{psi:g}.png"
        else:
            raise BadRequest(f"no such page {path!r}", 404)
        download = {"Content-Disposition": f'attachment; filename="{name}"'} if "download" in query else None
        self._send(200, enlarge(png, scale), "image/png", download)

    def _static(self, name: str) -> None:
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file() or path.suffix not in TYPES:
            raise BadRequest(f"no such file {name!r}", 404)
        self._send(200, path.read_bytes(), TYPES[path.suffix])


def serve(explorer: Explorer, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A started-but-not-serving server on host:port (0: any free port); call serve_forever()."""
    handler = type("ExploreHandler", (Handler,), {"explorer": explorer})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise UsageError(f"--port: cannot listen on {host}:{port}: {err.strerror or err}") from None
    server.daemon_threads = True
    return server


def _names(runs: list[str]) -> list[str]:
    """A short unique name per RUN: its folder or file name."""
    names: list[str] = []
    for run in runs:
        base = Path(run).stem if Path(run).is_file() else Path(run).resolve().name
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


DESCRIPTION = """Serve a page on 127.0.0.1 to browse generators: a grid of seeds, re-roll,
a seed large, a slider between two seeds, a truncation slider, PNG downloads.

  gankit explore runs/00003-breakout --open
  gankit explore generator.safetensors runs/00004-cards64 --port 9000
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from gankit.cli_helpers import HelpFormatter, add_generator_flags, positive_int

    p = sub.add_parser("explore", help="browse a generator in a local web page", description=DESCRIPTION,
                       formatter_class=HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories, checkpoints or .safetensors files")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    add_generator_flags(p)
    p.add_argument("--max-batch", type=positive_int, default=64, help="most seeds one request may ask for")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from gankit.device import resolve_device
    from gankit.sample import load_generator

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: expected 0 to 65535, got {args.port}")
    device = resolve_device(args.device)
    generators = {name: load_generator(r, None if Path(r).suffix == ".safetensors" else args.checkpoint,
                                       ema=not args.no_ema, device=device)
                  for name, r in zip(_names(args.runs), args.runs)}
    server = serve(Explorer(generators, max_batch=args.max_batch), args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"explorer at {url} ({len(generators)} generator(s) on {device}; Ctrl-C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
