"""Property tests (hypothesis) over every registered id and random arguments and actions.

For any arguments the env accepts and any actions in its action space: observations lie in the
observation space, rewards are finite floats, info keys are stable, dense rewards add up to the
sparse reward, and the native vector env equals independent single envs. A longer sweep (10,000
random episodes per id) is `benchmarks/random_episodes.py`.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gym_textgen
from gym_textgen.models import load_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore:.*longer than max_prompt_tokens")
IDS = sorted(gym_textgen.ENV_IDS)
NEURAL_REWARD = {"TextGenDialogue-v0"}  # rewards from models: batch-dependent float32 round-off
TOKENIZER_SIZE = len(load_tokenizer("default"))
INFO_KEYS = ["prompt_index", "prompt_tokens", "prompt", "completion", "new_tokens",
             "reward_components"]  # fmt: skip
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def env_kwargs(draw):
    """Arguments TextGenEnv accepts, in every combination."""
    kwargs = {
        "max_prompt_tokens": draw(st.integers(1, 32)),
        "max_new_tokens": draw(st.integers(1, 10)),
        "stop_on_eos": draw(st.booleans()),
        "split": draw(st.sampled_from(["train", "eval"])),
    }
    extra = draw(st.sampled_from([0, 0, 7, 100]))  # a model whose output is larger than the vocab
    if extra:
        kwargs["vocab_size"] = TOKENIZER_SIZE + extra
    if draw(st.booleans()):
        kwargs["allowed_tokens"] = draw(
            st.lists(st.integers(0, TOKENIZER_SIZE - 1), min_size=1, max_size=50)
        )
    return kwargs


def actions_for(draw, env, max_size=40):
    n = env.action_space.n
    return draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=max_size))


@SETTINGS
@given(
    env_id=st.sampled_from(IDS), kwargs=env_kwargs(), data=st.data(), seed=st.integers(0, 2**31 - 1)
)
def test_observations_rewards_and_infos(env_id, kwargs, data, seed):
    try:
        env = gym.make(env_id, **kwargs).unwrapped
    except gym_textgen.TextGenValueError as e:  # allowed_tokens that hit only special tokens
        assert "No token is allowed" in str(e)
        return
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    types = {k: type(v) for k, v in info.items()}
    keys = INFO_KEYS + (["turns", "reply", "transcript"] if env.core.interaction else [])
    assert list(info) == keys and info["new_tokens"] == 0 and info["completion"] == ""
    names = list(info["reward_components"])
    mask = env.action_masks()
    assert mask.shape == (env.action_space.n,) and mask.dtype == bool and mask.any()
    for action in actions_for(data.draw, env):
        obs, reward, terminated, truncated, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert type(reward) is float and math.isfinite(reward)
        assert type(terminated) is bool and truncated is False
        # the same keys, types and component names on every step and reset
        assert list(info) == keys and {k: type(v) for k, v in info.items()} == types
        assert list(info["reward_components"]) == names
        assert all(type(v) is float for v in info["reward_components"].values())
        assert 1 <= info["new_tokens"] <= kwargs["max_new_tokens"]
        if terminated:
            obs, info = env.reset()
            assert env.observation_space.contains(obs)
            assert list(info) == keys and info["new_tokens"] == 0
        else:
            assert info["completion"] == "" and set(info["reward_components"].values()) == {0.0}


@SETTINGS
@given(
    env_id=st.sampled_from(IDS), kwargs=env_kwargs(), data=st.data(), seed=st.integers(0, 2**31 - 1)
)
def test_dense_rewards_sum_to_the_sparse_reward(env_id, kwargs, data, seed):
    kwargs.pop("allowed_tokens", None)
    sparse = gym.make(env_id, **kwargs).unwrapped
    dense = gym.make(env_id, dense_reward=True, **kwargs).unwrapped
    sparse.reset(seed=seed)
    dense.reset(seed=seed)
    total = 0.0
    for action in actions_for(data.draw, sparse):
        _, r_sparse, t_sparse, _, i_sparse = sparse.step(action)
        _, r_dense, t_dense, _, i_dense = dense.step(action)
        total += r_dense
        assert t_sparse == t_dense
        if t_sparse:
            assert math.isclose(total, r_sparse, rel_tol=0, abs_tol=1e-9), (total, r_sparse)
            assert i_sparse == i_dense
            total = 0.0
            sparse.reset()
            dense.reset()
        else:
            assert r_sparse == 0.0


@SETTINGS
@given(
    env_id=st.sampled_from(IDS),
    kwargs=env_kwargs(),
    n=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**31 - 1),
)
def test_vector_env_equals_single_envs(env_id, kwargs, n, data, seed):
    kwargs.pop("allowed_tokens", None)
    native = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    singles = [gym.make(env_id, **kwargs).unwrapped for _ in range(n)]
    obs, _ = native.reset(seed=seed)
    single_obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    for i in range(n):
        np.testing.assert_array_equal(obs["input_ids"][i], single_obs[i]["input_ids"])
    needs_reset = np.zeros(n, dtype=bool)  # Gymnasium's NextStep autoreset
    steps = data.draw(st.integers(1, 25))
    for _ in range(steps):
        actions = np.array(
            data.draw(
                st.lists(st.integers(0, native.single_action_space.n - 1), min_size=n, max_size=n)
            )
        )
        obs, rewards, terms, truncs, _ = native.step(actions)
        for i, env in enumerate(singles):
            if needs_reset[i]:
                o, _ = env.reset()
                r, t = 0.0, False
            else:
                o, r, t, _, _ = env.step(int(actions[i]))
            for key in o:  # input_ids, attention_mask (and an interactive env's policy_mask)
                np.testing.assert_array_equal(obs[key][i], o[key])
            assert terms[i] == t and not truncs[i]
            if env_id in NEURAL_REWARD:  # a batch of texts through one float32 forward:
                assert rewards[i] == pytest.approx(r, abs=1e-6)  # ~4e-8 apart, measured
            else:
                assert rewards[i] == r
        needs_reset = terms.copy()
