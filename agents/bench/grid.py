"""A grid: every algorithm x task x seed is one cell (`BenchConfig`), and where each cell lives."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.bench.algos import bench_names, variant
from agents.bench.hyperparams import (
    check_settings,
    check_task_entries,
    hyperparams_file,
    hyperparams_for,
)
from agents.registry import (
    algo_label,
    algo_spec,
    canonical_algo,
    code_digest,
    is_import_path,
    takes_keyword,
    training_function,
)
from gym_textgen.errors import TextGenValueError

QUICK = {
    "algos": ["random", "ppo", "reinforce-rloo"],
    "tasks": ["target_tokens", "movie_sentiment"],
    "seeds": 2,
    "timesteps": 2048,
}


@dataclass
class BenchConfig:
    """A grid: every algorithm x task x seed is one cell."""

    algos: list[str] = field(default_factory=lambda: ["random", "ppo", "a2c", "reinforce-rloo"])
    tasks: list[str] = field(default_factory=lambda: ["movie_sentiment", "copy", "arithmetic"])
    seeds: int = 3
    first_seed: int = 0
    """the cells' seeds are first_seed .. first_seed + seeds - 1 (a tuning split: e.g. 100)"""
    timesteps: int = 8192
    model: str = "default"
    n_envs: int = 8
    eval_episodes: int = 32
    eval_split: str = "test"
    """the held-out prompts every cell is scored on: test, or validation (a tuning grid, which
    must never see the test prompts: benchmarks/suite_tuning.py)"""
    learning_rate: float | None = None
    """every cell's learning rate (None: each algorithm's own, from its hyperparameter file)"""
    hyperparams: str = ""
    """a folder of `<algo>.yml` files read before the shipped ones (`hyperparams_file`)"""
    out: str = "bench"
    budgets: dict[str, int] = field(default_factory=dict)
    """task -> its own number of steps (a suite's budgets; other tasks: `timesteps`)"""
    task_env: dict[str, dict[str, Any]] = field(default_factory=dict)
    """task -> env arguments its cells run with (a suite's, e.g. {"max_new_tokens": 3})"""
    suite: dict[str, Any] = field(default_factory=dict)
    """the suite whose protocol the grid follows (`Suite.record`: version, protocol, digest and
    each task's [random, reference]), recorded in grid.json, where `compare` reads it"""
    settings: dict[str, dict[str, dict[str, Any]]] = field(
        init=False, repr=False, default_factory=dict
    )
    """algorithm -> task -> its settings (`settings_of`), filled from the above"""

    def __post_init__(self) -> None:
        self.algos = [canonical_algo(a) for a in self.algos]
        unknown = [a for a in self.algos if a not in bench_names() and not is_import_path(a)]
        if unknown or not self.algos:
            raise TextGenValueError(
                f"Expects --algos from {bench_names()} or import paths (module:Name, "
                f"file.py:Name) of your own algorithms, got {self.algos}"
            )
        for algo in self.algos:  # your own: a bad path fails now, not after hours of cells
            if is_import_path(algo) and training_function(algo) is None:
                algo_spec(algo)
        if not self.tasks:
            raise TextGenValueError("Expects at least one task in --tasks, got none")
        for name in ("budgets", "task_env"):
            stray = sorted(set(getattr(self, name)) - set(self.tasks))
            if stray:
                raise TextGenValueError(f"Expects {name} for tasks of the grid, got {stray}")
        for name in ("seeds", "timesteps", "n_envs", "eval_episodes"):
            if int(getattr(self, name)) < 1:
                raise TextGenValueError(f"Expects {name} >= 1, got {getattr(self, name)}")
        if self.eval_split not in ("test", "validation"):
            raise TextGenValueError(
                f"Expects eval_split 'test' or 'validation', got {self.eval_split!r}"
            )
        if int(self.first_seed) < 0:
            raise TextGenValueError(f"Expects first_seed >= 0, got {self.first_seed}")
        if any(int(n) < 1 for n in self.budgets.values()):
            raise TextGenValueError(f"Expects every budget >= 1, got {self.budgets}")
        for name in ("algos", "tasks"):
            twice = sorted({x for x in getattr(self, name) if getattr(self, name).count(x) > 1})
            if twice:
                raise TextGenValueError(f"Expects each of --{name} once, got {twice} twice")
        if self.hyperparams and not Path(self.hyperparams).is_dir():
            raise TextGenValueError(
                f"Expects --hyperparams to be a folder of <algo>.yml files, got {self.hyperparams}"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise TextGenValueError(f"Expects learning_rate > 0, got {self.learning_rate}")
        self.settings = {a: {t: self.settings_of(a, t) for t in self.tasks} for a in self.algos}
        for algo in self.algos:
            path = hyperparams_file(algo, self.hyperparams) if algo != "random" else None
            if path is not None:
                check_task_entries(path, self.tasks)
            for task in self.tasks:
                group = {**(variant(algo) or {}), **self.settings[algo][task]}.get("group_size", 1)
                if self.n_envs % group:
                    raise TextGenValueError(
                        f"{algo} compares groups of {group} completions per prompt: expects "
                        f"--n-envs a multiple of {group}, got {self.n_envs}"
                    )
                self.check_values(algo, task)

    def check_values(self, algo: str, task: str) -> None:
        """A bad value in a hyperparameter file fails now, naming the file, not in every cell
        (the cell's `TrainConfig`, built without its run); so does a training function that
        cannot be called as its cells call it (`run_function`)."""
        trainer = training_function(algo) if algo != "random" else None
        if trainer is not None:
            extra = dict(self.settings[algo][task])
            if takes_keyword(trainer, "model"):
                extra["model"] = self.model
            try:
                inspect.signature(trainer).bind(None, 0, 0, **extra)
            except TypeError as e:
                raise TextGenValueError(
                    f"Expects the training function {algo} to take (make_env, timesteps, seed"
                    f"{''.join(f', {k}=' for k in extra)}), as its cells call it: {e}"
                ) from e
        if variant(algo) is None:  # random, or a training function: no TrainConfig
            return
        from agents.config import TrainConfig

        grid = dict(model=self.model, timesteps=self.budget(task), n_envs=self.n_envs,
                    eval_episodes=self.eval_episodes,
                    env_kwargs=self.task_env.get(task, {}))  # fmt: skip
        try:
            TrainConfig(**{**variant(algo), **self.settings[algo][task], **grid})
        except (TextGenValueError, TypeError) as e:
            where = hyperparams_file(algo, self.hyperparams) or "its settings"
            raise TextGenValueError(f"{algo} on {task} with {where}: {e}") from e

    def rollout(self, algo: str, task: str, horizon: int) -> int:
        """The env steps `algo` takes between two updates on `task` (whose episodes last at most
        `horizon` steps): its last rollout may carry a cell past its budget by less than one.
        PPO, A2C, MaskablePPO: n_steps x n_envs; REINFORCE: n_rounds rounds of an episode per
        slot; DQN: one step per slot; a training function: an episode per slot of the grid."""
        if variant(algo) is None:  # random (nothing), or a training function (unknown)
            return 0 if algo == "random" else self.n_envs * horizon
        from agents.config import TrainConfig

        cfg = TrainConfig(**{**variant(algo), **self.settings[algo][task], "n_envs": self.n_envs})
        family = algo_spec(cfg.algo).family
        if family == "reinforce":
            return cfg.n_rounds * self.n_envs * horizon
        return self.n_envs if family == "dqn" else cfg.n_steps * self.n_envs

    def check_budgets(self, horizons: dict[str, int]) -> None:
        """A suite grid's budgets are its protocol: a cell whose first rollout alone would pass
        its task's budget is refused before any cell runs (`horizons`: each task's longest
        episode). Smaller overshoots, less than one rollout, are recorded per cell (`steps`)."""
        if not self.suite:
            return
        for algo in self.algos:
            for task in self.tasks:
                budget, size = self.budget(task), self.rollout(algo, task, horizons[task])
                if variant(algo) is not None and size > budget:
                    raise TextGenValueError(
                        f"{algo} on {task}: one rollout of {size} env steps is more than the "
                        f"task's budget of {budget}, so the cell would train on {size} steps; "
                        "the budget is the suite's protocol: give it a smaller rollout (n_steps) "
                        "in --hyperparams"
                    )

    def settings_of(self, algo: str, task: str) -> dict[str, Any]:
        """What `algo` trains with on `task`: its hyperparameters, under --learning-rate."""
        settings = hyperparams_for(algo, task, self.hyperparams)
        if self.learning_rate is not None and algo != "random":
            settings["learning_rate"] = self.learning_rate
            check_settings(algo, settings, "--learning-rate")
        return settings

    def budget(self, task: str) -> int:
        """The steps each cell of `task` trains for."""
        return int(self.budgets.get(task, self.timesteps))

    def shared(self) -> dict[str, Any]:
        """The settings every cell of the grid was run with (recorded in OUT/grid.json): the
        grid's (a suite's budgets, env arguments and record where it has them), and each
        algorithm's on each task."""
        keep = ("timesteps", "model", "n_envs", "eval_episodes", "eval_split")
        suite = {k: getattr(self, k) for k in ("budgets", "task_env", "suite") if getattr(self, k)}
        cells = {cell_folder(c).name: [c["algo"], c["task"], c["seed"]] for c in self.cells()}
        return {**{k: getattr(self, k) for k in keep}, **suite, "settings": self.settings,
                "code": self.code(), "cells": cells}  # fmt: skip

    def code(self) -> dict[str, str]:
        """Your own algorithms' code digests (`agents.registry.code_digest`), by import path."""
        return {a: code_digest(a) for a in self.algos if is_import_path(a)}

    def cells(self) -> list[dict[str, Any]]:
        """One spec per cell, in a fixed order."""
        skip = ("settings", "budgets", "task_env")
        grid = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        return [
            {
                **grid,
                "algo": a,
                "task": t,
                "seed": s,
                "settings": self.settings[a][t],
                "timesteps": self.budget(t),
                "env": self.task_env.get(t, {}),
            }  # fmt: skip
            for t in self.tasks
            for a in self.algos
            for s in range(self.first_seed, self.first_seed + self.seeds)
        ]


def cell_folder(spec: dict[str, Any]) -> Path:
    """`<algo>__<readable task>-<hash of the task>__s<seed>`: distinct tasks, distinct folders."""
    import hashlib

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec["task"])[-40:]
    digest = hashlib.sha1(spec["task"].encode()).hexdigest()[:8]
    algo = algo_label(spec["algo"])
    return Path(spec["out"]) / "cells" / f"{algo}__{safe}-{digest}__s{spec['seed']}"
