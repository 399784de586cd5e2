"""A grid's folder: which of its cells hold a result or a checkpoint, whether a rerun's settings
would mix with theirs (`clash`), and the grid.json it records (`merged`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.bench.grid import BenchConfig, cell_folder


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
