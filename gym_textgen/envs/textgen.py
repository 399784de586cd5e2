"""TextGen-v0: write a continuation of a prompt one token at a time."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import logger
from gymnasium.error import ResetNeeded

from gym_textgen.envs.core import TextGenConfig, TextGenCore
from gym_textgen.envs.turns import Conversation, PreparedStep
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.party import Reply, replies_of


class TextGenEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Text generation as a Markov decision process: the state is a prompt plus the tokens
    generated so far, the action is the next token id, and a scorer rewards the finished text.

    ## Description
    Each episode draws a prompt from a task (by default, openings of movie reviews) and lets the
    agent extend it token by token until it emits the end-of-sequence token or reaches
    `max_new_tokens`. A configurable scorer (by default VADER sentiment) turns the finished
    completion into reward, so a policy learns to write text the scorer likes. Any Gymnasium
    algorithm works; `agents` trains a transformer LM with stock stable-baselines3.

    ## Action Space
    `Discrete(V)`: the id of the next token, V = `vocab_size` (default: the tokenizer's size).
    `action_masks()` returns a boolean array `(V,)` of the ids the tokenizer can produce (special
    tokens other than EOS are off), narrowed by `allowed_tokens`; sb3-contrib's MaskablePPO
    reads it.

    ## Observation Space
    A `Dict` of two integer `Box` arrays of length L = `max_prompt_tokens + max_new_tokens`. The
    prompt starts at position 0 and generated tokens follow it (right padding), so a token never
    moves once written.

    | Key              | Space                        | Meaning                                  |
    |------------------|------------------------------|------------------------------------------|
    | `input_ids`      | `Box(0, V-1, (L,), int64)`   | prompt + generated ids, then `pad_id`    |
    | `attention_mask` | `Box(0, 1, (L,), int8)`      | 1 where there is text, 0 on padding      |

    Flattened (`gymnasium.wrappers.FlattenObservation`, a client that wants one array): `Dict`
    keys are sorted, so the flat vector is `[attention_mask (L) | input_ids (L)]`, mask first.

    ## Rewards
    Sparse (default): 0 at every step but the last, which gets the scorer's value of the finished
    completion (most built-in scorers lie in [0, 1]). Dense (`dense_reward=True`): each step gets
    the change in the scorer's value of the completion so far (the empty completion counts 0),
    so an episode's rewards add up to the sparse reward. A scorer that raises, or returns NaN,
    inf or the wrong shape, raises `ScorerError` naming the scorer and the completion; the step
    is then not applied, so the episode can go on.

    ## Starting State
    A prompt drawn uniformly (with `self.np_random`) from the task's `split`;
    `reset(options={"prompt": "..."})` forces one (with an optional `"reference"`) and
    `reset(options={"prompt_index": i})` picks one. Prompts longer than `max_prompt_tokens` are
    left-truncated with one warning.

    ## Episode End
    Termination: the agent emits EOS (when `stop_on_eos`) or has written `max_new_tokens` tokens.
    Both are true ends of this finite-horizon MDP, since the text's length is part of the state.
    Truncation: never set by the environment; it is left to wrappers such as `TimeLimit`. So
    the registered ids have `spec.max_episode_steps = None`: the episode's longest length is
    `env.unwrapped.max_new_tokens`, and `gym.make(..., max_episode_steps=n)` adds a `TimeLimit`
    that truncates after n steps. A truncated episode is not scored (its text never finished):
    with sparse rewards it is paid 0, so set `max_new_tokens` instead to shorten episodes.

    ## Interactive episodes
    A task with an `Interaction` (`TextGenTokenCode-v0`, `TextGenGuessNumber-v0`,
    `TextGenCalculator-v0`, or your own: `gym_textgen.interactive`) alternates turns: the policy's
    turn ends at EOS, at a `turn_ends` string or at `max_turn_tokens`; then the other party's
    reply is appended to the state within the same step (one action in, one observation out),
    until the party says the episode is over or the policy has had `max_turns` turns (an end,
    scored). `max_new_tokens` counts the policy's tokens only, and L grows by the replies' room.
    The observation adds `policy_mask` (`Box(0, 1, (L,), int8)`: 1 on the policy's own tokens);
    `info` adds `turns`, `reply` and `transcript` (the whole episode, at its end). Rewards: the party's for each turn, at the turn's last token,
    plus the scorer's value of the last turn at the end (dense: within each turn, and a turn's
    dense rewards sum to 0 but the last turn's, so the sum is still the sparse reward).

    ## Info
    The same keys on every `reset` and `step` (clients such as Tianshou's buffer and TorchRL's
    tensordicts stack infos across steps), with neutral values where a key has no meaning yet:

    | Key                 | Type               | Value                                          |
    |---------------------|--------------------|------------------------------------------------|
    | `prompt_index`      | `int`              | the prompt's index in the split (-1: forced)   |
    | `prompt_tokens`     | `int`              | the prompt's length in tokens                  |
    | `prompt`            | `str`              | the prompt's text (what the scorer reads)      |
    | `completion`        | `str`              | the completion, at the last step; else `""`    |
    | `new_tokens`        | `int`              | tokens written so far (0 after `reset`)        |
    | `reward_components` | `dict[str, float]` | each named part of the score, where this step  |
    |                     |                    | scored (the last step; each step when dense);  |
    |                     |                    | else 0.0 each; interactive: `party` too, the   |
    |                     |                    | other party's reward for the step's turn       |

    ## Arguments
    Keywords (as below), or one `TextGenConfig` (`TextGenEnv(config=...)`), whose fields are
    documented with their reasons; `render_mode` is Gymnasium's.

    >>> import gymnasium as gym
    >>> import gym_textgen
    >>> env = gym.make("TextGen-v0", max_new_tokens=8)
    >>> obs, info = env.reset(seed=0)
    >>> obs["input_ids"].shape, int(obs["attention_mask"].sum()) == info["prompt_tokens"]
    ((32,), True)
    >>> for _ in range(8):
    ...     obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    ...     if terminated:
    ...         break
    >>> terminated, 0.0 <= reward <= 1.0, list(info)
    (True, True, ['prompt_index', 'prompt_tokens', 'prompt', 'completion', 'new_tokens', 'reward_components'])

    | Parameter           | Default             | Meaning                                           |
    |---------------------|---------------------|---------------------------------------------------|
    | `task`              | `"movie_sentiment"` | a task name (`list_tasks()`), `Task`, or prompts  |
    | `scorer`            | the task's          | a scorer spec (see `gym_textgen.scorers`)         |
    | `scorer_kwargs`     | `None`              | arguments for a named scorer (`{"target": 10}`)   |
    | `scorer_timeout`    | `None`              | seconds a scoring call may take, else ScorerError |
    |                     |                     | (the scorer then runs in a worker thread)         |
    | `tokenizer`         | `"default"`         | a model name, folder, or a tokenizer object       |
    | `max_prompt_tokens` | the task's, else 24 | longer prompts keep their last tokens             |
    | `max_new_tokens`    | the task's, else 32 | episode length limit                              |
    | `stop_on_eos`       | `True`              | end the episode when EOS is chosen                |
    | `dense_reward`      | `False`             | per-step score differences instead of one reward  |
    | `allowed_tokens`    | `None`              | ids the action mask allows (narrows it)           |
    | `vocab_size`        | tokenizer size      | V, to match a model whose output is larger        |
    | `split`             | `"train"`           | `"train"`, `"validation"` or `"test"` (`"eval"`)  |
    | `chat`              | the task's          | wrap prompts in the tokenizer's chat template     |
    | `party_retries`     | `0`                 | retries of a failed call of the other party       |
    | `render_mode`       | `None`              | `"ansi"` or `"human"` (others: a warning, none)   |

    An unknown keyword is Python's own `TypeError` (`TextGenEnv.__init__() got an unexpected
    keyword argument 'x'`, then a did-you-mean hint), so clients that retry without an optional
    keyword (TorchRL's `GymEnv` and its `frameskip`) work.

    ## Vectorized environment
    `gym.make_vec("TextGen-v0", num_envs=N, vectorization_mode="vector_entry_point")` returns
    `TextGenVectorEnv`: N slots that share one tokenizer and score all episodes that end in a
    step with one scorer call (and one call of an interactive task's other party). It uses this
    class's public parts of a step: `prepare_step` (check the action, change nothing), `answer`
    (the party's reply to a step that ends a turn) and `commit_step` (apply it with its score).
    Its trajectories equal those of N single environments seeded `seed, seed + 1, ...` (and of
    `vectorization_mode="sync"`).

    ## Version History
    * v0: initial version. Arguments became the fields of `TextGenConfig` (same names); an
      unsupported `render_mode` now warns instead of raising, as Gymnasium's own envs do.
      Then (same dynamics, same rewards): `info` holds every key on every step and reset;
      `render()` without a render mode returns None (the text is `env.unwrapped.text`); an
      unknown keyword raises in Python's wording; the vector env takes every autoreset mode.
      Interactive tasks (same dynamics for every single-turn task).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 4}

    def __init__(
        self, config: TextGenConfig | None = None, render_mode: str | None = None, **kwargs: Any
    ) -> None:
        self._setup(TextGenCore(TextGenConfig.resolve(config, "TextGenEnv", **kwargs)), render_mode)

    @classmethod
    def from_core(cls, core: TextGenCore, render_mode: str | None = None) -> TextGenEnv:
        """An env that shares `core` (tokenizer, task, scorer) with other envs."""
        env = cls.__new__(cls)
        env._setup(core, render_mode)
        return env

    def _setup(self, core: TextGenCore, render_mode: str | None) -> None:
        self.core = core
        modes = self.metadata["render_modes"]
        if render_mode is not None and render_mode not in modes:
            shown = repr(render_mode).replace("%", "%%")  # logger.warn %-formats its message
            logger.warn(
                f"render_mode {shown} is not supported (expected one of {modes} or None); "
                "rendering is off"
            )
            render_mode = None
        self.render_mode = render_mode
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self.max_new_tokens = self.core.max_new_tokens
        self.dense_reward = self.core.dense_reward
        self._vocab = self.core.vocab_size
        self._eos = self.core.eos_id if self.core.stop_on_eos else None
        length = self.core.max_length
        self._ids = np.full(length, self.core.pad_id, dtype=np.int64)
        self._mask = np.zeros(length, dtype=np.int8)
        self._generated: list[int] | None = None  # None until the first reset
        self._episode = 0  # counts resets, so a step prepared before one is refused after it
        self._done = False
        self._prompt = ""
        self._prompt_len = 0
        self._end = 0
        self._prompt_index = -1
        self._reference: Any = None
        self._last_score = 0.0
        self._completion = ""
        self._talk = Conversation(core) if core.interaction else None  # interactive episodes

    # -- Gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        index, prompt, reference = self.core.pick_prompt(options or {}, self.np_random)
        ids, text = self.core.encode_prompt(prompt)  # raises on a bad prompt, before any change
        n = ids.size
        self._ids.fill(self.core.pad_id)
        self._ids[:n] = ids
        self._mask.fill(0)
        self._mask[:n] = 1
        self._prompt, self._prompt_len, self._reference = text, n, reference
        self._end = n  # tokens in the state: the next one goes here
        self._prompt_index = index
        self._generated, self._done, self._last_score, self._completion = [], False, 0.0, ""
        self._episode += 1
        if self._talk is not None:
            self._talk.reset(seed=int(self.np_random.integers(2**31)))  # the party's, per episode
        if self.render_mode == "human":
            self.render()
        return self.observation(), self._info()

    def step(
        self, action: int | np.integer
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        prepared = self.prepare_step(action)
        if prepared.exchange is not None:  # the policy ended a turn: the other party answers
            (reply,) = replies_of(self.core.interaction.party, [prepared.exchange],
                                  retries=self.core.config.party_retries)  # fmt: skip
            prepared = self.answer(prepared, reply)
        if prepared.score_ids is None:
            return self.commit_step(prepared)
        total, comps, texts = self.core.score(
            [prepared.prompt], [prepared.score_ids], [prepared.reference]
        )
        return self.commit_step(
            prepared, float(total[0]), {k: float(v[0]) for k, v in comps.items()}, texts[0]
        )

    def action_masks(self) -> np.ndarray:
        """Boolean `(V,)`: True for actions allowed now (see `## Action Space`)."""
        return self.core.mask.copy()

    def render(self) -> str | None:
        """`"ansi"`: the prompt with the generated part between « and » (`text`); `"human"`:
        print it and return None. Without a render mode: a warning and None, as Gymnasium's
        own environments do."""
        if self.render_mode is None:
            logger.warn(
                "You are calling render method without specifying any render mode. You can "
                'specify the render_mode at initialization, e.g. gym.make("TextGen-v0", '
                'render_mode="ansi"); `env.unwrapped.text` gives the text without one'
            )
            return None
        if self.render_mode == "human":
            print(self.text)
            return None
        return self.text

    @property
    def text(self) -> str:
        """The prompt with the generated part between « and » ("" before the first reset)."""
        if self._generated is None:
            return ""
        if self._talk is not None:
            return self._talk.text(self._prompt, self._done)
        completion = self._completion if self._done else self.core.decode(self._generated)
        return f"{self._prompt}«{completion}»"

    # -- the two halves of a step (the vector env batches the scoring in between) ---------------
    def prepare_step(self, action: Any) -> PreparedStep:
        """Check `action` and decide whether the step ends the episode; changes nothing.

        `step(a)` is `commit_step(prepare_step(a), *score)` where the score is the scorer's
        value of `prepared.score_ids` (when not None): a batched caller scores many prepared
        steps in one call, and a scorer error leaves every env as it was.
        """
        if type(action) is int or isinstance(action, np.integer):
            a = int(action)
        elif isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu":
            a = int(action)
        else:
            raise TextGenTypeError(
                f"Expects an integer action in [0, {self._vocab - 1}], "
                f"actual {action!r:.80} ({type(action).__name__})"
            )
        if not 0 <= a < self._vocab:
            raise TextGenValueError(f"Expects action in [0, {self._vocab - 1}], actual {a} (int)")
        if self._generated is None:
            raise ResetNeeded("Cannot call step() before reset()")
        if self._done:
            raise ResetNeeded("The episode has ended (terminated=True); call reset() before step()")
        eos = a == self._eos
        at_limit = len(self._generated) + 1 >= self.max_new_tokens
        where = (self._prompt, self._reference, self._episode, len(self._generated))
        if self._talk is not None:  # interactive: a turn's end waits for the other party
            turn = self._talk.turn_with(a, eos)
            if at_limit or eos or self._talk.ends_turn(turn):
                exchange = self._talk.exchange(self._prompt, self._reference, turn)
                return PreparedStep(a, at_limit, None, *where, exchange=exchange)
            return PreparedStep(a, False, turn if self.dense_reward else None, *where)
        terminated = eos or at_limit
        score_ids = None
        if terminated or self.dense_reward:
            score_ids = self._generated if eos else [*self._generated, a]
        return PreparedStep(a, terminated, score_ids, *where)

    def answer(self, p: PreparedStep, reply: Reply) -> PreparedStep:
        """A prepared step that ends a policy turn, with the other party's `reply` to it: the
        episode ends when the party says so or at the turn or token limit; otherwise the reply's
        ids follow the action. Changes nothing (`commit_step` applies it)."""
        if p.exchange is None:
            raise TextGenValueError("Expects a step that ends a policy turn (p.exchange is set)")
        return self._talk.answer(p, reply, self._eos)

    def commit_step(
        self,
        p: PreparedStep,
        score: float | None = None,
        components: dict[str, float] | None = None,
        completion: str = "",
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Apply a prepared step with its score (required when `p.score_ids` asked for one).

        A step prepared for another state of the env (committed twice, or across a `reset`) is
        refused. Returns what `step` returns.
        """
        if (
            self._generated is None
            or self._done
            or p.episode != self._episode
            or p.position != len(self._generated)
        ):
            raise TextGenValueError(
                "Expects a step prepared for the env's current state (episode "
                f"{self._episode}, token {len(self._generated or [])}), got one prepared for "
                f"episode {p.episode}, token {p.position}: prepare_step again"
            )
        if p.exchange is not None:
            raise TextGenValueError(
                "Expects the other party's reply first: this step ends a policy turn "
                "(env.answer(prepared, reply), then commit_step)"
            )
        if p.score_ids is not None and score is None:
            raise TextGenValueError(
                f"Expects the score of completion ids {p.score_ids[:8]}... (score_ids is set), "
                "got score=None"
            )
        score = 0.0 if score is None else score
        pos = self._end
        self._end += 1 + len(p.reply_ids)
        self._ids[pos] = p.action
        self._mask[pos] = 1
        self._generated.append(p.action)
        reward = p.turn_reward
        if p.score_ids is not None:
            reward += score - self._last_score if self.dense_reward else score
            self._last_score = score
        if self._talk is not None and self._talk.commit(p, pos, self._ids, self._mask):
            if self.dense_reward:  # a turn's dense rewards sum to 0 but the last turn's: the
                reward -= self._last_score  # potential (the turn's score so far) restarts at 0
            self._last_score = 0.0
        if p.terminated:
            self._done, self._completion = True, completion
        if self.render_mode == "human":
            self.render()
        if self._talk is not None:  # the other party's part of the step's reward
            components = {**(components or {}), "party": float(p.turn_reward)}
        return self.observation(), reward, p.terminated, False, self._info(components)

    def _info(self, components: dict[str, float] | None = None) -> dict[str, Any]:
        """The same keys on every reset and step (see `## Info`): clients that stack
        infos across steps (Tianshou's buffer, TorchRL's tensordicts) need them all, always."""
        components = {**dict.fromkeys(self.core.component_names, 0.0), **(components or {})}
        return {
            "prompt_index": self._prompt_index,
            "prompt_tokens": self._prompt_len,
            "prompt": self._prompt,
            "completion": self._completion,
            "new_tokens": len(self._generated or ()),
            "reward_components": components,
            **(self._talk.info(self._done) if self._talk is not None else {}),
        }

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (copies: what `reset` or the last `step` returned)."""
        obs = {"input_ids": self._ids.copy(), "attention_mask": self._mask.copy()}
        if self._talk is not None:
            obs["policy_mask"] = self._talk.policy_mask.copy()
        return obs

    # -- snapshots (a checkpoint that resumes exactly) -----------------------------------------
    _STATE = ("_ids", "_mask", "_generated", "_episode", "_done", "_prompt", "_prompt_len",
              "_end", "_prompt_index", "_reference", "_last_score", "_completion", "_np_random",
              "_np_random_seed")  # fmt: skip

    def get_state(self) -> dict[str, Any]:
        """A copy of everything this env's next steps depend on (the episode so far, an
        interactive episode's turns, and the random generator), for `set_state`: a run restored
        from it continues exactly as it would have (the other party answers from the episode's
        history alone, as every `OtherParty` does)."""
        state = copy.deepcopy({k: getattr(self, k, None) for k in self._STATE})
        state["talk"] = self._talk.get_state() if self._talk is not None else None
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a `get_state` snapshot (of an env with the same core)."""
        missing = sorted(set(self._STATE) - set(state))
        talk = state.get("talk")  # (snapshots of before interactive resumes have none)
        if missing or (talk is None) != (self._talk is None):
            kinds = ("a single-turn", "an interactive")
            raise TextGenValueError(
                "Expects a snapshot of a TextGenEnv of this task (get_state), got one "
                + (f"without {missing}" if missing else
                   f"of {kinds[talk is not None]} episode (this task is "
                   f"{kinds[self._talk is not None].split()[1]})")
            )  # fmt: skip
        for key in self._STATE:
            setattr(self, key, copy.deepcopy(state[key]))
        if self._talk is not None:
            self._talk.set_state(talk)

    @property
    def prompt(self) -> str:
        """The current episode's prompt text."""
        return self._prompt

    @property
    def generated_ids(self) -> list[int]:
        """The ids generated so far in the current episode."""
        return list(self._generated or [])
