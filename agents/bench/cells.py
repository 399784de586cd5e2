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
from agents.registry import algo_label, takes_keyword, training_function
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


def check_env(task: str, env: dict[str, Any], model: str) -> int:
    """Build the env core a cell of `task` would (tokenizer, task, scorer): bad env arguments
    fail before any cell, naming the task. Returns its episodes' longest length (the policy's
    tokens)."""
    from gym_textgen.envs.core import TextGenConfig, TextGenCore
    from gym_textgen.errors import TextGenError

    try:
        core = TextGenCore(
            TextGenConfig.from_kwargs("TextGenEnv", **env_kwargs_of(task, env, model))
        )
        return core.max_new_tokens
    except TextGenError as e:
        raise TextGenValueError(f"{task} with env arguments {env}: {e}") from e


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one cell (or read its result when it finished before); returns its result.

    The result holds the held-out reward before and after training, the env steps the cell
    trained on as the algorithm counts them (`timesteps`) and as the env counted them
    (`steps`: every slot-step of training, REINFORCE's idle slots included; a training
    function's, through the envs its `make_env` gave it), whether its number comes from a run
    resumed without all its state (`resumed`: it may then differ from the straight run's;
    `resumes`: how many times it was resumed), and the machine it ran on (`machine`).

    Raises:
        TextGenValueError: a suite cell that took more steps than its budget and one rollout
            (`BenchConfig.rollout`): the algorithm's own count, a training function's `steps`.
    """
    from agents.bench.machine import machine
    from agents.callbacks import atomic_write_bytes
    from agents.evaluation import mean_reward, sample_episodes

    folder = cell_folder(spec)
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    env_kwargs = env_kwargs_of(spec["task"], spec.get("env", {}), spec["model"])
    trainer = training_function(spec["algo"])
    resumes: list[dict[str, Any]] = []
    if trainer is not None:
        before, after, steps = run_function(trainer, spec, env_kwargs)
        timesteps, curve = steps, []
    elif spec["algo"] == "random":
        from agents.vec_env import TextGenSB3VecEnv

        env = TextGenSB3VecEnv("TextGen-v0", n_envs=1, **env_kwargs)
        agent = RandomAgent(env.core.mask, spec["seed"])
        env.close()
        samples = sample_episodes(agent, "TextGen-v0", env_kwargs, n=spec["eval_episodes"],
                                  seed=spec["seed"], split=spec["eval_split"])  # fmt: skip
        before = after = mean_reward(samples)
        timesteps = steps = 0
        curve = []
    else:
        before, after, timesteps, steps, curve, resumes = _train_cell(spec, folder / "run")
    # a suite's budget is its protocol: `timesteps` is the algorithm's own count (REINFORCE's
    # leaves out its idle slots' steps), a training function's as its envs counted them
    rollout = spec.get("rollout")
    if spec.get("suite") and rollout is not None and timesteps > spec["timesteps"] + rollout:
        raise TextGenValueError(
            f"{spec['algo']} on {spec['task']} took {timesteps} env steps on a budget of "
            f"{spec['timesteps']}, more than one rollout ({rollout} steps) over it: a suite "
            "cell's budget is its protocol"
        )
    result = {
        "algo": spec["algo"],
        "label": algo_label(spec["algo"]),
        "task": spec["task"],
        "seed": spec["seed"],
        "before": before,
        "after": after,
        "lift": after - before,
        "timesteps": timesteps,
        "steps": steps,
        "seconds": round(time.time() - t0, 1),
        "resumed": any(not r["exact"] for r in resumes),
        "resumes": len(resumes),
        "machine": machine(),
        "curve": curve,
    }
    atomic_write_bytes(done, json.dumps(result).encode())
    return result


def _train_cell(spec: dict[str, Any], run: Path) -> tuple:
    """A `textgen train` cell in `run`, begun or resumed from its checkpoint: (before, after,
    the algorithm's steps, the env's steps, the learning curve, the run's resumes)."""
    from agents.callbacks import read_metrics
    from agents.config import TrainConfig
    from agents.evaluation import mean_reward
    from agents.rundir import RunDir, before_after, read_resumes
    from agents.training import resume_config, train

    if RunDir(run).has_progress():
        train(resume_config(run, {}), resume=run)
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
            "eval_split": spec["eval_split"],
            "checkpoint_every": max(spec["timesteps"] // 4, 256),
            "progress_bar": False,
            "out": str(run),
        }
        train(TrainConfig(**settings))
    before, after = (mean_reward(s) for s in before_after(run))
    rows = read_metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else []
    timesteps = max((int(r["timesteps"]) for r in rows), default=0)
    steps = max((int(r["env/steps"]) for r in rows if r.get("env/steps")), default=0)
    return before, after, timesteps, steps, _curve(run / "metrics.csv"), read_resumes(run)


class _Counted:
    """Counts the slot-steps taken through the envs a training function's `make_env` gives it
    (the bench's own count: a function's budget is not taken on trust)."""

    def __init__(self) -> None:
        self.steps = 0

    def single(self, env: Any) -> Any:
        import gymnasium

        counter = self

        class CountSteps(gymnasium.Wrapper):
            def step(self, action: Any) -> Any:
                counter.steps += 1
                return self.env.step(action)

        return CountSteps(env)

    def vector(self, env: Any) -> Any:
        from gymnasium.vector import VectorWrapper

        counter = self

        class CountSlotSteps(VectorWrapper):
            def step(self, actions: Any) -> Any:
                counter.steps += self.num_envs
                return self.env.step(actions)

        return CountSlotSteps(env)


def run_function(trainer: Any, spec: dict[str, Any], env_kwargs: dict[str, Any]) -> tuple:
    """A training function's cell: the held-out reward of what it returns for a budget of 0
    (the untrained policy) and for the cell's budget, each evaluated as every cell is, and the
    env steps it took for the latter (counted through its envs).

    The function is called as `trainer(make_env, timesteps, seed)`, with `model=` (the grid's
    policy LM: a name for `gym_textgen.models.load_model`) when it takes that keyword.
    `make_env()` returns a fresh `gymnasium.Env` of the cell's task (`make_env(n)`: a native
    vector env of n slots, `gymnasium.make_vec`); it returns a policy with stable-baselines3's
    `predict(obs, deterministic=False) -> (actions, state)`, for a batch of observations.
    """
    import gymnasium

    from agents.evaluation import mean_reward, sample_episodes

    counted = _Counted()

    def make_env(n_envs: int | None = None) -> Any:
        if n_envs is None:
            return counted.single(gymnasium.make("TextGen-v0", **env_kwargs))
        return counted.vector(gymnasium.make_vec("TextGen-v0", num_envs=n_envs,
                              vectorization_mode="vector_entry_point", **env_kwargs))  # fmt: skip

    extra = dict(spec["settings"])  # its hyperparameters (hyperparams_for)
    if takes_keyword(trainer, "model"):
        extra["model"] = spec["model"]
    scores = []
    for budget in (0, spec["timesteps"]):
        counted.steps = 0
        policy = trainer(make_env, budget, spec["seed"], **extra)
        if not callable(getattr(policy, "predict", None)):
            raise TextGenValueError(
                f"Expects the training function {spec['algo']} to return a policy with "
                f"predict(obs, deterministic=False), got {type(policy).__name__}"
            )
        samples = sample_episodes(policy, "TextGen-v0", env_kwargs, n=spec["eval_episodes"],
                                  seed=spec["seed"], split=spec["eval_split"])  # fmt: skip
        scores.append(mean_reward(samples))
    return scores[0], scores[1], counted.steps
