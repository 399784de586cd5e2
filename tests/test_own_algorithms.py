"""Your own algorithm (issue 27): an SB3 subclass in a file through `textgen train` and
`textgen bench`, and a plain training function (examples/06) under the bench's protocol."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from agents import cli
from agents.bench import BenchConfig, algo_label, cell_folder
from agents.registry import algo_spec, canonical_algo
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from tests.helpers import textgen

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "06_reinforce_function.py"

# A PPO subclass, as a user writes one: it counts its updates in a file beside it.
SUBCLASS = """
from pathlib import Path

import numpy as np
from stable_baselines3 import PPO

from my_helpers import HALF  # a module beside it, as `python my_algo.py` would find it

SEEN = []


def spy(make_env, timesteps, seed, **kwargs):
    # a training function that takes anything: it is given the grid's model too
    from agents.bench import RandomAgent

    SEEN.append(kwargs)
    return RandomAgent(np.ones(make_env().action_space.n, dtype=bool), seed)


class CountingPPO(PPO):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def train(self):
        log = Path(__file__).with_name("updates.txt")
        log.write_text(str(int(log.read_text() or 0) + 1) if log.exists() else "1")
        super().train()


def not_a_policy(make_env, timesteps, seed):
    return "nothing to predict with"
"""

TINY = ["--model", "random-tiny", "--env-id", "TextGenTargetTokens-v0", "--env-kwargs",
        '{"max_new_tokens": 4, "stop_on_eos": false}', "--n-envs", "2", "--n-steps", "16",
        "--batch-size", "16", "--eval-episodes", "2", "--no-progress-bar"]  # fmt: skip
GRID = ["--tasks", "target_tokens", "--seeds", "1", "--timesteps", "64", "--n-envs", "4",
        "--eval-episodes", "4"]  # fmt: skip


@pytest.fixture
def algo_file(tmp_path, monkeypatch):
    """`my_algo.py` in a folder of its own, named by a path relative to the working folder."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "my_algo.py").write_text(SUBCLASS)
    (home / "my_helpers.py").write_text("HALF = 0.5\n")
    monkeypatch.chdir(home)
    return home / "my_algo.py"


def test_an_sb3_subclass_in_a_file_trains_evaluates_and_resumes_from_anywhere(
    algo_file, tmp_path, monkeypatch
):
    spec = algo_spec("my_algo.py:CountingPPO")
    assert spec.name == f"{algo_file}:CountingPPO" and spec.family == "ppo"
    assert spec.buffer == algo_spec("ppo").buffer and spec.bench == algo_spec("ppo").bench
    # the constructor's **kwargs reach PPO's: every PPO setting of the config is passed
    assert {"n_steps", "batch_size", "clip_range", "learning_rate"} <= set(
        spec.accepts(["n_steps", "batch_size", "clip_range", "learning_rate"])
    )
    run = tmp_path / "run"
    out = textgen("train", *TINY, "--algo", "my_algo.py:CountingPPO", "--timesteps", 64,
                  "--learning-rate", 0.002, "--out", run).stdout  # fmt: skip
    assert "trained 64 steps" in out
    assert (algo_file.parent / "updates.txt").read_text() == "2"  # its own train() ran
    monkeypatch.chdir(tmp_path)  # elsewhere: the run names the file by its absolute path
    from agents.build import load_run_model

    model = load_run_model(run)
    assert type(model).__name__ == "CountingPPO" and model.learning_rate == 0.002
    assert "over 2 episodes" in textgen("eval", run, "--episodes", 2).stdout
    assert "resuming" in textgen("train", "--resume", run, "--timesteps", 96).stdout
    # without --out: runs/<class name>-<hash>-..., not a folder per part of the file's path
    textgen("train", *TINY, "--algo", f"{algo_file}:CountingPPO", "--timesteps", 32)
    (default,) = (tmp_path / "runs").iterdir()
    assert default.name.startswith("CountingPPO-") and ":" not in default.name


def test_an_sb3_subclass_and_a_training_function_run_through_the_bench(algo_file, tmp_path):
    pytest.importorskip("rliable")
    ours = ["my_algo.py:CountingPPO", f"{EXAMPLE}:reinforce_loop"]
    out = tmp_path / "grid"
    mine = tmp_path / "hyperparams"  # the function's keyword arguments: small updates
    mine.mkdir()
    (mine / "reinforce_loop.yml").write_text("default:\n  episodes_per_update: 2\n")
    argv = ["bench", "--algos", ",".join(["random", *ours]), *GRID, "--model", "random-tiny",
            "--hyperparams", str(mine), "--out", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    results = {r["algo"]: r for r in json.loads((out / "results.json").read_text())}
    names = [canonical_algo(a) for a in ours]
    assert set(results) == {"random", *names}
    for name in names:
        r = results[name]
        assert all(math.isfinite(r[k]) and 0 <= r[k] <= 1 for k in ("before", "after"))
        assert r["timesteps"] >= 64
    # a folder name per algorithm: the class or function name and a hash of its path
    labels = sorted(p.name.split("__")[0] for p in (out / "cells").iterdir())
    assert labels == sorted(["random", *map(algo_label, names)])
    assert labels[0].startswith("CountingPPO-") and "/" not in "".join(labels)
    assert "CountingPPO" in (out / "results.md").read_text()
    # the same grid again, in another folder: the same numbers (seeded)
    again = tmp_path / "again"
    assert cli.main([*argv[:-1], str(again)]) == 0
    rerun = {r["algo"]: r for r in json.loads((again / "results.json").read_text())}
    for name in names:
        assert (rerun[name]["before"], rerun[name]["after"]) == (
            results[name]["before"],
            results[name]["after"],
        )


def test_bad_own_algorithms_are_clear_errors_before_any_cell(algo_file, tmp_path, capsys):
    with pytest.raises(TextGenValueError, match=r"Cannot import '.*nowhere\.py:X'.*no file"):
        BenchConfig(algos=["nowhere.py:X"])
    with pytest.raises(TextGenValueError, match=r"Cannot import '.*my_algo\.py:Missing'"):
        BenchConfig(algos=["my_algo.py:Missing"])
    with pytest.raises(TextGenTypeError, match="Path, which is no stable-baselines3"):
        BenchConfig(algos=["my_algo.py:Path"])
    # a training function is for the bench: textgen train says so, in one line
    code = cli.main(["train", *TINY, "--algo", "my_algo.py:not_a_policy", "--out", "x"])
    err = capsys.readouterr().err
    assert code == 2 and "training function runs under `textgen bench --algos`" in err
    assert not Path("x").exists()
    # one that returns no policy is a failed cell whose message says what was expected
    out = tmp_path / "grid"
    argv = ["bench", "--algos", "my_algo.py:not_a_policy", *GRID, "--model", "random-tiny"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1 of 1 cells failed" in err
    assert "to return a policy with predict(obs, deterministic=False), got str" in err
    assert not list(out.glob("cells/*/result.json"))
    spec = BenchConfig(algos=["my_algo.py:not_a_policy"], out=str(out)).cells()[0]
    assert cell_folder(spec).name.startswith("not_a_policy-")
    # a function taking **kwargs gets the grid's model like one that names it
    grid = ["bench", "--algos", "my_algo.py:spy", *GRID, "--model", "random-tiny"]
    assert cli.main([*grid, "--out", str(tmp_path / "spy")]) == 0
    from agents.registry import import_path

    assert import_path("my_algo.py:SEEN") == [{"model": "random-tiny"}] * 2  # budgets 0 and 64


def test_hyperparameters_come_from_rl_zoo3_style_files_and_a_grid_records_them(tmp_path):
    pytest.importorskip("rliable")
    from agents.bench import HYPERPARAMS, bench_names, hyperparams_for, variant
    from agents.config import TrainConfig

    for name in sorted(set(bench_names()) - {"random"}):  # a file each, making valid runs
        assert (HYPERPARAMS / f"{name}.yml").is_file(), name
        TrainConfig(**variant(name), **hyperparams_for(name, "copy"), model="random-tiny")
    ppo = {"learning_rate": 1e-3, "n_steps": 32, "batch_size": 64, "gamma": 1.0}
    assert hyperparams_for("ppo", "copy") == ppo
    mine = tmp_path / "hyperparams"
    mine.mkdir()
    (mine / "ppo.yml").write_text(
        "default:\n  learning_rate: 1e-3\n  n_steps: 16\ntarget_tokens:\n  n_steps: 8\n"
    )
    assert hyperparams_for("ppo", "copy", str(mine)) == {"learning_rate": 1e-3, "n_steps": 16}
    grid = BenchConfig(algos=["random", "ppo", "a2c"], tasks=["target_tokens", "copy"],
                       hyperparams=str(mine))  # fmt: skip
    assert grid.settings["ppo"] == {
        "target_tokens": {"learning_rate": 1e-3, "n_steps": 8},  # the task's own entry
        "copy": {"learning_rate": 1e-3, "n_steps": 16},
    }
    assert grid.settings["a2c"]["copy"]["learning_rate"] == 3e-4  # no file of mine: shipped
    assert grid.settings["random"]["copy"] == {}
    every = BenchConfig(algos=["ppo"], tasks=["copy"], learning_rate=0.01, hyperparams=str(mine))
    assert every.settings["ppo"]["copy"]["learning_rate"] == 0.01
    # a training function's file is named after it and holds its keyword arguments
    loop = f"{EXAMPLE}:reinforce_loop"
    (mine / "reinforce_loop.yml").write_text("default:\n  episodes_per_update: 4\n")
    assert BenchConfig(algos=[loop], tasks=["copy"], hyperparams=str(mine)).settings[
        canonical_algo(loop)
    ] == {"copy": {"episodes_per_update": 4}}
    bad = {
        "default:\n  learning_rte: 1e-3\n": r"did you mean 'learning_rate'",
        "default:\n  timesteps: 10\n": r"sets \['timesteps'\], which the grid decides",
        "default: 3\n": r"expects `default:` to hold a mapping of settings, got int",
    }
    for text, message in bad.items():
        (mine / "a2c.yml").write_text(text)
        with pytest.raises(TextGenValueError, match=message):
            BenchConfig(algos=["a2c"], tasks=["copy"], hyperparams=str(mine))
    (mine / "reinforce_loop.yml").write_text("default:\n  lr: 1\n")
    with pytest.raises(TextGenValueError, match=r"sets \['lr'\], which the training function"):
        BenchConfig(algos=[loop], tasks=["copy"], hyperparams=str(mine))
    (mine / "a2c.yml").write_text("default:\n  learning_rate: fast\n")  # a bad value: now
    with pytest.raises(TextGenValueError, match=r"a2c on copy with .*a2c.yml: .*learning_rate"):
        BenchConfig(algos=["a2c"], tasks=["copy"], hyperparams=str(mine))
    (mine / "a2c.yml").write_text("target_token:\n  n_steps: 8\n")  # an entry for no task
    with pytest.raises(TextGenValueError, match=r"'target_token' names no task \(did you mean"):
        BenchConfig(algos=["a2c"], tasks=["copy"], hyperparams=str(mine))
    (mine / "a2c.yml").unlink()
    # a grid records the settings each cell ran with: an edited file is refused, not mixed
    out = tmp_path / "grid"
    argv = ["bench", "--algos", "random,ppo", *GRID, "--model", "random-tiny", "--out", str(out)]
    assert cli.main([*argv, "--hyperparams", str(mine)]) == 0
    recorded = json.loads((out / "grid.json").read_text())["settings"]
    assert recorded["ppo"]["target_tokens"] == {"learning_rate": 1e-3, "n_steps": 8}
    assert cli.main(argv) == 2  # the shipped ppo.yml: other settings
    # ... but algorithms, tasks and seeds may join a grid (their cells are new)
    more = ["bench", "--algos", "random,ppo,dqn", *GRID, "--model", "random-tiny"]
    assert cli.main([*more, "--hyperparams", str(mine), "--out", str(out)]) == 0
    assert set(json.loads((out / "grid.json").read_text())["settings"]) == {"random", "ppo", "dqn"}
    # a grid recorded before the hyperparameter files (one learning rate for every cell) goes on
    old = tmp_path / "old"
    again = ["bench", "--algos", "random,a2c", *GRID, "--model", "random-tiny", "--out", str(old)]
    assert cli.main(again) == 0
    shared = {"timesteps": 64, "model": "random-tiny", "n_envs": 4, "eval_episodes": 4}
    (old / "grid.json").write_text(json.dumps({**shared, "learning_rate": 3e-4}))
    assert cli.main(again) == 0
    (old / "grid.json").write_text(json.dumps({**shared, "learning_rate": 1e-3}))
    assert cli.main(again) == 2
