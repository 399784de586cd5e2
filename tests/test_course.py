"""The course's lessons (issue 14) run with a tiny budget and produce what they promise."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course"


def lesson(name: str):
    spec = importlib.util.spec_from_file_location(name, COURSE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lesson_01_environment(tmp_path):
    m = lesson("lesson_01_environment")
    plot = tmp_path / "l1.png"
    means = m.main(m.Args(episodes=3, max_new_tokens=6, plot=str(plot)))
    assert set(means) == {"random", "greedy LM", "sampled LM"}
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in means.values())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lesson_02_policy_gradient(tmp_path):
    m = lesson("lesson_02_policy_gradient")
    plot = tmp_path / "l2.png"
    finals = m.main(m.Args(iterations=3, batch=4, max_new_tokens=4, plot=str(plot)))
    assert len(finals) == 3 and all(math.isfinite(v) and 0 <= v <= 1 for v in finals.values())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
