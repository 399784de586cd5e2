"""Rollout buffers that hand out minibatches made of whole episode segments.

SB3's buffers shuffle single transitions, so a minibatch holds unrelated prefixes and the policy
must run one forward per row. These buffers shuffle *episode segments* instead (the consecutive
steps of one episode inside the rollout, including an episode that began in the previous rollout
or continues into the next) and cut the shuffled sequence into minibatches of exactly
`batch_size` rows, as SB3 does. Consecutive rows then extend one another by one token, and
`agents.fast.grouped_last_hidden` computes a whole segment with one forward pass.

Pass them to stock algorithms: `PPO(..., rollout_buffer_class=EpisodeDictRolloutBuffer)`;
`MaskablePPO(..., rollout_buffer_class=MaskableEpisodeDictRolloutBuffer)`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer
from stable_baselines3.common.buffers import DictRolloutBuffer


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
