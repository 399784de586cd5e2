"""Suite statistics and `textgen bench compare RUN --against suite-v1`: a grid's algorithms beside
the published baselines of the same suite, on normalised scores, without rerunning them.

The statistics are rliable's (Agarwal et al. 2021; tested against its functions), on each
algorithm's (runs x tasks) matrix of normalised held-out scores ((score - random) / (reference - random), the suite's numbers):

- the interquartile mean (IQM), the optimality gap (how far below 1 the runs fall, on average)
  and the mean, each with a 95% stratified-bootstrap confidence interval;
- the probability of improvement P(X > Y): the chance that a run of X beats a run of Y on a task
  drawn at random (0.5: no difference), with its 95% interval;
- performance profiles: the fraction of runs whose normalised score exceeds each tau (a plot).

rliable needs as many runs on every task: an algorithm's matrix keeps the seeds that finished on
all the suite's tasks (the number of seeds dropped is reported). The bootstrap is drawn here from
a seeded generator (rliable's draws from numpy's global state), so a report is reproducible.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from agents.bench_report import markdown
from agents.registry import algo_label
from agents.suite import published
from gym_textgen.errors import TextGenValueError

#: bootstrap resamples for every interval (rliable's examples use 2,000 for profiles)
REPS = 2000


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


def normalised(suite: dict[str, Any], task: str, score: float) -> float:
    """(score - random) / (reference - random) with the numbers `suite` (a record) gives."""
    random, reference = suite["normalise"][task]
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


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap values (arch's "percentile" method)."""
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


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
    reproducible and an algorithm's interval does not depend on which others sit beside it."""
    result = {}
    for algo, m in matrices.items():
        points = _three(m)
        boot = _three(_resampled(m, np.random.default_rng(0)))
        result[algo] = {
            name: (float(points[k]), *_interval(boot[k]))
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
    generator seeded 0 for each pair."""
    result = {}
    for pair, (x, y) in pairs.items():
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise TextGenValueError(
                f"Expects finite normalised scores for P({pair[0]} > {pair[1]}), got NaN or inf"
            )
        rng = np.random.default_rng(0)
        xs, ys = _resampled(x, rng), _resampled(y, rng)
        step = max(
            1, 2**24 // x.size // y.shape[0]
        )  # resamples at a time: ~128 MB of differences, a few times that in temporaries
        boot = np.concatenate(
            [_improvement(xs[k : k + step], ys[k : k + step]) for k in range(0, REPS, step)]
        )
        result[pair] = (float(_improvement(x, y)), *_interval(boot))
    return result


def plot_profiles(matrices: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Performance profiles (rliable) of the normalised scores, written to `path` (png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from rliable import plot_utils

    from agents.callbacks import atomic_write_bytes

    rly, _ = _rliable()
    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(min(0.0, min(float(m.min()) for m in matrices.values())), top, 81)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(0)  # create_performance_profile bootstraps from numpy's global state
        profiles, cis = rly.create_performance_profile(matrices, taus, reps=200)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        palette = plt.get_cmap("tab10").colors
        colors = {a: palette[k % len(palette)] for k, a in enumerate(matrices)}
        plot_utils.plot_performance_profiles(
            profiles, taus, performance_profile_cis=cis, ax=ax, colors=colors,
            xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs with score > $\tau$",
        )  # fmt: skip
        lines = [Line2D([0], [0], color=colors[a], lw=2) for a in matrices]
        ax.legend(lines, list(matrices), loc="upper right", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def aggregate_rows(matrices: dict[str, np.ndarray], dropped: dict[str, int]) -> list[list[Any]]:
    """The table of IQM, optimality gap and mean, each with its 95% CI, one row per algorithm."""
    stats = aggregates(matrices)
    rows = []
    for algo, s in stats.items():
        cells = [f"{p:.3f} [{lo:.3f}, {hi:.3f}]" for p, lo, hi in s.values()]
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
    rows = [[x, y, f"{p:.3f} [{lo:.3f}, {hi:.3f}]"] for (x, y), (p, lo, hi) in probs.items()]
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
