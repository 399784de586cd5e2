"""Every Python example in README.md runs."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# a block inside a list item is indented as a whole
BLOCKS = [
    textwrap.dedent(block)
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
]


#: what an example prints, by a line of its code: the shape and range a reader is promised
PRINTS = {
    "mean reward of the last 32": r"^\d+ episodes, mean reward of the last 32: (0\.\d{3}|1\.000)$",
    'print(env.render(), "->", round(reward, 3))': r"«.*» -> (0(\.\d+)?|1(\.0)?)$",
    'print(obs["input_ids"].shape, rewards.shape)': r"^\(8, \d+\) \(8,\)$",
    "print(reward)": r"^-?\d\.\d+$",  # a sentiment in [0, 1] plus 0.5 for the weather
    'print(model.ep_info_buffer[-1]["r"])': r"^(0(\.\d+)?|1(\.0)?)$",
    # sparse: seven zeros, then the score of the finished text
    'print(env.rollout(8)["next", "reward"].squeeze(-1))': r"tensor\(\[(0\.0+, ){7}[01]\.\d+\]\)",
    '"reward in", batch.numel(), "steps")': r"\d+\.\d+ reward in 64 steps\n.* reward in 64 steps$",
    'print(stats.train_episode, "episodes")': r"^\d+ episodes$",
    "print(env.unwrapped.text)": r"^Ask for bread\.«.*»",
    '"tokens are the policy\'s")': r"^[1-3] turns; \d+ tokens are the policy's$",
    "print(ids.shape, mask.sum(1))": r"^torch\.Size\(\[4, \d+\]\) tensor\(\[\d+, \d+, \d+, \d+\]\)$",
}


def test_readme_has_examples_and_every_print_is_checked():
    assert len(BLOCKS) >= 3
    for marker in PRINTS:  # each expectation is about one block (README edits keep them true)
        assert sum(marker in block for block in BLOCKS) == 1, marker
    for block in BLOCKS:
        prints = [line for line in block.splitlines() if "print(" in line]
        assert all(any(m in line for m in PRINTS) for line in prints), prints


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_prints_what_it_says(index, capsys):
    """Each block runs as a script (`__main__`, its own globals) in this process: what a reader
    pasting it into a fresh Python gets, without ~5 s of imports per block."""
    code = compile(BLOCKS[index], f"<README.md python block {index}>", "exec")
    exec(code, {"__name__": "__main__"})
    stdout = capsys.readouterr().out
    for marker, pattern in PRINTS.items():
        if marker in BLOCKS[index]:
            assert re.search(pattern, stdout.strip(), flags=re.M | re.S), stdout


def test_readme_commands_exist_in_makefile():
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README.read_text(), flags=re.M):
        assert re.search(rf"^{target}:", makefile, flags=re.M), f"make {target} is not a target"
