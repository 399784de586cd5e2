"""Versioned benchmark suites for `textgen bench --suite NAME`: the tasks, each task's budget,
the evaluation protocol and the scores that normalise it, kept as data (`agents/suites/NAME.yml`)
so that a suite never changes once published: a new protocol is a new suite (v2).

>>> suite = load_suite("v1")
>>> suite.version, len(suite.tasks) >= 6
('v1', True)
>>> task = next(iter(suite.tasks.values()))
>>> suite.normalised(task.name, task.random), suite.normalised(task.name, task.reference)
(0.0, 1.0)

A task's normalised score is (score - random) / (reference - random): 0 is the uniformly random
policy's held-out reward (measured over the suite's seeds when it was published), 1 the reference
(stated per task; in v1 the scorer's best value, so 1 means a perfect policy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gym_textgen.errors import TextGenValueError

if TYPE_CHECKING:
    from agents.bench import BenchConfig

#: the shipped suites, one `<version>.yml` each
SUITES = Path(__file__).with_name("suites")
#: the published results of each suite in a source checkout (`results/suite-<version>/`)
PUBLISHED = Path(__file__).resolve().parent.parent / "results"

_TOP = {"version", "description", "model", "n_envs", "eval_episodes", "seeds", "algos",
        "evaluation", "tasks", "quick"}  # fmt: skip
_TASK = {"timesteps", "random", "reference", "reference_is", "env_kwargs", "why"}


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: its budget and the two scores its normalised score is measured by."""

    name: str
    timesteps: int
    random: float
    reference: float
    reference_is: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    why: str = ""


@dataclass(frozen=True)
class Suite:
    """A frozen benchmark protocol (see the module's doc); `digest` identifies its file."""

    version: str
    model: str
    n_envs: int
    eval_episodes: int
    seeds: int
    algos: tuple[str, ...]
    tasks: dict[str, SuiteTask]
    quick: dict[str, Any]
    evaluation: str = ""
    description: str = ""
    digest: str = ""

    def normalised(self, task: str, score: float) -> float:
        """(score - random) / (reference - random) on `task`."""
        t = self.tasks[task]
        return (score - t.random) / (t.reference - t.random)

    def bench_config(
        self,
        algos: list[str] | None = None,
        tasks: list[str] | None = None,
        seeds: int | None = None,
        quick: bool = False,
        **rest: Any,
    ) -> BenchConfig:
        """The grid that runs `algos` (default: the suite's baselines) on the suite's `tasks`
        (a subset may be named) under its protocol; `quick` scales every budget by the suite's
        `quick.budget_fraction` and takes its seeds and episodes (a check of the pipeline, not
        a result). `rest`: BenchConfig's out, hyperparams."""
        from agents.bench import BenchConfig

        names = list(self.tasks) if tasks is None else tasks
        unknown = [t for t in names if t not in self.tasks]
        if unknown:
            raise TextGenValueError(
                f"Suite {self.version} has the tasks {list(self.tasks)}; got {unknown}"
            )
        fraction = float(self.quick.get("budget_fraction", 1)) if quick else 1.0
        budgets = {t: max(64, int(self.tasks[t].timesteps * fraction)) for t in names}
        default_seeds = int(self.quick.get("seeds", self.seeds)) if quick else self.seeds
        episodes = int(self.quick.get("eval_episodes", self.eval_episodes)) if quick else None
        return BenchConfig(
            algos=list(algos or self.algos),
            tasks=names,
            seeds=seeds or default_seeds,
            timesteps=max(budgets.values()),
            budgets=budgets,
            task_env={t: dict(self.tasks[t].env_kwargs) for t in names if self.tasks[t].env_kwargs},
            model=self.model,
            n_envs=self.n_envs,
            eval_episodes=episodes or self.eval_episodes,
            suite=self.version + (" (quick)" if quick else ""),
            **rest,
        )


def suite_path(name: str) -> Path:
    """`agents/suites/<name>.yml`, or `name` itself when it is a .yml file."""
    path = Path(name)
    if path.suffix in (".yml", ".yaml") and path.is_file():
        return path
    shipped = SUITES / f"{name}.yml"
    if not shipped.is_file():
        known = sorted(p.stem for p in SUITES.glob("*.yml"))
        raise TextGenValueError(f"Expects a suite from {known} or a suite .yml file, got {name!r}")
    return shipped


def load_suite(name: str) -> Suite:
    """The suite `name` (a shipped version such as "v1", or a .yml file in the same layout)."""
    from agents.dataclass_cli import read_yaml_mapping

    path = suite_path(name)
    data = read_yaml_mapping(path)
    where = f"Suite file {path}"
    unknown = sorted(set(data) - _TOP)
    missing = sorted({"version", "model", "seeds", "algos", "tasks"} - set(data))
    if unknown or missing:
        raise TextGenValueError(f"{where}: unknown keys {unknown}, missing keys {missing}")
    if not isinstance(data["tasks"], dict) or not data["tasks"]:
        raise TextGenValueError(f"{where}: expects `tasks:` to map task names to their settings")
    tasks = {}
    for name_, entry in data["tasks"].items():
        entry = entry or {}
        bad = sorted(set(entry) - _TASK)
        need = sorted({"timesteps", "random", "reference"} - set(entry))
        if bad or need:
            raise TextGenValueError(f"{where}, task {name_}: unknown keys {bad}, missing {need}")
        task = SuiteTask(name=str(name_), **entry)
        if not task.reference > task.random:
            raise TextGenValueError(
                f"{where}, task {name_}: expects reference > random (the normalised score "
                f"divides by their gap), got reference {task.reference}, random {task.random}"
            )
        tasks[task.name] = task
    return Suite(
        version=str(data["version"]),
        model=str(data["model"]),
        n_envs=int(data.get("n_envs", 8)),
        eval_episodes=int(data.get("eval_episodes", 32)),
        seeds=int(data["seeds"]),
        algos=tuple(data["algos"]),
        tasks=tasks,
        quick=dict(data.get("quick") or {}),
        evaluation=str(data.get("evaluation", "")).strip(),
        description=str(data.get("description", "")).strip(),
        digest=hashlib.sha256(path.read_bytes()).hexdigest(),
    )


def published(name: str) -> Path:
    """The folder of published results `name` names: `suite-v1` -> `results/suite-v1/` of the
    source checkout, or a folder of `textgen bench` outputs."""
    path = Path(name)
    if path.is_dir():
        return path
    if (PUBLISHED / name).is_dir():
        return PUBLISHED / name
    known = sorted(p.name for p in PUBLISHED.glob("suite-*")) if PUBLISHED.is_dir() else []
    raise TextGenValueError(
        f"Expects --against to be a folder of textgen bench results or a published suite "
        f"({known or 'none here: they live in results/ of a source checkout'}), got {name!r}"
    )
