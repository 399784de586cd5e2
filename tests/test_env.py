"""TextGen environments: Gymnasium's and SB3's checkers, determinism, pickling, rendering."""

from __future__ import annotations

import pickle
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import gym_textgen
from gym_textgen import ENV_IDS
from tests.helpers import INTERACTIVE_TASKS, assert_same, rollout
from tests.tokens import WORD, V

IDS = sorted(ENV_IDS)
#: the ids whose episodes are one prompt and one completion
SINGLE_TURN = [i for i in IDS if gym.spec(i).kwargs.get("task") not in INTERACTIVE_TASKS]


@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_check_env(env_id):
    env = gym.make(env_id, max_new_tokens=6)
    gym_check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env(env_id):
    env = gym.make(env_id, max_new_tokens=6).unwrapped
    sb3_check_env(env, warn=True)


@pytest.mark.parametrize("env_id", IDS)
def test_seeded_determinism(env_id):
    a = rollout(gym.make(env_id, max_new_tokens=10), seed=7)
    b = rollout(gym.make(env_id, max_new_tokens=10), seed=7)
    assert_same(a, b)
    c = rollout(gym.make(env_id, max_new_tokens=10), seed=8)
    prompts_a = [s[1]["prompt_index"] for s in a if len(s) == 2]
    prompts_c = [s[1]["prompt_index"] for s in c if len(s) == 2]
    assert prompts_a != prompts_c  # another seed draws other prompts


@pytest.mark.parametrize("env_id", IDS)
def test_step_returns_plain_python_types(env_id):
    env = gym.make(env_id, max_new_tokens=3)
    env.reset(seed=0)
    for _ in range(3):  # a word, never EOS (a sampled id was EOS one time in ~1,400)
        obs, reward, terminated, truncated, info = env.step(WORD)
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert env.observation_space.contains(obs)
    assert terminated and not truncated
    assert isinstance(info["completion"], str) and isinstance(info["prompt"], str)


@pytest.mark.parametrize("env_id", IDS)
def test_pickle_round_trip(env_id):
    env = gym.make(env_id, max_new_tokens=5).unwrapped
    env.reset(seed=3)
    env.step(5)
    clone = pickle.loads(pickle.dumps(env))
    # the copy continues exactly where the original was ...
    assert_same(env.step(7), clone.step(7))
    assert env.text == clone.text != ""
    # ... and a seeded reset plus steps match too
    assert_same(rollout(env, seed=11, n_steps=12), rollout(clone, seed=11, n_steps=12))


@pytest.mark.parametrize("env_id", IDS)
def test_render_modes(env_id, capsys):
    env = gym.make(env_id, render_mode="ansi", max_new_tokens=4)
    env.reset(seed=0, options={"prompt": "The acting was"})
    assert env.render() == "The acting was«»"
    tok = env.unwrapped.core.tokenizer
    great = tok.encode(" great")
    for t in great:
        env.step(t)
    assert env.render() == "The acting was« great»"

    human = gym.make(env_id, render_mode="human", max_new_tokens=4)
    human.reset(seed=0, options={"prompt": "The acting was"})
    human.step(great[0])
    assert human.render() is None
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith("The acting was«") and printed[0] == "The acting was«»"

    # an unsupported mode warns (Gymnasium's habit) so SB3's make_vec_env, which asks for
    # "rgb_array", works; rendering is then off
    with pytest.warns(UserWarning, match=r"render_mode 'rgb_array' is not supported"):
        env = gym_textgen.TextGenEnv(render_mode="rgb_array")
    assert env.render_mode is None
    with pytest.warns(UserWarning, match=r"render_mode '100%s' is not"):  # not a %-format
        gym_textgen.TextGenEnv(render_mode="100%s")
    # without a render mode, render() returns None with Gymnasium's warning; `text` still tells
    env.reset(seed=0, options={"prompt": "The acting was"})
    env.step(great[0])
    with pytest.warns(UserWarning) as caught:
        assert env.render() is None
    expected = (
        "WARN: You are calling render method without specifying any render mode. You can "
        'specify the render_mode at initialization, e.g. gym.make("TextGen-v0", '
        'render_mode="ansi"); `env.unwrapped.text` gives the text without one'
    )
    assert re.sub(r"\x1b\[[0-9;]*m", "", str(caught[0].message)) == expected  # no colours
    assert env.text == f"The acting was«{tok.decode(great[:1])}»"


INFO_KEYS = ["prompt_index", "prompt_tokens", "prompt", "completion", "new_tokens",
             "reward_components"]  # fmt: skip


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("env_id", SINGLE_TURN)
def test_info_has_the_same_keys_on_every_reset_and_step(env_id, dense):
    """Clients that stack infos across steps (Tianshou's buffer, TorchRL's tensordicts) need
    every key on every step, with one type each: neutral values before the last step."""
    env = gym.make(env_id, max_new_tokens=4, dense_reward=dense)
    names = env.unwrapped.core.scorer.component_names()
    for obs, info in [env.reset(seed=0), env.reset(seed=1, options={"prompt": "Hello there"})]:
        assert list(info) == INFO_KEYS
        assert info["completion"] == "" and info["new_tokens"] == 0
        assert info["reward_components"] == dict.fromkeys(names, 0.0)
        assert info["prompt_tokens"] == int(obs["attention_mask"].sum())
    assert info["prompt_index"] == -1 and info["prompt"] == "Hello there"  # a forced prompt
    _, first = env.reset(seed=2)
    types = {k: type(v) for k, v in first.items()}
    for n in range(1, 5):
        obs, reward, terminated, _, info = env.step(WORD)
        assert list(info) == INFO_KEYS and {k: type(v) for k, v in info.items()} == types
        assert list(info["reward_components"]) == names
        assert info["new_tokens"] == n and info["prompt"] == first["prompt"]
        assert info["prompt_index"] == first["prompt_index"] >= 0
        assert info["prompt_tokens"] == first["prompt_tokens"]
        assert (info["completion"] != "") == terminated == (n == 4)
        if not dense and not terminated:
            assert info["reward_components"] == dict.fromkeys(names, 0.0) and reward == 0.0
    assert info["completion"] == env.unwrapped.core.decode([WORD] * 4)


def test_unknown_keywords_raise_pythons_own_type_error():
    """One name a time in Python's wording (TorchRL's GymEnv retries without `frameskip` on
    exactly that message), with a did-you-mean hint after it."""
    with pytest.raises(TypeError, match=r"^TextGenEnv.__init__\(\) got an unexpected keyword "
                       r"argument 'frameskip' \(valid names: allowed_tokens, chat"):  # fmt: skip
        gym.make("TextGen-v0", frameskip=4)
    with pytest.raises(TypeError, match=r"argument 'max_tokens'. Did you mean 'max_new_tokens'\?"):
        gym_textgen.TextGenEnv(max_tokens=4, zzz=1)
    with pytest.raises(TypeError, match=r"^TextGenVectorEnv.__init__\(\) got an unexpected "):
        gym_textgen.TextGenVectorEnv(2, frameskip=4)


def test_episode_ends_on_eos_and_at_max_new_tokens():
    env = gym.make("TextGen-v0", max_new_tokens=5)
    eos = env.unwrapped.core.eos_id
    env.reset(seed=0, options={"prompt": "The plot was"})
    obs, reward, terminated, truncated, info = env.step(WORD)
    assert not terminated and reward == 0.0 and info["completion"] == "" and info["new_tokens"] == 1
    obs, reward, terminated, _, info = env.step(eos)
    assert terminated and info["new_tokens"] == 2
    # EOS is in the observation but not in the scored completion
    n = int(obs["attention_mask"].sum())
    assert obs["input_ids"][n - 1] == eos
    assert info["completion"] == env.unwrapped.core.decode([WORD])

    env.reset(seed=0)
    for i in range(5):
        obs, _, terminated, _, info = env.step(WORD)
        assert terminated == (i == 4)
    assert info["new_tokens"] == 5

    no_stop = gym.make("TextGen-v0", max_new_tokens=3, stop_on_eos=False)
    no_stop.reset(seed=0)
    _, _, terminated, _, _ = no_stop.step(eos)
    assert not terminated


def test_observation_layout_right_padded():
    env = gym.make("TextGen-v0", max_prompt_tokens=8, max_new_tokens=4)
    obs, info = env.reset(options={"prompt": "The acting was"})
    n = info["prompt_tokens"]
    assert obs["attention_mask"].tolist() == [1] * n + [0] * (12 - n)
    pad = env.unwrapped.core.pad_id
    assert (obs["input_ids"][n:] == pad).all()
    before = obs["input_ids"][:n].copy()
    obs, *_ = env.step(42)
    assert obs["input_ids"][n] == 42 and obs["attention_mask"][n] == 1
    np.testing.assert_array_equal(obs["input_ids"][:n], before)  # tokens never move


def test_sentiment_reward_follows_text():
    env = gym.make("TextGen-v0", max_new_tokens=8)
    tok = env.unwrapped.core.tokenizer

    def episode(text):
        env.reset(seed=0, options={"prompt": "The movie was"})
        for t in tok.encode(text):
            _, r, term, _, info = env.step(t)
        _, r, term, _, info = env.step(tok.eos_token_id)
        assert term
        return r, info

    good, info = episode(" wonderful and charming.")
    bad, _ = episode(" awful and boring.")
    assert good > 0.8 and bad < 0.2
    assert info["reward_components"] == {"sentiment": good}
    assert info["completion"] == " wonderful and charming."


def test_dense_rewards_sum_to_sparse_reward():
    kwargs = dict(max_new_tokens=6, scorer="length", scorer_kwargs={"target": 3})
    sparse, dense = (
        gym.make("TextGen-v0", **kwargs),
        gym.make("TextGen-v0", dense_reward=True, **kwargs),
    )
    tok = sparse.unwrapped.core.tokenizer
    ids = tok.encode(" great fun film and more to see and hear")[:6]
    assert len(ids) == 6  # the episode runs to its end: the sparse reward arrives
    total = {}
    for name, env in (("sparse", sparse), ("dense", dense)):
        env.reset(seed=0, options={"prompt": "It was"})
        rewards = [env.step(t)[1] for t in ids]
        total[name] = sum(rewards)
        if name == "dense":
            assert sum(r != 0 for r in rewards) > 1  # reward arrives along the way
    assert total["dense"] == pytest.approx(total["sparse"])


def test_reset_options_prompt_and_index():
    env = gym.make("TextGenKeywords-v0")
    _, info = env.reset(options={"prompt_index": 2})
    task = env.unwrapped.core.task
    assert info["prompt_index"] == 2 and env.unwrapped.prompt == task.prompts[2]
    _, info = env.reset(options={"prompt": "Tell me about", "reference": ["music"]})
    assert info["prompt_index"] == -1 and env.unwrapped.prompt == "Tell me about"
    with pytest.raises(ValueError, match=r"prompt_index in \[0, 47\], got 99"):
        env.reset(options={"prompt_index": 99})
    with pytest.raises(ValueError, match="Unknown reset option"):
        env.reset(options={"promt": "typo"})


def test_eval_split_uses_held_out_prompts():
    train = gym.make("TextGen-v0").unwrapped.core.prompts
    held_out = gym.make("TextGen-v0", split="eval").unwrapped.core.prompts
    assert len(held_out) == 16 and not set(train) & set(held_out)


def test_action_masks():
    env = gym.make("TextGen-v0", vocab_size=5000).unwrapped  # more ids than the tokenizer has
    core = env.core
    mask = env.action_masks()
    assert mask.shape == (5000,) and mask.dtype == bool
    assert not mask[core.tokenizer_vocab :].any()  # ids the tokenizer does not have
    assert mask[core.eos_id] and not mask[core.pad_id]  # EOS allowed, padding not
    narrowed = gym.make("TextGen-v0", allowed_tokens=[core.eos_id, 5, 6, core.pad_id]).unwrapped
    assert np.flatnonzero(narrowed.action_masks()).tolist() == sorted([core.eos_id, 5, 6])
    with pytest.raises(ValueError, match=rf"allowed_tokens in \[0, {V - 1}\], got \[{V + 1}\]"):
        gym.make("TextGen-v0", allowed_tokens=[V + 1])


def test_maskable_ppo_sees_action_masks():
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.env_util import make_vec_env

    vec = make_vec_env(lambda: gym.make("TextGen-v0", allowed_tokens=range(100)), n_envs=2)
    assert is_masking_supported(vec)
    masks = get_action_masks(vec)
    assert masks.shape == (2, gym.make("TextGen-v0").action_space.n) and masks[:, 5].all()
    assert not masks[:, 500].any()


def test_environment_stands_alone_without_sb3():
    """DESIGN: gym_textgen never imports agents or stable-baselines3."""
    import subprocess
    import sys

    code = (
        "import sys, gymnasium as gym, gym_textgen\n"
        "env = gym.make('TextGen-v0'); env.reset(seed=0); env.step(5)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('stable_baselines3', 'sb3_contrib', 'agents')]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
