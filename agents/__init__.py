"""stable-baselines3 integration for gym-textgen: transformer policies, a batched VecEnv, the CLI.

Names are imported on first use, so `textgen --help` and `import agents.config` do not pay for
torch and stable-baselines3. Importing `agents` registers the TextGen env ids (it imports
`gym_textgen`).

>>> import agents
>>> sorted(agents.ALGORITHMS)
['a2c', 'dqn', 'maskable_ppo', 'ppo', 'reinforce']
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import gym_textgen  # noqa: F401  (registers the TextGen env ids; light: no torch)

# name -> the module that defines it
_EXPORTS = {
    "ALGORITHMS": "agents.registry",
    "AlgoSpec": "agents.registry",
    "register_algo": "agents.registry",
    "make_algo": "agents.algos",
    "EpisodeDictRolloutBuffer": "agents.buffers",
    "MaskableEpisodeDictRolloutBuffer": "agents.buffers",
    "MaskableTransformerPolicy": "agents.policies",
    "TransformerExtractor": "agents.policies",
    "TransformerPolicy": "agents.policies",
    "TextGenSB3VecEnv": "agents.vec_env",
    "make_vec_env": "agents.vec_env",
    "KLPenaltyCallback": "agents.kl",
    "TrainConfig": "agents.config",
    "check_env": "agents.env_checker",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name.isidentifier() and importlib.util.find_spec(f"agents.{name}") is not None:
        return importlib.import_module(f"agents.{name}")  # a submodule: agents.kl, ...
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
