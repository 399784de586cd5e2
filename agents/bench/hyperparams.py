"""Each algorithm's settings on each task: rl-zoo3-style YAML files (`agents/hyperparams/<name>.yml`:
a `default` entry, then per-task entries), read by `hyperparams_for` and checked before any cell."""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

from agents.bench.algos import variant
from agents.registry import algo_spec, is_import_path, takes_keyword, training_function
from gym_textgen.errors import TextGenValueError

#: the shipped algorithms' hyperparameters, one rl-zoo3-style file per --algos name
HYPERPARAMS = Path(__file__).resolve().parent.parent / "hyperparams"

#: settings the grid decides for every cell, which a hyperparameter file cannot change
GRID_KEYS = ("algo", "task", "env_id", "env_kwargs", "model", "timesteps", "n_envs", "seed",
             "eval_episodes", "eval_split", "checkpoint_every", "progress_bar", "out")  # fmt: skip


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


def _finite(value: Any) -> bool:
    """Whether every number in `value` (a number, or lists and mappings of them) is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def check_settings(algo: str, settings: dict[str, Any], where: str) -> None:
    """Settings that `algo` takes: `TrainConfig`'s keys (a training function: its keyword
    arguments), less those the grid decides for every cell (`GRID_KEYS`)."""
    from agents.config import config_keys
    from agents.dataclass_cli import unknown_keys_error

    infinite = sorted(k for k, v in settings.items() if not _finite(v))
    if infinite:
        raise TextGenValueError(
            f"{where} sets {infinite} to {[settings[k] for k in infinite]}: expects finite numbers"
        )
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
