"""Rerun published suite results and check them the way another lab can (issue 39).

    python -u benchmarks/suite_reproduce.py --task movie_sentiment        # a whole task column
    python -u benchmarks/suite_reproduce.py --cells ppo@target_tokens@3   # single cells

Bitwise equality of a cell holds on one CPU and software stack only: float32 kernels differ
between instruction sets (AVX2, AVX-512), and a training run amplifies a last-bit difference
into another trajectory. What a paper can claim, and another machine can check, is statistical:

- `--task T` reruns the whole column of T (every published algorithm x every published seed,
  with the settings the published grid recorded) under the suite's protocol, then checks, per
  algorithm, that the rerun's interquartile mean (IQM) of the normalised held-out scores lies
  inside the published 95% interval, and that the 95% interval of P(rerun > published) holds
  0.5. Two runs of one law fail these checks now and then by chance (each IQM check about one
  time in six: both IQMs vary; all twelve checks of a six-algorithm column pass together only
  about 30% of the time). The script draws pairs of pseudo-runs from the published seeds to
  estimate how often, and its verdict is that test's: the column differs when two runs of one
  law fail as many checks with probability below 0.05.
- `--cells A@T@S,...` reruns single cells and says whether they are bitwise the published ones
  (they are on the machine and stack that made them).

Cells run as Ray tasks (one thread each, as the published grid ran them; `--no-ray`: here, with
torch's own thread count). Each rerun cell records the machine it ran on (`agents.bench.machine`),
printed with the verdict.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import yaml

from agents.bench import improvement, load_suite, normalised, published, read_grid, run_bench
from agents.bench.machine import describe
from agents.bench.stats import aggregates


def rerun(suite, grid, algos, task, seeds, out: Path, use_ray: bool) -> list[dict]:
    """Run `algos` on `task` for `seeds` (a contiguous range) with the settings the published
    grid recorded, under the suite's protocol; returns the rerun's results."""
    hp = out / "hyperparams"
    hp.mkdir(parents=True, exist_ok=True)
    for algo in algos:  # the settings the published cells ran with, not today's files
        if algo != "random":
            recorded = grid["settings"][algo][task]
            (hp / f"{algo.rpartition(':')[2]}.yml").write_text(
                yaml.safe_dump({"default": recorded})
            )
    cfg = suite.bench_config(algos=algos, tasks=[task], seeds=len(seeds), first_seed=seeds[0],
                             hyperparams=str(hp), out=str(out / "grid"))  # fmt: skip
    for algo in algos:
        if algo != "random" and cfg.settings[algo][task] != grid["settings"][algo][task]:
            raise SystemExit(f"{algo}@{task}: could not set its recorded settings")
    paths = run_bench(cfg, use_ray=use_ray)
    return json.loads(Path(paths["json"]).read_text())


def checks(mine: np.ndarray, theirs: np.ndarray) -> tuple[tuple, tuple, bool, bool]:
    """(published IQM and its 95% interval), (P(rerun > published) and its interval), whether
    the rerun's IQM lies in the published interval, whether the P interval holds 0.5."""
    ours = aggregates({"x": mine[:, None]})["x"]["iqm"][0]
    iqm = aggregates({"y": theirs[:, None]})["y"]["iqm"]
    p = improvement({("x", "y"): (mine[:, None], theirs[:, None])})[("x", "y")]
    return iqm, p, bool(iqm[1] <= ours <= iqm[2]), bool(p[1] <= 0.5 <= p[2])


def same_law_pass_rate(published_scores: dict[str, np.ndarray], draws: int = 200) -> tuple:
    """How often two runs of one law pass the checks: pairs of pseudo-runs, each drawn from an
    algorithm's published seeds with replacement (the published scores standing for the law),
    one as the published grid, the other as its rerun. Returns the rate of each check per
    algorithm, and the number of failed checks (over all algorithms) of each pair of runs."""
    rng = np.random.default_rng(0)
    passed = {a: np.zeros((draws, 2), dtype=bool) for a in published_scores}
    for a, theirs in published_scores.items():
        n = len(theirs)
        for k in range(draws):
            first, second = (theirs[rng.integers(n, size=n)] for _ in range(2))
            passed[a][k] = checks(second, first)[2:]
    failures = np.sum([(~p).sum(axis=1) for p in passed.values()], axis=0)  # (draws,)
    return {a: p.mean(axis=0) for a, p in passed.items()}, failures


def column(args, suite, grid, results, record) -> None:
    task = args.task
    cells = [r for r in results if r["task"] == task]
    if not cells:
        raise SystemExit(f"{args.against} holds no cell of {task}")
    algos = list(dict.fromkeys(r["algo"] for r in cells))
    seeds = sorted({r["seed"] for r in cells})
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise SystemExit(f"Expects the published seeds of {task} to be a range, got {seeds}")
    out = Path(args.out or tempfile.mkdtemp(prefix=f"suite-reproduce-{task}-"))
    again = rerun(suite, grid, algos, task, seeds, out, not args.no_ray)

    def scores(rows, algo):
        return np.array([normalised(record, task, r["after"]) for r in rows if r["algo"] == algo])

    theirs = {a: scores(cells, a) for a in algos}
    rates, failures = same_law_pass_rate(theirs)
    print(f"\n## {task}: a rerun of {len(algos)} algorithms x {len(seeds)} seeds against "
          f"{args.against}\n")  # fmt: skip
    print("| algorithm | published IQM [95% CI] | rerun IQM | inside | P(rerun > published) "
          "[95% CI] | holds 0.5 | two runs of one law pass (IQM, P) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed = 0
    for a in algos:
        mine = scores(again, a)
        (point, lo, hi), p, inside, holds = checks(mine, theirs[a])
        ours = aggregates({"x": mine[:, None]})["x"]["iqm"][0]
        failed += (not inside) + (not holds)
        print(f"| {a} | {point:.3f} [{lo:.3f}, {hi:.3f}] | {ours:.3f} | {'yes' if inside else 'NO'} "
              f"| {p[0]:.3f} [{p[1]:.3f}, {p[2]:.3f}] | {'yes' if holds else 'NO'} | "
              f"{rates[a][0]:.2f}, {rates[a][1]:.2f} |")  # fmt: skip
    same = sum(
        (r["before"], r["after"]) == (c["before"], c["after"])
        for r in again
        for c in cells
        if (r["algo"], r["seed"]) == (c["algo"], c["seed"])
    )
    machines = sorted({describe(r["machine"]) for r in again})
    was = sorted({describe(c["machine"]) for c in cells if c.get("machine")}) or ["not recorded"]
    print(f"\nrerun on: {'; '.join(machines)}\npublished on: {'; '.join(was)}")
    print(f"cells bitwise equal to the published ones: {same} of {len(again)}")
    checks_run = 2 * len(algos)
    p_value = float(np.mean(failures >= failed))
    print(f"two runs of one law pass all {checks_run} checks with probability "
          f"{np.mean(failures == 0):.2f}"
          + (f", and fail {failed} or more of them with probability {p_value:.2f}" if failed else "")
          + " (pairs of pseudo-runs drawn from the published seeds)")  # fmt: skip
    if p_value >= 0.05:
        print(f"verdict: consistent with {args.against} ({failed} of {checks_run} checks failed; "
              f"p = {p_value:.2f} >= 0.05)")  # fmt: skip
    else:
        print(f"verdict: DIFFERS from {args.against} ({failed} of {checks_run} checks failed; two "
              f"runs of one law fail as many with p = {p_value:.2f} < 0.05)")  # fmt: skip


def single_cells(args, suite, grid, results) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="suite-reproduce-"))
    same = True
    for n, cell in enumerate(args.cells.split(",")):
        parts = cell.split("@")
        if len(parts) != 3 or not parts[2].isdigit():
            raise SystemExit(f"Expects algorithm@task@seed, got {cell!r}")
        algo, task, seed = parts[0], parts[1], int(parts[2])
        was = [r for r in results if (r["algo"], r["task"], r["seed"]) == (algo, task, seed)]
        if not was:
            raise SystemExit(f"{args.against} holds no cell {cell}")
        if (out / f"cell{n}").exists():  # a finished cell there would be read, not rerun
            raise SystemExit(f"{out / f'cell{n}'} exists: pass an --out that holds no cells")
        (again,) = rerun(suite, grid, [algo], task, [seed], out / f"cell{n}", not args.no_ray)
        equal = (again["before"], again["after"]) == (was[0]["before"], was[0]["after"])
        same &= equal
        print(f"{algo} on {task}, seed {seed}: published before {was[0]['before']:.6f} after "
              f"{was[0]['after']:.6f}; rerun before {again['before']:.6f} after "
              f"{again['after']:.6f} -> {'the same' if equal else 'DIFFERENT'} (rerun on "
              f"{describe(again['machine'])})")  # fmt: skip
    print("every cell reproduced bitwise" if same else "some cells differ (bitwise equality "
          "holds on one machine and stack only: check a whole column with --task)")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", default="suite-v1")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="rerun this task's whole column and check it statistically")
    what.add_argument("--cells", help="algorithm@task@seed, comma-separated: bitwise checks")
    p.add_argument("--out", default="", help="default: a temporary folder")
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args()
    grid, results = read_grid(published(args.against))
    suite = load_suite(grid["suite"]["version"])
    if suite.record() != grid["suite"]:
        raise SystemExit(f"{args.against} ran another suite file than {suite.version}'s of today")
    if args.task:
        column(args, suite, grid, results, grid["suite"])
    else:
        single_cells(args, suite, grid, results)


if __name__ == "__main__":
    main()
