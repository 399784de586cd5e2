"""The algorithm registry: one AlgoSpec per name, read by make_algo, textgen train and the bench."""

from __future__ import annotations

import pytest

import agents
from agents.registry import ALGORITHMS, AlgoSpec, algo_spec, register_algo
from gym_textgen.errors import TextGenValueError


@pytest.fixture
def normalized_a2c():
    """A2C with advantages normalised, registered under its own name for one test."""
    spec = register_algo(
        AlgoSpec(
            name="a2c_normalized",
            algo="stable_baselines3:A2C",
            policy="agents.policies:TransformerPolicy",
            buffer="agents.buffers:EpisodeDictRolloutBuffer",
            defaults={"normalize_advantage": True},
            bench={"n_steps": 8, "gamma": 1.0},
        )
    )
    yield spec
    del ALGORITHMS[spec.name]


def test_a_registered_algorithm_trains_through_textgen_train(normalized_a2c, tmp_path):
    from agents.build import load_run_model
    from agents.config import TrainConfig
    from agents.training import train

    run = tmp_path / "run"
    cfg = TrainConfig(
        algo="a2c_normalized", model="random-tiny", env_id="TextGenTargetTokens-v0",
        env_kwargs={"max_new_tokens": 4}, timesteps=32, n_envs=2, n_steps=8, eval_episodes=2,
        progress_bar=False, out=str(run),
    )  # fmt: skip
    train(cfg)
    model = load_run_model(run)
    assert type(model).__name__ == "A2C" and model.normalize_advantage  # its spec's default
    assert type(model.rollout_buffer).__name__ == "EpisodeDictRolloutBuffer"
    assert model.num_timesteps >= 32


def test_the_bench_runs_a_registered_algorithm_with_its_bench_settings(normalized_a2c):
    from agents.bench import BenchConfig, bench_names, variant

    assert "a2c_normalized" in bench_names()
    assert variant("a2c_normalized") == {"algo": "a2c_normalized"}
    BenchConfig(algos=["a2c_normalized", "random"], tasks=["copy"])  # accepted
    with pytest.raises(TextGenValueError, match="Expects --algos from .*'a2c_normalized'"):
        BenchConfig(algos=["a2c_normalised"], tasks=["copy"])


def test_registry_errors_name_what_is_registered():
    with pytest.raises(TextGenValueError, match=r"Unknown algorithm 'pop'; expected one of \["):
        algo_spec("pop")
    with pytest.raises(TextGenValueError, match="named 'ppo' is registered already"):
        register_algo(AlgoSpec(name="ppo", algo="stable_baselines3:PPO", policy="x:y"))
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=1, max_new_tokens=2)
    with pytest.raises(TextGenValueError, match="'dict' is not a registered algorithm"):
        agents.make_algo(dict, env, {"model": "random-tiny"})
    with pytest.raises(TextGenValueError, match=r"Cannot import 'nowhere:Algo'"):
        AlgoSpec(name="x", algo="nowhere:Algo", policy="x:y").algo_class()


def test_a_subclass_of_a_registered_algorithm_is_built_as_its_parent_is():
    """make_algo(Mine) for `class Mine(PPO)`: Mine, with PPO's policy, buffer and defaults."""
    from stable_baselines3 import DQN, PPO

    class Mine(PPO):
        pass

    class MyDQN(DQN):
        pass

    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=2)
    model = agents.make_algo(Mine, env, {"model": "random-tiny"}, n_steps=4, batch_size=8)
    assert type(model) is Mine
    assert type(model.rollout_buffer).__name__ == "EpisodeDictRolloutBuffer"
    dqn = agents.make_algo(MyDQN, env, {"model": "random-tiny"})
    assert type(dqn) is MyDQN and dqn.exploration_initial_eps == 0.1  # DQN's spec's default
    assert type(dqn.policy).__name__ == "TransformerDQNPolicy"


def test_dqn_ignores_n_steps_its_constructor_means_otherwise():
    """DQN's n_steps is n-step returns: the config's rollout length is not passed to it."""
    assert algo_spec("dqn").accepts(("n_steps", "batch_size", "gamma")) == ["batch_size", "gamma"]
    assert algo_spec("ppo").accepts(("n_steps", "baseline")) == ["n_steps"]
