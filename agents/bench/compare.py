"""`textgen bench compare RUN --against suite-v1`: a grid's algorithms beside the published
baselines of the same suite, on normalised scores, without rerunning them (the statistics:
`agents.bench.stats`).

rliable needs as many runs on every task: an algorithm's matrix keeps the seeds that finished on
all the suite's tasks (the number of seeds dropped is reported).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.bench.plots import plot_profiles
from agents.bench.report import AGGREGATE_HEADER, aggregate_rows
from agents.bench.stats import improvement, interval_text, markdown, score_matrices
from agents.bench.suites import published
from gym_textgen.errors import TextGenValueError


def read_grid(folder: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `textgen bench` folder's grid.json and results.json, or the clear error."""
    folder = Path(folder)
    files = [folder / "grid.json", folder / "results.json"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise TextGenValueError(
            f"Expects a folder of textgen bench results (grid.json and results.json), got "
            f"{str(folder)!r}, which lacks {missing}"
        )
    return json.loads(files[0].read_text()), json.loads(files[1].read_text())


def suite_of(grid: dict[str, Any], folder: str | Path) -> dict[str, Any]:
    """The suite a grid followed, as its grid.json records it (`Suite.record`: version,
    protocol, digest, each task's [random, reference]), or the clear error."""
    suite = grid.get("suite")
    if not (isinstance(suite, dict) and isinstance(suite.get("normalise"), dict)):
        raise TextGenValueError(
            f"{folder} was not run with --suite (its grid.json records no suite): normalised "
            "scores need a suite's random and reference scores; run `textgen bench --suite v1`"
        )
    return suite


def _run_notes(grids: dict[Any, list[dict[str, Any]]], tasks: list[str]) -> list[str]:
    """Notes on how the compared cells ran: cells resumed without all their state (their
    numbers may differ from a straight run's), and the machines each grid's cells ran on
    (bitwise equality holds on one CPU and software stack only)."""
    from agents.bench.machine import describe

    notes, machines = [], {}
    for folder, results in grids.items():
        cells = [r for r in results if r["task"] in tasks]
        inexact = [f"{r['algo']}@{r['task']}@{r['seed']}" for r in cells if r.get("resumed")]
        if inexact:
            notes.append(
                f"{len(inexact)} cells of {folder} were resumed without all their state and may "
                f"differ from a straight run: {', '.join(inexact[:8])}"
                + (" ..." if len(inexact) > 8 else "")
            )
        seen = sorted({describe(r["machine"]) for r in cells if r.get("machine")})
        unrecorded = sum(not r.get("machine") for r in cells)
        machines[folder] = seen + ([f"not recorded ({unrecorded} cells)"] if unrecorded else [])
    if len({tuple(m) for m in machines.values()}) > 1:
        notes.append(
            "The grids ran on other machines (a cell's numbers are bitwise equal on one CPU and "
            "software stack only; compare them statistically): "
            + "; ".join(f"{folder}: {', '.join(m)}" for folder, m in machines.items())
            + "."
        )
    return notes


def compare(run: str | Path, against: str, out: str | Path | None = None) -> Path:
    """Place the algorithms of the grid in `run` beside the published results `against` (a suite
    name such as "suite-v1", or another grid folder of the same suite): compare.md and
    profiles.png in `out` (default: `run`/compare). Returns compare.md's path."""
    grid, results = read_grid(run)
    suite = suite_of(grid, run)
    theirs_folder = published(against)
    their_grid, theirs = read_grid(theirs_folder)
    theirs_suite = suite_of(their_grid, theirs_folder)
    if theirs_suite["version"] != suite["version"]:
        raise TextGenValueError(
            f"{run} ran suite {suite['version']}, {against} suite {theirs_suite['version']}: "
            "normalised scores of different suites do not compare"
        )
    splits = [g.get("eval_split", "test") for g in (grid, their_grid)]
    if splits[0] != splits[1]:
        raise TextGenValueError(
            f"{run} scored its cells on the {splits[0]} prompts, {against} on the {splits[1]} "
            "ones: scores of different prompts do not compare"
        )
    ran = {r["task"] for r in results}
    tasks = [t for t in suite["normalise"] if t in ran and any(r["task"] == t for r in theirs)]
    if not tasks:
        raise TextGenValueError(f"{run} and {against} share no task of suite {suite['version']}")
    differ = [t for t in tasks if suite["normalise"][t] != theirs_suite["normalise"].get(t)]
    if differ:
        raise TextGenValueError(
            f"{run} and {against} normalise {differ} with other random and reference scores "
            f"({[suite['normalise'][t] for t in differ]} and "
            f"{[theirs_suite['normalise'].get(t) for t in differ]}): not the same suite"
        )
    notes = []
    if suite["protocol"] != theirs_suite["protocol"]:
        notes.append(
            f"The protocols differ: {run} ran {suite['protocol']!r}, {against} "
            f"{theirs_suite['protocol']!r}"
            + (
                ". A quick grid trains for a fraction of the budget and evaluates fewer "
                "episodes: it checks the pipeline, it does not rank an algorithm."
                if "quick" in (suite["protocol"], theirs_suite["protocol"])
                else "."
            )
        )
    for what in ("model", "n_envs", "eval_episodes", "budgets", "task_env", "digest"):
        if what == "digest":
            one, other = (g["suite"].get("digest") for g in (grid, their_grid))
        elif what in ("budgets", "task_env"):  # only the tasks compared
            one, other = (
                {t: (g.get(what) or {}).get(t) for t in tasks} for g in (grid, their_grid)
            )
        else:
            one, other = (g.get(what) for g in (grid, their_grid))
        quick = "quick" in (suite["protocol"], theirs_suite["protocol"])
        if one != other and not (quick and what in ("budgets", "eval_episodes")):
            notes.append(f"The grids' {what} differ: {one!r} and {other!r}.")
    notes += _run_notes({run: results, against: theirs}, tasks)
    if len(tasks) < len(suite["normalise"]):
        notes.append(
            f"Compared on {len(tasks)} of the suite's {len(suite['normalise'])} tasks: {tasks}."
        )
    mine, my_dropped = score_matrices(results, suite, tasks)
    base, base_dropped = score_matrices(theirs, suite, tasks)
    for folder, matrices_ in ((run, mine), (against, base)):
        if not matrices_:
            raise TextGenValueError(
                f"No algorithm in {folder} finished a seed on every task compared ({tasks}); "
                "finish its cells (rerun the grid) or compare fewer tasks"
            )
    for folder, dropped_, kept in ((run, my_dropped, mine), (against, base_dropped, base)):
        unfinished = sorted(set(dropped_) - set(kept))
        if unfinished:
            notes.append(f"Left out of {folder}, no seed finished on every task: {unfinished}.")
    label = {a: (f"{a} (this run)" if a in base else a) for a in mine}
    matrices = {**base, **{label[a]: m for a, m in mine.items()}}
    dropped = {**base_dropped, **{label[a]: my_dropped[a] for a in mine}}
    probs = improvement({(label[a], b): (mine[a], base[b]) for a in mine for b in base})
    out = Path(run) / "compare" if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plot_profiles(
        matrices,
        out / "profiles.png",
        f"suite {suite['version']}: {Path(run).name} vs {Path(against).name}",
    )
    rows = [[x, y, interval_text(p, lo, hi)] for (x, y), (p, lo, hi) in probs.items()]
    text = "\n".join([
        f"# {run} against {against} (suite {suite['version']})\n",
        *[f"{n}\n" for n in notes],
        "Normalised held-out scores ((score - random) / (reference - random), the suite's",
        "numbers), over the seeds finished on every task compared; 95% stratified-bootstrap",
        "CIs (rliable, 2000 resamples). The optimality gap is how far below 1 the runs fall.\n",
        markdown(AGGREGATE_HEADER, aggregate_rows(matrices, dropped)),
        "\nProbability of improvement P(X > Y): the chance that a run of X beats a run of Y on a",
        "task drawn at random, with its 95% CI. 0.5 is no difference; an interval that holds 0.5",
        "supports no claim either way.\n",
        markdown([f"X ({run})", f"Y ({against})", "P(X > Y) [95% CI]"], rows),
        "\nPerformance profiles: profiles.png.\n",
    ])  # fmt: skip
    from agents.callbacks import atomic_write_bytes

    path = out / "compare.md"
    atomic_write_bytes(path, text.encode())
    return path
