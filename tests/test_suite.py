"""Suite v1 (issue 27): a frozen protocol as data, `textgen bench --suite`, and `textgen bench
compare` with rliable's statistics; your own algorithms through the quick suite."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents import cli
from agents.bench import SUITES, aggregates, compare, improvement, load_suite, score_matrices
from gym_textgen.errors import TextGenValueError
from tests.test_own_algorithms import EXAMPLE, algo_file  # noqa: F401 (a fixture)

PUBLISHED = Path(__file__).resolve().parents[1] / "results" / "suite-v1"


def test_suite_v1_is_frozen_and_complete():
    suite = load_suite("v1")
    # v1 stays v1: a new protocol is a new file (v2), never an edit of this one
    digest = hashlib.sha256((SUITES / "v1.yml").read_bytes()).hexdigest()
    assert suite.digest == digest == V1_SHA256
    assert len(suite.tasks) >= 6 and len(suite.algos) >= 6 and "random" in suite.algos
    assert suite.seeds == 10
    for task in suite.tasks.values():
        assert task.reference > task.random and task.reference_is and task.timesteps >= 1024
        assert suite.normalised(task.name, task.random) == 0.0
        assert suite.normalised(task.name, task.reference) == 1.0


V1_SHA256 = "526abd6d57cff050f2b3c564ca7bd951a285e19e9f96d095a2ac4b06b7e29636"


def test_a_suite_sets_the_grid_and_quick_scales_it():
    suite = load_suite("v1")
    cfg = suite.bench_config(out="x")
    assert cfg.tasks == list(suite.tasks) and cfg.algos == list(suite.algos)
    assert cfg.budgets == {t: s.timesteps for t, s in suite.tasks.items()}
    assert cfg.seeds == 10 and cfg.eval_episodes == suite.eval_episodes
    assert cfg.suite == {"version": "v1", "protocol": "full", "digest": suite.digest,
                         "normalise": {t.name: [t.random, t.reference] for t in suite.tasks.values()}}  # fmt: skip
    assert cfg.task_env == {"reasoning_gym:syllogism": {"max_new_tokens": 3}}
    quick = suite.bench_config(quick=True, tasks=["target_tokens", "keywords"], algos=["ppo"])
    fraction = suite.quick["budget_fraction"]
    assert quick.budgets == {
        t: max(64, int(suite.tasks[t].timesteps * fraction)) for t in ["target_tokens", "keywords"]
    }
    assert quick.suite["protocol"] == "quick" and quick.seeds == suite.quick["seeds"]
    assert quick.task_env == {}  # only the named tasks' settings
    cells = quick.cells()
    assert [(c["task"], c["timesteps"]) for c in cells] == [
        (t, quick.budgets[t]) for t in quick.tasks
    ]
    with pytest.raises(TextGenValueError, match=r"Suite v1 has the tasks .*got \['copy'\]"):
        suite.bench_config(tasks=["copy"])
    # a tuning split of seeds: other seeds, other cells
    tune = suite.bench_config(first_seed=100, seeds=2)
    assert sorted({c["seed"] for c in tune.cells()}) == [100, 101]


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: x\n", r"missing keys \['algos', 'model', 'seeds', 'tasks'\]"),
        (
            "version: x\nmodel: d\nseeds: 1\nalgos: [random]\ntasks: {a: {}}\nbudget: 3\n",
            r"unknown keys \['budget'\]",
        ),  # fmt: skip
        (
            "version: x\nmodel: d\nseeds: 1\nalgos: [random]\ntasks: {a: {timesteps: 1}}\n",
            r"task a: unknown keys \[\], missing \['random', 'reference'\]",
        ),  # fmt: skip
        (
            "version: x\nmodel: d\nseeds: 1\nalgos: [random]\n"
            "tasks: {a: {timesteps: 1, random: 0.5, reference: 0.5}}\n",
            r"expects reference > random .*got reference 0.5, random 0.5",
        ),  # fmt: skip
    ],
)
def test_bad_suite_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "mine.yml"
    path.write_text(text)
    with pytest.raises(TextGenValueError, match=message):
        load_suite(str(path))


def test_a_suites_protocol_is_not_overridden_and_compare_needs_its_arguments(tmp_path, capsys):
    assert cli.main(["bench", "--suite", "v1", "--timesteps", "64"]) == 2
    assert "--suite v1 fixes the protocol; drop ['--timesteps']" in capsys.readouterr().err
    assert cli.main(["bench", "--suite", "v9"]) == 2
    assert "Expects a suite from ['v1'" in capsys.readouterr().err
    assert cli.main(["bench", "compare", str(tmp_path)]) == 2
    assert "--against" in capsys.readouterr().err
    assert cli.main(["bench", "compare", str(tmp_path), "--against", "suite-v1"]) == 2
    err = capsys.readouterr().err
    assert "lacks" in err and "grid.json" in err
    # a grid run without --suite has no normalisation
    (tmp_path / "grid.json").write_text(json.dumps({"model": "default"}))
    (tmp_path / "results.json").write_text("[]")
    assert cli.main(["bench", "compare", str(tmp_path), "--against", str(tmp_path)]) == 2
    assert "was not run with --suite" in capsys.readouterr().err


def _results(algo: str, scores: dict[str, list[float]]) -> list[dict]:
    return [
        {"algo": algo, "task": task, "seed": seed, "after": score}
        for task, values in scores.items()
        for seed, score in enumerate(values)
    ]


def test_score_matrices_normalise_and_keep_the_seeds_finished_on_every_task():
    suite = load_suite("v1")
    tasks = ["target_tokens", "dialogue"]
    t, d = suite.tasks["target_tokens"], suite.tasks["dialogue"]
    results = _results("ppo", {"target_tokens": [t.reference, t.random, 0.6],
                               "dialogue": [d.random, d.reference]})  # fmt: skip
    matrices, dropped = score_matrices(results, suite.record(), tasks)
    assert dropped == {"ppo": 1}  # seed 2 has no dialogue result
    np.testing.assert_allclose(matrices["ppo"], [[1.0, 0.0], [0.0, 1.0]])


def test_probability_of_improvement_reads_no_difference_for_copies_and_1_for_dominance():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6))
    got = improvement({("x", "copy"): (x, x.copy()), ("better", "x"): (x + 2, x),
                       ("x", "better"): (x, x + 2)})  # fmt: skip
    assert got["x", "copy"][0] == 0.5 and got["x", "copy"][1] <= 0.5 <= got["x", "copy"][2]
    assert got["better", "x"] == (1.0, 1.0, 1.0) and got["x", "better"] == (0.0, 0.0, 0.0)
    # different numbers of runs compare too
    assert 0 <= improvement({("a", "b"): (x[:3], x)})["a", "b"][0] <= 1


def test_statistics_are_rliables_and_reproducible_whatever_numpys_global_state():
    rliable = pytest.importorskip("rliable.library")
    from rliable import metrics

    rng = np.random.default_rng(3)
    scores = {"a": np.round(rng.normal(0.2, 0.4, (10, 6)), 1),  # ties, runs above 1 and below 0
              "b": np.round(rng.normal(0.5, 0.4, (7, 6)), 1)}  # fmt: skip
    np.random.seed(1)
    ours = aggregates(scores)
    probs = improvement({("a", "b"): (scores["a"], scores["b"])})
    np.random.seed(2)  # rliable's own bootstrap draws from this; ours does not
    assert aggregates(scores) == ours
    assert improvement({("a", "b"): (scores["a"], scores["b"])}) == probs

    def three(x):
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_optimality_gap(x, 1.0),
                         metrics.aggregate_mean(x)])  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points, intervals = rliable.get_interval_estimates(scores, three, reps=4_000)
        p_point, p_interval = rliable.get_interval_estimates(
            {"ab": [scores["a"], scores["b"]]}, metrics.probability_of_improvement, reps=4_000
        )
    for algo in scores:
        for k, name in enumerate(("iqm", "optimality_gap", "mean")):
            point, low, high = ours[algo][name]
            assert point == pytest.approx(points[algo][k], abs=1e-12)
            # the intervals: the same bootstrap, other draws (2,000 resamples against 4,000;
            # differences up to 0.012 measured over five global seeds)
            assert (low, high) == pytest.approx(tuple(intervals[algo][:, k]), abs=0.03)
    assert probs["a", "b"][0] == pytest.approx(float(p_point["ab"]), abs=1e-12)
    assert probs["a", "b"][1:] == pytest.approx(tuple(p_interval["ab"].ravel()), abs=0.03)


@pytest.mark.slow
def test_your_own_algorithms_run_the_quick_suite_and_compare_with_published_results(
    algo_file,  # noqa: F811 (the fixture: my_algo.py:CountingPPO in the working folder)
    tmp_path,
):
    pytest.importorskip("rliable")
    out = tmp_path / "quick"
    ours = ["my_algo.py:CountingPPO", f"{EXAMPLE}:reinforce_loop"]
    argv = ["bench", "--suite", "v1", "--quick", "--algos", ",".join(ours), "--out", str(out)]
    assert cli.main(argv) == 0
    grid = json.loads((out / "grid.json").read_text())
    suite = load_suite("v1")
    assert grid["suite"] == suite.record("quick") and set(grid["budgets"]) == set(suite.tasks)
    results = json.loads((out / "results.json").read_text())
    assert {r["task"] for r in results} == set(suite.tasks) and len(results) == 2 * 6
    syllogism = next(
        p for p in (out / "cells").iterdir() if "syllogism" in p.name and "Counting" in p.name
    )
    config = yaml.safe_load((syllogism / "run" / "config.yaml").read_text())
    assert config["env_kwargs"] == {"max_new_tokens": 3} and config["timesteps"] == 256
    against = str(PUBLISHED) if PUBLISHED.is_dir() else str(out)
    text = compare(out, against).read_text()
    assert "The protocols differ" in text or against == str(out)
    for label in ("CountingPPO-", "reinforce_loop-"):
        assert label in text
    assert (out / "profiles.png").stat().st_size > 10_000


@pytest.mark.skipif(not PUBLISHED.is_dir(), reason="results/suite-v1 is published in the repo")
def test_a_copy_of_published_results_compares_as_no_difference(tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("grid.json", "results.json"):
        shutil.copy(PUBLISHED / name, copy / name)
    text = compare(copy, "suite-v1").read_text()
    rows = [line.split(" | ") for line in text.splitlines() if "(this run) | " in line]
    same = [r for r in rows if r[0].strip("| ").removesuffix(" (this run)") == r[1]]
    assert len(same) == len(load_suite("v1").algos)
    for row in same:
        p = float(row[2].split(" ")[0])
        assert 0.45 <= p <= 0.55
    assert "The protocols differ" not in text


def _grid(folder: Path, protocol: str, results: list[dict]) -> Path:
    folder.mkdir()
    (folder / "grid.json").write_text(json.dumps({"suite": load_suite("v1").record(protocol)}))
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_compare_places_a_run_beside_published_results_without_rerunning(tmp_path):
    suite = load_suite("v1")
    rng = np.random.default_rng(1)
    full = {t: list(rng.uniform(s.random, s.reference, 4)) for t, s in suite.tasks.items()}
    published_ = _grid(tmp_path / "pub", "full", [*_results("ppo", full),
                                                 *_results("random", {t: [s.random] * 4 for t, s in suite.tasks.items()})])  # fmt: skip
    better = {t: [s.reference] * 3 for t, s in suite.tasks.items()}
    partial = {t: v for t, v in full.items() if t != "keywords"}
    run = _grid(tmp_path / "run", "quick", [*_results("ppo", full),
                *_results("/x/mine.py:Best", better), *_results("half", partial)])  # fmt: skip
    text = compare(run, str(published_)).read_text()
    assert "The protocols differ" in text and "no seed finished on every task: ['half']" in text
    rows = {tuple(c.strip() for c in line.strip("|").split("|")[:2]): line
            for line in text.splitlines() if line.startswith("| ")}  # fmt: skip
    # a copy of published results: no difference; a perfect algorithm beats every published one
    same = rows[("ppo (this run)", "ppo")].split("|")[3].split()
    assert same[0] == "0.500" and float(same[1].strip("[,")) < 0.5 < float(same[2].strip("]"))
    best = next(k[0] for k in rows if k[0].startswith("Best-"))
    assert "| 1.000 [1.000, 1.000] |" in rows[(best, "ppo")]
    assert "| 1.000 [1.000, 1.000] |" in rows[(best, "random")]
    iqm_row = next(line for line in text.splitlines() if line.startswith(f"| {best} |"))
    assert iqm_row.split("|")[2].strip() == "1.000 [1.000, 1.000]"  # normalised: 1 = reference
    assert (run / "compare" / "profiles.png").is_file()
    # nothing finished on every task: a clear error, not an empty table
    gappy = [r for r in _results("gappy", full) if (r["seed"] == 0) != (r["task"] == "keywords")]
    empty = _grid(
        tmp_path / "empty", "full", gappy
    )  # seed 0 lacks keywords, the others have only it
    with pytest.raises(TextGenValueError, match=r"No algorithm in .*empty finished a seed"):
        compare(empty, str(published_))


MINE = """version: mine
model: random-tiny
n_envs: 2
eval_episodes: 2
seeds: 2
algos: [random, a2c]
tasks:
  target_tokens: {timesteps: 64, random: 0.25, reference: 1.0, reference_is: the maximum}
  keywords:
    timesteps: 64
    random: 0.0
    reference: 1.0
    env_kwargs: {max_new_tokens: 3}
quick: {seeds: 1, budget_fraction: 0.5, eval_episodes: 2}
"""


def test_a_suite_of_your_own_runs_reports_compares_and_guards_its_cells(tmp_path, capsys):
    pytest.importorskip("rliable")
    mine = tmp_path / "mine.yml"
    mine.write_text(MINE)
    out = tmp_path / "grid"
    # one task first; the other joins the same grid later
    assert (
        cli.main(["bench", "--suite", str(mine), "--tasks", "target_tokens", "--out", str(out)])
        == 0
    )
    assert cli.main(["bench", "--suite", str(mine), "--out", str(out)]) == 0
    grid = json.loads((out / "grid.json").read_text())
    assert grid["suite"]["version"] == "mine" and grid["task_env"] == {
        "keywords": {"max_new_tokens": 3}
    }
    assert grid["budgets"] == {"target_tokens": 64, "keywords": 64}
    report = (out / "results.md").read_text()
    assert "suite mine (full)" in report and "| a2c | " in report and "optimality gap" in report
    assert (out / "profiles.png").is_file()
    # compared with itself (a suite given as a file: its record in grid.json is enough)
    capsys.readouterr()
    assert cli.main(["bench", "compare", str(out), "--against", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| a2c (this run) | a2c | 0.500 [" in text and (out / "compare" / "compare.md").is_file()
    # a plain grid does not adopt the suite's cells (keywords ran with 3 new tokens)
    plain = ["bench", "--algos", "random,a2c", "--tasks", "target_tokens,keywords", "--seeds", "2",
             "--timesteps", "64", "--n-envs", "2", "--eval-episodes", "2", "--model", "random-tiny",
             "--out", str(out)]  # fmt: skip
    assert cli.main(plain) == 2
    assert (
        "holds cells run with other settings (suite: {'version': 'mine'" in capsys.readouterr().err
    )
    # nor does the quick protocol, whose budgets differ
    assert cli.main(["bench", "--suite", str(mine), "--quick", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err
    # compare takes only its own arguments
    assert cli.main(["bench", "compare", str(out), "--against", str(out), "--quick"]) == 2
    assert "it takes no ['--quick']" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("timesteps: 64,", "timesteps: abc,"),
            r"task target_tokens: `timesteps`: expects an integer >= 1, got 'abc'",
        ),
        (("timesteps: 64,", "timesteps: 0,"), r"`timesteps`: expects an integer >= 1, got 0"),
        (("random: 0.25,", "random: x,"), r"`random`: expects a finite number, got 'x'"),
        (("random: 0.25,", "random: -.inf,"), r"`random`: expects a finite number, got -inf"),
        (("random: 0.0\n", "random: .nan\n"), r"`random`: expects a finite number, got nan"),
        (
            ("  keywords:\n", "  target_tokens: {timesteps: 8}\n  keywords:\n"),
            r"the key 'target_tokens' is given twice",
        ),
        (
            ("env_kwargs: {max_new_tokens: 3}", "env_kwargs: 3"),
            r"expects `env_kwargs:` as a mapping",
        ),
        (("algos: [random, a2c]", "algos: random"), r"expects `algos:` as a list, got 'random'"),
        (("seeds: 2", "seeds: two"), r"`seeds`: expects an integer >= 1, got 'two'"),
        (("budget_fraction: 0.5", "budget_fraction: 2"), r"expects 0 < quick.budget_fraction <= 1"),
    ],
)
def test_wrong_types_in_a_suite_file_are_clear_errors(tmp_path, change, message):
    path = tmp_path / "mine.yml"
    path.write_text(MINE.replace(*change))
    with pytest.raises(TextGenValueError, match=message):
        load_suite(str(path))


def test_a_grid_that_never_ran_leaves_no_budgets_to_a_later_grid(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text(MINE.replace("model: random-tiny", "model: no-such-model"))
    out = str(tmp_path / "grid")
    assert cli.main(["bench", "--suite", str(bad), "--algos", "a2c", "--out", out]) == 2  # all fail
    plain = ["bench", "--algos", "a2c", "--tasks", "target_tokens", "--n-envs", "2",
             "--eval-episodes", "2", "--model", "random-tiny", "--out", out]  # fmt: skip
    assert cli.main([*plain, "--seeds", "1", "--timesteps", "32"]) == 0
    assert "budgets" not in json.loads((Path(out) / "grid.json").read_text())
    capsys.readouterr()
    # seed 0 ran 32 steps: a grid of 64 steps into the same folder is refused, not mixed
    assert cli.main([*plain, "--seeds", "2", "--timesteps", "64"]) == 2
    assert "timesteps: 32 there, 64 here" in capsys.readouterr().err
    assert cli.main([*plain, "--seeds", "2", "--timesteps", "32"]) == 0


def test_compare_of_a_subset_of_tasks_notes_no_false_differences(tmp_path):
    suite = load_suite("v1")
    full = {t: [s.random, s.reference] for t, s in suite.tasks.items()}
    pub = _grid(tmp_path / "pub", "full", _results("ppo", full))
    grid = json.loads((pub / "grid.json").read_text())
    grid.update(budgets={t: s.timesteps for t, s in suite.tasks.items()},
                task_env={"reasoning_gym:syllogism": {"max_new_tokens": 3}})  # fmt: skip
    (pub / "grid.json").write_text(json.dumps(grid))
    sub = _grid(tmp_path / "sub", "full", _results("mine", {"target_tokens": [1.0, 1.0]}))
    grid["budgets"] = {"target_tokens": 4096}
    del grid["task_env"]
    (sub / "grid.json").write_text(json.dumps(grid))
    text = compare(sub, str(pub)).read_text()
    assert "Compared on 1 of the suite's 6 tasks" in text and "The grids'" not in text


def test_probability_of_improvement_refuses_non_finite_scores():
    x = np.ones((3, 2))
    bad = x.copy()
    bad[0, 1] = np.nan  # counted as a loss both ways, it would read as a real difference
    with pytest.raises(TextGenValueError, match="finite"):
        improvement({("x", "bad"): (x, bad)})
