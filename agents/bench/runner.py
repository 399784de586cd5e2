"""`run_bench`: every cell of a grid, one after another or as Ray tasks, with the outputs rewritten
after each finished cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.bench.cells import check_env, run_cell
from agents.bench.folder import (
    GridLock,
    cells_with_progress,
    clash,
    finished,
    in_order,
    merged,
)
from agents.bench.grid import BenchConfig, cell_folder
from agents.bench.report import write_outputs
from agents.registry import ALGORITHMS
from gym_textgen.errors import TextGenValueError, require


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
    require("rliable", "bench", "textgen bench's statistics")  # before hours of training
    # a misspelt task or a bad env argument fails now, before any cell
    horizons = {t: check_env(t, cfg.task_env.get(t, {}), cfg.model) for t in cfg.tasks}
    cfg.check_budgets(horizons)
    out = Path(cfg.out)
    with GridLock(out):
        return _run_locked(cfg, out, horizons, ray_address, use_ray)


def _run_locked(
    cfg: BenchConfig, out: Path, horizons: dict[str, int], ray_address: str | None, use_ray: bool
) -> dict[str, Path]:
    from agents.callbacks import atomic_write_bytes
    from gym_textgen.errors import TextGenError

    grid = out / "grid.json"
    # grid.json is written before the first cell runs, so that a cell interrupted with a
    # checkpoint is tied to its settings from the start (a rerun resumes it with the settings
    # saved in it). It guards only what depends on those settings: a cell with a result or a
    # checkpoint. A folder whose cells all failed before either (a mistyped --model) holds
    # nothing to mix, so a rerun with other settings replaces its grid.json and retries them.
    recorded = json.loads(grid.read_text()) if grid.exists() else None
    why = clash(recorded, cfg, out) if recorded is not None else ""
    if why:
        raise TextGenValueError(
            f"{out} holds cells run with other settings ({why}); use another --out, or the "
            "same settings"
        )
    held = bool(cells_with_progress(out)) if recorded is not None else False
    record = merged(recorded, cfg, held, out)
    atomic_write_bytes(grid, json.dumps(record).encode())
    specs = cfg.cells()
    for spec in specs:  # a suite cell may pass its budget by less than one rollout
        spec["rollout"] = cfg.rollout(spec["algo"], spec["task"], horizons[spec["task"]])
    results, failures = finished(out, record)  # every cell the folder ever ran, by its name
    todo = [i for i, spec in enumerate(specs) if cell_folder(spec).name not in results]
    print(f"{len(specs)} cells, {len(specs) - len(todo)} finished before, {len(todo)} to run")
    failed: list[str] = []

    def finish(i: int, result: dict[str, Any] | None, error: str = "") -> None:
        spec = specs[i]
        folder = cell_folder(spec)
        if result is None:
            failed.append(f"{spec['algo']} on {spec['task']}, seed {spec['seed']}: {error}")
            failure = {"algo": spec["algo"], "task": spec["task"], "seed": spec["seed"],
                       "error": error}  # fmt: skip
            atomic_write_bytes(folder / "failure.json", json.dumps(failure).encode())
            failures[folder.name] = failure
            return
        atomic_write_bytes(folder / "result.json", json.dumps(result).encode())
        (folder / "failure.json").unlink(missing_ok=True)
        failures.pop(folder.name, None)
        results[folder.name] = result
        write_outputs(out, record, in_order(record, results), in_order(record, failures),
                      final=False)  # fmt: skip

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
    paths = {}
    if results or failures:
        paths = write_outputs(out, record, in_order(record, results), in_order(record, failures))
    if paths:
        print(Path(paths["md"]).read_text())
    if failed:
        raise TextGenError(
            f"{len(failed)} of {len(specs)} cells failed (the others are in {out}; rerun to "
            "retry the failed ones):\n  " + "\n  ".join(failed)
        )
    return paths
