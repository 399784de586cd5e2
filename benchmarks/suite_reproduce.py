"""Rerun published cells of a suite and check that they give the same numbers (issue 27).

    python -u benchmarks/suite_reproduce.py --cells ppo@target_tokens@3,a2c@dialogue@7

Each cell (algorithm@task@seed) runs again in a fresh folder under the suite's protocol, as
the published grid ran it (its recorded hyperparameters; one cell per Ray worker, one thread each; `--no-ray` runs them here,
with torch's own thread count, which may sum floats in another order), and its held-out reward
before and after training is printed beside the published one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from agents.bench import load_suite, published, read_grid, run_bench, suite_of


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", default="suite-v1")
    p.add_argument(
        "--cells",
        default="ppo@target_tokens@3,a2c@dialogue@7",
        help="algorithm@task@seed, comma-separated",
    )
    p.add_argument("--out", default="", help="default: a temporary folder")
    p.add_argument("--no-ray", action="store_true")
    args = p.parse_args()
    grid, results = read_grid(published(args.against))
    suite = load_suite(suite_of(grid, args.against)["version"])
    if suite.record() != grid["suite"]:
        raise SystemExit(f"{args.against} ran another suite file than {suite.version}'s of today")
    cells = []
    for cell in args.cells.split(","):  # every cell looked up before any runs
        parts = cell.split("@")
        if len(parts) != 3 or not parts[2].isdigit():
            raise SystemExit(f"Expects algorithm@task@seed, got {cell!r}")
        key = (parts[0], parts[1], int(parts[2]))
        was = [r for r in results if (r["algo"], r["task"], r["seed"]) == key]
        if not was:
            raise SystemExit(f"{args.against} holds no cell {cell}")
        cells.append((*key, was[0]))
    out = Path(args.out or tempfile.mkdtemp(prefix="suite-reproduce-"))
    same = True
    for n, (algo, task, seed, was) in enumerate(cells):
        # the settings the published cell ran with, not today's hyperparameter files
        settings = out / f"hyperparams{n}"
        if (out / f"cell{n}").exists():  # a finished cell there would be read, not rerun
            raise SystemExit(f"{out / f'cell{n}'} exists: pass an --out that holds no cells")
        settings.mkdir(parents=True, exist_ok=True)
        name = algo.rpartition(":")[2]  # your own algorithm's file is named after it
        recorded = grid["settings"][algo][task]
        (settings / f"{name}.yml").write_text(yaml.safe_dump({"default": recorded}))
        cfg = suite.bench_config(algos=[algo], tasks=[task], seeds=1, first_seed=seed,
                                 hyperparams=str(settings), out=str(out / f"cell{n}"))  # fmt: skip
        if cfg.settings[algo][task] != recorded:
            raise SystemExit(
                f"{algo}@{task}@{seed}: could not set its recorded settings {recorded}"
            )
        paths = run_bench(cfg, use_ray=not args.no_ray)
        (again,) = json.loads(Path(paths["json"]).read_text())
        equal = (again["before"], again["after"]) == (was["before"], was["after"])
        same &= equal
        print(f"{algo} on {task}, seed {seed}: published before {was['before']:.6f} after "
              f"{was['after']:.6f}; rerun before {again['before']:.6f} after {again['after']:.6f}"
              f" -> {'the same' if equal else 'DIFFERENT'}")  # fmt: skip
    print("every cell reproduced" if same else "some cells differ")


if __name__ == "__main__":
    main()
