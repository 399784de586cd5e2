"""The public API's shape: one documented env config, public step halves, renamed names."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

import agents
import gym_textgen
from gym_textgen import TextGenConfig, TextGenEnv
from tests.helpers import assert_same, rollout
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
    assert TextGenEnv(config=config, max_new_tokens=3).max_new_tokens == 3  # keywords win


def test_every_config_field_is_documented():
    from agents.dataclass_cli import field_docs

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


def test_names_removed_in_0_3_are_clear_errors():
    """The 0.2 deprecation shims are gone (CHANGELOG.md): an old name is an error that names
    the new one where it can."""
    from agents.config import load_config

    with pytest.raises(ValueError, match=r"'kl_target'\] \(did you mean 'kl_coef_target'\?\)"):
        load_config(None, kl_target=3.0)
    with pytest.raises(AttributeError, match="has no attribute 'TextGenVecEnv'"):
        agents.TextGenVecEnv  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'evaluate'"):
        gym_textgen.scorers.evaluate  # noqa: B018
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=1, max_new_tokens=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'fast'"):
        agents.make_algo("ppo", env, {"model": "random-tiny", "fast": False}, n_steps=4)


def test_config_on_top_of_a_registered_id():
    """The id's own arguments (its task) apply on top of a config, as keywords do."""
    config = TextGenConfig(max_new_tokens=3)
    env = gym.make("TextGenTargetTokens-v0", config=config).unwrapped
    assert env.core.task.name == "target_tokens" and env.max_new_tokens == 3
    vec = gym.make_vec(
        "TextGenKeywords-v0", num_envs=2, vectorization_mode="vector_entry_point", config=config
    )
    assert vec.unwrapped.core.task.name == "keywords"
    as_dict = TextGenEnv(config={"max_new_tokens": 4})  # a mapping of fields works too
    assert as_dict.max_new_tokens == 4
    with pytest.raises(gym_textgen.TextGenTypeError, match="Expects config to be a TextGenConfig"):
        TextGenEnv(config=4)


def test_config_with_a_generator_serves_many_envs():
    config = TextGenConfig(allowed_tokens=(i for i in range(50)))
    first, second = TextGenEnv(config=config), TextGenEnv(config=config)
    assert first.action_masks().sum() == second.action_masks().sum() > 0


def test_commit_refuses_steps_prepared_for_another_state():
    env = gym.make("TextGen-v0", max_new_tokens=3, stop_on_eos=False).unwrapped
    env.reset(seed=0)
    step = env.prepare_step(WORD)
    env.commit_step(step)
    with pytest.raises(gym_textgen.TextGenValueError, match="prepared for the env's current state"):
        env.commit_step(step)  # twice
    stale = env.prepare_step(WORD)
    env.reset(seed=1)
    with pytest.raises(gym_textgen.TextGenValueError, match="episode 2, token 0"):
        env.commit_step(stale)  # across a reset
    env.step(WORD)
    env.step(WORD)
    last = env.prepare_step(WORD)
    with pytest.raises(gym_textgen.TextGenValueError, match="got score=None"):
        env.commit_step(last)  # a step that must be scored
    assert env.generated_ids == [WORD, WORD]


def test_weighted_mix_of_two_unnamed_functions_keeps_both():
    scorer = gym_textgen.make_scorer({(lambda p, c: 1.0): 1.0, (lambda p, c: 0.5): 1.0})
    total, comps = gym_textgen.scorers.score_batch(scorer, ["p"], ["c"])
    assert total.tolist() == [1.5] and sorted(comps) == ["<lambda>", "<lambda>#2"]


def test_check_env_takes_vec_envs():
    import warnings

    for env in (
        agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=3),
        gym.make("TextGen-v0", max_new_tokens=3).unwrapped,
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            agents.check_env(env)
        assert any("Use agents.TransformerPolicy" in str(w.message) for w in caught)


def test_the_step_protocol_s_refusals_say_what_to_do():
    """Each misuse of prepare/answer/commit names what was expected and what to do."""
    from gymnasium.error import ResetNeeded

    from gym_textgen import TextGenEnv
    from gym_textgen.interactive import Reply

    env = TextGenEnv(max_new_tokens=3)
    with pytest.raises(ResetNeeded, match=r"^Cannot call step\(\) before reset\(\)$"):
        env.prepare_step(WORD)
    env.reset(seed=0)
    with pytest.raises(gym_textgen.TextGenValueError, match=r"^Expects the score of completion ids \[(\d+(, \d+)*)?\]\.\.\. \(score_ids is set\), got score=None$"):  # fmt: skip
        env.commit_step(env.prepare_step(env.core.eos_id))
    env.commit_step(env.prepare_step(env.core.eos_id), 0.5)
    with pytest.raises(ResetNeeded, match=r"^The episode has ended \(terminated=True\); call reset\(\) before step\(\)$"):  # fmt: skip
        env.prepare_step(WORD)
    talk = TextGenEnv(task="token_code")
    talk.reset(seed=0)
    ending = talk.prepare_step(talk.core.eos_id)
    with pytest.raises(gym_textgen.TextGenValueError, match=r"^Expects the other party's reply first: this step ends a policy turn \(env\.answer\(prepared, reply\), then commit_step\)$"):  # fmt: skip
        talk.commit_step(ending)
    with pytest.raises(gym_textgen.TextGenValueError, match=r"^Expects a step prepared for the env's current state \(episode 2, token 0\), got one prepared for episode 2, token 5: prepare_step again$"):  # fmt: skip
        env.reset(seed=0)
        env.commit_step(dataclasses.replace(env.prepare_step(WORD), position=5))
    talk.commit_step(talk.answer(ending, Reply("x")))


def test_an_unknown_render_mode_warns_that_rendering_is_off():
    from gym_textgen import TextGenEnv

    with pytest.warns(UserWarning, match=r"render_mode 'movie' is not supported \(expected one of \['ansi', 'human'\] or None\); rendering is off"):  # fmt: skip
        env = TextGenEnv(render_mode="movie")
    assert env.render_mode is None
