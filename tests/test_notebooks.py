"""The course's notebooks (issue 28): made from the lesson scripts, unchanged by `make notebooks`
on a clean tree, and each one executes (tiny budgets, through TEXTGEN_NOTEBOOK_ARGS)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples" / "course").glob("lesson_*.py"))
NOTEBOOKS = ROOT / "docs" / "course"

#: each lesson's flags for a run of seconds (as tests/test_course.py runs them)
TINY = "--timesteps 64 --n-envs 2 --max-new-tokens 4 --eval-episodes 2"
FLAGS = {
    "lesson_01_environment": "--episodes 3 --max-new-tokens 6",
    "lesson_02_policy_gradient": "--iterations 3 --batch 4 --max-new-tokens 4",
    "lesson_03_sentiment_ppo": TINY,
    "lesson_04_kl_penalty": f"--betas 0,0.2 {TINY}",
    "lesson_05_reward_hacking": TINY,
    "lesson_06_action_masking": f"--top-k 5 {TINY}",
    "lesson_07_your_own_task": TINY,
    "lesson_08_comparing_algorithms": "--algos random,ppo --tasks target_tokens --seeds 2 "
    "--timesteps 64 --eval-episodes 2 --n-envs 2",
    "lesson_09_interactive_episodes": "--task token_code --model default --lora-r 0 "
    "--timesteps 64 --n-envs 4 --episodes 4",
    "lesson_10_your_own_algorithm": "--seeds 1 --tasks target_tokens --timesteps 64",
}

#: what a lesson's printed output must hold
EXPECT = {
    "lesson_09_interactive_episodes": ["not actions", "REINFORCE loss, the policy's tokens"],
    "lesson_10_your_own_algorithm": [
        "The protocols differ",
        "ranks nothing",
        "P(yours > ppo)",
        "rloo_from_scratch-",
    ],  # fmt: skip
}


def notebooks_module():
    spec = importlib.util.spec_from_file_location("notebooks", ROOT / "scripts" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_lesson_has_its_notebook_and_make_notebooks_changes_nothing(tmp_path):
    pytest.importorskip("jupytext")
    assert [s.stem for s in SCRIPTS] == sorted(FLAGS)
    nb = notebooks_module()
    for script in SCRIPTS:
        committed = NOTEBOOKS / f"{script.stem}.ipynb"
        assert committed.is_file(), f"{committed} is missing: run `make notebooks`"
        shutil.copy(committed, tmp_path / committed.name)
        again = nb.refresh(script, tmp_path)
        assert again.read_text() == committed.read_text(), (
            f"{committed.name} is not what {script.name} makes: run `make notebooks`"
        )


def test_a_changed_script_changes_its_notebooks_code_and_keeps_other_outputs(tmp_path):
    pytest.importorskip("jupytext")
    import nbformat

    nb = notebooks_module()
    script = tmp_path / "lesson_99_demo.py"
    script.write_text('"""A demo."""\n\nx = 1\n\nprint(x)\n')
    path = nb.refresh(script, tmp_path)
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[-1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nbformat.write(notebook, path)
    script.write_text('"""A demo."""\n\nx = 2\n\nprint(x)\n')
    cells = nbformat.read(nb.refresh(script, tmp_path), as_version=4).cells
    assert [c.source for c in cells] == ['"""A demo."""', "x = 2", "print(x)"]
    assert cells[-1].outputs[0]["text"] == "1\n"  # unchanged code keeps its output


@pytest.mark.slow
@pytest.mark.parametrize("lesson", sorted(FLAGS))
def test_each_notebook_executes(lesson, tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    import nbformat

    monkeypatch.setenv("TEXTGEN_NOTEBOOK_ARGS", FLAGS[lesson])
    path = tmp_path / f"{lesson}.ipynb"
    shutil.copy(NOTEBOOKS / path.name, path)
    notebooks_module().execute(path, timeout=600)
    cells = nbformat.read(path, as_version=4).cells
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))
    printed = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
    for text in EXPECT.get(lesson, []):
        assert text in printed
    figure = cells[-1].outputs  # the lesson's figure, shown inline
    assert figure and "image/png" in figure[0]["data"]


def test_the_course_guide_shows_every_lessons_figure_and_each_file_exists():
    import re

    guide = (ROOT / "docs" / "course.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", guide)
    assert [f"course/lesson_{n:02d}.png" for n in range(1, len(SCRIPTS) + 1)] == links
    for link in links:
        path = ROOT / "docs" / link
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link


def test_outside_a_kernel_flags_come_from_the_command_line(monkeypatch):
    import sys
    from dataclasses import dataclass

    from agents.dataclass_cli import parse_dataclass_args

    @dataclass
    class Args:
        steps: int = 1

    monkeypatch.setenv("TEXTGEN_NOTEBOOK_ARGS", "--steps 5")
    monkeypatch.setattr(sys, "argv", ["lesson.py", "--steps", "3"])
    assert parse_dataclass_args(Args).steps == 3  # a script ignores the notebook variable
