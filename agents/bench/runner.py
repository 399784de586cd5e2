"""`run_bench`: every cell of a grid, one after another or as Ray tasks, with the outputs rewritten
after each finished cell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.bench.cells import run_cell
from agents.bench.folder import _cells_with_progress, _clash, _merged
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
