"""A grid's report: results.csv, results.json, results.md (per-task means, each algorithm's IQM with
its 95% stratified-bootstrap interval, a suite's normalised aggregates) and the figures."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.plots import plot_curves, plot_profiles
from agents.bench.stats import (
    aggregates,
    check_finite,
    interval_text,
    markdown,
    score_matrices,
    stratified_bootstrap_iqm,
)


def iqm_table(results: list[dict[str, Any]], algos: list[str], tasks: list[str]) -> list[list[str]]:
    """Per algorithm: the IQM of the final held-out reward over all its runs (tasks x seeds),
    with a 95% stratified-bootstrap confidence interval (`stratified_bootstrap_iqm`).

    Each algorithm stands on its own: one with a single run on a task gets its IQM and
    "n/a (one seed)" for the interval, the others their intervals; tasks with different numbers
    of finished runs keep all of them; tasks where an algorithm has no finished run are named
    in its "runs" column (its IQM is then over the other tasks). An algorithm with no finished
    run has no row.
    """
    rows = []
    for algo in algos:
        runs = {t: [r["after"] for r in results if r["algo"] == algo and r["task"] == t]
                for t in tasks}  # fmt: skip
        by_task = [np.array(x, dtype=np.float64) for x in runs.values() if x]
        if not by_task:
            continue
        point, lo, hi = stratified_bootstrap_iqm(by_task)
        single = [t for t, x in runs.items() if len(x) == 1]
        if not single:
            interval = f"[{lo:.3f}, {hi:.3f}]"
        elif len(single) == len(by_task):  # one run per task: nothing to resample
            interval = "n/a (one seed)"
        else:  # a task whose one run cannot vary would narrow the interval
            interval = f"n/a (one seed on {', '.join(single)})"
        count = str(sum(len(x) for x in by_task))
        missing = [t for t, x in runs.items() if not x]
        if missing:
            count += f" (none on {', '.join(missing)})"
        rows.append([algo, f"{point:.3f}", interval, count])
    return rows


def _protocol(suite: dict[str, Any]) -> str:
    """ "suite v1 (quick), " for a suite grid's title; "" for a grid without one."""
    return f"suite {suite['version']} ({suite['protocol']}), " if suite else ""


def aggregate_rows(matrices: dict[str, np.ndarray], dropped: dict[str, int]) -> list[list[Any]]:
    """The table of IQM, optimality gap and mean, each with its 95% CI, one row per algorithm."""
    stats = aggregates(matrices)
    rows = []
    for algo, s in stats.items():
        cells = [interval_text(p, lo, hi) for p, lo, hi in s.values()]
        runs = f"{matrices[algo].shape[0]}" + (
            f" ({dropped[algo]} left out)" if dropped[algo] else ""
        )
        rows.append([algo, *cells, runs])
    return rows


AGGREGATE_HEADER = ["algorithm", "IQM [95% CI]", "optimality gap [95% CI]", "mean [95% CI]",
                    "seeds x all tasks"]  # fmt: skip


def suite_section(
    results: list[dict[str, Any]], suite: dict[str, Any], tasks: list[str], out: Path
) -> str:
    """results.md's section for a suite grid: the normalised aggregates of each algorithm; their
    performance profiles go to `out`/profiles.png."""
    matrices, dropped = score_matrices(results, suite, tasks)
    if not matrices:
        return ""
    plot_profiles(
        matrices,
        out / "profiles.png",
        f"suite {suite['version']} ({suite['protocol']}): {Path(out).name}",
    )
    return "\n".join([
        f"\nNormalised scores (suite {suite['version']}: (score - random) / (reference - random), "
        "the suite's numbers), over",
        "the seeds finished on every task; 95% stratified-bootstrap CIs (rliable, 2000 resamples).",
        "The optimality gap is how far below 1 (the reference) the runs fall on average.\n",
        markdown(AGGREGATE_HEADER, aggregate_rows(matrices, {a: dropped[a] for a in matrices})),
        "\nPer task: the mean normalised score over those seeds (1 = the reference).\n",
        markdown(["algorithm", *tasks], [[a, *(f"{v:.3f}" for v in m.mean(axis=0))]
                                         for a, m in matrices.items()]),  # fmt: skip
        "\nPerformance profiles of the normalised scores: profiles.png.",
    ])  # fmt: skip


def write_outputs(
    out: str | Path,
    grid: dict[str, Any],
    results: list[dict[str, Any]],
    failures: list[dict[str, Any]] = (),
    final: bool = True,
) -> dict[str, Path]:
    """results.csv, results.json, results.md and curves.png in `out` from the `results` of the
    grid recorded as `grid` (its grid.json: algorithms, tasks and settings of every run of it);
    results.md lists the `failures` too, and a suite grid's gains the normalised statistics when
    `final` (they take seconds to bootstrap)."""
    from agents.callbacks import atomic_write_bytes

    out = Path(out)
    cells = list((grid.get("cells") or {}).values())
    algos = list(dict.fromkeys(a for a, _, _ in cells))
    tasks = list(dict.fromkeys(t for _, t, _ in cells))
    keys = ["algo", "task", "seed", "before", "after", "lift", "timesteps", "steps", "seconds",
            "resumed"]  # fmt: skip
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results)
    paths = {"csv": out / "results.csv", "json": out / "results.json", "md": out / "results.md",
             "png": out / "curves.png"}  # fmt: skip
    atomic_write_bytes(paths["csv"], text.getvalue().encode())
    atomic_write_bytes(paths["json"], json.dumps(results, indent=1).encode())
    per_task = []
    for task in tasks:
        for algo in algos:
            vals = [r["after"] for r in results if r["algo"] == algo and r["task"] == task]
            lifts = [r["lift"] for r in results if r["algo"] == algo and r["task"] == task]
            if vals:
                check_finite(vals, f"{algo} on {task}")
                sd = f"{np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "n/a"
                per_task.append([task, algo, f"{np.mean(vals):.3f} +- {sd}",
                                 f"{np.mean(lifts):+.3f}", len(vals)])  # fmt: skip
    budgets, suite = grid.get("budgets"), grid.get("suite") or {}
    report = [
        f"# textgen bench: {grid['model']}, {grid['timesteps']} steps a cell\n"
        if not budgets
        else f"# textgen bench: {_protocol(suite)}{grid['model']}, steps a cell: {budgets}\n",
        "Held-out reward after training (mean +- std over seeds) and the lift over the same",
        "policy before training (the random baseline is not trained: its lift is 0).\n",
        markdown(["task", "algorithm", "reward after", "lift", "seeds"], per_task),
        "\nInterquartile mean over tasks x seeds of the reward after training, with a 95%",
        "stratified-bootstrap confidence interval (2000 resamples, as in rliable). The rewards are",
        "raw, not normalised: compare algorithms, not tasks, and mind tasks whose scale differs.\n",
        markdown(["algorithm", "IQM", "95% CI", "runs"], iqm_table(results, algos, tasks)),
        "",
    ]
    if failures:
        rows = [[f["algo"], f["task"], f["seed"], f["error"].replace("|", "\\|")] for f in failures]
        report.insert(-1, "\nFailed cells (no score: rerun the grid to retry them):\n")
        report.insert(-1, markdown(["algorithm", "task", "seed", "error"], rows))
    if suite and final:
        report.insert(-1, suite_section(results, suite, tasks, out))
    atomic_write_bytes(paths["md"], "\n".join(report).encode())
    plot_curves(results, tasks, paths["png"])
    return paths
