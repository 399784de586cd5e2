"""The algorithms, by name: one `AlgoSpec` each, read by `make_algo`, `textgen train --algo`, the
config checks and `textgen bench`.

A spec names its classes by import path, so this module imports neither torch nor
stable-baselines3 (the config is checked before they load). Your own algorithm joins the same
way, and then trains through `textgen train` (from Python) and `make_algo`:

>>> from agents.registry import AlgoSpec, register_algo, ALGORITHMS
>>> _ = register_algo(AlgoSpec(
...     name="my_ppo", algo="stable_baselines3:PPO", policy="agents.policies:TransformerPolicy",
...     buffer="agents.buffers:EpisodeDictRolloutBuffer", description="PPO under another name"))
>>> ALGORITHMS["my_ppo"].algo_class().__name__
'PPO'
>>> del ALGORITHMS["my_ppo"]
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any

from gym_textgen.errors import TextGenTypeError, TextGenValueError

#: REINFORCE's baselines (`agents.algos.REINFORCE`'s `baseline=`)
BASELINES = ("none", "value", "rloo")


def import_path(path: str) -> Any:
    """The object at `"package.module:Name"`."""
    module, sep, name = path.partition(":")
    if not (module and sep and name):
        raise TextGenValueError(f"Expects an import path 'package.module:Name', got {path!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise TextGenValueError(f"Cannot import {path!r}: {e}") from e


@dataclass(frozen=True)
class AlgoSpec:
    """One algorithm: its class, the policy and rollout buffer it takes, and its defaults.

    Attributes:
        name: what `--algo` and `TrainConfig.algo` call it.
        algo: the SB3 `BaseAlgorithm` subclass, as an import path (`"stable_baselines3:PPO"`).
        policy: the policy class it is built with, as an import path.
        buffer: the rollout buffer class given to it (`rollout_buffer_class`), or None when it
            keeps its own (REINFORCE's rounds, DQN's replay buffer).
        defaults: constructor arguments set when the caller gives none (DQN's exploration).
        ignores: `TrainConfig` settings that its constructor takes under the same name with
            another meaning, so they are not passed (DQN's `n_steps` is n-step returns).
        bench: `TrainConfig` settings that `textgen bench` uses for it (a rollout of 32 steps
            a slot for PPO, say), under the grid's own.
        description: one line for humans.
    """

    name: str
    algo: str
    policy: str
    buffer: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    ignores: tuple[str, ...] = ()
    bench: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def algo_class(self) -> type:
        """The algorithm class."""
        return import_path(self.algo)

    def accepts(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Those of `names` that the algorithm's constructor takes (and does not ignore)."""
        params = inspect.signature(self.algo_class().__init__).parameters
        return [n for n in names if n in params and n not in self.ignores]

    def build(
        self,
        env: Any,
        policy_kwargs: dict[str, Any] | None = None,
        algo_class: type | None = None,
        **kwargs: Any,
    ) -> Any:
        """The algorithm on `env` with its policy, its buffer and its defaults under `kwargs`
        (`algo_class`: a subclass of the spec's algorithm to build instead)."""
        for key, value in self.defaults.items():
            kwargs.setdefault(key, value)
        if self.buffer is not None:
            kwargs.setdefault("rollout_buffer_class", import_path(self.buffer))
        # a copy: SB3's A2C writes its optimizer into the dict it is given
        policy = import_path(self.policy)
        cls = algo_class or self.algo_class()
        return cls(policy, env, policy_kwargs=dict(policy_kwargs or {}), **kwargs)


def _on_policy_bench() -> dict[str, Any]:
    """PPO's, A2C's and MaskablePPO's bench settings (a dict each)."""
    return {"n_steps": 32, "batch_size": 64, "gamma": 1.0}


#: name -> spec, in the order `textgen train --help` lists them
ALGORITHMS: dict[str, AlgoSpec] = {}


def register_algo(spec: AlgoSpec) -> AlgoSpec:
    """Add `spec` under its name (an existing name is an error: pick another)."""
    if not isinstance(spec, AlgoSpec):
        raise TextGenTypeError(f"Expects an AlgoSpec, got {type(spec).__name__}: {spec!r:.80}")
    if spec.name in ALGORITHMS:
        raise TextGenValueError(f"An algorithm named {spec.name!r} is registered already")
    ALGORITHMS[spec.name] = spec
    return spec


def algo_spec(name: str) -> AlgoSpec:
    """The spec registered as `name`, or an error that lists the registered names."""
    if name not in ALGORITHMS:
        raise TextGenValueError(f"Unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)}")
    return ALGORITHMS[name]


for _spec in (
    AlgoSpec(
        name="ppo",
        algo="stable_baselines3:PPO",
        policy="agents.policies:TransformerPolicy",
        buffer="agents.buffers:EpisodeDictRolloutBuffer",
        bench=_on_policy_bench(),
        description="stock PPO (clipped ratio, GAE, value head)",
    ),
    AlgoSpec(
        name="a2c",
        algo="stable_baselines3:A2C",
        policy="agents.policies:TransformerPolicy",
        buffer="agents.buffers:EpisodeDictRolloutBuffer",
        bench=_on_policy_bench(),
        description="stock A2C",
    ),
    AlgoSpec(
        name="maskable_ppo",
        algo="sb3_contrib:MaskablePPO",
        policy="agents.policies:MaskableTransformerPolicy",
        buffer="agents.buffers:MaskableEpisodeDictRolloutBuffer",
        bench=_on_policy_bench(),
        description="sb3-contrib's PPO with action masks (env.action_masks())",
    ),
    AlgoSpec(
        name="reinforce",
        algo="agents.algos.reinforce:REINFORCE",
        policy="agents.policies:TransformerPolicy",
        description="REINFORCE with a baseline (none, value, leave-one-out), rounds of episodes",
    ),
    AlgoSpec(
        name="dqn",
        algo="stable_baselines3:DQN",
        policy="agents.algos.dqn:TransformerDQNPolicy",
        # a 10,000-transition replay buffer; 10% -> 2% epsilon-greedy exploration and no
        # uniformly random warm-up (a random token ruins a text, and SB3's stock 100% start
        # would fill the buffer with noise); the target network synced every 512 steps, not
        # SB3's 10,000, which is longer than most runs here
        defaults={
            "buffer_size": 10_000,
            "exploration_initial_eps": 0.1,
            "exploration_final_eps": 0.02,
            "learning_starts": 0,
            "target_update_interval": 512,
        },
        ignores=("n_steps",),  # DQN's n_steps means n-step returns, not the rollout length
        bench={"batch_size": 32, "gamma": 1.0},
        description="stock DQN whose Q-network is the transformer",
    ),
):
    register_algo(_spec)
del _spec


__all__ = [
    "ALGORITHMS",
    "BASELINES",
    "AlgoSpec",
    "algo_spec",
    "import_path",
    "register_algo",
]
