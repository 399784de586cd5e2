"""Every bad input gets a clear error (what was expected, what arrived) and the env stays usable."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded
from hypothesis import given, settings
from hypothesis import strategies as st

import gym_textgen
from gym_textgen.scorers import Scorer, ScorerError


@pytest.fixture
def env():
    e = gym.make("TextGen-v0", max_new_tokens=4).unwrapped
    e.reset(seed=0)
    return e


def still_usable(env):
    """One full episode runs after the error."""
    env.reset(seed=1)
    for _ in range(env.max_new_tokens):
        *_, terminated, _, _ = env.step(300)
        if terminated:
            return True
    return False


def test_action_out_of_range(env):
    with pytest.raises(ValueError, match=r"Expects action in \[0, 936\], actual 5000 \(int\)"):
        env.step(5000)
    with pytest.raises(ValueError, match=r"actual -1"):
        env.step(np.int64(-1))
    assert env.generated_ids == [] and still_usable(env)


@pytest.mark.parametrize("action", [3.0, np.float32(2), np.array([1, 2]), None, "7", True])
def test_action_of_wrong_type(env, action):
    with pytest.raises(TypeError, match=r"Expects an integer action in \[0, 936\], actual"):
        env.step(action)
    assert env.generated_ids == [] and still_usable(env)


def test_zero_dim_integer_array_is_an_action(env):
    env.step(np.array(42))
    assert env.generated_ids == [42]


def test_step_before_reset():
    env = gym_textgen.TextGenEnv()
    with pytest.raises(ResetNeeded, match="before reset"):
        env.step(1)
    assert still_usable(env)


def test_step_after_episode_end(env):
    for _ in range(4):
        env.step(300)
    with pytest.raises(ResetNeeded, match="episode has ended"):
        env.step(300)
    assert still_usable(env)


def test_empty_prompt(env):
    with pytest.raises(ValueError, match="Expects a non-empty prompt, got ''"):
        env.reset(options={"prompt": ""})
    with pytest.raises(TypeError, match=r"Expects the prompt as a str \(or UTF-8 bytes\), got int"):
        env.reset(options={"prompt": 12})
    with pytest.raises(ValueError, match="at least one prompt"):
        gym_textgen.Task(name="empty", prompts=())
    assert still_usable(env)


def test_long_prompt_is_left_truncated_with_one_warning():
    env = gym.make("TextGen-v0", max_prompt_tokens=5).unwrapped
    long = "I went to the cinema on Friday and the acting was wonderful"
    with pytest.warns(UserWarning, match="longer than max_prompt_tokens=5; keeping its last 5"):
        obs, info = env.reset(options={"prompt": long})
    assert info["prompt_tokens"] == 5
    assert long.endswith(env.prompt) and len(env.prompt) < len(long)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(options={"prompt": long + " and"})  # no second warning
    assert still_usable(env)


@pytest.mark.parametrize(
    "prompt", ["Ce film était génial 😀🎬", "日本語のレビュー", "\x00\x01 weird \ufffd bytes"]
)
def test_unicode_prompts_work(prompt):
    env = gym.make("TextGen-v0", max_prompt_tokens=64, render_mode="ansi").unwrapped
    obs, info = env.reset(options={"prompt": prompt})
    assert env.observation_space.contains(obs)
    assert env.render() == f"{prompt}«»"  # byte-level BPE round-trips any text
    assert still_usable(env)


@pytest.mark.parametrize(
    "prompt, shown",
    [
        (b"\xff\xfe not UTF-8 but fine", "\ufffd\ufffd not UTF-8 but fine"),
        ("Caf\xc3\xa9".encode("latin-1"), "Caf\u00e9"),  # UTF-8 bytes are decoded
        ("lone \ud800 surrogate", "lone ? surrogate"),
    ],
)
def test_non_utf8_prompts_work(prompt, shown):
    env = gym.make("TextGen-v0", render_mode="ansi").unwrapped
    obs, _ = env.reset(options={"prompt": prompt})
    assert env.observation_space.contains(obs)
    assert env.prompt == shown and env.render() == f"{shown}«»"
    assert still_usable(env)


class Raising(Scorer):
    name = "exploding"

    def score(self, prompts, completions, references=None, *, completion_ids=None):
        raise KeyError("no such thing")


def test_scorer_that_raises_names_scorer_and_completion():
    env = gym.make("TextGen-v0", scorer=Raising(), max_new_tokens=2, stop_on_eos=False).unwrapped
    env.reset(seed=0, options={"prompt": "The film was"})
    tok = env.core.tokenizer
    great = tok.encode(" great")[0]
    env.step(great)
    with pytest.raises(
        ScorerError, match=r"'exploding' raised KeyError.*completion ' great great'"
    ):
        env.step(great)
    # the failed step was not applied: the episode goes on once the scorer works again
    assert env.generated_ids == [great]
    env.core.scorer = gym_textgen.make_scorer("sentiment")
    _, reward, terminated, _, info = env.step(great)
    assert terminated and reward > 0.5 and info["completion"] == " great great"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_scorer_returning_non_finite(bad):
    env = gym.make("TextGen-v0", scorer=lambda p, c: bad, max_new_tokens=1).unwrapped
    env.reset(seed=0)
    with pytest.raises(
        ScorerError, match=r"Scorer '<lambda>' returned .* \(not finite\) for completion"
    ):
        env.step(300)
    assert env.generated_ids == []


def test_scorer_returning_wrong_shape_or_type():
    class TwoValues(Scorer):
        name = "two"

        def score(self, prompts, completions, references=None, *, completion_ids=None):
            return [0.1, 0.2]

    env = gym.make("TextGen-v0", scorer=TwoValues(), max_new_tokens=1).unwrapped
    env.reset(seed=0)
    with pytest.raises(
        ScorerError,
        match=r"'two' must return shape \(1,\) for 1 completions, returned shape \(2,\)",
    ):
        env.step(300)
    env2 = gym.make("TextGen-v0", scorer=lambda p, c: "good", max_new_tokens=1).unwrapped
    env2.reset(seed=0)
    with pytest.raises(ScorerError, match="must return a float, returned str"):
        env2.step(300)


def test_unknown_scorer_lists_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown scorer 'sentimnt'; expected one of \['keywords', 'length', 'overlap', 'sentiment', 'target_tokens'\]",
    ):
        gym.make("TextGen-v0", scorer="sentimnt")


def test_unknown_task_lists_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown task 'nope'; expected one of \['keywords', 'movie_sentiment', 'target_tokens'\]",
    ):
        gym.make("TextGen-v0", task="nope")


def test_unknown_kwarg_lists_valid_names():
    with pytest.raises(
        TypeError,
        match=r"unexpected keyword argument\(s\) \['max_tokens'\]; valid names: .*'max_new_tokens'",
    ):
        gym.make("TextGen-v0", max_tokens=3)


def test_bad_lengths_and_split():
    with pytest.raises(ValueError, match="Expects max_new_tokens to be an int >= 1, got 0"):
        gym.make("TextGen-v0", max_new_tokens=0)
    with pytest.raises(ValueError, match="Expects split 'train' or 'eval', got 'test'"):
        gym.make("TextGen-v0", split="test")
    with pytest.raises(
        ValueError, match="Expects vocab_size >= the tokenizer's 937 tokens, got 10"
    ):
        gym.make("TextGen-v0", vocab_size=10)


@settings(max_examples=25, deadline=None)
@given(
    actions=st.lists(st.integers(min_value=0, max_value=936), min_size=1, max_size=40),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
    dense=st.booleans(),
)
def test_random_action_sequences_never_crash(actions, seed, dense):
    env = _property_env(dense)
    obs, _ = env.reset(seed=seed)
    for a in actions:
        obs, reward, terminated, truncated, _ = env.step(a)
        assert env.observation_space.contains(obs)
        assert isinstance(reward, float) and math.isfinite(reward)
        if terminated:
            obs, _ = env.reset()
            assert env.observation_space.contains(obs)


_PROPERTY_ENVS: dict[bool, gym.Env] = {}


def _property_env(dense: bool) -> gym.Env:
    if dense not in _PROPERTY_ENVS:
        _PROPERTY_ENVS[dense] = gym.make(
            "TextGen-v0", max_new_tokens=8, dense_reward=dense
        ).unwrapped
    return _PROPERTY_ENVS[dense]
