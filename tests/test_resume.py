"""A resumed cell equals the straight run, bitwise on the same machine (issue 39): a cell killed
with SIGKILL after a checkpoint, resumed, killed again after a later one and resumed to the end
gives the straight run's held-out rewards, learning curve and step counts (it used to reset the
open episodes and every random stream: another number, and nothing said so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from agents.bench import BenchConfig
from agents.bench.cells import run_cell
from agents.bench.grid import cell_folder

pytestmark = pytest.mark.slow

RUN = "import json, sys; from agents.bench.cells import run_cell; run_cell(json.load(open(sys.argv[1])))"


def spec_for(out, algo="ppo"):
    cfg = BenchConfig(algos=[algo], tasks=["target_tokens"], seeds=1, first_seed=3,
                      timesteps=1536, n_envs=4, eval_episodes=4, model="random-tiny",
                      task_env={"target_tokens": {"max_new_tokens": 8}}, out=str(out))  # fmt: skip
    (spec,) = cfg.cells()
    return spec


def checkpoint_step(spec) -> int:
    """The step of the cell's checkpoint (0: none yet)."""
    path = cell_folder(spec) / "run" / "checkpoints" / "latest.zip"
    try:
        with zipfile.ZipFile(path) as z:
            return int(json.loads(z.read("data"))["num_timesteps"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0


def kill_after_checkpoint(spec, tmp_path, after: int) -> int:
    """Run the cell in a fresh process and SIGKILL it as soon as its checkpoint is past step
    `after`; returns that checkpoint's step."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while (step := checkpoint_step(spec)) <= after:
            assert proc.poll() is None, "the cell ended before a checkpoint to kill it after"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (cell_folder(spec) / "result.json").exists()
    return step


@pytest.mark.parametrize("algo", ["ppo", "reinforce-rloo"])
def test_a_cell_killed_at_two_checkpoints_and_resumed_equals_the_straight_run(tmp_path, algo):
    straight = run_cell(spec_for(tmp_path / "straight", algo))
    spec = spec_for(tmp_path / "killed", algo)
    first = kill_after_checkpoint(spec, tmp_path, 0)
    second = kill_after_checkpoint(spec, tmp_path, first)
    assert 0 < first < second < spec["timesteps"]
    resumed = run_cell(spec)
    same = ("before", "after", "curve", "timesteps", "steps")
    assert {k: resumed[k] for k in same} == {k: straight[k] for k in same}
    assert resumed["resumes"] == 2 and resumed["resumed"] is False  # both exact
    runs = [cell_folder(s) / "run" for s in (spec_for(tmp_path / "straight", algo), spec)]
    assert [(r / "metrics.csv").read_text() for r in runs][0] == (
        runs[1] / "metrics.csv"
    ).read_text()
