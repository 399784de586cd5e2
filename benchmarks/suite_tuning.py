"""A suite's learning-rate sweep: every trained baseline at each learning rate on every task of
the suite, on the tuning split of seeds (100, 101, ...: never the suite's evaluation seeds 0-9),
at the suite's budgets and protocol, scored on the tasks' validation prompts (never the test
prompts that the suite scores: issue 39; v1's rates were tuned before the split existed, on the
test prompts, as results/suite-v1/README.md says).

    python -u benchmarks/suite_tuning.py --out /work/suite_tune            # 1 tuning seed
    python -u benchmarks/suite_tuning.py --out /work/suite_tune --seeds 2 --ray

Prints, per algorithm and learning rate, the mean normalised score over the tasks
((score - random) / (reference - random), the suite's own numbers) and the rate it would pick;
the chosen rates are shipped in agents/hyperparams/<algo>.yml by hand, with this output quoted.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from agents.bench import load_suite, run_bench


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="v1")
    p.add_argument("--out", default="suite_tune")
    p.add_argument("--rates", default="1e-4,3e-4,1e-3")
    p.add_argument("--algos", default="", help="default: the suite's trained baselines")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--tasks", default="", help="default: all the suite's")
    p.add_argument("--quick", action="store_true", help="the suite's quick budgets (a smoke run)")
    p.add_argument("--ray", action="store_true")
    args = p.parse_args()
    suite = load_suite(args.suite)
    algos = args.algos.split(",") if args.algos else [a for a in suite.algos if a != "random"]
    rates = [float(r) for r in args.rates.split(",")]
    tasks = args.tasks.split(",") if args.tasks else list(suite.tasks)
    table: dict[str, dict[float, float]] = {a: {} for a in algos}
    for rate in rates:
        cfg = suite.bench_config(algos=algos, tasks=tasks, seeds=args.seeds, quick=args.quick,
                                 first_seed=args.first_seed, learning_rate=rate,
                                 eval_split="validation",
                                 out=str(Path(args.out) / f"lr{rate:g}"))  # fmt: skip
        cfg.suite = suite.record("tuning (quick)" if args.quick else "tuning")
        paths = run_bench(cfg, use_ray=args.ray)
        results = json.loads(Path(paths["json"]).read_text())
        for algo in algos:
            scores = [suite.normalised(r["task"], r["after"]) for r in results if r["algo"] == algo]
            table[algo][rate] = float(np.mean(scores))
    print(f"\nmean normalised score on the validation prompts over the {len(tasks)} tasks of "
          f"suite {suite.version}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}")  # fmt: skip
    print("| algorithm | " + " | ".join(f"lr {r:g}" for r in rates) + " | chosen |")
    print("| --- |" + " --- |" * (len(rates) + 1))
    for algo, row in table.items():
        best = max(row, key=row.get)
        print(f"| {algo} | " + " | ".join(f"{row[r]:.3f}" for r in rates) + f" | {best:g} |")


if __name__ == "__main__":
    main()
