"""Fault injection: kill -9 `textgen train` at random moments, then `--resume` it to the end.

Each trial starts a tiny run (random-tiny policy, synthetic task, a checkpoint every rollout),
kills it with SIGKILL after a random delay (seeded), resumes it to the target and checks:

* every checkpoint that exists loads (no torn file), and nothing `*.tmp` is left after resuming;
* `metrics.csv` is continuous: one row per rollout, no step twice, none missing;
* a run killed before it wrote its config is started again with the same command;
* the resumed run reaches the target step count and its final reward is comparable to an
  uninterrupted run's (printed side by side).

    python benchmarks/fault_injection.py --trials 10
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import markdown_table
from stable_baselines3 import PPO

from agents.callbacks import read_metrics

ROLLOUT = 256  # 8 envs x 32 steps
TINY = [  # learns: the random policy's 0.25 rises past 0.6 within 8,192 steps
    "--model", "random-tiny", "--env-id", "TextGenTargetTokens-v0",
    "--env-kwargs", '{"max_new_tokens": 8, "stop_on_eos": false}',
    "--n-envs", "8", "--n-steps", "32", "--batch-size", "64", "--n-epochs", "4",
    "--learning-rate", "0.001", "--eval-episodes", "8", "--checkpoint-every", str(ROLLOUT),
    "--no-progress-bar",
]  # fmt: skip


def textgen(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "agents.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def final_reward(run: Path) -> float:
    rows = [r for r in read_metrics(run / "metrics.csv") if r["reward/total"]]
    return float(np.mean([float(r["reward/total"]) for r in rows[-3:]]))


def check(run: Path, target: int) -> list[str]:
    """Problems with a finished run folder (empty when all is well)."""
    problems = []
    if PPO.load(run / "model.zip").num_timesteps != target:
        problems.append("final model has the wrong step count")
    steps = [int(r["timesteps"]) for r in read_metrics(run / "metrics.csv")]
    if steps != list(range(ROLLOUT, target + 1, ROLLOUT)):
        problems.append(f"metrics.csv steps not continuous: {steps}")
    leftovers = list(run.rglob("*.tmp"))
    if leftovers:
        problems.append(f"half-written files left: {leftovers}")
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--timesteps", type=int, default=8192)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="fault-injection-"))

    reference = work / "uninterrupted"
    t0 = time.perf_counter()
    r = textgen("train", *TINY, "--timesteps", str(a.timesteps), "--out", str(reference))
    assert r.returncode == 0, r.stderr[-2000:]
    duration = time.perf_counter() - t0  # kills land anywhere in a run this long
    rows, failures = [], 0
    for trial in range(a.trials):
        run = work / f"trial-{trial}"
        cmd = [sys.executable, "-m", "agents.cli", "train", *TINY]
        cmd += ["--timesteps", str(a.timesteps), "--out", str(run)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.5, duration)
        time.sleep(delay)
        finished_first = proc.poll() is not None
        if not finished_first:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        ckpt = run / "checkpoints" / "latest.zip"
        at = PPO.load(ckpt).num_timesteps if ckpt.exists() else 0  # must load: never torn
        if (run / "config.yaml").exists():
            r = textgen("train", "--resume", str(run))
        else:  # killed before the run began: there is nothing to resume, start it again
            r = textgen(*cmd[3:])
            at = "never began"
        problems = [] if r.returncode == 0 else [f"resume failed: {r.stderr[-300:]}"]
        if not problems:
            problems = check(run, a.timesteps)
        failures += bool(problems)
        rows.append(
            [
                trial,
                f"{delay:.1f} s" + (" (run had ended)" if finished_first else ""),
                at,
                f"{final_reward(run):.3f}" if not problems else "-",
                "ok" if not problems else "; ".join(problems),
            ]
        )
        print(f"trial {trial}: killed after {delay:.1f} s at checkpoint {at}: {rows[-1][-1]}")
    print()
    print(f"uninterrupted run: final reward {final_reward(reference):.3f}")
    print(
        markdown_table(
            ["trial", "killed after", "checkpoint step", "final reward", "outcome"], rows
        )
    )
    print(f"\n{a.trials - failures} of {a.trials} trials resumed to a whole, continuous run")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
