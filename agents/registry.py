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

import dataclasses
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gym_textgen.errors import TextGenTypeError, TextGenValueError

#: REINFORCE's baselines (`agents.algos.REINFORCE`'s `baseline=`)
BASELINES = ("none", "value", "rloo")


def import_path(path: str) -> Any:
    """The object at `"package.module:Name"` or `"path/to/file.py:Name"` (a file is loaded
    once per process, as module `textgen_file_<hash of its path>`)."""
    module, sep, name = path.rpartition(":")
    if not (module and sep and name):
        raise TextGenValueError(
            f"Expects an import path 'package.module:Name' or 'path/to/file.py:Name', got {path!r}"
        )
    try:
        if module.endswith(".py"):
            return getattr(_load_file(Path(module).expanduser().resolve()), name)
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, OSError) as e:
        raise TextGenValueError(f"Cannot import {path!r}: {type(e).__name__}: {e}") from e


def _load_file(path: Path) -> Any:
    import hashlib
    import importlib.util
    import sys

    name = "textgen_file_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    if str(path.parent) not in sys.path:  # as `python file.py` would: its neighbours import
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses and pickles look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def takes_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether `fn` can be called with keyword argument `name` (named, or through **kwargs)."""
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def is_import_path(name: str) -> bool:
    """Whether `name` names an algorithm by import path rather than by its registered name."""
    return ":" in name


def code_digest(name: str) -> str:
    """A hash of the code behind your own algorithm `name` (an import path): the bytes of its
    file (`file.py:Name`, or the file of the module that defines `module:Name`), else the
    object's source; "" for a registered name. A benchmark grid records it, so an algorithm
    edited between two runs of a grid is not mixed with its earlier self."""
    import hashlib

    if not is_import_path(name):
        return ""
    module, _, attr = name.rpartition(":")
    path = Path(module).expanduser() if module.endswith(".py") else None
    if path is None:
        try:
            source = inspect.getsourcefile(import_path(name))
            path = Path(source) if source else None
        except (TextGenValueError, TypeError):
            path = None
    try:
        code = path.read_bytes() if path is not None else b""
    except OSError:
        code = b""
    if not code:
        try:
            code = inspect.getsource(import_path(name)).encode()
        except (TextGenValueError, TypeError, OSError):
            code = b""
    return hashlib.sha1(code).hexdigest()[:12] if code else ""


def algo_label(name: str) -> str:
    """`name` as a folder name: a registered name as it is; your own algorithm's import path as
    its last part and a hash of the whole and of its code (`code_digest`): `/home/me/algo.py:
    MyPPO` -> `MyPPO-3f9a1c2e`, another after an edit of algo.py."""
    if not is_import_path(name):
        return name
    import hashlib

    key = f"{name}\n{code_digest(name)}".encode()
    return f"{name.rpartition(':')[2]}-{hashlib.sha1(key).hexdigest()[:8]}"


def canonical_algo(name: str) -> str:
    """`name` with a file path made absolute (`my_algo.py:MyPPO` -> `/home/.../my_algo.py:
    MyPPO`), so a saved run finds its algorithm from any folder; other names as they are."""
    module, _, attr = name.rpartition(":")
    if is_import_path(name) and module.endswith(".py"):
        return f"{Path(module).expanduser().resolve()}:{attr}"
    return name


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
        like: the registered algorithm it is a subclass of (your own algorithm's spec, from
            `spec_of_class`), so that the checks for that algorithm apply to it.
    """

    name: str
    algo: str
    policy: str
    buffer: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    ignores: tuple[str, ...] = ()
    bench: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    like: str = ""

    @property
    def family(self) -> str:
        """The registered algorithm it trains as: its own name, or the one it subclasses."""
        return self.like or self.name

    def algo_class(self) -> type:
        """The algorithm class."""
        return import_path(self.algo)

    def accepts(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Those of `names` that the algorithm's constructor takes (and does not ignore)."""
        params: set[str] = set()
        for cls in self.algo_class().__mro__:  # a subclass's **kwargs reach its bases'
            if "__init__" not in vars(cls):
                continue
            found = inspect.signature(cls.__init__).parameters.values()
            params |= {p.name for p in found if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
            if not any(p.kind == p.VAR_KEYWORD for p in found):
                break
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
    """The spec registered as `name`, or, for an import path (`module:Name`, `file.py:Name`)
    of a stable-baselines3 algorithm class, a spec built from it (`spec_of_class`); else an
    error that lists the registered names."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if not is_import_path(name):
        raise TextGenValueError(
            f"Unknown algorithm {name!r}; expected one of {sorted(ALGORITHMS)} or an import "
            "path 'module:Name' / 'file.py:Name' of an SB3 algorithm class"
        )
    found = import_path(name)
    if not isinstance(found, type):
        raise TextGenTypeError(
            f"{name} is a {type(found).__name__}, not an algorithm class: a training function "
            "runs under `textgen bench --algos` (see agents.bench); `textgen train` needs a "
            "stable-baselines3 BaseAlgorithm subclass"
        )
    return spec_of_class(found, canonical_algo(name))


def spec_of_class(cls: type, name: str) -> AlgoSpec:
    """The spec of your own algorithm class `cls` (imported from `name`): the spec of the
    nearest registered algorithm it subclasses (its policy, buffer, defaults and bench
    settings: a PPO subclass trains as PPO does), or, for another on-policy algorithm, A2C's
    policy and rollout buffer."""
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    if not issubclass(cls, BaseAlgorithm):
        raise TextGenTypeError(
            f"{name} is the class {cls.__name__}, which is no stable-baselines3 BaseAlgorithm "
            "subclass: subclass one (PPO, A2C, agents.algos.REINFORCE, ...), or write a training "
            "function for `textgen bench --algos`"
        )
    for base in cls.__mro__:
        for spec in ALGORITHMS.values():
            if spec.algo_class() is not base:
                continue
            about = f"{cls.__name__} from {name} (a {spec.name} subclass)"
            return dataclasses.replace(
                spec, name=name, algo=name, description=about, like=spec.family
            )
    if issubclass(cls, OnPolicyAlgorithm):
        return dataclasses.replace(ALGORITHMS["a2c"], name=name, algo=name,
                                   description=f"{cls.__name__} from {name}")  # fmt: skip
    raise TextGenTypeError(
        f"{name} is the off-policy class {cls.__name__}, which subclasses no registered "
        f"algorithm ({sorted(ALGORITHMS)}): register an AlgoSpec for it (agents.registry)"
    )


def training_function(name: str) -> Callable[..., Any] | None:
    """The plain training function at import path `name`, or None when `name` is a registered
    algorithm or a class (see `agents.bench` for what such a function takes and returns)."""
    if name in ALGORITHMS or not is_import_path(name):
        return None
    found = import_path(name)
    if isinstance(found, type):
        return None
    if not callable(found):
        raise TextGenTypeError(
            f"{name} is a {type(found).__name__}: expected an SB3 algorithm class or a "
            "training function f(make_env, timesteps, seed)"
        )
    return found


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
    "algo_label",
    "algo_spec",
    "canonical_algo",
    "code_digest",
    "import_path",
    "is_import_path",
    "register_algo",
    "spec_of_class",
    "takes_keyword",
    "training_function",
]
