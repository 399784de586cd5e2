"""The policy-gradient maths of `agents.algos.REINFORCE`, as pure functions of arrays.

No stable-baselines3 here: rewards, returns and log-probabilities in, advantages and KLs out, so
each formula can be read, tested (and mutation-tested) on its own.

| function | what |
| --- | --- |
| `returns_to_go` | each step's (discounted) reward to go, per round of episodes |
| `rloo_advantages` | leave-one-out advantages of episode returns over prompt groups |
| `rloo_step_advantages` | the same per step, on rewards to go (equal for sparse rewards, gamma 1) |
| `exact_kl` | KL(p || q) of two next-token distributions, row by row |

`scale_by_std=True` divides leave-one-out advantages by the group's std: GRPO's scaling (Shao et
al. 2024). With it, the advantage is GRPO's (R_i - mean R) / std times k / (k - 1), since
R_i - mean_{j != i} R_j = (R_i - mean R) * k / (k - 1).
"""

from __future__ import annotations

import numpy as np
import torch as th


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Each step's reward to go, `sum_{s >= t} gamma^(s-t) r_s`, for rewards
    `(n_rounds, horizon, n_envs)` (float32, as SB3's buffers hold them).

    >>> returns_to_go(np.array([[[1.0], [0.0], [2.0]]]), 0.5)[0, :, 0].tolist()
    [1.5, 1.0, 2.0]
    """
    rounds, horizon, n_envs = rewards.shape
    returns = np.zeros(rewards.shape, dtype=np.float32)
    running = np.zeros((rounds, n_envs), dtype=np.float32)
    for t in reversed(range(horizon)):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def rloo_advantages(returns: np.ndarray, group_size: int, scale_by_std: bool = False) -> np.ndarray:
    """Leave-one-out advantages `(n_rounds, n_envs)` from episode returns `(n_rounds, n_envs)`.

    Slots `g*k .. g*k+k-1` form group g; each episode's baseline is the mean return of the
    other k-1 episodes of its group (`scale_by_std`: then divided by the group's std).

    >>> rloo_advantages(np.array([[1.0, 0.0, 0.5, 0.5]]), 2).tolist()
    [[1.0, -1.0, 0.0, 0.0]]
    """
    rounds, n_envs = returns.shape
    k = group_size
    grouped = returns.reshape(rounds, n_envs // k, k)
    baseline = (grouped.sum(axis=2, keepdims=True) - grouped) / (k - 1)
    advantages = grouped - baseline
    if scale_by_std:
        advantages = advantages / (grouped.std(axis=2, keepdims=True) + 1e-4)
    return advantages.reshape(rounds, n_envs)


def rloo_step_advantages(
    to_go: np.ndarray, valid: np.ndarray, group_size: int, scale_by_std: bool = False
) -> np.ndarray:
    """Leave-one-out advantages of every step, `(n_rounds, horizon, n_envs)`.

    Each step's reward to go minus the mean reward to go at the same step of the other episodes
    of its group (slots `g*k .. g*k+k-1`); an episode that has ended holds its last step's
    value, so with sparse rewards and gamma 1 every step of episode i gets
    `R_i - mean_{j != i} R_j` (`rloo_advantages`). `scale_by_std` divides by the std of the
    group's reward to go at the same step (with sparse rewards and gamma 1, of the group's
    returns, as GRPO does; per step, a group whose returns tie but whose steps differ stays
    bounded). Rows that are not steps of a used episode get 0.

    >>> to_go = np.array([[[1.0, 0.5], [0.25, 0.5]]])  # 1 round, 2 steps, a group of 2
    >>> rloo_step_advantages(to_go, np.ones_like(to_go), 2).tolist()
    [[[0.5, -0.5], [-0.25, 0.25]]]
    """
    valid = valid > 0
    last = np.maximum(valid.sum(axis=1) - 1, 0)  # (rounds, n_envs): each episode's last step
    held = np.take_along_axis(to_go, last[:, None, :], axis=1)  # (rounds, 1, n_envs)
    filled = np.where(valid, to_go, held)
    rounds, horizon, n_envs = to_go.shape
    k = group_size
    grouped = filled.reshape(rounds, horizon, n_envs // k, k)
    baseline = (grouped.sum(axis=3, keepdims=True) - grouped) / (k - 1)
    advantages = grouped - baseline
    if scale_by_std:
        advantages = advantages / (grouped.std(axis=3, keepdims=True) + 1e-4)
    return (advantages.reshape(to_go.shape) * valid).astype(np.float32)


def exact_kl(log_p: th.Tensor, log_q: th.Tensor) -> th.Tensor:
    """KL(p || q) per row of `(B, V)` log-probabilities (0 * log 0 = 0; ids p never picks add
    nothing, ids that only q rules out make it infinite, as they should).

    The log-ratio is zeroed where p is 0 before the product, so that neither the value nor the
    gradient holds 0 * inf (which backpropagates as NaN); a NaN in p stays visible."""
    p = log_p.exp()
    diff = th.where(p == 0, th.zeros_like(log_p), log_p - log_q)
    return (p * diff).sum(-1)
