"""Fault injection through `textgen train`: a scorer that fails in the middle of a run, and a run
folder that cannot be written. Each must stop with a clear error, leave the run folder whole, and
(once the cause is gone) let `--resume` finish the run. kill -9 trials are in test_cli.py and, at
length, in benchmarks/fault_injection.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stable_baselines3 import PPO

from agents.callbacks import read_metrics

pytestmark = pytest.mark.slow

# A reward that misbehaves from its N-th call on, as FLAKY_MODE says: a service that goes down,
# a bug that returns NaN, a call that never returns.
FLAKY = """
import math, os, time
from pathlib import Path

def reward(prompt, completion):
    state = Path(os.environ["FLAKY_STATE"])
    mode, after, calls = state.read_text().split()
    state.write_text(f"{mode} {after} {int(calls) + 1}")
    if mode != "ok" and int(calls) >= int(after):
        if mode == "raise":
            raise ConnectionError("reward service down")
        if mode == "nan":
            return math.nan
        time.sleep(3600)
    return min(1.0, len(completion) / 20)
"""

TINY = [
    "--model", "random-tiny",
    "--env-id", "TextGen-v0",
    "--n-envs", "4", "--n-steps", "16", "--batch-size", "32", "--n-epochs", "1",
    "--eval-episodes", "4", "--checkpoint-every", "64", "--no-progress-bar",
]  # fmt: skip


def textgen(args, process=False, timeout=300):
    """`textgen ARGS`: in this process (tests.helpers.textgen), or in a fresh Python with
    this process's environment (`process=True`: the scorer that hangs, whose thread would
    outlive the call)."""
    if process:
        return subprocess.run(
            [sys.executable, "-m", "agents.cli", *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    from tests.helpers import textgen as in_process

    return in_process(*args, check=False)


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    (tmp_path / "flaky_reward.py").write_text(FLAKY)
    state = tmp_path / "state"
    monkeypatch.setenv("FLAKY_STATE", str(state))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flaky_reward", raising=False)  # another test's copy
    return state


@pytest.mark.parametrize(
    "mode, message",
    [
        ("raise", "Scorer 'reward' raised ConnectionError: reward service down"),
        ("nan", r"Scorer 'reward' returned nan \(not finite\)"),
        ("hang", "Scorer 'reward' did not return within its timeout of 2 s"),
    ],
)
def test_scorer_failing_mid_run_then_resume(tmp_path, flaky, mode, message):
    import re

    state = flaky
    run = tmp_path / "run"
    # 4 "before" episodes, then about 10 episodes per 64-step rollout: it fails in rollout 3 or 4
    state.write_text(f"{mode} 30 0")
    kwargs = {"scorer": "flaky_reward:reward", "scorer_timeout": 2, "max_new_tokens": 6}
    args = ["train", *TINY, "--env-kwargs", json.dumps(kwargs), "--timesteps", 512]
    r = textgen([*args, "--out", run], process=mode == "hang")
    assert r.returncode == 2, r.stderr[-2000:]
    assert re.search(message, r.stderr), r.stderr
    assert f"textgen train --resume {run}" in r.stderr and "Traceback" not in r.stderr
    # the run folder is whole: the checkpoint loads, metrics are continuous
    saved = PPO.load(run / "checkpoints" / "latest.zip").num_timesteps
    assert saved >= 64
    steps = [int(row["timesteps"]) for row in read_metrics(run / "metrics.csv")]
    assert steps == list(range(64, steps[-1] + 1, 64)) and steps[-1] >= saved
    # the scorer is fixed: --resume finishes the run
    state.write_text("ok 0 0")
    r = textgen(["train", "--resume", run])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming {run} at {saved} of 512 steps" in r.stdout
    assert PPO.load(run / "model.zip").num_timesteps == 512
    steps = [int(row["timesteps"]) for row in read_metrics(run / "metrics.csv")]
    assert steps == list(range(64, 513, 64))


def make_read_only(path: Path) -> bool:
    """chmod a-w (and, for root, whom permissions do not stop, chattr +i); True if it worked."""
    path.chmod(0o555)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    probe = path / "probe"
    try:
        probe.write_text("x")
    except OSError:
        return True
    probe.unlink()
    return False


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o755)


def test_read_only_run_folder(tmp_path):
    run = tmp_path / "run"
    ok = textgen(
        ["train", *TINY, "--env-id", "TextGenTargetTokens-v0", "--timesteps", 64, "--out", run]
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    if not make_read_only(run):
        make_writable(run)
        pytest.skip("this filesystem cannot make a folder read-only for this user")
    try:
        r = textgen(["train", "--resume", run, "--timesteps", 128])
    finally:
        make_writable(run)
    assert r.returncode == 2, r.stderr[-2000:]
    assert f"Cannot write to run folder {run}" in r.stderr and "Traceback" not in r.stderr
    assert PPO.load(run / "model.zip").num_timesteps == 64  # nothing was lost
    r = textgen(["train", "--resume", run, "--timesteps", 128])  # writable again: it goes on
    assert r.returncode == 0, r.stderr[-2000:]
    assert PPO.load(run / "model.zip").num_timesteps == 128
