"""The `textgen` CLI as a user runs it: train, eval, generate, resume, and its errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.callbacks import read_metrics
from agents.config import load_config
from tests.helpers import textgen

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


def test_train_eval_generate(tmp_path):
    run = tmp_path / "smoke"
    out = textgen(  # once in a fresh process, as a user runs it
        "train", *TINY, "--timesteps", 250, "--checkpoint-every", 128, "--out", run, process=True
    ).stdout
    assert "trained 256 steps" in out  # what ran: whole rollouts of 4 envs x 16 steps
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
    assert load_config(run / "config.yaml").timesteps == 250

    out = textgen("eval", run, "--episodes", 4).stdout
    assert "mean reward:" in out and "over 4 episodes" in out
    out = textgen("generate", run, "--prompt", "The acting was", "-n", 2).stdout
    assert out.count("The acting was«") == 2


def start_training(run, timesteps=100_000, every=64):
    cmd = [sys.executable, "-m", "agents.cli", "train", *TINY, "--timesteps", str(timesteps)]
    cmd += ["--checkpoint-every", str(every), "--out", str(run)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    return path.exists()


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before the first checkpoint", "after a checkpoint"])
def test_resume_after_killed_run(tmp_path, when):
    """kill -9 at two points of a run; --resume finishes it with whole files and metrics."""
    run = tmp_path / "killed"
    proc = start_training(run)
    ckpt = run / "checkpoints" / "latest.zip"
    first = run / "config.yaml" if when.startswith("before") else ckpt
    assert wait_for(first, proc), f"{first} was never written"
    if not when.startswith("before"):
        time.sleep(0.5)  # into the next rollouts, maybe mid-write of the next checkpoint
    os.kill(proc.pid, signal.SIGKILL)  # a hard crash
    proc.wait()
    from stable_baselines3 import PPO

    saved = PPO.load(ckpt).num_timesteps if ckpt.exists() else 0  # a checkpoint is whole
    assert (saved >= 64) == (when == "after a checkpoint")
    target = saved + 256
    out = textgen("train", "--resume", run, "--timesteps", target).stdout
    if saved:
        assert f"resuming {run} at {saved} of {target} steps" in out
    else:
        assert "has no checkpoint yet (its start failed): starting it from step 0" in out
    assert PPO.load(run / "model.zip").num_timesteps == target
    steps = [int(r["timesteps"]) for r in read_metrics(run / "metrics.csv")]
    assert steps == list(range(64, target + 1, 64))  # continuous, no step twice
    assert not list(run.rglob("*.tmp"))  # nothing half-written left behind


def test_resume_of_a_failed_start_removes_its_half_written_files(tmp_path):
    """A run killed before its first checkpoint may be mid-write of samples_before.json."""
    run = tmp_path / "r"
    textgen("train", *TINY, "--timesteps", 64, "--out", run)
    (run / "model.zip").unlink()  # as if killed before any checkpoint
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    partial = run / "samples_before.json.k2j4x9.tmp"
    partial.write_text('{"half": ')
    foreign = run / "notes.tmp"  # not ours: kept
    foreign.write_text("mine")
    out = textgen("train", "--resume", run).stdout
    assert "its start failed" in out and f"removed {partial}" in out
    assert not partial.exists() and foreign.read_text() == "mine"
    assert (run / "model.zip").is_file()
    # killed while writing its very first file: no config yet, so it is started again with --out
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    partial = fresh / "config.yaml.q8w3e1.tmp"
    partial.write_text("algo: pp")
    out = textgen("train", *TINY, "--timesteps", 64, "--out", fresh).stdout
    assert f"removed {partial}" in out and not partial.exists()


def test_abbreviated_and_unknown_flags_are_errors(tmp_path):
    r = textgen("train", "--timestep", 5, "--out", tmp_path / "x", check=False)
    assert r.returncode == 2
    assert "unrecognized argument --timestep; did you mean --timesteps?" in r.stderr
    assert not (tmp_path / "x").exists()
    r = textgen("eval", tmp_path, "--episode", 3, check=False)
    assert r.returncode == 2 and "did you mean --episodes?" in r.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--env-id", "Nope-v0"], r"Unknown env id 'Nope-v0'"),
        (
            ["--env-kwargs", '{"max_new_tokens": 0}'],
            "Expects max_new_tokens to be an int >= 1 or None, got 0",
        ),
        (
            ["--env-kwargs", '{"max_tokens": 3}'],
            r"got an unexpected keyword argument 'max_tokens'. Did you mean 'max_new_tokens'\?",
        ),
        (["--model", "no-such-model-xyz"], "Cannot resolve model 'no-such-model-xyz'"),
        (["--n-envs", "0"], "Expects n_envs >= 1, got 0"),
        (["--device", "tpu"], "Expects device 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'"),
    ],
)
def test_bad_settings_fail_before_the_run_folder_exists(tmp_path, flags, message, capsys):
    import re

    from agents import cli

    run = tmp_path / "bad"
    code = cli.main(["train", *TINY, *flags, "--timesteps", "64", "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not run.exists()
    if flags[0] == "--env-id":  # the same folder then takes a good start
        textgen("train", *TINY, "--timesteps", 64, "--out", run)
        assert (run / "model.zip").is_file()


def test_resume_refuses_settings_it_cannot_honour(tmp_path):
    run = tmp_path / "r"
    textgen("train", *TINY, "--timesteps", 64, "--out", run)
    r = textgen("train", "--resume", run, "--learning-rate", 0.5, "--timesteps", 128, check=False)
    assert r.returncode == 2
    assert "learning_rate: saved 0.001, given 0.5" in r.stderr and "--resume" in r.stderr
    same = textgen("train", "--resume", run, "--learning-rate", 0.001, "--timesteps", 128)
    assert "resuming" in same.stdout  # repeating a saved value is fine


def test_expected_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    from agents import cli, commands
    from gym_textgen.errors import TextGenValueError

    def bad_setting(*args, **kwargs):
        raise TextGenValueError("Expects a good setting, got a bad one")

    monkeypatch.setattr(commands, "evaluate_run", bad_setting)
    assert cli.main(["eval", "somewhere"]) == 2
    assert capsys.readouterr().err == "textgen eval: error: Expects a good setting, got a bad one\n"
    with pytest.raises(TextGenValueError):
        cli.main(["--debug", "eval", "somewhere"])

    def bug(*args, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(commands, "evaluate_run", bug)
    with pytest.raises(ValueError, match="an internal bug"):  # not swallowed as "bad input"
        cli.main(["eval", "somewhere"])


def test_small_cli_arguments(capsys):
    from agents import cli

    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", "somewhere", "--episodes", "0"])
    assert exit_.value.code == 2
    assert "argument --episodes: expects an integer >= 1, got 0" in capsys.readouterr().err
    args = cli.parser().parse_args(["eval", "somewhere", "--debug"])  # after the command too
    assert args.debug


def test_version_and_fast_help():
    out = textgen("--version", process=True).stdout
    assert out.startswith("textgen (gym-textgen) ")
    code = "import sys, agents.cli; print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]"  # the command line is parsed before torch is imported


def test_unknown_algorithm_and_config_key(tmp_path):
    r = textgen("train", "--algo", "sac", "--out", tmp_path / "x", check=False)
    assert r.returncode == 2 and (
        "Unknown algorithm 'sac'; expected one of ['a2c', 'dqn', 'maskable_ppo', 'ppo', "
        "'reinforce']" in r.stderr
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: ppo\nlearning_rte: 0.1\n")
    r = textgen("train", "--config", bad, check=False)
    assert (
        r.returncode == 2
        and "Unknown config key(s) ['learning_rte'] (did you mean 'learning_rate'?); valid keys:"
        in r.stderr
    )


def test_missing_and_corrupt_checkpoint(tmp_path):
    r = textgen("eval", tmp_path / "nowhere", check=False)
    assert r.returncode == 2 and "nowhere does not exist: expected a run folder" in r.stderr
    run = tmp_path / "corrupt"
    run.mkdir()
    (run / "config.yaml").write_text("algo: ppo\nmodel: random-tiny\n")
    r = textgen("eval", run, check=False)
    assert r.returncode == 2 and "No model in" in r.stderr
    (run / "model.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    r = textgen("eval", run, check=False)
    assert r.returncode == 2 and "is corrupt or unreadable" in r.stderr
    r = textgen("train", "--resume", run, check=False)
    assert r.returncode == 2 and "is corrupt or unreadable" in r.stderr


FLOAT = r"(-?\d+\.\d+)"


@pytest.mark.parametrize(
    "script, args, pattern, episodes",
    [
        ("01_random_agent.py", ["--episodes", "2"], rf"mean return of a random agent: {FLOAT}", 2),
        (
            "02_ppo_synthetic.py",
            ["--timesteps", "256"],
            rf"mean reward over the last \d+ episodes: {FLOAT}",
            0,
        ),
        (
            "03_ppo_sentiment.py",
            ["--timesteps", "128", "--eval-episodes", "2", "--max-new-tokens", "8"],
            rf"mean sentiment reward: before {FLOAT}, after {FLOAT}",
            2,
        ),
        (
            "04_custom_task_and_scorer.py",
            ["--timesteps", "128", "--eval-episodes", "2", "--max-new-tokens", "8"],
            rf"mean food reward: before {FLOAT}, after {FLOAT}",
            2,
        ),
        (
            "05_summarize_or_translate.py",
            ["--timesteps", "128", "--eval-episodes", "2", "--max-new-tokens", "8"],
            rf"mean ROUGE-L: before {FLOAT}, after {FLOAT}",
            2,
        ),
    ],
)
def test_examples_smoke(script, args, pattern, episodes, monkeypatch, capsys):
    """Each example runs with a tiny budget and reports rewards that are real numbers in [0, 1],
    with the episodes it shows (prompt«completion»). Run as `python examples/X.py ARGS` would
    run it (as __main__, with its argv), in this process."""
    import math
    import re
    import runpy

    path = Path(__file__).resolve().parents[1] / "examples" / script
    monkeypatch.setattr(sys, "argv", [str(path), *args])
    monkeypatch.syspath_prepend(str(path.parent))  # as python puts the script's folder first
    runpy.run_path(str(path), run_name="__main__")
    stdout = capsys.readouterr().out
    found = re.search(pattern, stdout)
    assert found, stdout[-2000:]
    values = [float(v) for v in found.groups()]
    assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), values
    shown = re.findall(r"«[^«»]*»", stdout)  # a completion may hold a newline
    assert len(shown) >= episodes


def test_make_train_config_is_valid():
    """`make train` reads configs/default.yaml: every key valid, the headline settings in place."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml")
    assert (cfg.algo, cfg.model, cfg.env_id) == ("reinforce", "default", "TextGen-v0")
    assert (cfg.baseline, cfg.group_size) == ("rloo", 4) and cfg.n_envs % cfg.group_size == 0
    assert cfg.kl_coef > 0 and cfg.kl_in_loss and cfg.kl_coef_target <= 2.0  # issue 11's budget
    assert cfg.kv_cache and cfg.group_sequences and cfg.out == ""


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_configs_are_valid(path):
    """Every config in configs/ loads: known keys, valid values (no run is started)."""
    cfg = load_config(path)
    assert cfg.out == ""  # a shipped config never writes into a fixed folder


def test_help_lists_every_config_key():
    from dataclasses import fields

    from agents.config import TrainConfig

    out = textgen("train", "--help").stdout  # a "%" in a field's doc once broke argparse's help
    for f in fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "--no-progress-bar" in out and "--resume" in out and "up to 20%" in out


@pytest.mark.parametrize(
    "algo, extra",
    [
        ("a2c", []),
        ("maskable_ppo", []),
        ("reinforce", ["--group-size", "2", "--n-epochs", "1", "--kl-coef", "0.05"]),
        ("reinforce", ["--group-size", "2", "--kl-coef", "0.05", "--kl-in-loss"]),
    ],
    ids=["a2c", "maskable_ppo", "reinforce", "reinforce-kl-in-loss"],
)
def test_train_other_algorithms(tmp_path, algo, extra):
    run = tmp_path / algo
    out = textgen(
        "train", *TINY, "--algo", algo, "--timesteps", 64, "--out", run, "--lora", '{"r": 4}',
        *extra,
    ).stdout  # fmt: skip
    assert "mean reward after training" in out and (run / "model.zip").is_file()
    assert "over 4 episodes" in textgen("eval", run, "--episodes", 4).stdout
    rows = read_metrics(run / "metrics.csv")
    steps = [int(r["timesteps"]) for r in rows]
    assert steps and steps == sorted(steps) and steps[-1] >= 64
    if "--kl-in-loss" in extra:  # the update's exact KL (LoRA: to the frozen base), from row 2
        # >= 0 up to float32 round-off: at LoRA's start the two distributions are equal, and
        # the sum of p * (log p - log q) came out at -3.8e-8 (measured)
        kls = [float(r["kl/ref_per_token"]) for r in rows[1:]]
        assert kls and min(kls) > -1e-6, kls


def test_logs_hold_reward_components_and_kl(tmp_path):
    """metrics.csv and TensorBoard get reward/<component> and kl/* figures, one row per rollout."""
    import json
    import math

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "logged"
    scorer = {"target_tokens": 1.0, "length": 0.5}
    env_kwargs = json.dumps({"max_new_tokens": 6, "stop_on_eos": False, "scorer": scorer})
    textgen(
        "train", *TINY, "--env-kwargs", env_kwargs, "--kl-coef", 0.05, "--timesteps", 128,
        "--out", run,
    )  # fmt: skip
    rows = read_metrics(run / "metrics.csv")
    assert [int(r["timesteps"]) for r in rows] == [64, 128]
    for row in rows:
        for key in ("reward/total", "reward/target_tokens", "reward/length", "kl/ref_per_episode"):
            assert math.isfinite(float(row[key])), (key, row)
        assert float(row["kl/coef"]) == 0.05
        # the total is the weighted sum of the components' means
        expected = float(row["reward/target_tokens"]) + 0.5 * float(row["reward/length"])
        assert abs(float(row["reward/total"]) - expected) < 1e-5
    (events,) = (run / "tb").rglob("events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"reward/total", "reward/target_tokens", "reward/length", "kl/coef"} <= set(tags)


def test_eval_mean_std_json_and_untrained_baseline(tmp_path):
    import json

    run = tmp_path / "r"
    textgen("train", *TINY, "--timesteps", 64, "--out", run)
    out = textgen("eval", run, "--episodes", 4, "--json", tmp_path / "run.json").stdout
    result = json.loads((tmp_path / "run.json").read_text())
    assert f"mean reward: {result['mean']:.3f} ± {result['std']:.3f} (std) over 4 episodes" in out
    assert len(result["samples"]) == 4 and result["env_id"] == "TextGenTargetTokens-v0"
    # a bare model name: the untrained policy, on the env given
    out = textgen(
        "eval", "random-tiny", "--env-id", "TextGenTargetTokens-v0",
        "--env-kwargs", '{"max_new_tokens": 6, "stop_on_eos": false}',
        "--episodes", 4, "--json", tmp_path / "base.json",
    ).stdout  # fmt: skip
    base = json.loads((tmp_path / "base.json").read_text())
    assert base["target"] == "random-tiny" and base["episodes"] == 4
    assert 0.0 <= base["mean"] <= 1.0 and "mean reward:" in out
