"""`textgen bench`: algorithms x tasks x seeds, each combination a cell, with proper statistics.

Each cell is a `textgen train` run (or, for `random`, an evaluation of a uniformly random policy;
for your own training function, its policies for a budget of 0 and of the cell's, evaluated:
`run_function`) in `OUT/cells/<algo>__<task>-<hash>__s<seed>/`, finished by an atomically
written `result.json`; a rerun skips finished cells and resumes interrupted ones from their
checkpoint. `OUT/grid.json` records the settings of every cell (model, steps, envs, eval
episodes, and each algorithm's hyperparameters on each task: `hyperparams_for`, rl-zoo3-style
YAML files): a rerun that would mix other settings into a finished or started cell is refused;
algorithms, tasks and seeds may join a grid. A
cell that fails, whatever the error, does not stop the others; the grid reports the failures at
the end. The outputs, rewritten after every cell from all finished cells:

| file | what |
| --- | --- |
| `results.csv` | one row per cell: held-out reward before and after training, the lift, steps, seconds |
| `results.json` | the same with each cell's learning curve (rollout reward per step) |
| `results.md` | per task: mean +- std over seeds; per algorithm: the interquartile mean (IQM) over tasks x seeds with a 95% stratified-bootstrap confidence interval (as rliable computes it, with every finished seed of every task) |
| `curves.png` | learning curves, one panel per task: the mean over seeds with a band from the lowest to the highest seed |
| `profiles.png` | a suite grid's (`--suite`, `agents.bench.suites`): rliable's performance profiles of the normalised scores, whose IQM, optimality gap and mean results.md adds at the end of the grid (`agents.bench.compare`) |

Cells run one after another, or as Ray tasks (`--ray`: a local Ray, or the cluster named by
`RAY_ADDRESS` when set; `--ray ADDRESS` for another) with the same outputs; each task's result
comes back to the driver, which writes it, so the workers need no shared disk. Needs the `bench` extra (`pip install 'gym-textgen[bench]'`).
"""

from __future__ import annotations

from agents.bench.algos import VARIANTS, RandomAgent, bench_names, variant
from agents.bench.cells import run_cell, run_function
from agents.bench.compare import compare, read_grid, suite_of
from agents.bench.grid import QUICK, BenchConfig, cell_folder
from agents.bench.hyperparams import (
    GRID_KEYS,
    HYPERPARAMS,
    check_settings,
    hyperparams_file,
    hyperparams_for,
)
from agents.bench.report import iqm_table, write_outputs
from agents.bench.runner import run_bench
from agents.bench.stats import (
    aggregates,
    improvement,
    iqm,
    markdown,
    normalised,
    score_matrices,
    stratified_bootstrap_iqm,
)
from agents.bench.suites import SUITES, Suite, SuiteTask, load_suite, published
from agents.registry import algo_label

__all__ = [
    "GRID_KEYS",
    "HYPERPARAMS",
    "QUICK",
    "SUITES",
    "VARIANTS",
    "BenchConfig",
    "RandomAgent",
    "Suite",
    "SuiteTask",
    "aggregates",
    "algo_label",
    "bench_names",
    "cell_folder",
    "check_settings",
    "compare",
    "hyperparams_file",
    "hyperparams_for",
    "improvement",
    "iqm",
    "iqm_table",
    "load_suite",
    "markdown",
    "normalised",
    "published",
    "read_grid",
    "run_bench",
    "run_cell",
    "run_function",
    "score_matrices",
    "stratified_bootstrap_iqm",
    "suite_of",
    "variant",
    "write_outputs",
]
