"""Budgets counted, not trusted (issue 39): every cell records the env steps it took as the env
counted them; a suite cell whose settings would pass its budget by a rollout is refused before
any cell runs, and one that took more than its budget and a rollout fails."""

from __future__ import annotations

import json
import textwrap

import pytest

from agents.bench import BenchConfig, run_bench
from gym_textgen.errors import TextGenError, TextGenValueError

# a training function that steps a 2-slot vector env for 3x its budget, then returns a random
# policy (the cell used to record its budget as the steps it took)
GREEDY = textwrap.dedent(
    """
    from agents.bench import RandomAgent


    def train(make_env, timesteps, seed):
        env = make_env(2)
        env.reset(seed=seed)
        for _ in range(3 * timesteps // 2):
            env.step(env.action_space.sample())
        mask = env.unwrapped.action_masks()[0]
        env.close()
        return RandomAgent(mask, seed)
    """
)
SUITE = """version: mine
model: random-tiny
n_envs: 4
eval_episodes: 2
seeds: 1
algos: [random, a2c]
tasks:
  target_tokens: {timesteps: 256, random: 0.25, reference: 1.0}
"""


def test_a_training_functions_steps_are_counted_through_its_envs(tmp_path):
    algo = tmp_path / "greedy.py"
    algo.write_text(GREEDY)
    out = tmp_path / "grid"
    run_bench(BenchConfig(algos=[f"{algo}:train", "a2c"], tasks=["target_tokens"], seeds=1,
                          timesteps=64, n_envs=2, eval_episodes=2, model="random-tiny",
                          out=str(out)))  # fmt: skip
    results = {
        r["algo"].rpartition(":")[2]: r for r in json.loads((out / "results.json").read_text())
    }
    assert results["train"]["steps"] == results["train"]["timesteps"] == 192  # not 64
    a2c = results["a2c"]  # SB3's count and the env's own: 64 steps (the grid's n_steps: 32 x 2)
    assert a2c["timesteps"] == a2c["steps"] == 64
    assert a2c["machine"]["torch"] and a2c["resumes"] == 0 and a2c["resumed"] is False


def test_a_suite_refuses_settings_whose_rollout_passes_the_budget(tmp_path):
    suite = tmp_path / "mine.yml"
    suite.write_text(SUITE)
    hp = tmp_path / "hp"
    hp.mkdir()
    (hp / "a2c.yml").write_text("default: {n_steps: 128}\n")  # 128 x 4 envs = 512 > 256
    from agents.bench import load_suite

    cfg = load_suite(str(suite)).bench_config(hyperparams=str(hp), out=str(tmp_path / "grid"))
    with pytest.raises(
        TextGenValueError,
        match=r"one rollout of 512 env steps is more than the task's budget of 256",
    ):
        run_bench(cfg)
    assert not (tmp_path / "grid").exists()


def test_a_suite_cell_that_takes_more_than_its_budget_fails(tmp_path):
    suite = tmp_path / "mine.yml"
    suite.write_text(SUITE)
    algo = tmp_path / "greedy.py"
    algo.write_text(GREEDY)
    from agents.bench import load_suite

    cfg = load_suite(str(suite)).bench_config(algos=[f"{algo}:train"], out=str(tmp_path / "grid"))
    with pytest.raises(TextGenError, match=r"took 768 env steps on a budget of 256"):
        run_bench(cfg)
