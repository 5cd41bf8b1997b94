"""benchmarks/build_sprites.py keeps the front sprites (normal, shiny, forms)
of the package layout and imports their first frames on white."""
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from gankit.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
ANIMATED = "package/sprites/pokemon/versions/generation-v/black-white/animated"


def _gif(colour: tuple[int, int, int]) -> bytes:
    """A 2-frame 20x30 GIF: a coloured square on a transparent background, then a blue frame."""
    first = Image.new("RGBA", (20, 30), (0, 0, 0, 0))
    first.paste(Image.new("RGBA", (10, 10), (*colour, 255)), (5, 10))
    second = Image.new("RGBA", (20, 30), (0, 0, 255, 255))
    buf = io.BytesIO()
    first.save(buf, "GIF", save_all=True, append_images=[second], disposal=2, transparency=0)
    return buf.getvalue()


def test_front_sprites_only_first_frame_on_white(tmp_path):
    members = {f"{ANIMATED}/1.gif": (255, 0, 0), f"{ANIMATED}/shiny/1.gif": (0, 255, 0),
               f"{ANIMATED}/201-a.gif": (255, 0, 0), f"{ANIMATED}/back/1.gif": (0, 0, 0),
               f"{ANIMATED}/female/3.gif": (0, 0, 0), "package/sprites/pokemon/other/dream-world/1.svg": None}
    tarball = tmp_path / "sprites.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, colour in members.items():
            data = _gif(colour) if colour else b"<svg/>"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "ds"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "build_sprites.py"), "--tarball", str(tarball),
                           "--out", str(out), "--size", "32"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 front sprites" in done.stdout
    ds = load_dataset(out)
    assert len(ds) == 3 and (ds.height, ds.width) == (32, 32)
    images = np.asarray(ds.images)  # (N, H, W, C) uint8
    corners = images[:, 0, 0, :]
    assert (corners == 255).all()  # transparent and padding pixels are white
    blue = (images[..., 2] > 200) & (images[..., 0] < 60) & (images[..., 1] < 60)
    assert not blue.any()  # the second (blue) frame is never used
    red_or_green = (images.max(axis=-1) > 200) & (images.min(axis=-1) < 60)
    assert red_or_green.any(axis=(1, 2)).all()  # every image keeps its coloured square
