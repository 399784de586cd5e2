"""The benchmark scripts run (tiny sizes) and print their ratio tables."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("load_speed.py", ["--quick", "--repeats", "1"], "load / read"),
        ("env_overhead.py", ["--steps", "500", "--repeats", "1"], "ratio TextGen/CartPole"),
        ("rollout_speed.py", ["--quick", "--new-tokens", "8", "--repeats", "1"], "fast / generate"),
        ("user_speed.py", ["--repeats", "1", "--batch", "2", "--tokens", "4"], "generate / user"),
        ("update_speed.py", ["--quick", "--repeats", "1", "--n-steps", "16"], "fast / reference"),
        ("iteration_split.py", ["--model", "random-tiny", "--iterations", "1"], "ratio PPO"),
        (
            "suite_tuning.py",
            [
                "--quick",
                "--algos",
                "a2c",
                "--tasks",
                "target_tokens",
                "--rates",
                "1e-3",
                "--out",
                "{tmp}",
            ],
            "| a2c | ",
        ),  # fmt: skip
        (
            "task_learning.py",
            [
                "--model",
                "random-tiny",
                "--tasks",
                "arithmetic,copy",
                "--seconds",
                "2",
                "--episodes",
                "4",
                "--max-new-tokens",
                "3",
                "--show",
                "1",
            ],
            "## copy, after training",
        ),
        (
            "kl_frontier.py",
            [str(BENCH.parent / "configs" / "default.yaml"), "--prompts", "2", "--samples", "4"],
            "| best of n |",
        ),
        (
            "reasoning_gym_sweep.py",
            ["--datasets", "prime_factorization,boxnet,leg_counting"],
            "exceptions that escaped the scorer: none",
        ),
        ("textarena_opponent.py", ["--games", "Nim", "--episodes", "1"], "| Nim | "),
        (
            "cpu_divergence.py",
            ["--seeds", "1", "--tasks", "target_tokens", "--episodes", "2"],
            "| float64 model |",
        ),
        (
            "learn_speed.py",
            ["--quick", "--variants", "fast", "--n-epochs", "1"],
            "learn / generate",
        ),
    ],
)
def test_benchmark_runs(script, args, expect, monkeypatch, capsys, tmp_path):
    """Run as `python benchmarks/SCRIPT ARGS` runs it (as __main__, its folder first on the
    path), in this process; `{tmp}` in ARGS is a fresh folder."""
    import runpy

    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    monkeypatch.setattr(sys, "argv", [str(BENCH / script), *args])
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.delitem(sys.modules, "_common", raising=False)  # the benchmarks' own helper
    try:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    except SystemExit as e:  # a script that ends with sys.exit(code)
        assert e.code in (0, None), f"{script} exited with {e.code}"
    assert expect in capsys.readouterr().out
