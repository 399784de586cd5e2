"""The algorithms `textgen` trains with, by name, and `make_algo` to build one with the right policy.

>>> from agents.algos import ALGOS
>>> sorted(ALGOS)
['a2c', 'dqn', 'maskable_ppo', 'ppo', 'reinforce']
"""

from __future__ import annotations

from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.algos.dqn import TransformerDQNPolicy
from agents.algos.reinforce import REINFORCE
from agents.buffers import EpisodeDictRolloutBuffer, MaskableEpisodeDictRolloutBuffer
from agents.policies import MaskableTransformerPolicy, TransformerPolicy
from gym_textgen.errors import TextGenValueError

ALGOS: dict[str, type[BaseAlgorithm]] = {
    "ppo": PPO,
    "a2c": A2C,
    "maskable_ppo": MaskablePPO,
    "reinforce": REINFORCE,
    "dqn": DQN,
}


def make_algo(
    algo: str | type[BaseAlgorithm],
    env: Any,
    policy_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> BaseAlgorithm:
    """A stock SB3 / sb3-contrib algorithm with the transformer policy and the fast buffer.

    Picks `MaskableTransformerPolicy` and `MaskableEpisodeDictRolloutBuffer` for MaskablePPO,
    `TransformerDQNPolicy` for DQN (unless given: a 10,000-transition replay buffer; 10% -> 2%
    epsilon-greedy exploration and no uniformly random warm-up, `learning_starts=0`, since a
    random token ruins a text and SB3's stock 100% start would fill the buffer with noise; the
    target network synced every 512 steps, not SB3's 10,000, which is longer than most runs
    here), `TransformerPolicy` and
    `EpisodeDictRolloutBuffer` otherwise; `kwargs` go to the algorithm.

    >>> import agents
    >>> env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    >>> model = agents.make_algo("ppo", env, {"model": "random-tiny"}, n_steps=8, batch_size=16)
    >>> type(model.policy).__name__, type(model.rollout_buffer).__name__
    ('TransformerPolicy', 'EpisodeDictRolloutBuffer')
    """
    if isinstance(algo, str):
        if algo not in ALGOS:
            raise TextGenValueError(f"Unknown algorithm {algo!r}; expected one of {sorted(ALGOS)}")
        algo = ALGOS[algo]
    if issubclass(algo, DQN):
        kwargs.setdefault("buffer_size", 10_000)
        kwargs.setdefault("exploration_initial_eps", 0.1)
        kwargs.setdefault("exploration_final_eps", 0.02)
        kwargs.setdefault("learning_starts", 0)
        kwargs.setdefault("target_update_interval", 512)
        return algo(TransformerDQNPolicy, env, policy_kwargs=dict(policy_kwargs or {}), **kwargs)
    maskable = issubclass(algo, MaskablePPO)
    policy = MaskableTransformerPolicy if maskable else TransformerPolicy
    if not issubclass(algo, REINFORCE):  # which keeps its own buffer of episode rounds
        buffer = MaskableEpisodeDictRolloutBuffer if maskable else EpisodeDictRolloutBuffer
        kwargs.setdefault("rollout_buffer_class", buffer)
    # a copy: SB3's A2C writes its optimizer into the dict it is given
    return algo(policy, env, policy_kwargs=dict(policy_kwargs or {}), **kwargs)


__all__ = ["ALGOS", "REINFORCE", "TransformerDQNPolicy", "make_algo"]
