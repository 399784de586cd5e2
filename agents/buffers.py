"""Rollout buffers that hand out minibatches made of whole episode segments.

SB3's buffers shuffle single transitions, so a minibatch holds unrelated prefixes and the policy
must run one forward per row. These buffers shuffle *episode segments* instead (the consecutive
steps of one episode inside the rollout, including an episode that began in the previous rollout
or continues into the next) and cut the shuffled sequence into minibatches of exactly
`batch_size` rows, as SB3 does. Consecutive rows then extend one another by one token, and
`agents.fast.grouped_last_hidden` computes a whole segment with one forward pass.

Pass them to stock algorithms: `PPO(..., rollout_buffer_class=EpisodeDictRolloutBuffer)`;
`MaskablePPO(..., rollout_buffer_class=MaskableEpisodeDictRolloutBuffer)`. `EpisodeRoundBuffer`
is `agents.algos.REINFORCE`'s: rounds of whole episodes, with a mask of the rows it uses.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer
from stable_baselines3.common.buffers import DictRolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples

from agents.advantages import returns_to_go, rloo_step_advantages


def episode_segments(episode_starts: np.ndarray) -> list[np.ndarray]:
    """Index arrays (into SB3's flattened env-major order) of each episode segment.

    Args:
        episode_starts: `(n_steps, n_envs)`, 1 where a step begins a new episode.
    """
    n_steps, n_envs = episode_starts.shape
    segments = []
    for env in range(n_envs):
        cuts = [0, *np.flatnonzero(episode_starts[1:, env]) + 1, n_steps]
        base = env * n_steps  # swap_and_flatten puts each env's steps contiguously
        segments += [
            np.arange(base + a, base + b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a
        ]
    return segments


class _EpisodeOrder:
    """Replaces `get` of a Dict rollout buffer: shuffled episode segments, exact batch sizes."""

    _tensor_names: tuple[str, ...] = ("actions", "values", "log_probs", "advantages", "returns")

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        assert self.full, "the rollout buffer is not full yet"
        total = self.buffer_size * self.n_envs
        if not self.generator_ready:
            self._segments = episode_segments(self.episode_starts)
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in self._tensor_names:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        if batch_size is None:
            batch_size = total
        order = np.concatenate(
            [self._segments[i] for i in np.random.permutation(len(self._segments))]
        )
        for start in range(0, total, batch_size):
            yield self._get_samples(order[start : start + batch_size])


class EpisodeDictRolloutBuffer(_EpisodeOrder, DictRolloutBuffer):
    """`DictRolloutBuffer` whose minibatches are made of whole episode segments (PPO, A2C)."""


class MaskableEpisodeDictRolloutBuffer(_EpisodeOrder, MaskableDictRolloutBuffer):
    """`MaskableDictRolloutBuffer` whose minibatches are made of whole episode segments."""

    _tensor_names = (*_EpisodeOrder._tensor_names, "action_masks")


class EpisodeRoundBuffer(DictRolloutBuffer):
    """A rollout buffer of `n_rounds` rounds of at most `horizon` steps per env slot.

    Row `r * horizon + t` of slot `e` holds step t of the slot's episode in round r; `valid`
    marks the rows that are real steps of a used episode (the rest are padding or the steps of
    a slot that finished early). `compute_returns_and_advantage` computes Monte-Carlo returns
    and the baseline's advantages (its arguments, SB3's bootstrap values, are not needed), and
    `get` hands out valid rows only, whole episodes together.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1.0,
        gamma: float = 1.0,
        n_envs: int = 1,
        horizon: int = 1,
        baseline: str = "rloo",
        group_size: int = 1,
        scale_by_std: bool = False,
    ) -> None:
        self.horizon, self.baseline, self.group_size = horizon, baseline, group_size
        self.scale_by_std = scale_by_std
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device=device,
            gae_lambda=gae_lambda,
            gamma=gamma,
            n_envs=n_envs,
        )

    def reset(self) -> None:
        super().reset()
        self.valid = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)

    def add_step(self, valid: np.ndarray, **kwargs: Any) -> None:
        """`add` one step of every slot; `valid` marks the slots whose step is used."""
        self.valid[self.pos] = valid
        self.add(**kwargs)

    def skip_to(self, pos: int) -> None:
        """Leave rows up to `pos` as padding (a round that ended before its horizon)."""
        self.pos = pos
        self.full = self.pos == self.buffer_size

    def episode_returns(self) -> np.ndarray:
        """`(n_rounds, n_envs)`: each used episode's undiscounted return."""
        rounds = self.buffer_size // self.horizon
        rewards = (self.rewards * self.valid).reshape(rounds, self.horizon, self.n_envs)
        return rewards.sum(axis=1)

    def compute_returns_and_advantage(self, last_values: Any = None, dones: Any = None) -> None:
        rounds = self.buffer_size // self.horizon
        shape = (rounds, self.horizon, self.n_envs)
        returns = returns_to_go((self.rewards * self.valid).reshape(shape), self.gamma)
        self.returns = returns.reshape(self.buffer_size, self.n_envs)
        if self.baseline == "none":
            advantages = self.returns.copy()
        elif self.baseline == "value":
            advantages = self.returns - self.values
        else:
            advantages = rloo_step_advantages(
                returns, self.valid.reshape(shape), self.group_size, self.scale_by_std
            ).reshape(self.buffer_size, self.n_envs)
        self.advantages = (advantages * self.valid).astype(np.float32)

    @property
    def n_episodes(self) -> int:
        """The used episodes this buffer holds (once `get` has run)."""
        return len(self._segments)

    def get(self, batch_size: int | None = None) -> Generator[DictRolloutBufferSamples, None, None]:
        """Minibatches of valid rows: whole episodes in shuffled order, cut at `batch_size`."""
        assert self.full, "the rollout buffer is not full yet"
        if not self.generator_ready:
            valid = self.swap_and_flatten(self.valid)[:, 0] > 0
            starts = self.episode_starts.copy()
            self._segments = [s[valid[s]] for s in episode_segments(starts)]
            self._segments = [s for s in self._segments if len(s)]
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in ("actions", "values", "log_probs", "advantages", "returns", "valid"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        order = np.concatenate(
            [self._segments[i] for i in np.random.permutation(len(self._segments))]
        )
        batch_size = batch_size or len(order)
        for start in range(0, len(order), batch_size):
            yield self._get_samples(order[start : start + batch_size])
