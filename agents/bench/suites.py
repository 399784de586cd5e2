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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gym_textgen.errors import TextGenValueError

if TYPE_CHECKING:
    from agents.bench.grid import BenchConfig

#: the shipped suites, one `<version>.yml` each
SUITES = Path(__file__).resolve().parent.parent / "suites"
#: the published results of each suite in a source checkout (`results/suite-<version>/`)
PUBLISHED = Path(__file__).resolve().parent.parent.parent / "results"

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

    def record(self, protocol: str = "full") -> dict[str, Any]:
        """What a grid records of its suite in grid.json (`BenchConfig.suite`): enough for
        `textgen bench compare` to normalise its scores without the suite's file."""
        return {
            "version": self.version,
            "protocol": protocol,
            "digest": self.digest,
            "normalise": {t.name: [t.random, t.reference] for t in self.tasks.values()},
        }

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
        from agents.bench.grid import BenchConfig

        names = list(self.tasks) if tasks is None else list(tasks)
        unknown = [t for t in names if t not in self.tasks]
        if unknown or not names:
            raise TextGenValueError(
                f"Suite {self.version} has the tasks {list(self.tasks)}; got {unknown or names}"
            )
        fraction = float(self.quick.get("budget_fraction", 1)) if quick else 1.0
        budgets = {t: max(64, int(self.tasks[t].timesteps * fraction)) for t in names}
        default_seeds = int(self.quick.get("seeds", self.seeds)) if quick else self.seeds
        episodes = int(self.quick.get("eval_episodes", self.eval_episodes)) if quick else None
        return BenchConfig(
            algos=list(self.algos if algos is None else algos),
            tasks=names,
            seeds=default_seeds if seeds is None else seeds,
            timesteps=max(budgets.values()),
            budgets=budgets,
            task_env={t: dict(self.tasks[t].env_kwargs) for t in names if self.tasks[t].env_kwargs},
            model=self.model,
            n_envs=self.n_envs,
            eval_episodes=episodes or self.eval_episodes,
            suite=self.record("quick" if quick else "full"),
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
    for key, kind in (("algos", list), ("quick", dict)):
        if key in data and not isinstance(data[key], kind):
            raise TextGenValueError(
                f"{where}: expects `{key}:` as a {kind.__name__}, got {data[key]!r}"
            )
    for key in ("seeds", "n_envs", "eval_episodes"):
        _check_number(data.get(key, 1), int, f"{where}: `{key}`", low=1)
    bad_quick = sorted(set(data.get("quick") or {}) - {"seeds", "budget_fraction", "eval_episodes"})
    if bad_quick:
        raise TextGenValueError(f"{where}: unknown keys under `quick:` {bad_quick}")
    for key, value in (data.get("quick") or {}).items():
        kind = float if key == "budget_fraction" else int
        _check_number(value, kind, f"{where}: `quick.{key}`", low=1 if kind is int else 0)
        if key == "budget_fraction" and not 0 < value <= 1:
            raise TextGenValueError(f"{where}: expects 0 < quick.budget_fraction <= 1, got {value}")
    tasks = {}
    for name_, entry in data["tasks"].items():
        entry = {} if entry is None else entry
        if not isinstance(entry, dict):
            raise TextGenValueError(f"{where}, task {name_}: expects a mapping, got {entry!r}")
        bad = sorted(set(entry) - _TASK)
        need = sorted({"timesteps", "random", "reference"} - set(entry))
        if bad or need:
            raise TextGenValueError(f"{where}, task {name_}: unknown keys {bad}, missing {need}")
        _check_number(entry["timesteps"], int, f"{where}, task {name_}: `timesteps`", low=1)
        for key in ("random", "reference"):
            _check_number(entry[key], float, f"{where}, task {name_}: `{key}`")
        if not isinstance(entry.get("env_kwargs", {}), dict) or "task" in entry.get(
            "env_kwargs", {}
        ):
            raise TextGenValueError(
                f"{where}, task {name_}: expects `env_kwargs:` as a mapping of TextGenEnv "
                f"arguments other than task, got {entry['env_kwargs']!r}"
            )
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


def _check_number(value: Any, kind: type, what: str, low: float | None = None) -> None:
    """`value` is a finite number of `kind` (an int for int; an int or a float for float), >=
    `low` (`.inf` or `.nan` would make every normalised score NaN)."""
    ok = isinstance(value, int if kind is int else (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (low is not None and value < low):
        wanted = "an integer" if kind is int else "a finite number"
        bound = f" >= {low}" if low is not None else ""
        raise TextGenValueError(f"{what}: expects {wanted}{bound}, got {value!r}")


def published(name: str) -> Path:
    """The folder of published results `name` names: a published suite's name (`suite-v1`)
    always means `results/suite-v1/` of the source checkout, even where the working folder holds
    a folder of that name (`./suite-v1` names that one); anything else is a folder of
    `textgen bench` outputs."""
    known = sorted(p.name for p in PUBLISHED.glob("suite-*")) if PUBLISHED.is_dir() else []
    listed = known or "none here: they live in results/ of a source checkout"
    if name in known:
        return PUBLISHED / name
    if re.fullmatch(r"suite-[\w.-]+", name):
        raise TextGenValueError(
            f"Expects --against to name a published suite ({listed}), got {name!r}; a folder "
            f"of that name is ./{name}"
        )
    if Path(name).is_dir():
        return Path(name)
    raise TextGenValueError(
        f"Expects --against to be a folder of textgen bench results or a published suite "
        f"({listed}), got {name!r}"
    )
