"""One cell of a grid: a `textgen train` run, the random baseline, or your own training function,
evaluated on held-out prompts and finished by an atomically written `result.json`."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from agents.bench.algos import RandomAgent, variant
from agents.bench.grid import cell_folder
from agents.registry import takes_keyword, training_function
from gym_textgen.errors import TextGenValueError


def _curve(metrics: Path) -> list[list[float]]:
    from agents.callbacks import read_metrics

    if not metrics.exists():
        return []
    rows = [r for r in read_metrics(metrics) if r.get("reward/total") not in ("", None)]
    return [[int(r["timesteps"]), float(r["reward/total"])] for r in rows]


def env_kwargs_of(task: str, env: dict[str, Any], model: str) -> dict[str, Any]:
    """The TextGen env arguments of a cell of `task` (with the grid's `env` arguments for it)
    whose policy is `model`: its tokenizer is the model's."""
    kwargs: dict[str, Any] = {**env, "task": task}
    if model not in ("default", "random-tiny"):
        kwargs["tokenizer"] = model
    return kwargs


def check_env(task: str, env: dict[str, Any], model: str) -> None:
    """Build the env core a cell of `task` would (tokenizer, task, scorer): bad env arguments
    fail before any cell, naming the task."""
    from gym_textgen.envs.core import TextGenConfig, TextGenCore
    from gym_textgen.errors import TextGenError

    try:
        TextGenCore(TextGenConfig.from_kwargs("TextGenEnv", **env_kwargs_of(task, env, model)))
    except TextGenError as e:
        raise TextGenValueError(f"{task} with env arguments {env}: {e}") from e


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one cell (or read its result when it finished before); returns its result."""
    from agents.callbacks import atomic_write_bytes
    from agents.config import TrainConfig
    from agents.evaluation import mean_reward, sample_episodes
    from agents.rundir import RunDir, before_after
    from agents.training import resume_config, train

    folder = cell_folder(spec)
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    env_kwargs = env_kwargs_of(spec["task"], spec.get("env", {}), spec["model"])
    trainer = training_function(spec["algo"])
    if trainer is not None:
        before, after = run_function(trainer, spec, env_kwargs)
        steps, curve = spec["timesteps"], []
    elif spec["algo"] == "random":
        from agents.vec_env import TextGenSB3VecEnv

        env = TextGenSB3VecEnv("TextGen-v0", n_envs=1, **env_kwargs)
        agent = RandomAgent(env.core.mask, spec["seed"])
        env.close()
        samples = sample_episodes(agent, "TextGen-v0", env_kwargs, n=spec["eval_episodes"],
                                  seed=spec["seed"])  # fmt: skip
        before = after = mean_reward(samples)
        steps, curve = 0, []
    else:
        run = folder / "run"
        if RunDir(run).has_progress():
            cfg = resume_config(run, {})
            train(cfg, resume=run)
        else:
            if run.exists():  # a start that failed: begin it again
                shutil.rmtree(run)
            settings = {
                **variant(spec["algo"]),
                **spec["settings"],  # its hyperparameters (hyperparams_for)
                "task": spec["task"],
                "env_kwargs": spec.get("env", {}),
                "model": spec["model"],
                "timesteps": spec["timesteps"],
                "n_envs": spec["n_envs"],
                "seed": spec["seed"],
                "eval_episodes": spec["eval_episodes"],
                "checkpoint_every": max(spec["timesteps"] // 4, 256),
                "progress_bar": False,
                "out": str(run),
            }
            train(TrainConfig(**settings))
        before, after = (mean_reward(s) for s in before_after(run))
        curve = _curve(run / "metrics.csv")
        steps = _steps(run / "metrics.csv")
    result = {
        "algo": spec["algo"],
        "task": spec["task"],
        "seed": spec["seed"],
        "before": before,
        "after": after,
        "lift": after - before,
        "timesteps": steps,
        "seconds": round(time.time() - t0, 1),
        "curve": curve,
    }
    atomic_write_bytes(done, json.dumps(result).encode())
    return result


def run_function(trainer: Any, spec: dict[str, Any], env_kwargs: dict[str, Any]) -> tuple:
    """A training function's cell: the held-out reward of what it returns for a budget of 0
    (the untrained policy) and for the cell's budget, each evaluated as every cell is.

    The function is called as `trainer(make_env, timesteps, seed)`, with `model=` (the grid's
    policy LM: a name for `gym_textgen.models.load_model`) when it takes that keyword.
    `make_env()` returns a fresh `gymnasium.Env` of the cell's task (`make_env(n)`: a native
    vector env of n slots, `gymnasium.make_vec`); it returns a policy with stable-baselines3's
    `predict(obs, deterministic=False) -> (actions, state)`, for a batch of observations.
    """
    import gymnasium

    from agents.evaluation import mean_reward, sample_episodes

    def make_env(n_envs: int | None = None) -> Any:
        if n_envs is None:
            return gymnasium.make("TextGen-v0", **env_kwargs)
        return gymnasium.make_vec("TextGen-v0", num_envs=n_envs,
                                  vectorization_mode="vector_entry_point", **env_kwargs)  # fmt: skip

    extra = dict(spec["settings"])  # its hyperparameters (hyperparams_for)
    if takes_keyword(trainer, "model"):
        extra["model"] = spec["model"]
    scores = []
    for budget in (0, spec["timesteps"]):
        policy = trainer(make_env, budget, spec["seed"], **extra)
        if not callable(getattr(policy, "predict", None)):
            raise TextGenValueError(
                f"Expects the training function {spec['algo']} to return a policy with "
                f"predict(obs, deterministic=False), got {type(policy).__name__}"
            )
        samples = sample_episodes(policy, "TextGen-v0", env_kwargs, n=spec["eval_episodes"],
                                  seed=spec["seed"])  # fmt: skip
        scores.append(mean_reward(samples))
    return scores[0], scores[1]


def _steps(metrics: Path) -> int:
    """The steps a run trained: its last metrics row (with or without finished episodes)."""
    from agents.callbacks import read_metrics

    rows = read_metrics(metrics) if metrics.exists() else []
    return max((int(r["timesteps"]) for r in rows), default=0)
