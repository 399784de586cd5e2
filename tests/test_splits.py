"""Train, validation and test prompts (issue 39): every bundled task has all three, disjoint;
tuning scores validation, a suite scores test, and evaluation scores every test prompt (or a
documented number drawn by the seed). Suite v1's test prompts are the prompts it scored."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import gym_textgen  # noqa: F401
from gym_textgen.errors import TextGenValueError
from gym_textgen.tasks import list_tasks, load_task, make_task
from gym_textgen.tasks.task import Task


def pairs(prompts, references):
    return {(p, json.dumps(r, sort_keys=True, default=str)) for p, r in
            zip(prompts, references or [None] * len(prompts), strict=True)}  # fmt: skip


@pytest.mark.parametrize("name", [*list_tasks(), "reasoning_gym:syllogism"])
def test_every_bundled_task_has_three_disjoint_splits(name):
    if name == "film_request":
        pytest.importorskip("gguf")  # its simulated user is SmolLM2
    task = make_task(name)
    train, test, validation = (pairs(*task.split(s)) for s in ("train", "test", "validation"))
    assert train and test and validation
    # (guess_number and film_request share a phrasing between train and test, never a secret)
    assert not (train & test or train & validation or test & validation)
    assert not set(task.validation_prompts) & (set(task.prompts) | set(task.eval_prompts))


def test_suite_v1s_test_prompts_are_the_ones_it_scored():
    """v1 scored `i % len(eval prompts)` for its 32 episodes: the first 32 of each task's held-out
    prompts. Those are the test split now, whole (so every test prompt is scored)."""
    from gym_textgen.tasks import DATA

    lines = [x for x in (DATA / "movie_review_prompts.txt").read_text().splitlines()
             if x.strip() and not x.startswith("#")]  # fmt: skip
    assert make_task("movie_sentiment").eval_prompts == tuple(lines[-16:])
    records = [json.loads(x) for x in (DATA / "commongen.jsonl").read_text().splitlines()]
    held = [r["prompt"] for r in records if r["split"] != "train"]
    assert make_task("commongen").eval_prompts == tuple(held[:32])


def test_an_env_draws_the_split_it_is_given():
    for split, attr in (("validation", "validation_prompts"), ("test", "eval_prompts"),
                        ("eval", "eval_prompts"), ("train", "prompts")):  # fmt: skip
        env = gym.make("TextGen-v0", task="movie_sentiment", split=split)
        seen = {env.reset(seed=s)[1]["prompt"] for s in range(40)}
        assert seen <= set(getattr(make_task("movie_sentiment"), attr)), split
    with pytest.raises(TextGenValueError, match="'train', 'validation' or 'test'"):
        gym.make("TextGen-v0", split="dev")
    bare = Task(name="bare", prompts=("a", "b"))
    with pytest.raises(TextGenValueError, match="Task 'bare' has no validation prompts"):
        gym.make("TextGen-v0", task=bare, split="validation")


def test_task_files_name_their_validation_records():
    rows = [{"prompt": "t1"}, {"prompt": "v1", "split": "validation"}, {"prompt": "x1", "split": "test"},
            {"prompt": "v2", "split": "dev"}, {"prompt": "x2", "split": "eval"}]  # fmt: skip
    task = load_task(rows)
    assert (task.prompts, task.validation_prompts, task.eval_prompts) == (
        ("t1",), ("v1", "v2"), ("x1", "x2"))  # fmt: skip
    # held-out records of one kind are the test split, as before the validation split existed
    only = load_task([{"prompt": "t"}, {"prompt": "v", "split": "validation"}])
    assert only.eval_prompts == ("v",) and only.validation_prompts == ()


def test_evaluation_scores_every_test_prompt_or_a_seeded_draw():
    import agents
    from agents.evaluation import sample_episodes

    env = agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=2)
    model = agents.make_algo("ppo", env, {"model": "random-tiny"}, seed=0)
    kwargs = {"max_new_tokens": 2}
    test = make_task("movie_sentiment").eval_prompts  # 16
    every = sample_episodes(model, "TextGen-v0", kwargs, n=32, seed=0)
    assert [s.prompt for s in every] == [*test, *test]
    drawn = [{s.prompt for s in sample_episodes(model, "TextGen-v0", kwargs, n=4, seed=k)}
             for k in (0, 1)]  # fmt: skip
    assert all(len(d) == 4 and d <= set(test) for d in drawn) and drawn[0] != drawn[1]
    valid = sample_episodes(model, "TextGen-v0", kwargs, n=4, seed=0, split="validation")
    assert {s.prompt for s in valid} <= set(make_task("movie_sentiment").validation_prompts)


def test_a_tuning_grid_scores_validation_and_never_compares_with_a_test_grid(tmp_path):
    from agents.bench import BenchConfig, compare, run_bench

    common = dict(algos=["random"], tasks=["target_tokens"], seeds=1, timesteps=64, n_envs=2,
                  eval_episodes=4, model="random-tiny",
                  suite={"version": "x", "protocol": "full", "digest": "",
                         "normalise": {"target_tokens": [0.25, 1.0]}})  # fmt: skip
    run_bench(BenchConfig(**{**common, "algos": ["random", "a2c"]}, eval_split="validation",
                          out=str(tmp_path / "tune")))  # fmt: skip
    (before,) = (tmp_path / "tune" / "cells").glob("a2c*/run/samples_before.json")
    scored = {s["prompt"] for s in json.loads(before.read_text())}
    assert scored <= set(make_task("target_tokens").validation_prompts)
    run_bench(BenchConfig(**common, out=str(tmp_path / "test")))
    with pytest.raises(TextGenValueError, match="on the validation prompts, .* on the test ones"):
        compare(tmp_path / "tune", str(tmp_path / "test"))
    grid = json.loads((tmp_path / "tune" / "grid.json").read_text())
    assert grid["eval_split"] == "validation"


def test_unknown_split_names_are_refused_not_trained_on():
    with pytest.raises(TextGenValueError, match=r"record's split among .*got 'holdout' for 'b'"):
        load_task([{"prompt": "a"}, {"prompt": "b", "split": "holdout"}])
    datasets = pytest.importorskip("datasets")

    def rows(*prompts):
        return datasets.Dataset.from_list([{"prompt": p} for p in prompts])

    task = load_task(datasets.DatasetDict({"train": rows("a", "b"), "valid": rows("v"),
                                           "test": rows("t")}))  # fmt: skip
    assert (task.validation_prompts, task.eval_prompts) == (("v",), ("t",))
    with pytest.raises(TextGenValueError, match=r"DatasetDict's splits among .*got \['holdout'\]"):
        load_task(datasets.DatasetDict({"train": rows("a"), "holdout": rows("h")}))
