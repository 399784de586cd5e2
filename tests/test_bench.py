"""`textgen bench` (issue 13): a tiny grid end to end, resumability, reproducibility, Ray."""

from __future__ import annotations

import json
from pathlib import Path

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
    pytest.importorskip("rliable")
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray"
    try:
        code = cli.main(
            ["bench", "--algos", "random,ppo", *TINY, "--seeds", "1", "--out", str(out), "--ray"]
        )
    finally:
        ray.shutdown()
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert [(r["algo"], r["seed"]) for r in results] == [("random", 0), ("ppo", 0)]
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
    from agents import bench as bench_module

    with pytest.raises(TextGenValueError, match="Unknown task 'nosuchtask'"):  # before any cell
        bench_module.run_bench(BenchConfig(algos=["random"], tasks=["nosuchtask"], out=str(out)))


def test_a_failing_cell_loses_no_other(tmp_path, monkeypatch):
    pytest.importorskip("rliable")
    from agents import bench as bench_module
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
