"""The policy-gradient maths of agents.advantages, against hand computations in float64.

These functions are pure (arrays in, arrays out): `make mutate` runs mutation testing on them,
so each test here checks a value a changed formula would get wrong.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

from agents.advantages import exact_kl, returns_to_go, rloo_advantages, rloo_step_advantages


def test_returns_to_go_discounts_the_rewards_after_each_step():
    rewards = np.array([[[1.0, 0.0], [0.0, 2.0], [2.0, 1.0]]])  # (rounds, steps, slots)
    got = returns_to_go(rewards, 0.5)
    # slot 0: 1 + .5*0 + .25*2 = 1.5, 0 + .5*2 = 1, 2; slot 1: 0 + 1 + .25 = 1.25, 2.5, 1
    np.testing.assert_array_equal(got[0], [[1.5, 1.25], [1.0, 2.5], [2.0, 1.0]])
    assert got.dtype == np.float32 and got.shape == rewards.shape
    np.testing.assert_array_equal(returns_to_go(rewards, 1.0)[0, 0], [3.0, 3.0])
    two_rounds = np.concatenate([rewards, 2 * rewards])  # rounds are independent
    np.testing.assert_array_equal(returns_to_go(two_rounds, 0.5)[1], 2 * got[0])


def test_rloo_advantages_are_returns_against_the_mean_of_the_others():
    returns = np.array([[1.0, 0.0, 0.5, 0.25, 4.0, 2.0]])  # groups of 3: (1, 0, .5), (.25, 4, 2)
    got = rloo_advantages(returns, 3)
    expected = [[1 - 0.25, 0 - 0.75, 0.5 - 0.5, 0.25 - 3.0, 4 - 1.125, 2 - 2.125]]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    scaled = rloo_advantages(returns, 3, scale_by_std=True)
    stds = [np.std([1.0, 0.0, 0.5])] * 3 + [np.std([0.25, 4.0, 2.0])] * 3
    np.testing.assert_allclose(scaled, np.array(expected) / (np.array(stds) + 1e-4), rtol=1e-12)
    # GRPO's advantage (R - mean R) / std is this times (k - 1) / k
    grpo = (returns - np.repeat(returns.reshape(2, 3).mean(1), 3)) / (np.array(stds) + 1e-4)
    np.testing.assert_allclose(scaled * 2 / 3, grpo, rtol=1e-12)


def test_rloo_step_advantages_hold_an_ended_episodes_last_value_and_zero_its_padding():
    to_go = np.zeros((1, 3, 2))  # (rounds, steps, slots): a group of 2
    to_go[0, :, 0] = [1.0, 0.5, 0.0]  # slot 0 ended after step 1 (its step 2 is padding)
    to_go[0, :, 1] = [0.25, 0.75, 2.0]
    valid = np.ones_like(to_go)
    valid[0, 2, 0] = 0
    got = rloo_step_advantages(to_go, valid, 2)
    # step 2: slot 1 (2.0) against slot 0's held last value (0.5); slot 0's padding row is 0
    np.testing.assert_allclose(got[0], [[0.75, -0.75], [-0.25, 0.25], [0.0, 1.5]], atol=1e-7)
    assert got.dtype == np.float32


@pytest.mark.parametrize("k", [2, 3, 4])
def test_rloo_per_step_equals_the_episode_level_formula_for_sparse_rewards(k):
    """Sparse rewards, gamma 1, episodes of random lengths: every step of episode i gets
    R_i - mean_{j != i} R_j (and GRPO's scaling divides by the returns' std), as before."""
    rng = np.random.default_rng(k)
    rounds, horizon, n_envs = 3, 6, 4 * k
    lengths = rng.integers(1, horizon + 1, size=(rounds, n_envs))
    valid = (np.arange(horizon)[None, :, None] < lengths[:, None, :]).astype(np.float64)
    returns = rng.random((rounds, n_envs))
    g = valid * returns[:, None, :]  # reward to go: the return on every step of the episode
    for scale in (False, True):
        expected = rloo_advantages(returns, k, scale)[:, None, :] * valid
        np.testing.assert_allclose(rloo_step_advantages(g, valid, k, scale), expected, atol=1e-5)


def test_grpo_scaling_is_per_step_so_tied_returns_stay_bounded():
    """Two completions that end with the same score by different paths (dense rewards): their
    returns' std is 0, so dividing every step by it gave advantages of ~1e4; the std of the
    group's reward to go at the same step keeps them at GRPO's +-2 for a group of 2."""
    rewards = np.zeros((1, 4, 2))  # (rounds, steps, slots)
    rewards[0, :2, 0] = [0.5, 0.25]  # slot 0: two steps, score 0.75
    rewards[0, :, 1] = [0.25, 0.25, 0.5, -0.25]  # slot 1: four steps, score 0.75
    valid = np.ones((1, 4, 2))
    valid[0, 2:, 0] = 0
    g = np.cumsum(rewards[:, ::-1], axis=1)[:, ::-1]  # slot 0: .75 .25; slot 1: .75 .5 .25 -.25
    scaled = rloo_step_advantages(g, valid, 2, scale_by_std=True)
    # step 1: .25 vs .5; step 3: -.25 vs slot 0's held .25 (std = half the gap: +-2)
    expected = [[[0, 0], [-2, 2], [0, 0], [0, -2]]]
    np.testing.assert_allclose(scaled, expected, atol=5e-3)


def test_exact_kl_edges():

    inf = float("inf")
    # the policy gives an id no mass that the reference rules out: KL and gradient finite
    log_p = th.tensor([[0.0, -inf]], requires_grad=True)
    log_q = th.tensor([[0.0, -inf]])
    value = exact_kl(log_p, log_q)
    value.sum().backward()
    assert value.item() == 0 and th.isfinite(log_p.grad).all()
    # underflow to zero probability next to a reference -inf: still no NaN gradient
    log_p = th.tensor([[0.0, -200.0]], requires_grad=True)
    exact_kl(log_p, th.tensor([[0.0, -inf]])).sum().backward()
    assert th.isfinite(log_p.grad).all()
    # mass where the reference has none is infinitely far; a NaN policy is not hidden
    assert exact_kl(th.tensor([[-0.1, -2.3]]), th.tensor([[0.0, -inf]])).item() == inf
    assert exact_kl(th.tensor([[float("nan"), 0.0]]), th.tensor([[0.0, 0.0]])).isnan().all()
    # and the usual case against a hand computation in float64
    p = th.tensor([[0.2, 0.3, 0.5]], dtype=th.float64)
    q = th.tensor([[0.4, 0.4, 0.2]], dtype=th.float64)
    expected = float((p * (p / q).log()).sum())
    assert exact_kl(p.log(), q.log()).item() == pytest.approx(expected, rel=1e-12)


def test_exact_kl_is_one_value_per_row():
    p = th.tensor([[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]], dtype=th.float64)
    q = th.tensor([[0.4, 0.4, 0.2], [0.25, 0.25, 0.5]], dtype=th.float64)
    got = exact_kl(p.log(), q.log())
    expected = [float((p[0] * (p[0] / q[0]).log()).sum()), float(np.log(2.0))]
    assert got.shape == (2,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
