"""The course's lessons (issue 14) run with a tiny budget and produce what they promise."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course"


def lesson(name: str):
    spec = importlib.util.spec_from_file_location(name, COURSE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lesson_01_environment(tmp_path):
    m = lesson("lesson_01_environment")
    plot = tmp_path / "l1.png"
    means = m.main(m.Args(episodes=3, max_new_tokens=6, plot=str(plot)))
    assert set(means) == {"random", "greedy LM", "sampled LM"}
    assert all(math.isfinite(v) and 0 <= v <= 1 for v in means.values())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lesson_02_policy_gradient(tmp_path):
    m = lesson("lesson_02_policy_gradient")
    plot = tmp_path / "l2.png"
    finals = m.main(m.Args(iterations=3, batch=4, max_new_tokens=4, plot=str(plot)))
    assert len(finals) == 3 and all(math.isfinite(v) and 0 <= v <= 1 for v in finals.values())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lesson_02_claim_ppo_learns_target_tokens_within_600_episodes():
    """The lesson's claim, on its own settings: PPO lifts target_tokens from the random 0.25 to
    0.9 in about 500 episodes (measured over seeds 0-2 at 576 episodes: the last five batches
    0.91, 0.99, 0.89; the first three 0.23-0.26)."""
    m = lesson("lesson_02_policy_gradient")
    curve = m.ppo(m.Args(iterations=36, batch=16, seed=0))
    assert len(curve) == 36
    assert sum(curve[:3]) / 3 < 0.35  # it starts where a uniformly random policy does
    assert sum(curve[-5:]) / 5 > 0.6  # and has learned the task


PNG = b"\x89PNG\r\n\x1a\n"
TINY = {"timesteps": 64, "n_envs": 2, "max_new_tokens": 4, "eval_episodes": 2}


def test_lesson_03_sentiment_ppo(tmp_path, capsys):
    m = lesson("lesson_03_sentiment_ppo")
    plot = tmp_path / "l3.png"
    result = m.main(m.Args(**TINY, plot=str(plot)))
    assert all(math.isfinite(result[k]) for k in ("before", "after", "kl"))
    out = capsys.readouterr().out
    assert "before training: mean sentiment" in out and "after training: mean sentiment" in out
    assert out.count("»") >= 4  # samples shown before and after
    assert plot.read_bytes()[:8] == PNG


def test_lesson_04_kl_penalty(tmp_path, capsys):
    m = lesson("lesson_04_kl_penalty")
    plot = tmp_path / "l4.png"
    summary = m.main(m.Args(betas="0,0.2", **TINY, plot=str(plot)))
    assert set(summary) == {0.0, 0.2}
    for row in summary.values():
        assert all(math.isfinite(v) for v in row.values())
        assert 0 < row["distinct_after"] <= 1
    assert "beta = 0: held-out reward" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == PNG


def test_lesson_05_reward_hacking(tmp_path, capsys):
    m = lesson("lesson_05_reward_hacking")
    plot = tmp_path / "l5.png"
    results = m.main(m.Args(timesteps=64, n_envs=2, max_new_tokens=4, eval_episodes=2,
                            plot=str(plot)))  # fmt: skip
    assert set(results) == {"naive", "mixed"}
    for r in results.values():
        assert 0 <= r["parrot_before"] <= 1 and 0 <= r["parrot_after"] <= 1
        assert all(math.isfinite(v) for v in r.values())
    assert capsys.readouterr().out.count("»") >= 4
    assert plot.read_bytes()[:8] == PNG


def test_lesson_06_action_masking(tmp_path):
    m = lesson("lesson_06_action_masking")
    plot = tmp_path / "l6.png"
    summary = m.main(m.Args(top_k=5, **TINY, plot=str(plot)))
    assert len(summary) == 2 and any("top-5 mask" in name for name in summary)
    assert all(math.isfinite(v) for row in summary.values() for v in row.values())
    assert plot.read_bytes()[:8] == PNG


def test_lesson_07_your_own_task(tmp_path, capsys):
    m = lesson("lesson_07_your_own_task")
    plot = tmp_path / "l7.png"
    result = m.main(m.Args(**TINY, plot=str(plot)))
    assert all(0 <= v <= 1 for v in result.values())
    out = capsys.readouterr().out
    assert "47 training prompts, 11 held out" in out and "on topic" in out
    assert plot.read_bytes()[:8] == PNG
    # the reward itself: half for the topic, half for a finished sentence
    assert m.describe_reward("", "A big dog barks at night.", "dog") == 1.0
    assert m.describe_reward("", "The dogs", "dog") == 0.5
    assert m.describe_reward("", "it rains all day long.", "dog") == 0.5
    assert m.describe_reward("", "it rains", "dog") == 0.0


def test_lesson_08_comparing_algorithms(tmp_path, capsys):
    m = lesson("lesson_08_comparing_algorithms")
    plot = tmp_path / "l8.png"
    summary = m.main(m.Args(algos="random,ppo", tasks="target_tokens", seeds=2, timesteps=64,
                            eval_episodes=2, n_envs=2, out=str(tmp_path / "grid"), plot=str(plot)))  # fmt: skip
    assert set(summary) == {"random", "ppo"}
    for row in summary.values():
        assert row["lo"] <= row["iqm"] <= row["hi"]
    assert "intervals" in capsys.readouterr().out
    assert plot.read_bytes()[:8] == PNG
    assert (tmp_path / "grid" / "results.csv").is_file()
    assert m.iqm([1, 2, 3, 100]) == 2.5  # the middle half of four runs: 2 and 3


def test_lesson_09_interactive_episodes(tmp_path, capsys):
    m = lesson("lesson_09_interactive_episodes")
    plot = tmp_path / "l9.png"
    result = m.main(m.Args(task="token_code", model="default", lora_r=0, timesteps=64, n_envs=4,
                           episodes=4, plot=str(plot)))  # fmt: skip
    # every step is one action; the party's reply (7 tokens, "The code is 2.") is state only
    assert result["steps"] == result["actions"] and result["inserted"] >= 5
    # log pi of the actions from the cut final state is what each step saw (float32 forwards
    # over different paddings; measured 2e-6)
    assert result["gap"] < 1e-4
    assert result["turns_before"] == 2.0 and 0 <= result["after"] <= 1
    out = capsys.readouterr().out
    assert "not actions" in out and "policy" in out and "tool" in out and out.count("»") >= 12
    assert plot.read_bytes()[:8] == PNG


def test_lesson_10_your_own_algorithm(tmp_path):
    """The from-scratch algorithm trains; the lesson's run through the suite and `compare` is
    the notebook's (tests/test_notebooks.py), whose output is checked there."""
    import gymnasium

    m = lesson("lesson_10_your_own_algorithm")
    made = []

    def make(n=None):
        made.append(gymnasium.make("TextGen-v0", task="target_tokens", max_new_tokens=4))
        return made[-1]

    obs = make().reset(seed=0)[0]
    trained, untouched = m.rloo_from_scratch(make, 64, seed=0), m.rloo_from_scratch(make, 0, seed=0)
    batch = {k: v[None] for k, v in obs.items()}
    with torch.no_grad():  # 64 steps moved the policy away from the initial model
        assert not np.allclose(trained.dist(batch).probs, untouched.dist(batch).probs, atol=1e-4)
    # a group of 4 replays one prompt: the four envs of the last group ended on the same one
    group = made[1:5]
    assert len({env.unwrapped._prompt for env in group}) == 1
