"""Lesson 8 - comparing algorithms on two tasks with seeds: interquartile means and confidence
intervals.

Learning goal: "algorithm A beats B" is a statistical claim. One run per algorithm proves
nothing - the same algorithm with another seed can land far away. The field's answer (Agarwal et
al., 2021, "Deep RL at the edge of the statistical precipice", the `rliable` library) is:
run several seeds on several tasks, report the interquartile mean (IQM: the mean of the middle
50% of all runs, robust to one lucky or broken run, yet less noisy than the median) with a
stratified-bootstrap confidence interval (resample seeds within each task, 2000 times).

This lesson runs `textgen bench --quick`'s grid from Python (random, PPO and REINFORCE-RLOO on
`target_tokens` and `movie_sentiment`, 2 seeds, 2048 steps a cell), then reads the results the
way a reviewer should. What to observe in `lesson_08.png`: the per-run dots (left) spread within
each algorithm; the IQM intervals (right) overlap where the data cannot tell two algorithms
apart. With 2 seeds the intervals are wide: that is the honest answer, not a failure.

    python examples/course/lesson_08_comparing_algorithms.py     # about 2 minutes on 2 cores
    textgen bench --quick --out bench-quick                      # the same grid from the shell
"""

from dataclasses import dataclass

import numpy as np

from agents.bench import QUICK, BenchConfig, run_bench
from agents.dataclass_cli import parse_dataclass_args


@dataclass
class Args:
    algos: str = ",".join(QUICK["algos"])
    """comma-separated, from `textgen bench --help`"""
    tasks: str = ",".join(QUICK["tasks"])
    seeds: int = QUICK["seeds"]
    timesteps: int = QUICK["timesteps"]
    """environment steps per cell"""
    eval_episodes: int = 32
    """held-out episodes scored per cell"""
    n_envs: int = 8
    model: str = "default"
    out: str = "lesson_08_bench"
    """the grid's folder: rerunning skips the finished cells"""
    plot: str = "lesson_08.png"


def iqm(x: np.ndarray) -> float:
    """The interquartile mean by hand: sort, drop the lowest and highest quarter, average."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    n = len(x)
    lo, hi = int(np.floor(n * 0.25)), int(np.ceil(n * 0.75))
    return float(x[lo:hi].mean()) if hi > lo else float(x.mean())


def main(args: Args) -> dict[str, dict[str, float]]:
    cfg = BenchConfig(
        algos=args.algos.split(","), tasks=args.tasks.split(","), seeds=args.seeds, timesteps=args.timesteps,
        eval_episodes=args.eval_episodes, n_envs=args.n_envs, model=args.model, out=args.out,
    )  # fmt: skip
    import json
    from pathlib import Path

    paths = run_bench(cfg)  # every cell: train, then score held-out prompts before and after
    results = json.loads(Path(paths["json"]).read_text())

    # 1. The raw material: one number per run (held-out reward after training).
    print("\nper run (held-out reward after training):")
    for r in results:
        print(f"  {r['task']:>16} {r['algo']:>15} seed {r['seed']}: {r['after']:.3f}")

    # 2. The IQM with its bootstrap interval, as rliable computes it (the bench wrote it to
    #    results.md); and our own IQM over the same runs, to see there is no magic in it.
    from rliable import library as rly
    from rliable import metrics

    scores = {
        a: np.array(
            [[r["after"] for r in results if r["algo"] == a and r["task"] == t] for t in cfg.tasks],
            dtype=np.float64,
        ).T  # (seeds, tasks): rliable's layout
        for a in cfg.algos
    }
    point, interval = rly.get_interval_estimates(
        scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000
    )
    summary = {}
    print("\nalgorithm        IQM    95% CI            our IQM   mean +- std")
    for a, s in scores.items():
        lo, hi = interval[a][:, 0]
        summary[a] = {"iqm": float(point[a][0]), "lo": float(lo), "hi": float(hi)}
        print(
            f"  {a:>15} {point[a][0]:.3f}  [{lo:.3f}, {hi:.3f}]   {iqm(s):.3f}     "
            f"{s.mean():.3f} +- {s.std(ddof=1):.3f}"
        )

    # 3. Reading it: two algorithms differ only where their intervals do not overlap.
    names = list(summary)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = summary[a], summary[b]
            if sa["lo"] > sb["hi"] or sb["lo"] > sa["hi"]:
                better = a if sa["iqm"] > sb["iqm"] else b
                print(f"  {a} vs {b}: the intervals do not overlap - {better} is better here")
            else:
                print(f"  {a} vs {b}: the intervals overlap - these runs cannot tell them apart")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=100)
    for k, task in enumerate(cfg.tasks):
        for j, a in enumerate(names):
            runs = [r["after"] for r in results if r["algo"] == a and r["task"] == task]
            left.scatter([j + 0.15 * (k - 0.5)] * len(runs), runs, s=18, label=task if j == 0 else None,
                         color=f"C{k}")  # fmt: skip
    left.set_xticks(range(len(names)), names, fontsize=8)
    left.set_ylabel("held-out reward after training")
    left.set_title("every run")
    left.legend(fontsize=7)
    for j, a in enumerate(names):
        s = summary[a]
        right.errorbar([j], [s["iqm"]], yerr=[[s["iqm"] - s["lo"]], [s["hi"] - s["iqm"]]],
                       fmt="o", capsize=4)  # fmt: skip
    right.set_xticks(range(len(names)), names, fontsize=8)
    right.set_title("IQM over tasks x seeds, 95% CI")
    fig.suptitle("Lesson 8: comparing algorithms")
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}; the bench's own table, CSV, JSON and curves: {args.out}/")
    return summary


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
