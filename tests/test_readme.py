"""Every Python example in README.md runs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# a block inside a list item is indented as a whole
BLOCKS = [
    textwrap.dedent(block)
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
]


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
    result = subprocess.run(
        [sys.executable, "-c", BLOCKS[index]], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_readme_commands_exist_in_makefile():
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README.read_text(), flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is not a target"
