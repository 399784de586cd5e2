"""The public API's shape: one documented env config, public step halves, renamed names."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import agents
import gym_textgen
from gym_textgen import TextGenConfig, TextGenEnv
from tests.test_env import assert_same, rollout
from tests.tokens import WORD


def test_config_object_equals_keywords():
    config = TextGenConfig(max_new_tokens=5, dense_reward=True)
    a = rollout(TextGenEnv(config=config), seed=3, n_steps=12)
    b = rollout(gym.make("TextGen-v0", max_new_tokens=5, dense_reward=True), seed=3, n_steps=12)
    c = rollout(gym.make("TextGen-v0", config=config), seed=3, n_steps=12)
    assert_same(a, b)
    assert_same(a, c)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_new_tokens = 7  # a config does not change under a running env
    with pytest.raises(gym_textgen.TextGenTypeError, match="either config=TextGenConfig"):
        TextGenEnv(config=config, max_new_tokens=3)


def test_every_config_field_is_documented():
    from agents.config import field_docs

    docs = field_docs(TextGenConfig)
    assert set(docs) == set(TextGenConfig.names())
    assert all(len(text) > 20 for text in docs.values())


def test_prepare_and_commit_are_the_two_halves_of_step():
    env = gym.make("TextGen-v0", max_new_tokens=2, stop_on_eos=False).unwrapped
    twin = gym.make("TextGen-v0", max_new_tokens=2, stop_on_eos=False).unwrapped
    env.reset(seed=0)
    twin.reset(seed=0)
    first = env.prepare_step(WORD)
    assert first.score_ids is None and not first.terminated and env.generated_ids == []
    assert_same(env.commit_step(first), twin.step(WORD))
    last = env.prepare_step(WORD)
    assert last.terminated and last.score_ids == [WORD, WORD] and last.prompt == env.prompt
    total, comps, texts = env.core.score([last.prompt], [last.score_ids], [last.reference])
    committed = env.commit_step(
        last, float(total[0]), {k: float(v[0]) for k, v in comps.items()}, texts[0]
    )
    assert_same(committed, twin.step(WORD))


@pytest.mark.parametrize(
    "old, call",
    [
        ("agents.TextGenVecEnv", lambda: agents.TextGenVecEnv),
        ("agents.vec_env.TextGenVecEnv", lambda: agents.vec_env.TextGenVecEnv),
        (
            "gym_textgen.scorers.evaluate",
            lambda: gym_textgen.scorers.evaluate(gym_textgen.make_scorer("length"), ["a"], ["b"]),
        ),
    ],
)
def test_old_names_work_with_a_warning(old, call):
    with pytest.warns(FutureWarning, match=f"{old} is deprecated"):
        assert call() is not None


def test_old_fast_policy_argument():
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=1, max_new_tokens=2)
    with pytest.warns(FutureWarning, match=r"policy_kwargs\['fast'\] is deprecated"):
        model = agents.make_algo("ppo", env, {"model": "random-tiny", "fast": False}, n_steps=4)
    policy = model.policy
    assert (policy.kv_cache, policy.group_sequences) == (False, False)
    assert policy.features_extractor.rollout_cache is None
