"""`textgen bench`: algorithms x tasks x seeds, each combination a cell, with proper statistics.

Each cell is a `textgen train` run (or, for `random`, an evaluation of a uniformly random policy)
in `OUT/cells/<algo>__<task>-<hash>__s<seed>/`, finished by an atomically written `result.json`;
a rerun skips finished cells and resumes interrupted ones from their checkpoint. `OUT/grid.json`
records the settings every cell shares (model, steps, envs, rate, eval episodes): a rerun with
other settings into a folder holding a finished or started cell is refused rather than mixed. A
cell that fails, whatever the error, does not stop the others; the grid reports the failures at
the end. The outputs, rewritten after every cell from all finished cells:

| file | what |
| --- | --- |
| `results.csv` | one row per cell: held-out reward before and after training, the lift, steps, seconds |
| `results.json` | the same with each cell's learning curve (rollout reward per step) |
| `results.md` | per task: mean +- std over seeds; per algorithm: the interquartile mean (IQM) over tasks x seeds with a 95% stratified-bootstrap confidence interval (as rliable computes it, with every finished seed of every task) |
| `curves.png` | learning curves, one panel per task: the mean over seeds with a band from the lowest to the highest seed |

Cells run one after another, or as Ray tasks (`--ray`: a local Ray, or the cluster named by
`RAY_ADDRESS` when set; `--ray ADDRESS` for another) with the same outputs; each task's result
comes back to the driver, which writes it, so the workers need no shared disk. Needs the `bench` extra (`pip install 'gym-textgen[bench]'`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench_report import write_outputs
from agents.registry import ALGORITHMS, algo_spec
from gym_textgen.errors import TextGenValueError, require

# The variants --algos names beside the registered algorithms (agents.registry), each TrainConfig
# settings on top of the grid's own (and of its algorithm's `AlgoSpec.bench`).
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
    """The settings --algos `name` trains with (None: the random baseline)."""
    return VARIANTS[name] if name in VARIANTS else {"algo": algo_spec(name).name}


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
    timesteps: int = 8192
    model: str = "default"
    n_envs: int = 8
    eval_episodes: int = 32
    learning_rate: float = 3e-4
    out: str = "bench"

    def __post_init__(self) -> None:
        unknown = [a for a in self.algos if a not in bench_names()]
        if unknown or not self.algos:
            raise TextGenValueError(f"Expects --algos from {bench_names()}, got {self.algos}")
        if not self.tasks:
            raise TextGenValueError("Expects at least one task in --tasks, got none")
        for name in ("seeds", "timesteps", "n_envs", "eval_episodes"):
            if int(getattr(self, name)) < 1:
                raise TextGenValueError(f"Expects {name} >= 1, got {getattr(self, name)}")
        for name in ("algos", "tasks"):
            twice = sorted({x for x in getattr(self, name) if getattr(self, name).count(x) > 1})
            if twice:
                raise TextGenValueError(f"Expects each of --{name} once, got {twice} twice")
        for algo in self.algos:
            group = (variant(algo) or {}).get("group_size", 1)
            if self.n_envs % group:
                raise TextGenValueError(
                    f"{algo} compares groups of {group} completions per prompt: expects "
                    f"--n-envs a multiple of {group}, got {self.n_envs}"
                )

    def shared(self) -> dict[str, Any]:
        """The settings every cell of the grid shares (recorded in OUT/grid.json)."""
        keep = ("timesteps", "model", "n_envs", "eval_episodes", "learning_rate")
        return {k: getattr(self, k) for k in keep}

    def cells(self) -> list[dict[str, Any]]:
        """One spec per cell, in a fixed order."""
        return [
            {**dataclasses.asdict(self), "algo": a, "task": t, "seed": s}
            for t in self.tasks
            for a in self.algos
            for s in range(self.seeds)
        ]


def cell_folder(spec: dict[str, Any]) -> Path:
    """`<algo>__<readable task>-<hash of the task>__s<seed>`: distinct tasks, distinct folders."""
    import hashlib

    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec["task"])[-40:]
    digest = hashlib.sha1(spec["task"].encode()).hexdigest()[:8]
    return Path(spec["out"]) / "cells" / f"{spec['algo']}__{safe}-{digest}__s{spec['seed']}"


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
    env_kwargs: dict[str, Any] = {"task": spec["task"]}
    if spec["model"] not in ("default", "random-tiny"):
        env_kwargs["tokenizer"] = spec["model"]
    if spec["algo"] == "random":
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
                "task": spec["task"],
                "model": spec["model"],
                "timesteps": spec["timesteps"],
                "n_envs": spec["n_envs"],
                "seed": spec["seed"],
                "learning_rate": spec["learning_rate"],
                "eval_episodes": spec["eval_episodes"],
                "checkpoint_every": max(spec["timesteps"] // 4, 256),
                "progress_bar": False,
                "out": str(run),
            }
            settings.update(algo_spec(settings["algo"]).bench)
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
    if grid.exists() and json.loads(grid.read_text()) != cfg.shared():
        held = _cells_with_progress(out)
        if held:
            raise TextGenValueError(
                f"{out} holds cells run with other settings ({json.loads(grid.read_text())}), "
                f"{len(held)} with a result or a checkpoint (such as {held[0].name}); this grid "
                f"asks for {cfg.shared()}: use another --out, or the same settings"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(grid, json.dumps(cfg.shared()).encode())
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
        write_outputs(cfg, [results[k] for k in sorted(results)])

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
