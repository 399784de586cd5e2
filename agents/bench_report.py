"""`textgen bench`'s report: the statistics over cells and the files written from them.

The interquartile mean (IQM) of the final held-out reward over tasks x seeds with a 95%
stratified-bootstrap confidence interval, as rliable computes it (Agarwal et al. 2021), but over
tasks whose numbers of finished runs may differ, so no run is dropped to square the matrix.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # (agents.bench imports this module)
    from agents.bench import BenchConfig


def iqm(scores: np.ndarray) -> np.ndarray:
    """The interquartile mean over the last axis: the mean of the middle half of the scores once
    sorted (`scipy.stats.trim_mean(x, 0.25)`, which rliable's `aggregate_iqm` computes)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64), axis=-1)
    cut = int(0.25 * scores.shape[-1])
    return scores[..., cut : scores.shape[-1] - cut].mean(axis=-1)


def stratified_bootstrap_iqm(
    by_task: list[np.ndarray], reps: int = 2000, size: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """The IQM of every run of every task, with a percentile confidence interval from a
    stratified bootstrap (rliable's `StratifiedBootstrap`): each resample draws every task's
    runs with replacement, as many as that task has, and pools them. Unlike rliable, the tasks
    may hold different numbers of runs, so no finished run is dropped to square the matrix.

    Args:
        by_task: one array of final scores per task, each with at least one run.
        reps: the number of bootstrap resamples.
        size: the coverage of the interval.
        seed: seeds the resampling, so that a report is reproducible.

    Returns:
        The IQM over all runs, and the interval's lower and upper bounds.
    """
    rng = np.random.default_rng(seed)
    tasks = [np.asarray(x, dtype=np.float64) for x in by_task]
    point = float(iqm(np.concatenate(tasks)))
    resamples = np.concatenate(
        [x[rng.integers(len(x), size=(reps, len(x)))] for x in tasks], axis=1
    )  # (reps, all runs): row k is the k-th resample of every task, pooled
    lo, hi = np.percentile(iqm(resamples), [50 * (1 - size), 50 * (1 + size)])
    return point, float(lo), float(hi)


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


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def plot_curves(results: list[dict[str, Any]], tasks: list[str], path: Path) -> None:
    """One panel per task: each algorithm's mean curve over seeds, band = lowest..highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.callbacks import atomic_write_bytes

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), dpi=100, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for algo in dict.fromkeys(r["algo"] for r in results):
            cells = [r for r in results if r["task"] == task and r["algo"] == algo]
            curves = [np.asarray(r["curve"], dtype=np.float64) for r in cells if r["curve"]]
            if not curves:
                if cells and algo == "random":  # the untrained baseline: its held-out reward
                    ax.axhline(
                        np.mean([r["after"] for r in cells]),
                        ls="--",
                        lw=1,
                        label="random (held-out)",
                        color="gray",
                    )
                continue
            end = min(c[-1, 0] for c in curves)
            grid = np.linspace(max(c[0, 0] for c in curves), end, 50)
            ys = np.array([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
            (line,) = ax.plot(grid, ys.mean(0), label=algo)
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("reward")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _protocol(suite: dict[str, Any]) -> str:
    """ "suite v1 (quick), " for a suite grid's title; "" for a grid without one."""
    return f"suite {suite['version']} ({suite['protocol']}), " if suite else ""


def write_outputs(
    cfg: BenchConfig, results: list[dict[str, Any]], final: bool = True
) -> dict[str, Path]:
    """results.csv, results.json, results.md and curves.png under `cfg.out`; a suite grid's
    results.md gains the normalised statistics when `final` (they take seconds to bootstrap)."""
    from agents.callbacks import atomic_write_bytes

    out = Path(cfg.out)
    keys = ["algo", "task", "seed", "before", "after", "lift", "timesteps", "seconds"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results)
    paths = {"csv": out / "results.csv", "json": out / "results.json", "md": out / "results.md",
             "png": out / "curves.png"}  # fmt: skip
    atomic_write_bytes(paths["csv"], text.getvalue().encode())
    atomic_write_bytes(paths["json"], json.dumps(results, indent=1).encode())
    per_task = []
    for task in cfg.tasks:
        for algo in cfg.algos:
            vals = [r["after"] for r in results if r["algo"] == algo and r["task"] == task]
            lifts = [r["lift"] for r in results if r["algo"] == algo and r["task"] == task]
            if vals:
                sd = f"{np.std(vals, ddof=1):.3f}" if len(vals) > 1 else "n/a"
                per_task.append([task, algo, f"{np.mean(vals):.3f} +- {sd}",
                                 f"{np.mean(lifts):+.3f}", len(vals)])  # fmt: skip
    report = [
        f"# textgen bench: {cfg.model}, {cfg.timesteps} steps a cell\n"
        if not cfg.budgets
        else f"# textgen bench: {_protocol(cfg.suite)}{cfg.model}, steps a cell: {cfg.budgets}\n",
        "Held-out reward after training (mean +- std over seeds) and the lift over the same",
        "policy before training (the random baseline is not trained: its lift is 0).\n",
        markdown(["task", "algorithm", "reward after", "lift", "seeds"], per_task),
        "\nInterquartile mean over tasks x seeds of the reward after training, with a 95%",
        "stratified-bootstrap confidence interval (2000 resamples, as in rliable). The rewards are",
        "raw, not normalised: compare algorithms, not tasks, and mind tasks whose scale differs.\n",
        markdown(["algorithm", "IQM", "95% CI", "runs"], iqm_table(results, cfg.algos, cfg.tasks)),
        "",
    ]
    if cfg.suite and final:
        from agents.compare import suite_section

        report.insert(-1, suite_section(results, cfg.suite, cfg.tasks, out))
    atomic_write_bytes(paths["md"], "\n".join(report).encode())
    plot_curves(results, cfg.tasks, paths["png"])
    return paths
