"""`textgen bench` (issue 13): a tiny grid end to end, resumability, reproducibility, Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agents import cli
from agents.bench import BenchConfig, cell_folder
from gym_textgen.errors import TextGenValueError

TINY = ["--tasks", "target_tokens", "--seeds", "2", "--timesteps", "64", "--model", "random-tiny"]
TINY += ["--n-envs", "4", "--eval-episodes", "4"]


def bench(out: Path, *flags: str) -> int:
    return cli.main(
        ["bench", "--algos", "random,ppo,reinforce-rloo", *TINY, "--out", str(out), *flags]
    )


def test_a_grid_writes_every_output_and_a_rerun_skips_finished_cells(tmp_path, capsys):
    pytest.importorskip("rliable")
    out = tmp_path / "grid"
    assert bench(out) == 0
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("algo,task,seed,before,after,lift") and len(rows) == 1 + 6
    results = json.loads((out / "results.json").read_text())
    trained = [r for r in results if r["algo"] != "random"]
    assert all(r["curve"] and r["timesteps"] >= 64 for r in trained)
    assert all(r["lift"] == 0 and r["curve"] == [] for r in results if r["algo"] == "random")
    report = (out / "results.md").read_text()
    assert "| target_tokens | ppo |" in report and "IQM" in report and "95% CI" in report
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()

    assert bench(out) == 0  # everything finished: nothing runs again
    assert "6 cells, 6 finished before, 0 to run" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text()) == results

    # a cell whose result was lost (killed after training) is rebuilt from its run folder
    spec = next(
        s for s in BenchConfig(algos=["ppo"], tasks=["target_tokens"], out=str(out)).cells()
    )
    (cell_folder(spec) / "result.json").unlink()
    assert bench(out) == 0
    assert "1 to run" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert [r["after"] for r in again] == [r["after"] for r in results]


def test_a_grid_reproduces_under_its_seeds(tmp_path):
    pytest.importorskip("rliable")
    assert bench(tmp_path / "a", "--algos", "random,ppo") == 0
    assert bench(tmp_path / "b", "--algos", "random,ppo") == 0
    a, b = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    assert [(r["after"], r["before"]) for r in a] == [(r["after"], r["before"]) for r in b]


def test_the_ray_path_runs_cells_on_a_local_ray(tmp_path):
    """Cells run in Ray workers, fresh processes that learn the driver's own algorithms too."""
    pytest.importorskip("rliable")
    ray = pytest.importorskip("ray")
    from agents.registry import ALGORITHMS, AlgoSpec, algo_spec, register_algo

    ppo = algo_spec("ppo")
    register_algo(AlgoSpec(name="my_ppo", algo=ppo.algo, policy=ppo.policy, buffer=ppo.buffer,
                           bench=ppo.bench))  # fmt: skip
    out = tmp_path / "ray"
    try:
        code = cli.main(
            ["bench", "--algos", "random,my_ppo", *TINY, "--seeds", "1", "--out", str(out),
             "--ray"]
        )  # fmt: skip
    finally:
        ray.shutdown()
        del ALGORITHMS["my_ppo"]
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["algo"], r["seed"]) for r in results] == [("random", 0), ("my_ppo", 0)]
    assert (out / "curves.png").exists() and (out / "results.md").exists()


def test_bad_grids_are_refused():
    with pytest.raises(TextGenValueError, match=r"Expects --algos from \["):
        BenchConfig(algos=["ppo", "sac"])
    with pytest.raises(TextGenValueError, match="Expects seeds >= 1, got 0"):
        BenchConfig(seeds=0)


def test_a_rerun_with_other_settings_is_refused_not_mixed(tmp_path):
    pytest.importorskip("rliable")
    out = tmp_path / "grid"
    assert cli.main(["bench", "--algos", "random", *TINY, "--seeds", "1", "--out", str(out)]) == 0
    from agents.bench import run_bench

    with pytest.raises(TextGenValueError, match="holds cells run with other settings"):
        run_bench(BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=1, timesteps=128,
                              model="random-tiny", n_envs=4, eval_episodes=4, out=str(out)))  # fmt: skip


def test_distinct_tasks_get_distinct_cells_and_a_failing_cell_loses_no_other(tmp_path):
    pytest.importorskip("rliable")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "p.txt").write_text("Hello world\nGood morning\n")
    (tmp_path / "d_p.txt").write_text("The quick brown fox\nA lazy dog\n")
    tasks = f"{tmp_path / 'd' / 'p.txt'},{tmp_path / 'd_p.txt'}"
    out = tmp_path / "grid"
    flags = ["--algos", "random", *TINY, "--seeds", "1", "--tasks", tasks, "--out", str(out)]
    assert cli.main(["bench", *flags]) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(r["task"] for r in results) == sorted(tasks.split(","))
    from agents.bench import runner as bench_module

    with pytest.raises(TextGenValueError, match="Unknown task 'nosuchtask'"):  # before any cell
        bench_module.run_bench(BenchConfig(algos=["random"], tasks=["nosuchtask"], out=str(out)))


def test_a_failing_cell_loses_no_other(tmp_path, monkeypatch):
    pytest.importorskip("rliable")
    from agents.bench import runner as bench_module
    from gym_textgen.errors import TextGenError

    real = bench_module.run_cell

    def flaky(spec):
        if spec["seed"] == 0:
            raise RuntimeError("scorer exploded")
        return real(spec)

    monkeypatch.setattr(bench_module, "run_cell", flaky)
    cfg = BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=2, model="random-tiny",
                      n_envs=4, eval_episodes=4, out=str(tmp_path / "g"))  # fmt: skip
    with pytest.raises(
        TextGenError, match=r"(?s)1 of 2 cells failed .*seed 0: RuntimeError: scorer"
    ):
        bench_module.run_bench(cfg)
    results = json.loads((tmp_path / "g" / "results.json").read_text())
    assert [r["seed"] for r in results] == [1]  # the finished cell is reported
    monkeypatch.setattr(bench_module, "run_cell", real)
    bench_module.run_bench(cfg)  # a rerun retries only the failed cell
    assert [r["seed"] for r in json.loads((tmp_path / "g" / "results.json").read_text())] == [0, 1]


def test_groups_must_divide_the_envs_and_lists_hold_no_repeats():
    with pytest.raises(TextGenValueError, match="expects --n-envs a multiple of 4, got 2"):
        BenchConfig(algos=["reinforce-rloo"], n_envs=2)
    with pytest.raises(TextGenValueError, match=r"each of --algos once, got \['ppo'\]"):
        BenchConfig(algos=["ppo", "ppo"])


# --- a grid whose cells all failed, cell failures of any kind, the IQM table (bugs 4-6) ---


def test_a_grid_whose_cells_all_failed_does_not_lock_its_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("rliable")
    from agents.bench import runner

    out = tmp_path / "grid"
    flags = ["bench", "--algos", "random", *TINY, "--seeds", "1", "--out", str(out)]
    assert cli.main([*flags, "--model", "no-such-model-xyz"]) == 2  # a mistyped --model
    assert "Cannot resolve model 'no-such-model-xyz'" in capsys.readouterr().err
    assert not out.exists()  # refused before any cell
    with monkeypatch.context() as m:  # every cell fails before a result or a checkpoint
        m.setattr(runner, "run_cell", lambda spec: 1 / 0)
        assert cli.main([*flags, "--eval-episodes", "2"]) == 2
    assert "1 of 1 cells failed" in capsys.readouterr().err
    assert (out / "grid.json").exists() and not list(out.glob("cells/*/result.json"))
    assert cli.main(flags) == 0  # other settings: nothing ran under the old ones
    assert [r["seed"] for r in json.loads((out / "results.json").read_text())] == [0]
    assert json.loads((out / "grid.json").read_text())["eval_episodes"] == 4


def test_a_started_cell_still_ties_its_grid_to_its_settings(tmp_path):
    pytest.importorskip("rliable")
    from agents.bench import run_bench
    from agents.rundir import RunDir

    kwargs = dict(algos=["ppo"], tasks=["target_tokens"], seeds=1, timesteps=64, n_envs=4,
                  eval_episodes=4, out=str(tmp_path / "grid"))  # fmt: skip
    old = BenchConfig(model="other-model", **kwargs)
    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "grid.json").write_text(json.dumps(old.shared()))
    # a cell killed after its first checkpoint: a rerun would resume it with the old settings
    checkpoint = RunDir(cell_folder(old.cells()[0]) / "run").checkpoint
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK")
    with pytest.raises(
        TextGenValueError, match=r"other settings .*1 with a result or a checkpoint \(such as ppo__"
    ):
        run_bench(BenchConfig(model="random-tiny", **kwargs))


def test_any_error_of_a_cell_is_a_failed_cell_on_the_serial_path(tmp_path, monkeypatch):
    pytest.importorskip("rliable")
    from agents.bench import runner as bench_module
    from gym_textgen.errors import TextGenError

    real = bench_module.run_cell

    def failing(spec):
        if spec["seed"] == 0:
            raise MemoryError()
        if spec["seed"] == 1:
            raise OSError(28, "No space left on device")
        return real(spec)

    monkeypatch.setattr(bench_module, "run_cell", failing)
    cfg = BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=3, model="random-tiny",
                      n_envs=4, eval_episodes=4, out=str(tmp_path / "g"))  # fmt: skip
    with pytest.raises(TextGenError, match=r"2 of 3 cells failed") as failure:
        bench_module.run_bench(cfg)
    lines = str(failure.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        "random on target_tokens, seed 0: MemoryError",
        "random on target_tokens, seed 1: OSError: [Errno 28] No space left on device",
    ]
    assert [r["seed"] for r in json.loads((tmp_path / "g" / "results.json").read_text())] == [2]


def test_an_interrupt_stops_the_grid_rather_than_failing_a_cell(tmp_path, monkeypatch):
    pytest.importorskip("rliable")
    from agents.bench import runner as bench_module

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_module, "run_cell", interrupted)
    cfg = BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=2, model="random-tiny",
                      n_envs=4, eval_episodes=4, out=str(tmp_path / "g"))  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        bench_module.run_bench(cfg)


def _results(scores: dict[tuple[str, str], list[float]]) -> list[dict[str, object]]:
    return [
        {"algo": algo, "task": task, "seed": seed, "after": after}
        for (algo, task), afters in scores.items()
        for seed, after in enumerate(afters)
    ]


def test_an_algorithm_with_one_seed_leaves_the_others_their_intervals():
    from agents.bench import iqm_table

    results = _results({
        ("ppo", "t1"): [0.1, 0.5, 0.9], ("ppo", "t2"): [0.2, 0.4, 0.6],
        ("a2c", "t1"): [0.3, 0.2, 0.1], ("a2c", "t2"): [0.7, 0.8, 0.9],
        ("dqn", "t1"): [0.25], ("dqn", "t2"): [0.75],
    })  # fmt: skip
    rows = {row[0]: row for row in iqm_table(results, ["ppo", "a2c", "dqn"], ["t1", "t2"])}
    assert rows["dqn"] == ["dqn", "0.500", "n/a (one seed)", "2"]
    for algo in ("ppo", "a2c"):
        _, point, interval, runs = rows[algo]
        lo, hi = (float(x) for x in interval.strip("[]").split(", "))
        assert lo <= float(point) <= hi and lo < hi and runs == "6"


def test_tasks_with_unequal_seeds_keep_every_run():
    from agents.bench import iqm_table

    t1, t2 = [0.1, 0.9, 0.4, 0.7, 0.3], [0.2, 0.8, 0.05]  # 5 and 3 seeds finished
    # by hand: the 8 runs sorted are .05 .1 | .2 .3 .4 .7 | .8 .9: the IQM is the middle four's mean
    expected = (np.float64(0.2) + np.float64(0.3) + np.float64(0.4) + np.float64(0.7)) / 4
    rows = iqm_table(_results({("ppo", "t1"): t1, ("ppo", "t2"): t2}), ["ppo"], ["t1", "t2"])
    assert rows[0][:2] == ["ppo", f"{expected:.3f}"] and rows[0][3] == "8"  # 0.375 from x[:3]
    lo, hi = (float(x) for x in rows[0][2].strip("[]").split(", "))
    assert lo <= expected <= hi

    from agents.bench import stratified_bootstrap_iqm

    assert stratified_bootstrap_iqm([np.array(t1), np.array(t2)])[0] == pytest.approx(
        expected, rel=1e-12, abs=0
    )

    # the resampling is stratified: each resample keeps every task's count, whatever it is
    assert stratified_bootstrap_iqm([np.zeros(5), np.ones(3)]) == (0.25, 0.25, 0.25)
    # a task with one run beside one with three: no interval; a task with none: named
    rows = iqm_table(
        _results({("ppo", "t1"): [0.1, 0.2, 0.3], ("ppo", "t2"): [0.5]}),
        ["ppo"],
        ["t1", "t2", "t3"],
    )
    assert rows == [["ppo", "0.250", "n/a (one seed on t2)", "4 (none on t3)"]]


def test_the_iqm_and_its_interval_are_rliables_on_equal_counts():
    pytest.importorskip("rliable")
    scipy_stats = pytest.importorskip("scipy.stats")
    from rliable import library as rly
    from rliable import metrics

    from agents.bench import iqm, stratified_bootstrap_iqm

    for runs, tasks in [(1, 1), (3, 2), (5, 3), (7, 1), (2, 4)]:
        x = np.random.default_rng(runs * 10 + tasks).normal(size=(runs, tasks))
        assert iqm(x.ravel()) == pytest.approx(metrics.aggregate_iqm(x), rel=1e-12, abs=1e-15)
        assert iqm(x.ravel()) == pytest.approx(
            scipy_stats.trim_mean(x, 0.25, axis=None), rel=1e-12, abs=1e-15
        )
    x = np.random.default_rng(0).normal(size=(5, 3))  # (runs, tasks): rliable's layout
    state = np.random.get_state()
    np.random.seed(0)  # rliable resamples with numpy's global generator
    try:
        point, interval = rly.get_interval_estimates(
            {"a": x}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=5000
        )
    finally:
        np.random.set_state(state)
    mine = stratified_bootstrap_iqm(list(x.T), reps=5000)
    assert mine[0] == pytest.approx(point["a"][0], rel=1e-12)
    assert mine[1:] == pytest.approx(tuple(interval["a"][:, 0]), abs=0.05)  # two samplings


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _ray_grid(out: Path, seeds: int) -> BenchConfig:
    return BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=seeds, model="random-tiny",
                       n_envs=4, eval_episodes=4, out=str(out))  # fmt: skip


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_a_failed_cell_on_ray(tmp_path, monkeypatch, local_ray):
    pytest.importorskip("rliable")
    import os
    import signal

    from agents.bench import runner as bench_module
    from gym_textgen.errors import TextGenError

    driver = os.getpid()

    def killed(spec):  # pickled by value into the workers, where agents.bench is not patched
        if spec["seed"] == 0 and os.getpid() != driver:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        from agents.bench import run_cell

        return run_cell(spec)

    monkeypatch.setattr(bench_module, "run_cell", killed)
    with pytest.raises(
        TextGenError, match=r"1 of 2 cells failed[^\n]*\n  random on target_tokens, seed 0: "
        r"WorkerCrashedError: The worker died unexpectedly"
    ):  # fmt: skip
        bench_module.run_bench(_ray_grid(tmp_path / "g", seeds=2), use_ray=True)
    assert [r["seed"] for r in json.loads((tmp_path / "g" / "results.json").read_text())] == [1]


@pytest.mark.slow
def test_an_error_with_no_message_is_a_failed_cell_on_ray(tmp_path, monkeypatch, local_ray):
    pytest.importorskip("rliable")
    from agents.bench import runner as bench_module
    from gym_textgen.errors import TextGenError

    def silent(spec):
        if spec["seed"] == 0:
            raise OSError()  # str() is "": no last line to show
        from agents.bench import run_cell

        return run_cell(spec)

    monkeypatch.setattr(bench_module, "run_cell", silent)
    with pytest.raises(TextGenError, match=r"1 of 2 cells failed") as failure:
        bench_module.run_bench(_ray_grid(tmp_path / "g", seeds=2), use_ray=True)
    assert str(failure.value).splitlines()[1:] == ["  random on target_tokens, seed 0: OSError"]
    assert [r["seed"] for r in json.loads((tmp_path / "g" / "results.json").read_text())] == [1]


def test_bad_hyperparameter_and_suite_yaml_is_refused_before_any_cell(tmp_path):
    """A task given twice (the last entry silently won) and infinite values (every normalised
    score NaN, or an infinite learning rate) fail when the grid is made."""
    hp = tmp_path / "hp"
    hp.mkdir()
    (hp / "ppo.yml").write_text("default: {n_steps: 16}\ntarget_tokens: {}\ntarget_tokens: {}\n")
    with pytest.raises(TextGenValueError, match="the key 'target_tokens' is given twice"):
        BenchConfig(algos=["ppo"], tasks=["target_tokens"], hyperparams=str(hp))
    (hp / "ppo.yml").write_text("default: {learning_rate: .inf}\n")
    with pytest.raises(TextGenValueError, match=r"sets \['learning_rate'\] to \[inf\]"):
        BenchConfig(algos=["ppo"], tasks=["target_tokens"], hyperparams=str(hp))
    (hp / "ppo.yml").write_text("default: {lora: {r: 4, lora_alpha: .nan}}\n")  # nested too
    with pytest.raises(TextGenValueError, match=r"sets \['lora'\] .*expects finite numbers"):
        BenchConfig(algos=["ppo"], tasks=["target_tokens"], hyperparams=str(hp))


def test_a_training_function_or_env_arguments_that_cannot_work_fail_before_any_cell(tmp_path):
    from agents.bench import run_bench

    algo = tmp_path / "algo.py"
    algo.write_text("def train(make_env, timesteps):\n    return None\n")  # no seed
    with pytest.raises(TextGenValueError, match=r"to take \(make_env, timesteps, seed\)"):
        BenchConfig(algos=[f"{algo}:train"], tasks=["target_tokens"])
    out = tmp_path / "grid"
    cfg = BenchConfig(algos=["random"], tasks=["target_tokens"], seeds=2, model="random-tiny",
                      task_env={"target_tokens": {"max_new_tokens": -1}}, out=str(out))  # fmt: skip
    with pytest.raises(
        TextGenValueError, match=r"target_tokens with env arguments .*max_new_tokens"
    ):
        run_bench(cfg)
    assert not (out / "cells").exists()  # (each cell used to fail on its own)


def test_compare_has_its_own_help_and_quick_says_what_it_runs(capsys):
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["bench", "--help"])
    bench_help = " ".join(capsys.readouterr().out.split())
    assert "with --suite, the suite's quick protocol" in bench_help
    assert "--eval-split {test,validation}" in bench_help
    assert cli.main(["bench", "compare", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: textgen bench compare") and "--algos" not in text
