"""The `textgen` CLI as a user runs it: train, eval, generate, resume, and its errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.callbacks import read_metrics
from agents.cli import load_config

TINY = [
    "--model",
    "random-tiny",
    "--env-id",
    "TextGenTargetTokens-v0",
    "--env-kwargs",
    '{"max_new_tokens": 6, "stop_on_eos": false}',
    "--n-envs",
    "4",
    "--n-steps",
    "16",
    "--batch-size",
    "32",
    "--n-epochs",
    "2",
    "--learning-rate",
    "0.001",
    "--eval-episodes",
    "4",
    "--no-progress-bar",
]


def textgen(*args, check=True, timeout=300):
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_train_eval_generate(tmp_path):
    run = tmp_path / "smoke"
    out = textgen(
        "train", *TINY, "--timesteps", 256, "--checkpoint-every", 128, "--out", run
    ).stdout
    assert "mean reward before training" in out and "mean reward after training" in out
    for name in (
        "config.yaml",
        "model.zip",
        "checkpoints/latest.zip",
        "metrics.csv",
        "curve.png",
        "samples.md",
        "hf_model/config.json",
        "hf_model/tokenizer.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run / "tb").rglob("events.out.tfevents.*"))
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["timesteps"]) for r in rows] == [64, 128, 192, 256]
    samples = (run / "samples.md").read_text()
    assert "## Before training" in samples and "## After 256 steps" in samples
    assert load_config(run / "config.yaml").timesteps == 256

    out = textgen("eval", run, "--episodes", 4).stdout
    assert "mean reward:" in out and "over 4 episodes" in out
    out = textgen("generate", run, "--prompt", "The acting was", "-n", 2).stdout
    assert out.count("The acting was«") == 2


def test_resume_after_killed_run(tmp_path):
    run = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "agents.cli",
        "train",
        *TINY,
        "--timesteps",
        "100000",
        "--checkpoint-every",
        "64",
        "--out",
        str(run),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run / "checkpoints" / "latest.zip"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)  # a hard crash, possibly mid-write of the next checkpoint
    proc.wait()
    assert ckpt.is_file(), "no checkpoint was written before the kill"
    from stable_baselines3 import PPO

    saved = PPO.load(ckpt).num_timesteps  # the checkpoint is whole and loads
    assert saved >= 64
    target = saved + 256
    out = textgen("train", "--resume", run, "--timesteps", target).stdout
    assert f"resuming {run} at {saved} of {target} steps" in out
    assert PPO.load(run / "model.zip").num_timesteps == target
    steps = [int(r["timesteps"]) for r in read_metrics(run / "metrics.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == target  # no rows repeated after resuming


def test_unknown_algorithm_and_config_key(tmp_path):
    r = textgen("train", "--algo", "dqn", "--out", tmp_path / "x", check=False)
    assert (
        r.returncode == 2
        and "Unknown algorithm 'dqn'; expected one of ['a2c', 'maskable_ppo', 'ppo']" in r.stderr
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: ppo\nlearning_rte: 0.1\n")
    r = textgen("train", "--config", bad, check=False)
    assert r.returncode == 2 and "Unknown config key(s) ['learning_rte']; valid keys:" in r.stderr


def test_missing_and_corrupt_checkpoint(tmp_path):
    r = textgen("eval", tmp_path / "nowhere", check=False)
    assert r.returncode == 2 and "does not exist" in r.stderr
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / "config.yaml").write_text("algo: ppo\nmodel: random-tiny\n")
    r = textgen("eval", run, check=False)
    assert r.returncode == 2 and "No model in" in r.stderr
    (run / "model.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    r = textgen("eval", run, check=False)
    assert r.returncode == 2 and "is corrupt or unreadable" in r.stderr
    r = textgen("train", "--resume", run, check=False)
    assert r.returncode == 2 and "no checkpoint at" in r.stderr


@pytest.mark.parametrize(
    "script, args",
    [
        ("01_random_agent.py", ["--episodes", "2"]),
        ("02_ppo_synthetic.py", ["--timesteps", "256"]),
        (
            "03_ppo_sentiment.py",
            ["--timesteps", "128", "--eval-episodes", "2", "--max-new-tokens", "8"],
        ),
    ],
)
def test_examples_smoke(script, args):
    path = Path(__file__).resolve().parents[1] / "examples" / script
    result = subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mean" in result.stdout


def test_make_train_config_is_valid():
    """`make train` reads configs/default.yaml: every key valid, the headline settings in place."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert (cfg.algo, cfg.model, cfg.env_id) == ("ppo", "default", "TextGen-v0")
    assert cfg.kl_coef > 0 and cfg.fast and cfg.out == ""


def test_help_lists_every_config_key():
    out = textgen("train", "--help").stdout
    for key in ("--learning-rate", "--kl-coef", "--env-kwargs", "--no-progress-bar", "--resume"):
        assert key in out


@pytest.mark.parametrize("algo", ["a2c", "maskable_ppo"])
def test_train_other_algorithms(tmp_path, algo):
    run = tmp_path / algo
    out = textgen(
        "train", *TINY, "--algo", algo, "--timesteps", 64, "--out", run, "--lora", '{"r": 4}'
    ).stdout
    assert "mean reward after training" in out and (run / "model.zip").is_file()
    assert "over 4 episodes" in textgen("eval", run, "--episodes", 4).stdout
