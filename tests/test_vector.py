"""The native batched env equals N single envs and Gymnasium's SyncVectorEnv, in both autoreset modes."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import gym_textgen
from gym_textgen import TextGenVectorEnv
from gym_textgen.scorers import Scorer, ScorerError
from tests.helpers import assert_same
from tests.tokens import WORDS, V

N = 3
KW = dict(max_new_tokens=5)


def run(envs, seed=5, steps=14):
    """A seeded random run; with autoreset Disabled, the caller resets ended slots itself
    (`reset_mask`, as TorchRL does)."""
    rng = np.random.default_rng(0)
    out = [envs.reset(seed=seed)]
    done = np.zeros(envs.num_envs, dtype=bool)
    for _ in range(steps):
        if envs.metadata["autoreset_mode"] == AutoresetMode.DISABLED and done.any():
            out.append(envs.reset(options={"reset_mask": done}))
        out.append(envs.step(rng.integers(envs.single_action_space.n, size=envs.num_envs)))
        done = out[-1][2] | out[-1][3]
    return out


@pytest.mark.parametrize("mode", list(AutoresetMode))
@pytest.mark.parametrize("env_id", ["TextGen-v0", "TextGenTargetTokens-v0"])
def test_native_equals_sync(env_id, mode):
    native = gym.make_vec(
        env_id, num_envs=N, vectorization_mode="vector_entry_point", autoreset_mode=mode, **KW
    )
    sync = gym.make_vec(
        env_id, num_envs=N, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, **KW
    )
    assert native.metadata["autoreset_mode"] == mode
    assert native.observation_space == sync.observation_space
    assert native.action_space == sync.action_space
    assert_same(run(native), run(sync))


def test_autoreset_disabled_resets_only_the_slots_asked_for():
    """TorchRL's preferred mode: no slot resets by itself, `reset_mask` resets the chosen ones
    (the others keep their text), and stepping an ended slot is an error that changes nothing."""
    envs = gym.make_vec("TextGen-v0", num_envs=N, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", max_new_tokens=2, stop_on_eos=False)  # fmt: skip
    envs.reset(seed=0)
    envs.step(np.array(WORDS[:N]))
    obs, _, terminated, _, _ = envs.step(np.array(WORDS[:N]))
    assert terminated.all()
    with pytest.raises(gym.error.ResetNeeded, match=r"Slots \[0, 1, 2\] have ended.*reset_mask"):
        envs.step(np.array(WORDS[:N]))
    mask = np.array([True, False, True])
    new_obs, info = envs.reset(seed=10, options={"reset_mask": mask})
    np.testing.assert_array_equal(new_obs["input_ids"][1], obs["input_ids"][1])  # kept
    assert info["_new_tokens"].tolist() == mask.tolist() and info["new_tokens"][0] == 0
    fresh, _ = gym.make("TextGen-v0", max_new_tokens=2).reset(seed=12)  # slot 2: seed 10 + 2
    np.testing.assert_array_equal(new_obs["input_ids"][2], fresh["input_ids"])
    with pytest.raises(gym.error.ResetNeeded, match=r"Slots \[1\] have ended"):
        envs.step(np.array(WORDS[:N]))
    with pytest.raises(
        TypeError, match=r"reset_mask'\] to be a bool array of shape \(3,\), got int"
    ):
        envs.reset(options={"reset_mask": np.array([1, 0, 1])})
    with pytest.raises(ValueError, match=r"with at least one True, got \[False False False\]"):
        envs.reset(options={"reset_mask": np.zeros(N, dtype=bool)})
    with pytest.raises(ValueError, match=r"Expects autoreset_mode in \['NextStep', 'SameStep', "):
        gym.make_vec("TextGen-v0", num_envs=2, vectorization_mode="vector_entry_point",
                     autoreset_mode="Sometimes")  # fmt: skip


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_info_has_every_key_for_every_slot_on_every_step(mode):
    envs = gym.make_vec("TextGen-v0", num_envs=N, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **KW)  # fmt: skip
    keys = ["prompt_index", "prompt_tokens", "prompt", "completion", "new_tokens",
            "reward_components"]  # fmt: skip
    for step in run(envs, steps=12):
        info = step[-1]
        for key in keys:
            assert key in info and (mode == AutoresetMode.DISABLED or info[f"_{key}"].all())


def test_native_equals_single_envs():
    native = gym.make_vec("TextGen-v0", num_envs=N, vectorization_mode="vector_entry_point", **KW)
    singles = [gym.make("TextGen-v0", **KW) for _ in range(N)]
    obs, _ = native.reset(seed=5)
    single_obs = [env.reset(seed=5 + i)[0] for i, env in enumerate(singles)]
    for i in range(N):
        np.testing.assert_array_equal(obs["input_ids"][i], single_obs[i]["input_ids"])
    rng = np.random.default_rng(0)
    done = np.zeros(N, dtype=bool)
    for _ in range(5):  # one full episode per slot
        actions = rng.integers(0, V, size=N)
        obs, rewards, terms, _, _ = native.step(actions)
        for i, env in enumerate(singles):
            o, r, t, _, _ = env.step(int(actions[i]))
            np.testing.assert_array_equal(obs["input_ids"][i], o["input_ids"])
            assert rewards[i] == r and terms[i] == t
        done |= terms
    assert done.all()


class CountingScorer(Scorer):
    name = "counting"

    def __init__(self):
        self.calls = []

    def score(self, prompts, completions, references=None, *, completion_ids=None):
        self.calls.append(len(completions))
        return np.ones(len(completions))


def test_one_scorer_call_per_batch():
    scorer = CountingScorer()
    envs = gym.make_vec(
        "TextGen-v0", num_envs=4, scorer=scorer, max_new_tokens=3, stop_on_eos=False
    )
    envs.reset(seed=0)
    for _ in range(3):
        _, rewards, terms, _, _ = envs.step(np.full(4, WORDS[0]))
    assert terms.all() and (rewards == 1).all()
    assert scorer.calls == [4]  # the four episodes that ended together, scored in one call


class FlakyScorer(Scorer):
    name = "flaky"

    def __init__(self):
        self.fail = True

    def score(self, prompts, completions, references=None, *, completion_ids=None):
        if self.fail:
            raise RuntimeError("service down")
        return np.full(len(completions), 0.25)


def test_scorer_error_leaves_all_slots_unchanged():
    scorer = FlakyScorer()
    envs = gym.make_vec(
        "TextGen-v0", num_envs=2, scorer=scorer, max_new_tokens=2, stop_on_eos=False
    )
    envs.reset(seed=0)
    obs1, *_ = envs.step(np.array(WORDS[:2]))
    with pytest.raises(ScorerError, match="'flaky' raised RuntimeError: service down"):
        envs.step(np.array(WORDS[2:4]))
    assert [e.generated_ids for e in envs.unwrapped.envs] == [[WORDS[0]], [WORDS[1]]]
    scorer.fail = False
    _, rewards, terms, _, info = envs.step(np.array(WORDS[2:4]))
    assert terms.all() and rewards.tolist() == [0.25, 0.25]
    assert info["new_tokens"].tolist() == [2, 2]


def test_vector_bad_actions_shape():
    envs = gym.make_vec("TextGen-v0", num_envs=2)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"Expects actions of shape \(2,\), got \(3,\)"):
        envs.step(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="Expects num_envs"):
        gym.make_vec("TextGen-v0", num_envs=0)


def prompts_per_slot(envs, steps, seed):
    """Each slot's sequence of prompts over `steps` random steps (EOS ends episodes early)."""
    rng = np.random.default_rng(seed)
    envs.reset(seed=seed)
    seen = [[env.prompt] for env in envs.envs]
    eos = envs.core.eos_id
    for _ in range(steps):
        # a slot-dependent EOS rate: the slots of a group run out of step with each other
        actions = [eos if rng.random() < 0.1 * (i + 1) else WORDS[0] for i in range(envs.num_envs)]
        envs.step(np.array(actions))
        for i, env in enumerate(envs.envs):
            if env.generated_ids == []:  # reset in this step
                seen[i].append(env.prompt)
    return seen


def test_group_sampling_gives_a_group_the_same_prompts():
    envs = TextGenVectorEnv(num_envs=6, group_size=3, max_new_tokens=4)
    seen = prompts_per_slot(envs, steps=120, seed=7)
    for g in (0, 3):
        lengths = [len(seen[i]) for i in range(g, g + 3)]
        assert len(set(lengths)) > 1  # the slots did finish different numbers of episodes
        n = min(lengths)
        assert seen[g][:n] == seen[g + 1][:n] == seen[g + 2][:n]
    assert seen[0][: len(seen[3])] != seen[3][: len(seen[0])]  # groups draw their own prompts
    again = prompts_per_slot(TextGenVectorEnv(num_envs=6, group_size=3, max_new_tokens=4), 120, 7)
    assert again == seen  # seeded
    assert len(envs._group_draws[0]) <= max(len(s) for s in seen)  # used prompts are forgotten


def test_group_sampling_covers_the_task():
    envs = TextGenVectorEnv(num_envs=2, group_size=2, max_new_tokens=1, stop_on_eos=False)
    seen = prompts_per_slot(envs, steps=400, seed=0)
    assert len(set(seen[0])) >= 0.9 * len(envs.core.prompts)


def test_sb3_vec_env_groups():
    import agents

    env = agents.make_vec_env("TextGen-v0", n_envs=4, group_size=2, seed=3, max_new_tokens=3)
    obs = env.reset()
    ids = obs["input_ids"]
    assert (ids[0] == ids[1]).all() and (ids[2] == ids[3]).all() and not (ids[0] == ids[2]).all()
    with pytest.raises(gym_textgen.TextGenValueError, match="divides num_envs=4, got 3"):
        agents.make_vec_env("TextGen-v0", n_envs=4, group_size=3)


def test_group_sampling_stays_seeded_across_unseeded_resets():
    """A grouped env seeded once draws the same prompts after any number of reset() calls
    without a seed (REINFORCE resets every round): it used to reseed from OS entropy."""

    def prompts(env):
        env.reset(seed=5)
        seen = []
        for _ in range(6):
            env.reset()
            seen.append([e.prompt for e in env.envs])
        return seen

    first = prompts(TextGenVectorEnv(num_envs=4, group_size=2, max_new_tokens=2))
    second = prompts(TextGenVectorEnv(num_envs=4, group_size=2, max_new_tokens=2))
    assert first == second
    assert len({tuple(p) for p in first}) > 1  # and the resets do draw new prompts


def test_vector_render_modes():
    """Every slot renders in the vector env's mode (its slots share one core: `from_core`)."""
    envs = TextGenVectorEnv(num_envs=2, render_mode="ansi", max_new_tokens=2)
    envs.reset(seed=0, options={"prompt": "The plot was"})
    envs.step(np.array(WORDS[:2]))
    texts = envs.render()
    assert len(texts) == 2 and all(t.startswith("The plot was«") and t.endswith("»") for t in texts)
    assert TextGenVectorEnv(num_envs=2).render_mode is None


@pytest.mark.parametrize("task", ["movie_sentiment", "token_code"])
def test_a_snapshot_restored_into_another_env_steps_on_as_the_original(task):
    """`get_state`/`set_state` (what an exact resume carries): slots mid-episode, prompt groups,
    an interactive episode's turns; the same actions then give the same steps."""
    from gymnasium.vector import AutoresetMode

    from gym_textgen import TextGenVectorEnv
    from tests.helpers import assert_same

    def make():
        return TextGenVectorEnv(num_envs=4, group_size=2, task=task, max_new_tokens=10,
                                autoreset_mode=AutoresetMode.SAME_STEP)  # fmt: skip

    rng = np.random.default_rng(0)
    actions = rng.integers(2, 200, size=(30, 4))
    env = make()
    env.reset(seed=3)
    for a in actions[:13]:
        env.step(a)
    snapshot = env.get_state()
    again = make()
    again.reset(seed=99)  # another state, then the snapshot's
    again.set_state(snapshot)
    for a in actions[13:]:
        assert_same(env.step(a), again.step(a))


def test_a_snapshot_of_before_idle_slots_and_interactive_resumes_restores():
    """Checkpoints written before idle slots and interactive snapshots (no slot "talk", no
    "_idle") were refused, or restored half the env before a bare KeyError."""
    env = TextGenVectorEnv(num_envs=2, max_new_tokens=4)
    env.reset(seed=0)
    env.step(np.array(WORDS[:2]))
    state = env.get_state()
    old = {k: v for k, v in state.items() if k not in ("_idle", "_idle_finished")}
    old["slots"] = [{k: v for k, v in slot.items() if k != "talk"} for slot in state["slots"]]
    again = TextGenVectorEnv(num_envs=2, max_new_tokens=4)
    again.reset(seed=5)
    again.set_state(old)
    assert_same(env.step(np.array(WORDS[2:4])), again.step(np.array(WORDS[2:4])))
    broken = {k: v for k, v in state.items() if k != "_slot_episode"}
    before = pickle.dumps(again.get_state())
    with pytest.raises(gym_textgen.errors.TextGenValueError, match=r"without \['_slot_episode'\]"):
        again.set_state(broken)
    assert pickle.dumps(again.get_state()) == before  # refused before any slot changed


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_slots_left_idle_reset_once_idle_finished_is_off(mode):
    """REINFORCE turns `idle_finished` off after its rounds: slots left waiting stayed frozen
    (reward 0, never terminated, never reset) for any later stepping without a reset()."""
    envs = TextGenVectorEnv(num_envs=2, max_new_tokens=3, autoreset_mode=mode)
    envs.reset(seed=0)
    envs.idle_finished = True
    _, _, terminated, *_ = envs.step(np.array([envs.core.eos_id, WORDS[0]]))
    assert terminated.tolist() == [True, False]
    envs.idle_finished = False
    ended = []
    for _ in range(4):
        obs, _, terminated, truncated, info = envs.step(np.array(WORDS[:2]))
        ended.append(bool(terminated[0] or truncated[0]))
    assert any(ended)  # slot 0 started a new episode and ran to its token limit
