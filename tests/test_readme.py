"""The README's Python snippets run exactly as written.

Each ```python block is executed in a fresh interpreter, in a folder where
`data/breakout` is a small real dataset (256 frames of 32x32 made like the
test fixtures), so a snippet that drifts from the API fails here.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gankit.data import write_dataset

from conftest import blobs

README = Path(__file__).parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_readme_has_python_snippets():
    assert python_blocks(README.read_text(encoding="utf-8"))


@pytest.mark.parametrize("index", range(len(python_blocks(README.read_text(encoding="utf-8")))))
def test_readme_snippet_runs_as_written(index, tmp_path):
    code = python_blocks(README.read_text(encoding="utf-8"))[index]
    write_dataset(tmp_path / "data" / "breakout", blobs(256, size=32), source="test-blobs")
    proc = subprocess.run([sys.executable, "-c", code + "\nprint('SNIPPET-DONE')"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("SNIPPET-DONE")
    if "gankit.train(" in code:
        runs = [p for p in (tmp_path / "runs").iterdir() if (p / "summary.json").is_file()]
        assert len(runs) == 1  # it trained for real and closed the run
