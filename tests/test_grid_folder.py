"""A grid owns its folder (issue 39): one `run_bench` at a time (a lock that a kill -9 frees),
outputs from every cell the folder ever ran, your own algorithm's code guarded like its
settings, and `--against suite-v1` never shadowed by a local folder."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from agents.bench import BenchConfig, published, run_bench
from gym_textgen.errors import TextGenValueError

TINY = dict(tasks=["target_tokens"], seeds=1, n_envs=2, eval_episodes=2, timesteps=64,
            model="random-tiny")  # fmt: skip

# your own training function: a uniformly random policy, trained by nothing (a cell in seconds)
ALGO = textwrap.dedent(
    """
    from agents.bench import RandomAgent


    def train(make_env, timesteps, seed):
        env = make_env()
        mask = env.unwrapped.action_masks()
        env.close()
        return RandomAgent(mask, seed)
    """
)


def test_a_second_grid_on_a_held_folder_is_refused_naming_the_holder_until_kill_9(tmp_path):
    out = tmp_path / "grid"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from agents.bench.folder import GridLock\n"
         f"with GridLock({str(out)!r}):\n    print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            TextGenValueError, match=f"in use by another textgen bench .pid {holder.pid} on"
        ):
            run_bench(BenchConfig(algos=["random"], out=str(out), **TINY))
        assert not (out / "grid.json").exists()  # refused before anything was written
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    run_bench(BenchConfig(algos=["random"], out=str(out), **TINY))  # the kernel freed the lock
    assert (out / "results.csv").is_file() and not (out / ".grid.lock.json").exists()


def test_an_algorithm_joining_a_grid_keeps_the_earlier_ones_in_every_output(tmp_path):
    algo = tmp_path / "algo.py"
    algo.write_text(ALGO)
    out = str(tmp_path / "grid")
    run_bench(BenchConfig(algos=["random"], out=out, **TINY))
    run_bench(BenchConfig(algos=[f"{algo}:train"], out=out, **TINY))
    with open(f"{out}/results.csv") as f:
        algos = sorted(row["algo"] for row in csv.DictReader(f))
    assert algos == sorted(["random", f"{algo}:train"])  # random was dropped
    assert len(json.loads(open(f"{out}/results.json").read())) == 2
    assert "| random |" in open(f"{out}/results.md").read()


def test_an_edited_algorithm_is_refused_on_its_old_cells(tmp_path):
    algo = tmp_path / "algo.py"
    algo.write_text(ALGO)
    cfg = dict(algos=[f"{algo}:train"], out=str(tmp_path / "grid"), **TINY)
    run_bench(BenchConfig(**cfg))
    algo.write_text(ALGO.replace("trained by nothing", "") + "\nSTEP = 2\n")
    with pytest.raises(TextGenValueError, match=r"the code of .*algo.py:train changed"):
        run_bench(BenchConfig(**cfg))
    algo.write_text(ALGO)  # the code it ran with: the finished cell is read back
    assert len(json.loads(run_bench(BenchConfig(**cfg))["json"].read_text())) == 1


def test_against_suite_v1_is_the_published_suite_even_beside_a_folder_of_that_name(
    tmp_path, monkeypatch
):
    from agents.bench.suites import PUBLISHED

    monkeypatch.chdir(tmp_path)
    (tmp_path / "suite-v1").mkdir()
    assert published("suite-v1") == PUBLISHED / "suite-v1"
    assert published("./suite-v1").resolve() == (tmp_path / "suite-v1").resolve()
    with pytest.raises(TextGenValueError, match="published suite .*got 'suite-v9'"):
        published("suite-v9")


def test_the_lock_is_released_when_a_grid_is_refused(tmp_path):
    cfg = dict(algos=["random"], out=str(tmp_path / "grid"), **TINY)
    run_bench(BenchConfig(**cfg))
    with pytest.raises(TextGenValueError, match="other settings"):
        run_bench(BenchConfig(**{**cfg, "eval_episodes": 3}))  # refused inside the lock
    run_bench(BenchConfig(**cfg))  # a lock still held would refuse this (flock: per open file)


def test_a_grid_from_before_the_cell_list_keeps_its_finished_cells(tmp_path):
    """A grid.json written before it listed its cells (no `cells`, `code`, `eval_split`): a
    rerun that adds an algorithm still reports the cells that finished under it."""
    algo = tmp_path / "algo.py"
    algo.write_text(ALGO)
    out = tmp_path / "grid"
    run_bench(BenchConfig(algos=["random"], out=str(out), **TINY))
    grid = json.loads((out / "grid.json").read_text())
    for key in ("cells", "code", "eval_split"):
        del grid[key]
    (out / "grid.json").write_text(json.dumps(grid))
    run_bench(BenchConfig(algos=[f"{algo}:train"], out=str(out), **TINY))
    with open(out / "results.csv") as f:
        assert sorted(row["algo"] for row in csv.DictReader(f)) == sorted(
            ["random", f"{algo}:train"]
        )
