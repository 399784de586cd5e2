"""`textgen bench`: algorithms x tasks x seeds, each combination a cell, with proper statistics.

Each cell is a `textgen train` run (or, for `random`, an evaluation of a uniformly random policy;
for your own training function, its policies for a budget of 0 and of the cell's, evaluated:
`run_function`) in `OUT/cells/<algo>__<task>-<hash>__s<seed>/`, finished by an atomically
written `result.json`; a rerun skips finished cells and resumes interrupted ones from their
checkpoint. `OUT/grid.json` records the settings of every cell (model, steps, envs, eval
episodes, and each algorithm's hyperparameters on each task: `hyperparams_for`, rl-zoo3-style
YAML files): a rerun that would mix other settings into a finished or started cell is refused;
algorithms, tasks and seeds may join a grid. A
cell that fails, whatever the error, does not stop the others; the grid reports the failures at
the end. The outputs, rewritten after every cell from all finished cells:

| file | what |
| --- | --- |
| `results.csv` | one row per cell: held-out reward before and after training, the lift, steps, seconds |
| `results.json` | the same with each cell's learning curve (rollout reward per step) |
| `results.md` | per task: mean +- std over seeds; per algorithm: the interquartile mean (IQM) over tasks x seeds with a 95% stratified-bootstrap confidence interval (as rliable computes it, with every finished seed of every task) |
| `curves.png` | learning curves, one panel per task: the mean over seeds with a band from the lowest to the highest seed |
| `profiles.png` | a suite grid's (`--suite`, `agents.suite`): rliable's performance profiles of the normalised scores, whose IQM, optimality gap and mean results.md adds at the end of the grid (`agents.compare`) |

Cells run one after another, or as Ray tasks (`--ray`: a local Ray, or the cluster named by
`RAY_ADDRESS` when set; `--ray ADDRESS` for another) with the same outputs; each task's result
comes back to the driver, which writes it, so the workers need no shared disk. Needs the `bench` extra (`pip install 'gym-textgen[bench]'`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench_report import write_outputs
from agents.registry import (
    ALGORITHMS,
    algo_label,
    algo_spec,
    canonical_algo,
    is_import_path,
    takes_keyword,
    training_function,
)
from gym_textgen.errors import TextGenValueError, require

# The variants --algos names beside the registered algorithms (agents.registry), each TrainConfig
# settings on top of the grid's own, under its hyperparameters (agents/hyperparams/<name>.yml).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "random": None,  # a uniformly random policy over the allowed tokens: evaluated, not trained
    # NLPO-style: only the initial model's 20 likeliest next tokens are allowed (agents.masks)
    "maskable_ppo": {"algo": "maskable_ppo", "mask_top_k": 20},
    "reinforce": {"algo": "reinforce", "baseline": "none"},
    "reinforce-value": {"algo": "reinforce", "baseline": "value"},
    "reinforce-rloo": {"algo": "reinforce", "baseline": "rloo", "group_size": 4},
    "grpo": {"algo": "reinforce", "baseline": "rloo", "group_size": 4, "scale_by_std": True},
}


def bench_names() -> list[str]:
    """What --algos takes: the variants and every other registered algorithm by its name."""
    return sorted({*VARIANTS, *ALGORITHMS})


def variant(name: str) -> dict[str, Any] | None:
    """The settings --algos `name` trains with (None: the random baseline or a training
    function, which are not `textgen train` runs)."""
    if name in VARIANTS:
        return VARIANTS[name]
    return None if training_function(name) else {"algo": algo_spec(name).name}


#: the shipped algorithms' hyperparameters, one rl-zoo3-style file per --algos name
HYPERPARAMS = Path(__file__).with_name("hyperparams")

#: settings the grid decides for every cell, which a hyperparameter file cannot change
GRID_KEYS = ("algo", "task", "env_id", "env_kwargs", "model", "timesteps", "n_envs", "seed",
             "eval_episodes", "checkpoint_every", "progress_bar", "out")  # fmt: skip


def hyperparams_file(algo: str, folder: str = "") -> Path | None:
    """The file that holds `algo`'s hyperparameters: `<name>.yml` in `folder` (--hyperparams),
    else among the shipped ones (`HYPERPARAMS`). Your own algorithm's file is named after its
    class or function (in `folder` only); an SB3 subclass without one gets the file of the
    registered algorithm it subclasses."""
    places = [Path(folder)] if folder else []
    if not is_import_path(algo):
        candidates = [p / f"{algo}.yml" for p in [*places, HYPERPARAMS]]
    else:
        candidates = [p / f"{algo.rpartition(':')[2]}.yml" for p in places]
        if training_function(algo) is None:
            family = algo_spec(algo).family
            candidates += [p / f"{family}.yml" for p in [*places, HYPERPARAMS]]
    return next((c for c in candidates if c.is_file()), None)


def hyperparams_for(algo: str, task: str, folder: str = "") -> dict[str, Any]:
    """The settings `algo` trains with on `task`: its file's `default`, then the task's own
    entry (a task string exactly as --tasks gives it), or, for an algorithm registered from
    Python with no file, its `AlgoSpec.bench`; {} for `random`."""
    from agents.dataclass_cli import read_yaml_mapping

    if algo == "random":
        return {}
    path = hyperparams_file(algo, folder)
    if path is None:
        return {} if training_function(algo) else dict(algo_spec(variant(algo)["algo"]).bench)
    data = read_yaml_mapping(path)
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise TextGenValueError(
                f"Hyperparameter file {path}: expects `{key}:` to hold a mapping of settings, "
                f"got {type(entry).__name__}: {entry!r:.60}"
            )
    settings = {**data.get("default", {}), **data.get(task, {})}
    check_settings(algo, settings, str(path))
    return settings


def check_task_entries(path: Path, tasks: list[str]) -> None:
    """Every entry of a hyperparameter file but `default` names a task: a bundled one or one
    of the grid's (a misspelt task's settings would otherwise never apply)."""
    import difflib

    from agents.dataclass_cli import read_yaml_mapping
    from gym_textgen.tasks import list_tasks

    known = [*list_tasks(), *tasks]
    for key in read_yaml_mapping(path):
        if key != "default" and key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise TextGenValueError(
                f"Hyperparameter file {path}: the entry {key!r} names no task{hint}; entries "
                f"are `default` and task names (bundled: {sorted(list_tasks())}, or as --tasks "
                "gives them)"
            )


def check_settings(algo: str, settings: dict[str, Any], where: str) -> None:
    """Settings that `algo` takes: `TrainConfig`'s keys (a training function: its keyword
    arguments), less those the grid decides for every cell (`GRID_KEYS`)."""
    from agents.config import config_keys
    from agents.dataclass_cli import unknown_keys_error

    fixed = sorted(set(settings) & set(GRID_KEYS))
    if fixed:
        raise TextGenValueError(
            f"{where} sets {fixed}, which the grid decides for every cell (use textgen bench's "
            "flags)"
        )
    trainer = training_function(algo)
    if trainer is None:
        unknown = sorted(set(settings) - set(config_keys()))
        if unknown:
            raise TextGenValueError(f"{where}: " + unknown_keys_error(unknown, config_keys()))
        return
    unknown = sorted(k for k in settings if not takes_keyword(trainer, k))
    if unknown:
        takes = sorted(inspect.signature(trainer).parameters)
        raise TextGenValueError(
            f"{where} sets {unknown}, which the training function {algo} does not take "
            f"(it takes {takes})"
        )


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
        (the cell's `TrainConfig`, built without its run)."""
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
        keep = ("timesteps", "model", "n_envs", "eval_episodes")
        suite = {k: getattr(self, k) for k in ("budgets", "task_env", "suite") if getattr(self, k)}
        return {**{k: getattr(self, k) for k in keep}, **suite, "settings": self.settings}

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


class RandomAgent:
    """Uniformly random over the env's allowed ids, with SB3's `predict` signature."""

    def __init__(self, mask: np.ndarray, seed: int) -> None:
        self.allowed = np.flatnonzero(mask)
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: Any, deterministic: bool = False, **_: Any) -> tuple[np.ndarray, None]:
        n = len(obs["input_ids"])
        return self.rng.choice(self.allowed, size=n), None


def _curve(metrics: Path) -> list[list[float]]:
    from agents.callbacks import read_metrics

    if not metrics.exists():
        return []
    rows = [r for r in read_metrics(metrics) if r.get("reward/total") not in ("", None)]
    return [[int(r["timesteps"]), float(r["reward/total"])] for r in rows]


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
    env_kwargs: dict[str, Any] = {**spec.get("env", {}), "task": spec["task"]}
    if spec["model"] not in ("default", "random-tiny"):
        env_kwargs["tokenizer"] = spec["model"]
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


def _in_worker(cell: Any) -> Any:
    """`cell` (run_cell) for a Ray worker, which registers the algorithms registered here first:
    a worker is a fresh process that knows only the built-in ones."""
    specs = list(ALGORITHMS.values())

    def run_registered(spec: dict[str, Any]) -> dict[str, Any]:
        from agents.registry import ALGORITHMS, register_algo  # the worker's own registry

        for algo in specs:
            if algo.name not in ALGORITHMS:
                register_algo(algo)
        return cell(spec)

    return run_registered


def _steps(metrics: Path) -> int:
    """The steps a run trained: its last metrics row (with or without finished episodes)."""
    from agents.callbacks import read_metrics

    rows = read_metrics(metrics) if metrics.exists() else []
    return max((int(r["timesteps"]) for r in rows), default=0)


def _cells_with_progress(out: Path) -> list[Path]:
    """The cell folders under `out` with a result or a run that a rerun would resume."""
    from agents.rundir import RunDir

    cells = out / "cells"
    folders = sorted(p for p in cells.iterdir() if p.is_dir()) if cells.is_dir() else []
    return [p for p in folders if (p / "result.json").exists() or RunDir(p / "run").has_progress()]


#: the learning rate every cell of a grid had before the rates moved into hyperparameter files
_OLD_GRID_RATE = 3e-4


def _clash(recorded: dict[str, Any], cfg: BenchConfig, out: Path) -> str:
    """What in `cfg` differs from the grid recorded in `out` for cells that have a result or a
    checkpoint, or "" when nothing that ran would be mixed with other settings.

    The grid's own settings (steps, model, envs, episodes) hold for all its cells; an
    algorithm's settings on a task hold for that pair's cells alone, so a rerun may add
    algorithms, tasks and seeds, or change the settings of cells that never ran (a file fixed
    after its cells failed). A grid recorded before the settings were (a `learning_rate` for
    every cell) clashes only where a cell's rate differs from it.
    """
    held = _cells_with_progress(out)
    if not held:  # nothing ran to a result or a checkpoint (a mistyped --model): no mixing
        return ""
    mine = cfg.shared()
    grid_wide = ["model", "n_envs", "eval_episodes", "suite"]
    if not (cfg.budgets or recorded.get("budgets")):  # else each task's budget, below
        grid_wide.append("timesteps")
    differ = [k for k in grid_wide if recorded.get(k) != mine.get(k)]  # absent on both: None
    if differ:
        shown = ", ".join(f"{k}: {recorded.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
        return f"{shown}; {len(held)} with a result or a checkpoint (such as {held[0].name})"
    names = {p.name for p in held}
    old = recorded.get("settings")
    for spec in cfg.cells():
        if cell_folder(spec).name not in names:
            continue
        task = spec["task"]
        was_env = (recorded.get("task_env") or {}).get(task, {})
        was_steps = (recorded.get("budgets") or {}).get(task, recorded.get("timesteps"))
        if was_env != spec["env"] or (spec["algo"] != "random" and was_steps != spec["timesteps"]):
            return (
                f"{task} ran with {was_steps} steps and env arguments {was_env}, this grid gives "
                f"it {spec['timesteps']} and {spec['env']} (cell {cell_folder(spec).name})"
            )
        if spec["algo"] == "random":
            continue
        if old is None:
            was = {"learning_rate": recorded.get("learning_rate", _OLD_GRID_RATE)}
            now = {"learning_rate": spec["settings"].get("learning_rate")}
        else:
            was = old.get(spec["algo"], {}).get(spec["task"], spec["settings"])
            now = spec["settings"]
        if was != now:
            return (
                f"{spec['algo']} on {spec['task']} ran with {was}, this grid gives it {now} "
                f"(cell {cell_folder(spec).name})"
            )
    return ""


def _merged(recorded: dict[str, Any] | None, cfg: BenchConfig, held: bool) -> dict[str, Any]:
    """grid.json for `cfg` over what was recorded: the settings of every algorithm and task run
    so far, this grid's where both have them (`held`: some cell has a result or a checkpoint;
    without one, the recorded grid's budgets and env arguments are not kept)."""
    settings: dict[str, dict[str, Any]] = {}
    for algo, tasks in [*((recorded or {}).get("settings") or {}).items(), *cfg.settings.items()]:
        settings.setdefault(algo, {}).update(tasks)
    merged = {**cfg.shared(), "settings": settings}
    if recorded is None or not held or recorded.get("suite") != merged.get("suite"):
        return merged  # nothing ran under the recorded grid: this one replaces it
    for key in ("budgets", "task_env"):  # a suite grid's tasks may join it too
        both = {**(recorded.get(key) or {}), **getattr(cfg, key)}
        if both:
            merged[key] = both
    return merged


def _describe(error: BaseException) -> str:
    """`Type: message` on one line for the list of failed cells: the message's non-empty lines
    joined, or the type alone when the message is empty (`OSError()`)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _describe_ray_error(error: Exception) -> str:
    """`_describe` for what `ray.get` raised: the cell's own error when the task raised one."""
    from ray.exceptions import RayTaskError

    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return _describe(cause)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, RayTaskError) and lines:  # no cause: its text is the remote traceback,
        return f"RayTaskError: {lines[-1]}"  # whose last line names the error
    return _describe(error)


def run_bench(
    cfg: BenchConfig, ray_address: str | None = None, use_ray: bool = False
) -> dict[str, Path]:
    """Run (or finish) every cell of the grid, writing the outputs after each one."""
    from agents.callbacks import atomic_write_bytes
    from gym_textgen.errors import TextGenError
    from gym_textgen.tasks import make_task

    require("rliable", "bench", "textgen bench's statistics")  # before hours of training
    for task in cfg.tasks:
        make_task(task)  # a misspelt task fails now, not after the cells before it
    out = Path(cfg.out)
    grid = out / "grid.json"
    # grid.json is written before the first cell runs, so that a cell interrupted with a
    # checkpoint is tied to its settings from the start (a rerun resumes it with the settings
    # saved in it). It guards only what depends on those settings: a cell with a result or a
    # checkpoint. A folder whose cells all failed before either (a mistyped --model) holds
    # nothing to mix, so a rerun with other settings replaces its grid.json and retries them.
    recorded = json.loads(grid.read_text()) if grid.exists() else None
    clash = _clash(recorded, cfg, out) if recorded is not None else ""
    if clash:
        raise TextGenValueError(
            f"{out} holds cells run with other settings ({clash}); use another --out, or the "
            "same settings"
        )
    out.mkdir(parents=True, exist_ok=True)
    held = bool(_cells_with_progress(out)) if recorded is not None else False
    atomic_write_bytes(grid, json.dumps(_merged(recorded, cfg, held)).encode())
    specs = cfg.cells()
    results: dict[int, dict[str, Any]] = {}
    for i, spec in enumerate(specs):
        done = cell_folder(spec) / "result.json"
        if done.exists():
            results[i] = json.loads(done.read_text())
    todo = [i for i in range(len(specs)) if i not in results]
    print(f"{len(specs)} cells, {len(results)} finished before, {len(todo)} to run")
    failed: list[str] = []

    def finish(i: int, result: dict[str, Any] | None, error: str = "") -> None:
        spec = specs[i]
        if result is None:
            failed.append(f"{spec['algo']} on {spec['task']}, seed {spec['seed']}: {error}")
            return
        results[i] = result
        atomic_write_bytes(cell_folder(spec) / "result.json", json.dumps(result).encode())
        write_outputs(cfg, [results[k] for k in sorted(results)], final=False)

    if use_ray and todo:
        ray = require("ray", "bench", "textgen bench --ray")
        if not ray.is_initialized():
            ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
        remote = ray.remote(num_cpus=1)(_in_worker(run_cell))
        pending = {remote.remote(specs[i]): i for i in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # any RayError: the cell raised, its worker or node died
                # (WorkerCrashedError, OutOfMemoryError, NodeDiedError), its result was lost
                # (ObjectLostError), ...: a failed cell, not a failed grid
                finish(i, None, _describe_ray_error(e))
            else:
                finish(i, result)
    else:
        for n, i in enumerate(todo, 1):
            spec = specs[i]
            print(f"[{n}/{len(todo)}] {spec['algo']} on {spec['task']}, seed {spec['seed']}")
            try:
                result = run_cell(spec)
            except Exception as e:  # OSError, MemoryError, a bug in one algorithm: the cell
                # failed, the others go on (KeyboardInterrupt and SystemExit stop the grid)
                finish(i, None, _describe(e))
            else:
                finish(i, result)
    paths = write_outputs(cfg, [results[k] for k in sorted(results)]) if results else {}
    if paths:
        print(Path(paths["md"]).read_text())
    if failed:
        raise TextGenError(
            f"{len(failed)} of {len(specs)} cells failed (the others are in {out}; rerun to "
            "retry the failed ones):\n  " + "\n  ".join(failed)
        )
    return paths
