"""A grid's folder: its lock (one `run_bench` at a time), which of its cells hold a result or a
checkpoint, whether a rerun's settings would mix with theirs (`clash`), the grid.json it records
(`merged`), and the results and failures of every cell recorded there.

OUT/grid.json records every cell a run of the grid ever listed (`cells`: folder -> [algorithm,
task, seed]), the settings of each algorithm on each task, and the code digest of each of your
own algorithms (`agents.registry.code_digest`), so a rerun may add algorithms, tasks and seeds
but never mixes other settings or other code into cells that ran.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from agents.bench.grid import BenchConfig, cell_folder
from gym_textgen.errors import TextGenValueError


def cells_with_progress(out: Path) -> list[Path]:
    """The cell folders under `out` with a result or a run that a rerun would resume."""
    from agents.rundir import RunDir

    cells = out / "cells"
    folders = sorted(p for p in cells.iterdir() if p.is_dir()) if cells.is_dir() else []
    return [p for p in folders if (p / "result.json").exists() or RunDir(p / "run").has_progress()]


#: the learning rate every cell of a grid had before the rates moved into hyperparameter files
_OLD_GRID_RATE = 3e-4


def clash(recorded: dict[str, Any], cfg: BenchConfig, out: Path) -> str:
    """What in `cfg` differs from the grid recorded in `out` for cells that have a result or a
    checkpoint, or "" when nothing that ran would be mixed with other settings.

    The grid's own settings (steps, model, envs, episodes) hold for all its cells; an
    algorithm's settings on a task hold for that pair's cells alone, so a rerun may add
    algorithms, tasks and seeds, or change the settings of cells that never ran (a file fixed
    after its cells failed). A grid recorded before the settings were (a `learning_rate` for
    every cell) clashes only where a cell's rate differs from it.
    """
    held = cells_with_progress(out)
    if not held:  # nothing ran to a result or a checkpoint (a mistyped --model): no mixing
        return ""
    mine = cfg.shared()
    recorded = {"eval_split": "test", **recorded}  # (grids from before the validation split)
    grid_wide = ["model", "n_envs", "eval_episodes", "eval_split", "suite"]
    if not (cfg.budgets or recorded.get("budgets")):  # else each task's budget, below
        grid_wide.append("timesteps")
    differ = [k for k in grid_wide if recorded.get(k) != mine.get(k)]  # absent on both: None
    if differ:
        shown = ", ".join(f"{k}: {recorded.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
        return f"{shown}; {len(held)} with a result or a checkpoint (such as {held[0].name})"
    names = {p.name for p in held}
    ran = {(recorded.get("cells") or {}).get(name, [None])[0] for name in names}
    for algo, now in cfg.code().items():
        was = (recorded.get("code") or {}).get(algo)
        if algo in ran and was is not None and was != now:
            return (
                f"the code of {algo} changed since its cells ran (digest {was} then, {now} now): "
                "an edited algorithm is another algorithm"
            )
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


def merged(
    recorded: dict[str, Any] | None, cfg: BenchConfig, held: bool, out: Path | None = None
) -> dict[str, Any]:
    """grid.json for `cfg` over what was recorded: the settings of every algorithm and task run
    so far, this grid's where both have them (`held`: some cell has a result or a checkpoint;
    without one, the recorded grid's budgets and env arguments are not kept). A grid.json from
    before the cell list (no `cells`) gets the cells with a result in `out`."""
    mine = cfg.shared()
    if recorded is None or not held or recorded.get("suite") != mine.get("suite"):
        return mine  # nothing ran under the recorded grid: this one replaces it
    if "cells" not in recorded and out is not None:
        recorded = {**recorded, "cells": {}}
        for result in sorted(Path(out).glob("cells/*/result.json")):
            r = json.loads(result.read_text())
            recorded["cells"][result.parent.name] = [r["algo"], r["task"], r["seed"]]
    merged = dict(mine)
    for key in ("settings", "code", "cells"):  # algorithms, tasks and seeds may join
        both: dict[str, Any] = {}
        for name, value in [*(recorded.get(key) or {}).items(), *mine[key].items()]:
            if key == "settings":
                both.setdefault(name, {}).update(value)
            else:
                both[name] = value
        merged[key] = both
    for key in ("budgets", "task_env"):  # a suite grid's tasks may join it too
        joined = {**(recorded.get(key) or {}), **getattr(cfg, key)}
        if joined:
            merged[key] = joined
    return merged


def finished(out: Path, grid: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The results of the cells that `grid` (its grid.json) records and that finished, and the
    failures (`failure.json`) of those that failed at their last try, each by cell folder name
    in the order recorded."""
    results, failures = {}, {}
    for name in grid.get("cells") or {}:
        folder = Path(out) / "cells" / name
        for file, into in (("result.json", results), ("failure.json", failures)):
            if (folder / file).is_file():
                into[name] = json.loads((folder / file).read_text())
                break
    return results, failures


def in_order(grid: dict[str, Any], cells: dict[str, Any]) -> list[Any]:
    """The values of `cells` (by cell folder name) in the order `grid` records its cells."""
    return [cells[name] for name in grid.get("cells") or {} if name in cells]


class GridLock:
    """The lock a grid's folder is held by while `run_bench` runs in it, so that a second grid
    on the same --out fails at once, naming the first, rather than "resuming" its live cells.

    An OS lock on `OUT/.grid.lock` (the filelock package: the kernel drops it when its process
    ends, kill -9 included, so a lock is never left stale), with its holder's pid, host and start
    time in `OUT/.grid.lock.json` for the message.
    """

    def __init__(self, out: Path) -> None:
        from filelock import FileLock

        self.out = Path(out)
        self.owner = self.out / ".grid.lock.json"
        self.lock = FileLock(str(self.out / ".grid.lock"))

    def __enter__(self) -> GridLock:
        from filelock import Timeout

        from agents.callbacks import atomic_write_bytes

        self.out.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            try:
                held = json.loads(self.owner.read_text())
                who = f"pid {held['pid']} on {held['host']}, since {held['since']}"
            except (OSError, ValueError, KeyError):
                who = "another process"
            raise TextGenValueError(
                f"{self.out} is in use by another textgen bench ({who}); wait for it to finish, "
                "or give this grid another --out"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
        atomic_write_bytes(self.owner, json.dumps(holder).encode())
        return self

    def __exit__(self, *exc: Any) -> None:
        self.owner.unlink(missing_ok=True)
        self.lock.release()
