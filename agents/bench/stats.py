"""The statistics of `textgen bench` and `compare`, as rliable computes them (Agarwal et al. 2021;
tested against its functions).

The raw report: the interquartile mean (IQM) of the final held-out reward over tasks x seeds with
a 95% stratified-bootstrap confidence interval, over tasks whose numbers of finished runs may
differ, so no run is dropped to square the matrix (`iqm_table` in `agents.bench.report`).

A suite's report and `compare`, on each algorithm's (runs x tasks) matrix of normalised held-out
scores ((score - random) / (reference - random), the suite's numbers):

- the IQM, the optimality gap (how far below 1 the runs fall, on average) and the mean, each with
  a 95% stratified-bootstrap confidence interval;
- the probability of improvement P(X > Y): the chance that a run of X beats a run of Y on a task
  drawn at random (0.5: no difference), with its 95% interval;
- performance profiles: the fraction of runs whose normalised score exceeds each tau (a plot,
  `agents.bench.plots`).

Every bootstrap is drawn here from a seeded generator (rliable's draws from numpy's global
state), so a report is reproducible.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.stats

from agents.registry import algo_label
from gym_textgen.errors import TextGenValueError


def check_finite(scores: Any, what: str) -> np.ndarray:
    """`scores` as a float64 array, or a `TextGenValueError` naming `what` when there is none or
    one of them is NaN or infinite: sorting would rank a NaN above every number, and a mean or an
    interval over it is NaN, so no statistic here takes one (a diverged run is a failed cell,
    not a score)."""
    array = np.asarray(scores, dtype=np.float64)
    if array.size == 0:
        raise TextGenValueError(f"Expects at least one score for {what}, got none")
    if not np.isfinite(array).all():
        bad = array[~np.isfinite(array)]
        raise TextGenValueError(
            f"Expects finite scores for {what}, got {bad.size} NaN or infinite of {array.size} "
            f"(such as {bad.flat[0]})"
        )
    return array


def iqm(scores: np.ndarray) -> np.ndarray:
    """The interquartile mean over the last axis: the mean of the middle half of the scores once
    sorted (`scipy.stats.trim_mean(x, 0.25)`, which rliable's `aggregate_iqm` computes). NaN or
    inf: a `TextGenValueError` (`check_finite`)."""
    scores = np.sort(check_finite(scores, "an interquartile mean"), axis=-1)
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
    if not by_task:
        raise TextGenValueError("Expects the scores of at least one task, got none")
    rng = np.random.default_rng(seed)
    tasks = [check_finite(x, "a bootstrap interval") for x in by_task]
    point = float(iqm(np.concatenate(tasks)))
    resamples = np.concatenate(
        [x[rng.integers(len(x), size=(reps, len(x)))] for x in tasks], axis=1
    )  # (reps, all runs): row k is the k-th resample of every task, pooled
    lo, hi = np.percentile(iqm(resamples), [50 * (1 - size), 50 * (1 + size)])
    return point, float(lo), float(hi)


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


#: bootstrap resamples for every interval (rliable's examples use 2,000 for profiles)
REPS = 2000


def normalised(suite: dict[str, Any], task: str, score: float) -> float:
    """(score - random) / (reference - random) with the numbers `suite` (a record) gives."""
    random, reference = suite["normalise"][task]
    check_finite([score, random, reference], f"normalising {task}")
    if not reference > random:
        raise TextGenValueError(
            f"Expects {task}'s reference score above its random one, got reference {reference}, "
            f"random {random}"
        )
    return (score - random) / (reference - random)


def score_matrices(
    results: list[dict[str, Any]], suite: dict[str, Any], tasks: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per algorithm (by `algo_label`: your own by its name and a hash): its (seeds x tasks) matrix of normalised scores, over the seeds finished on
    every one of `tasks`; and per algorithm the number of seeds left out for lacking a task."""
    by_algo: dict[str, dict[tuple[int, str], float]] = {}
    for r in results:
        if r["task"] in tasks:
            by_algo.setdefault(algo_label(r["algo"]), {})[(r["seed"], r["task"])] = r["after"]
    matrices, dropped = {}, {}
    for algo, cells in by_algo.items():
        seeds = sorted({s for s, _ in cells})
        full = [s for s in seeds if all((s, t) in cells for t in tasks)]
        dropped[algo] = len(seeds) - len(full)
        if full:
            matrices[algo] = np.array(
                [[normalised(suite, t, cells[(s, t)]) for t in tasks] for s in full],
                dtype=np.float64,
            )
    return matrices, dropped


def _rliable() -> tuple[Any, Any]:
    with warnings.catch_warnings():  # rliable imports arch, which warns about its own options
        warnings.simplefilter("ignore")
        from rliable import library as rly
        from rliable import metrics
    return rly, metrics


def _resampled(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """REPS stratified bootstrap resamples of a (runs x tasks) matrix: each task's runs drawn
    with replacement, independently of the other tasks (rliable's `StratifiedBootstrap`)."""
    runs, tasks = scores.shape
    picks = rng.integers(0, runs, size=(REPS, runs, tasks))
    return scores[picks, np.arange(tasks)]  # (REPS, runs, tasks)


def _interval(values: np.ndarray, runs: int = 2) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap values (arch's "percentile" method); NaN, NaN
    when a side has a single run (`runs`): resampling one run gives one value, and a zero-width
    interval would claim a certainty that one seed cannot give (reports print "n/a")."""
    if runs < 2:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def interval_text(point: float, low: float, high: float) -> str:
    """`0.412 [0.380, 0.441]`, or `0.412 [n/a: one seed]` for an interval that one run cannot
    give (`_interval`'s NaN)."""
    if np.isnan(low) or np.isnan(high):
        return f"{point:.3f} [n/a: one seed]"
    return f"{point:.3f} [{low:.3f}, {high:.3f}]"


def _three(x: np.ndarray) -> np.ndarray:
    """IQM, optimality gap (to 1) and mean of (..., runs, tasks) score matrices, as rliable's
    `aggregate_iqm`, `aggregate_optimality_gap` and `aggregate_mean` define them."""
    flat = x.reshape(*x.shape[:-2], -1)
    iqm = scipy.stats.trim_mean(flat, proportiontocut=0.25, axis=-1)
    gap = (1.0 - np.minimum(flat, 1.0)).mean(axis=-1)
    return np.stack([iqm, gap, flat.mean(axis=-1)])


def aggregates(matrices: dict[str, np.ndarray]) -> dict[str, dict[str, tuple[float, float, float]]]:
    """Per algorithm: {"iqm" | "optimality_gap" | "mean": (point, low, high)} (95% CIs).

    rliable's statistics with the bootstrap drawn here: rliable's own draws its resamples from
    numpy's global random state whatever `random_state` it is given, so its intervals change with
    whatever ran before. Each algorithm's resamples come from a generator seeded 0: a report is
    reproducible and an algorithm's interval does not depend on which others sit beside it.
    One seed: the bounds are NaN (`_interval`)."""
    result = {}
    for algo, m in matrices.items():
        check_finite(m, f"{algo}'s normalised scores")
        points = _three(m)
        boot = _three(_resampled(m, np.random.default_rng(0)))
        result[algo] = {
            name: (float(points[k]), *_interval(boot[k], m.shape[0]))
            for k, name in enumerate(("iqm", "optimality_gap", "mean"))
        }
    return result


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of (..., runs, tasks) matrices: per task, the chance that a run of X beats a run
    of Y, ties counting half (the Mann-Whitney U / (n m) of rliable's
    `probability_of_improvement`), averaged over tasks."""
    diff = x[..., :, None, :] - y[..., None, :, :]  # (..., runs of X, runs of Y, tasks)
    per_task = ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-3, -2))
    return per_task.mean(axis=-1)


def improvement(
    pairs: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]],
) -> dict[tuple[str, str], tuple[float, float, float]]:
    """P(X > Y) with its 95% interval for each `(X, Y): (scores of X, scores of Y)`; the runs of
    X and of Y are resampled independently (rliable's `StratifiedIndependentBootstrap`), from a
    generator seeded 0 for each pair. A side with one seed: the bounds are NaN (`_interval`)."""
    result = {}
    for pair, (x, y) in pairs.items():
        for name, m in zip(pair, (x, y), strict=True):
            check_finite(m, f"P({pair[0]} > {pair[1]}): {name}'s normalised scores")
        rng = np.random.default_rng(0)
        xs, ys = _resampled(x, rng), _resampled(y, rng)
        step = max(
            1, 2**24 // x.size // y.shape[0]
        )  # resamples at a time: ~128 MB of differences, a few times that in temporaries
        boot = np.concatenate(
            [_improvement(xs[k : k + step], ys[k : k + step]) for k in range(0, REPS, step)]
        )
        result[pair] = (float(_improvement(x, y)), *_interval(boot, min(len(x), len(y))))
    return result
