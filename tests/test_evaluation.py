"""Evaluation: episode returns, seeded sampling that leaves the caller's random streams alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

import agents
from agents.evaluation import sample_episodes

SCORED = {"max_new_tokens": 6, "scorer": "length", "scorer_kwargs": {"target": 3}}


def make(seed=0, env_id="TextGen-v0", **env_kwargs):
    env = agents.make_vec_env(env_id, n_envs=2, **{**SCORED, **env_kwargs})
    return agents.make_algo(
        "ppo", env, {"model": "random-tiny"}, n_steps=8, batch_size=16, seed=seed
    )


def test_episode_returns_with_dense_rewards():
    """Dense rewards add up to the sparse one, so evaluation reports the same returns (bug: it
    kept only the last step's reward)."""
    model = make()
    sparse = sample_episodes(model, "TextGen-v0", SCORED, n=6, seed=1)
    dense = sample_episodes(model, "TextGen-v0", {**SCORED, "dense_reward": True}, n=6, seed=1)
    assert [s.completion for s in sparse] == [s.completion for s in dense]
    # SB3's VecEnv API carries rewards as float32: the per-step rounding stays below 1e-6
    np.testing.assert_allclose([s.reward for s in dense], [s.reward for s in sparse], atol=1e-6)
    assert any(s.reward > 0 for s in sparse)


@pytest.mark.parametrize("deterministic", [False, True])
def test_sampling_is_seeded_and_leaves_the_rng_alone(deterministic):
    model = make()
    th.manual_seed(7)
    expected = th.rand(4)
    th.manual_seed(7)
    first = sample_episodes(model, "TextGen-v0", SCORED, n=4, seed=3, deterministic=deterministic)
    th.testing.assert_close(th.rand(4), expected, rtol=0, atol=0)
    again = sample_episodes(model, "TextGen-v0", SCORED, n=4, seed=3, deterministic=deterministic)
    assert first == again


def test_exact_evaluation_runs_in_float64_and_leaves_the_weights_as_they_were():
    """On a CPU the held-out episodes come from the policy in float64 (the same episodes on
    every CPU: benchmarks/cpu_divergence.py); its float32 weights come back bit for bit, as the
    same objects the optimizer holds."""
    model = make()
    model.learn(16)
    params = list(model.policy.parameters())
    before = [p.detach().clone() for p in params]
    seen = []
    real = model.policy.get_distribution

    def spy(obs, *args, **kwargs):
        seen.append(next(model.policy.parameters()).dtype)
        return real(obs, *args, **kwargs)

    model.policy.get_distribution = spy
    sample_episodes(model, "TextGen-v0", SCORED, n=2, seed=0)
    assert seen and set(seen) == {th.float64}
    seen.clear()
    sample_episodes(model, "TextGen-v0", SCORED, n=2, seed=0, exact=False)
    assert seen and set(seen) == {th.float32}
    del model.policy.get_distribution
    assert all(p.dtype == th.float32 for p in params)
    assert all(th.equal(p, q) for p, q in zip(params, before, strict=True))
    group = model.policy.optimizer.param_groups[0]["params"]
    assert all(any(p is q for q in params) for p in group)
    model.learn(16)  # trains on as before
