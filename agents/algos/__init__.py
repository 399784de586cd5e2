"""`make_algo`: an algorithm from the registry (`agents.registry`), with its policy and buffer.

>>> from agents.registry import ALGORITHMS
>>> sorted(ALGORITHMS)
['a2c', 'dqn', 'maskable_ppo', 'ppo', 'reinforce']
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from agents.algos.dqn import TransformerDQNPolicy
from agents.algos.reinforce import REINFORCE
from agents.registry import ALGORITHMS, AlgoSpec, algo_spec
from gym_textgen.errors import TextGenValueError


def spec_of(algo: str | type[BaseAlgorithm]) -> AlgoSpec:
    """The registered spec of `algo`: a name, a registered algorithm class, or a subclass of one
    (the spec of its nearest registered ancestor: `class Mine(REINFORCE)` is built as REINFORCE
    is)."""
    if isinstance(algo, str):
        return algo_spec(algo)
    for ancestor in getattr(algo, "__mro__", ()):
        for spec in ALGORITHMS.values():
            if spec.algo_class() is ancestor:
                return spec
    raise TextGenValueError(
        f"{getattr(algo, '__name__', algo)!r} is not a registered algorithm: register it with "
        f"agents.registry.register_algo(AlgoSpec(...)), or pass one of {sorted(ALGORITHMS)}"
    )


def make_algo(
    algo: str | type[BaseAlgorithm],
    env: Any,
    policy_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> BaseAlgorithm:
    """A registered algorithm (a name or its class) with its transformer policy, its rollout
    buffer and its defaults (`AlgoSpec`); `kwargs` go to the algorithm.

    `MaskableTransformerPolicy` and `MaskableEpisodeDictRolloutBuffer` for MaskablePPO,
    `TransformerDQNPolicy` and DQN's defaults for DQN, REINFORCE's own buffer of episode rounds,
    `TransformerPolicy` and `EpisodeDictRolloutBuffer` for PPO and A2C.

    >>> import agents
    >>> env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    >>> model = agents.make_algo("ppo", env, {"model": "random-tiny"}, n_steps=8, batch_size=16)
    >>> type(model.policy).__name__, type(model.rollout_buffer).__name__
    ('TransformerPolicy', 'EpisodeDictRolloutBuffer')
    """
    cls = None if isinstance(algo, str) else algo
    return spec_of(algo).build(env, policy_kwargs, algo_class=cls, **kwargs)


__all__ = ["REINFORCE", "TransformerDQNPolicy", "make_algo", "spec_of"]
