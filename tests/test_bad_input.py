"""Every bad input gets a clear error (what was expected, what arrived) and the env stays usable."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.error import ResetNeeded

import gym_textgen
from gym_textgen.scorers import Scorer, ScorerError
from tests.tokens import WORD, V


@pytest.fixture
def env():
    e = gym.make("TextGen-v0", max_new_tokens=4).unwrapped
    e.reset(seed=0)
    return e


def still_usable(env):
    """One full episode runs after the error."""
    env.reset(seed=1)
    for _ in range(env.max_new_tokens):
        *_, terminated, _, _ = env.step(WORD)
        if terminated:
            return True
    return False


def test_action_out_of_range(env):
    with pytest.raises(ValueError, match=rf"Expects action in \[0, {V - 1}\], actual {V} \(int\)"):
        env.step(V)
    with pytest.raises(ValueError, match=r"actual -1"):
        env.step(np.int64(-1))
    assert env.generated_ids == [] and still_usable(env)


@pytest.mark.parametrize("action", [3.0, np.float32(2), np.array([1, 2]), None, "7", True])
def test_action_of_wrong_type(env, action):
    with pytest.raises(TypeError, match=rf"Expects an integer action in \[0, {V - 1}\], actual"):
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
        env.step(WORD)
    with pytest.raises(ResetNeeded, match="episode has ended"):
        env.step(WORD)
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
        env.step(WORD)
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
        env.step(WORD)
    env2 = gym.make("TextGen-v0", scorer=lambda p, c: "good", max_new_tokens=1).unwrapped
    env2.reset(seed=0)
    with pytest.raises(ScorerError, match="must return a float, returned str"):
        env2.step(WORD)


# -- the bad-input table ----------------------------------------------------------------------------
# Each row: a call, the error type, and two fragments the message must hold: what was expected
# and what arrived.


def _env(**kwargs):
    env = gym.make("TextGen-v0", **kwargs).unwrapped
    env.reset(seed=0)
    return env


def _vec(n=2):
    envs = gym.make_vec("TextGen-v0", num_envs=n, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    return envs


def _config(tmp_path, text):
    from agents.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def _run_folder(tmp_path, payload):
    from agents.build import load_run_model

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text("algo: ppo\nmodel: random-tiny\n")
    (run / "model.zip").write_bytes(payload)
    return load_run_model(run)


def _truncated_zip(tmp_path):
    import agents

    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=1, max_new_tokens=2)
    model = agents.make_algo("ppo", env, {"model": "random-tiny"}, n_steps=4, batch_size=4)
    model.save(tmp_path / "whole.zip")
    data = (tmp_path / "whole.zip").read_bytes()
    return _run_folder(tmp_path, data[: len(data) // 2])


def _policy_on(env):
    from stable_baselines3 import PPO

    import agents

    return PPO(agents.TransformerPolicy, env, policy_kwargs={"model": "default"})


TextGenValueError, TextGenTypeError = gym_textgen.TextGenValueError, gym_textgen.TextGenTypeError
ModelNotFoundError = gym_textgen.models.ModelNotFoundError

BAD_INPUTS = [
    # env arguments
    ("max_new_tokens=0", lambda t: _env(max_new_tokens=0), TextGenValueError, "int >= 1", "got 0"),
    ("max_prompt_tokens as str", lambda t: _env(max_prompt_tokens="8"), TextGenValueError, "int >= 1", "got '8'"),
    ("max_new_tokens float", lambda t: _env(max_new_tokens=2.5), TextGenValueError, "int >= 1", "got 2.5"),
    ("split", lambda t: _env(split="dev"), TextGenValueError, "'train', 'validation' or 'test'", "got 'dev'"),
    ("vocab_size too small", lambda t: _env(vocab_size=10), TextGenValueError, f">= the tokenizer's {V} tokens", "got 10"),
    ("allowed_tokens out of range", lambda t: _env(allowed_tokens=[V + 5]), TextGenValueError, f"in \\[0, {V - 1}\\]", f"got \\[{V + 5}\\]"),
    ("allowed_tokens empty", lambda t: _env(allowed_tokens=[]), TextGenValueError, "at least one id the tokenizer can produce", "got \\[\\]"),
    ("unknown task", lambda t: _env(task="nope"), TextGenValueError, "expected one of \\['arithmetic'", "Unknown task 'nope'"),
    ("task of wrong type", lambda t: _env(task=42), TextGenTypeError, "registered name, a Task, a non-empty list", "got int: 42"),
    ("unknown scorer", lambda t: _env(scorer="sentimnt"), TextGenValueError, "expected one of \\['bleu'", "Unknown scorer 'sentimnt'"),
    ("scorer weight not a number", lambda t: _env(scorer={"sentiment": "high"}), TextGenTypeError, "\\{name: float\\}", "got 'sentiment': 'high'"),
    ("kwargs for a function scorer", lambda t: _env(scorer=lambda p, c: 1.0, scorer_kwargs={"x": 1}), TextGenTypeError, "takes no keyword arguments", "got \\['x'\\]"),
    ("scorer module missing", lambda t: _env(scorer="no_such_module_xyz:fn"), TextGenValueError, "Cannot import module", "'no_such_module_xyz'"),
    ("scorer attribute missing", lambda t: _env(scorer="math:no_such_fn"), TextGenValueError, "Module 'math' has no attribute", "'no_such_fn'"),
    ("scorer of wrong type", lambda t: _env(scorer=3.5), TextGenTypeError, "Expects a scorer name, function", "got float: 3.5"),
    ("scorer_timeout", lambda t: _env(scorer_timeout=0), TextGenValueError, "seconds in \\(0, .*\\] or None", "got 0"),
    ("scorer_timeout infinite", lambda t: _env(scorer_timeout=float("inf")), TextGenValueError, "seconds in \\(0, ", "got inf"),
    ("tokenizer of wrong type", lambda t: _env(tokenizer=5), TextGenTypeError, "a model name, a folder or a transformers tokenizer", "got int: 5"),
    ("length target", lambda t: _env(scorer="length", scorer_kwargs={"target": 0}), TextGenValueError, "target > 0", "got 0"),
    ("length unit", lambda t: _env(scorer="length", scorer_kwargs={"unit": "lines"}), TextGenValueError, "'words' or 'chars'", "got 'lines'"),
    ("unknown env argument", lambda t: _env(max_tokens=3), TextGenTypeError, "Did you mean 'max_new_tokens'", "unexpected keyword argument 'max_tokens'"),
    ("unknown tokenizer", lambda t: _env(tokenizer="no/such-tok-xyz"), ModelNotFoundError, "Expected a preset", "'no/such-tok-xyz'"),
    # actions
    ("action out of range", lambda t: _env().step(V), TextGenValueError, f"in \\[0, {V - 1}\\]", f"actual {V} \\(int\\)"),
    ("action as float", lambda t: _env().step(2.0), TextGenTypeError, "integer action", "actual 2.0 \\(float\\)"),
    ("action as array", lambda t: _env().step(np.array([1, 2])), TextGenTypeError, "integer action", "actual array"),
    ("vector actions shape", lambda t: _vec(2).step(np.array([1, 2, 3])), TextGenValueError, "shape \\(2,\\)", "got \\(3,\\)"),
    ("vector seeds", lambda t: _vec(2).reset(seed=[1, 2, 3]), TextGenValueError, "Expects 2 seeds", "got 3"),
    ("num_envs=0", lambda t: gym.make_vec("TextGen-v0", num_envs=0), TextGenValueError, "int >= 1", "got 0"),
    # prompts
    ("empty prompt", lambda t: _env().reset(options={"prompt": ""}), TextGenValueError, "non-empty prompt", "got ''"),
    ("prompt of wrong type", lambda t: _env().reset(options={"prompt": 12}), TextGenTypeError, "as a str", "got int"),
    ("prompt_index", lambda t: _env().reset(options={"prompt_index": 999}), TextGenValueError, "prompt_index in \\[0, ", "got 999"),
    ("reset option typo", lambda t: _env().reset(options={"promt": "x"}), TextGenValueError, "expected 'prompt'", "\\['promt'\\]"),
    ("references per prompt", lambda t: gym_textgen.Task(name="t", prompts=("a",), references=("x", "y")), TextGenValueError, "one of references per prompt \\(1\\)", "got 2"),
    # models
    ("model name", lambda t: gym_textgen.load_model("no/such-model-xyz"), ModelNotFoundError, "Expected a preset", "'no/such-model-xyz'"),
    ("model folder", lambda t: gym_textgen.load_model("./no_such_dir_xyz"), ModelNotFoundError, "a local Hugging Face folder", "not a folder or a .gguf file"),
    ("gguf file", lambda t: gym_textgen.load_model(str(t / "missing.gguf")), ModelNotFoundError, "a .gguf file", "no such .gguf file"),
    ("random-tiny arguments", lambda t: gym_textgen.load_model("default", vocab_size=10), TextGenTypeError, "apply to 'random-tiny' only", "got 'default'"),
    ("vocab mismatch", lambda t: _policy_on(__import__("agents").make_vec_env("TextGen-v0", n_envs=1, vocab_size=5000)), TextGenValueError, "create the env with vocab_size=", "5000 actions but model 'default' outputs"),
    ("policy on CartPole", lambda t: _policy_on(gym.make("CartPole-v1")), TextGenValueError, "expects a text observation space", "got Box"),
    ("make_vec_env id", lambda t: __import__("agents").make_vec_env("CartPole-v1"), TextGenValueError, "Expects a TextGen env id", "got 'CartPole-v1'"),
    ("make_vec_env wrapper", lambda t: __import__("agents").make_vec_env(wrapper_class=object), TextGenValueError, "use stable_baselines3", "wrapper_class does not apply"),
    ("make_vec_env clash", lambda t: __import__("agents").make_vec_env(env_kwargs={"max_new_tokens": 2}, max_new_tokens=7), TextGenValueError, "given twice with different values", "\\['max_new_tokens'\\]"),
    ("make_algo name", lambda t: __import__("agents").make_algo("sac", None), TextGenValueError, "expected one of", "'sac'"),
    # config files
    ("config key", lambda t: _config(t, "learning_rte: 0.1\n"), TextGenValueError, "valid keys", "\\['learning_rte'\\]"),
    ("config type", lambda t: _config(t, "timesteps: lots\n"), TextGenTypeError, "timesteps to be int", "got str: 'lots'"),
    ("config not a mapping", lambda t: _config(t, "- ppo\n"), TextGenValueError, "mapping of config keys", "got list"),
    ("config not YAML", lambda t: _config(t, "algo: [ppo\n"), TextGenValueError, "valid YAML", "c.yaml"),
    ("config algo", lambda t: _config(t, "algo: sac\n"), TextGenValueError, "expected one of \\['a2c'", "'sac'"),
    ("config gamma", lambda t: _config(t, "gamma: 1.5\n"), TextGenValueError, "gamma in \\[0, 1\\]", "got 1.5"),
    ("config kl_coef_target alone", lambda t: _config(t, "kl_coef_target: 2.0\n"), TextGenValueError, "starting kl_coef > 0", "kl_coef_target=2.0"),
    ("config batch_size", lambda t: _config(t, "batch_size: 1\n"), TextGenValueError, "batch_size >= 2", "got 1"),
    ("config one-step rollout", lambda t: _config(t, "n_steps: 1\nn_envs: 1\n"), TextGenValueError, "n_steps \\* n_envs >= 2", "got 1 \\* 1"),
    ("config seed", lambda t: _config(t, "seed: -1\n"), TextGenValueError, "seed in \\[0, 2\\*\\*32 - 1\\]", "got -1"),
    ("config infinite", lambda t: _config(t, "learning_rate: .inf\n"), TextGenValueError, "a finite number", "got inf"),
    ("config file missing", lambda t: __import__("agents.config").config.load_config(t / "nope.yaml"), TextGenValueError, "Config file", "does not exist"),
    # checkpoints and KL
    ("checkpoint not a zip", lambda t: _run_folder(t, b"PK\x03\x04 not a zip"), gym_textgen.TextGenError, "corrupt or unreadable", "model.zip"),
    ("checkpoint truncated", _truncated_zip, gym_textgen.TextGenError, "corrupt or unreadable", "model.zip"),
    ("KL beta", lambda t: __import__("agents.kl").kl.KLPenaltyCallback(kl_coef=-1), TextGenValueError, "kl_coef >= 0", "got -1"),
    ("KL beta infinite", lambda t: __import__("agents.kl").kl.KLPenaltyCallback(kl_coef=float("inf")), TextGenValueError, "kl_coef >= 0 \\(finite\\)", "got inf"),
]  # fmt: skip


def test_bad_input_table_is_large():
    assert len(BAD_INPUTS) >= 30


@pytest.mark.parametrize(
    "call, error, expected, actual",
    [row[1:] for row in BAD_INPUTS],
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input(tmp_path, call, error, expected, actual):
    with pytest.raises(error) as info:
        call(tmp_path)
    assert isinstance(info.value, gym_textgen.TextGenError)  # one base class to catch
    message = str(info.value)
    assert re.search(expected, message), f"expected-part {expected!r} not in: {message}"
    assert re.search(actual, message), f"actual-part {actual!r} not in: {message}"


def test_a_snapshot_of_another_env_is_refused_saying_what_arrived():
    """`set_state` names what the snapshot lacks, or the kinds of episode that differ, and
    restores a copy (changing the snapshot afterwards changes nothing in the env)."""
    from gym_textgen import TextGenEnv
    from gym_textgen.errors import TextGenValueError

    single, talk = TextGenEnv(max_new_tokens=4), TextGenEnv(task="token_code")
    single.reset(seed=0)
    talk.reset(seed=0)
    with pytest.raises(TextGenValueError, match=r"^Expects a snapshot of a TextGenEnv of this task \(get_state\), got one of an interactive episode \(this task is single-turn\)$"):  # fmt: skip
        single.set_state(talk.get_state())
    with pytest.raises(TextGenValueError, match=r"got one of a single-turn episode \(this task is interactive\)$"):  # fmt: skip
        talk.set_state(single.get_state())
    state = single.get_state()
    del state["_ids"], state["_mask"]
    with pytest.raises(TextGenValueError, match=r"got one without \['_ids', '_mask'\]$"):
        single.set_state(state)
    snapshot = talk.get_state()
    talk.set_state(snapshot)
    before = talk.observation()
    snapshot["_ids"][:] = 0
    snapshot["talk"]["policy_mask"][:] = 1
    snapshot["talk"]["turns"].append("x")
    assert all((before[k] == v).all() for k, v in talk.observation().items())
    assert talk._talk.turns == []
    taken = talk.get_state()  # a copy: the env's next steps leave it as it was
    kept = taken["_ids"].copy()
    talk.step(WORD)
    assert (taken["_ids"] == kept).all() and taken["_generated"] == []
    TextGenEnv().set_state(TextGenEnv().get_state())  # (before any reset too)
