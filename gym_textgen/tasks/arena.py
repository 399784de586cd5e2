"""TextArena's text games (https://github.com/LeonGuertler/TextArena) as interactive tasks.

`make_task("textarena:GuessTheNumber-v0")` plays the game: its opening observation is the
prompt, each of the policy's turns is the player's move, the game's messages after the move are
the other party's reply, and the game's reward for the player ends the episode (paid at the
last turn). An instance is a game seed: training instances draw seeds from one range and held-out
ones from another, so an eval game is never a training game's seed (a game with few distinct
states, such as a number from 1 to 20, may still repeat one).

Settings follow a `?` as in `reasoning_gym:` (`key=value` joined by `&`): the game's own (its
class's arguments, e.g. `textarena:GuessTheNumber-v0?max_number=16&max_turns=6`) and the task's:
`n_train` (256), `n_eval` (32), `seed` (0), `turns` (the episode's turn limit, 16: keep it
above the game's own move limit, which TextArena enforces one move late - GuessTheNumber's
`max_turns=10` ends the game at move 11 - or the episode ends before the game pays),
`turn_tokens` (12), `reply_tokens` (64; a reply cut to it keeps its first tokens: raise it for
games that show a board), `prompt_tokens` (256), `chat` (False: a plain transcript, where
instruction-tuned models play rather than chat) and `opponent` (`random`, for a two-player
game). Needs the optional extra: `pip install 'gym-textgen[textarena]'`.

The party holds no game between calls: each reply starts the game from its seed and replays the
policy's turns so far (history -> reply, as every `OtherParty`), so vector slots, groups of the
same instance and saved runs need nothing kept alive, and the same turns always get the same
reply. A game that needs a second player takes `opponent=`: `"random"` (a random move among
those the game's own messages offer it: `random_opponent`) or, from Python, any function of the
opponent's observation text (the game's messages to it, never the policy's moves) to its move (`textarena_task(game, opponent=...)`: a scripted player, a greedy model). The
opponent is replayed with the game, so it must answer the same observation the same way (a
sampling model would change the game the policy was shown); `"random"` is seeded by the
observation. TextArena's games draw from Python's global `random` (and some from numpy's): each
game carries its own states of both, seeded from the instance seed when it starts and swapped in
around every step (and the caller's swapped back), so a game's cards, tiles and dice follow from
its seed and the moves so far, whatever the process's own random state.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError, require
from gym_textgen.interactive import Exchange, Interaction, OtherParty, Reply
from gym_textgen.tasks.reasoning import parse_spec, task_name
from gym_textgen.tasks.task import Task

PREFIX = "textarena:"

#: the task's own settings and their defaults (the rest go to the game)
TASK_DEFAULTS = {
    "n_train": 256,
    "n_eval": 32,
    "n_validation": 32,
    "seed": 0,
    "turns": 16,
    "turn_tokens": 12,
    "reply_tokens": 64,
    "prompt_tokens": 256,
    "chat": False,
}
#: held-out seeds start this far after the training ones of the same `seed`
EVAL_OFFSET = 1_000_000

Opponent = Callable[[str], str]
MOVE = re.compile(r"\[[^\[\]\n]{1,24}\]")


def _nim_moves(observation: str) -> list[str]:
    """Nim's legal moves, `[pile quantity]`, from the last "Current Pile" the game showed."""
    block = observation.rsplit("Current Pile", 1)
    piles = re.findall(r"pile (\d+): (\d+)", block[-1]) if len(block) == 2 else []
    return [f"[{i} {k}]" for i, n in piles for k in range(1, int(n) + 1)]


#: moves a game implies without listing them, read from its messages (see `random_opponent`)
RULES: tuple[Callable[[str], list[str]], ...] = (_nim_moves,)


def random_opponent(observation: str) -> str:
    """A uniformly random move among those the game's own messages offer the opponent (it sees
    no other player's messages: it used to replay the policy's own move): a game's rule where
    one applies (`RULES`: Nim's piles), else the bracketed moves on the last line that lists
    any (TicTacToe's "Available Moves", ConnectFour's examples), else "[0]". Seeded by the
    observation itself (crc32), so a replayed game gets the same moves."""
    rng = random.Random(zlib.crc32(observation.encode()))
    for rule in RULES:
        moves = rule(observation)
        if moves:
            return rng.choice(moves)
    for line in reversed(observation.splitlines()):
        moves = MOVE.findall(line)
        if moves:
            return rng.choice(moves)
    return "[0]"


OPPONENTS: dict[str, Opponent] = {"random": random_opponent}


class _GameRandom:
    """A game's own states of Python's and numpy's global generators (TextArena's games draw
    from those), seeded from the game's seed and carried from one step to the next."""

    def __init__(self, seed: int) -> None:
        caller = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.states = random.getstate(), np.random.get_state()
        random.setstate(caller[0])
        np.random.set_state(caller[1])

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """The game's states inside the block (kept for its next step), the caller's after; and
        what the game prints kept out of the run's output (a game is replayed at every turn)."""
        caller = random.getstate(), np.random.get_state()
        random.setstate(self.states[0])
        np.random.set_state(self.states[1])
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            self.states = random.getstate(), np.random.get_state()
            random.setstate(caller[0])
            np.random.set_state(caller[1])


#: TextArena's sender id of the game's own messages
GAME = -1


def _text(observations: Sequence[Any], player: int, game_only: bool = False) -> str:
    """The messages a player received, without the echo of its own moves (`game_only`: the
    game's messages alone, without the other players' moves)."""
    lines = []
    for item in observations:
        sender, message = item[0], item[1]
        if sender != player and (sender == GAME or not game_only):
            lines.append(str(message).strip())
    return "\n".join(line for line in lines if line)


class Game:
    """One TextArena game for the policy as player 0, played from a seed (see the module)."""

    def __init__(
        self, game_id: str, settings: dict[str, Any], opponent: Opponent | str | None
    ) -> None:
        if isinstance(opponent, str):
            if opponent not in OPPONENTS:
                raise TextGenValueError(
                    f"Unknown opponent {opponent!r}; expected one of {sorted(OPPONENTS)} or a "
                    "function of the opponent's observation text to its move"
                )
            opponent = OPPONENTS[opponent]
        elif opponent is not None and not callable(opponent):
            raise TextGenTypeError(
                "Expects opponent to be None (a one-player game), 'random' or a function of "
                f"the opponent's observation text to its move, got {type(opponent).__name__}"
            )
        registry = self._textarena(game_id).envs.registration.ENV_REGISTRY
        if game_id not in registry:
            near = sorted(k for k in registry if k.split("-")[0] == game_id.split("-")[0])
            raise TextGenValueError(
                f"Unknown TextArena game {game_id!r}; expected a registered id such as "
                f"{near[:6] or sorted(registry)[:6]} (textarena.envs.registration.ENV_REGISTRY)"
            )
        self.game_id, self.settings, self.opponent = game_id, dict(settings), opponent

    @staticmethod
    def _textarena(game_id: str) -> Any:
        """The textarena module (imported where used: a Game pickles without it)."""
        return require("textarena", "textarena", f"task {PREFIX}{game_id}")

    def start(self, seed: int) -> tuple[Any, str]:
        """A new game from `seed` and its opening observation for player 0."""
        players = 1 if self.opponent is None else 2
        draws = _GameRandom(int(seed))
        with draws.active():
            try:
                ta = self._textarena(self.game_id)
                env = ta.make(self.game_id, **self.settings)
                while isinstance(env, ta.Wrapper):  # TextArena's LLM-facing wrappers
                    env = env.env
                env.reset(num_players=players, seed=int(seed))
            except TypeError as e:
                raise TextGenValueError(
                    f"TextArena's {self.game_id} does not take the settings {self.settings}: {e}"
                ) from e
            except (AssertionError, ValueError) as e:
                why = f"{e or type(e).__name__}"
                if "player" not in why.lower():  # a setting out of range, say
                    raise TextGenValueError(
                        f"TextArena's {self.game_id} cannot start with the settings "
                        f"{self.settings}: {why}"
                    ) from e
                need = " (a two-player game needs opponent=)" if self.opponent is None else ""
                raise TextGenValueError(
                    f"TextArena's {self.game_id} cannot start with {players} player(s){need}: {why}"
                ) from e
            except Exception as e:  # missing data (nltk's), a network key, newer Python syntax
                raise TextGenValueError(
                    f"TextArena's {self.game_id} cannot start here: {type(e).__name__}: "
                    f"{' '.join(str(e).split())[:300]}"
                ) from e
            self._opponent_moves(env)
            env._textgen_random = draws  # the game's generators travel with it
            return env, self._take(env)

    def move(self, env: Any, action: str) -> tuple[bool, str, float]:
        """Play the policy's `action` (and the opponent's moves after it): (done, the messages
        for the policy, its reward when done)."""
        with env._textgen_random.active():
            done, _ = env.step(action)
            if not done:
                done = self._opponent_moves(env)
            text = self._take(env)
            if not done:
                return False, text, 0.0
            rewards = env.close()
            rewards = rewards[0] if isinstance(rewards, tuple) else rewards
            return True, text, float(rewards[0])

    def _opponent_moves(self, env: Any) -> bool:
        """The opponent's moves until it is player 0's turn; whether the game ended."""
        done = False
        while not done and env.state.current_player_id != 0:
            _, seen = env.get_observation()
            move = self.opponent(_text(seen, env.state.current_player_id, game_only=True))
            if not isinstance(move, str):
                raise TextGenTypeError(
                    f"Expects the opponent to return its move as a str, got "
                    f"{type(move).__name__}: {move!r:.80}"
                )
            done, _ = env.step(move)
        return done

    @staticmethod
    def _take(env: Any) -> str:
        """Player 0's new messages (and forget them, as TextArena's get_observation does; the
        game keeps every one in `env._textgen_seen`, for `seen_by_policy`)."""
        seen = env.state.observations[0]
        env.state.observations[0] = []
        env.__dict__.setdefault("_textgen_seen", []).extend(seen)
        return _text(seen, 0)

    @staticmethod
    def seen_by_policy(env: Any, game_only: bool = False) -> str:
        """Every message player 0 has received in `env`'s game (`game_only`: the game's own)."""
        return _text(env.__dict__.get("_textgen_seen", []), 0, game_only=game_only)


class ArenaParty(OtherParty):
    """The game as the other party: replays the episode's turns from the instance's seed (the
    exchange's reference) and answers the last one with the game's messages."""

    def __init__(self, game: Game) -> None:
        self.game = game

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        out = []
        for ex in exchanges:
            if not isinstance(ex.reference, (int, np.integer)) or isinstance(ex.reference, bool):
                raise TextGenValueError(
                    f"{PREFIX}{self.game.game_id} expects the game's seed as its reference, got "
                    f"{ex.reference!r} (a forced prompt needs options['reference'])"
                )
            env, _ = self.game.start(int(ex.reference))
            moves = ex.policy_turns
            for i, turn in enumerate(moves):
                done, text, reward = self.game.move(env, turn)
                if done and i < len(moves) - 1:
                    raise TextGenValueError(
                        f"TextArena's {self.game.game_id} ended at turn {i + 1} of a replay of "
                        f"{len(moves)}: the game is not deterministic given its seed"
                    )
            out.append(Reply(text, done=done, reward=reward))
        return out


def textarena_task(
    game_id: str,
    opponent: Opponent | str | None = None,
    n_train: int = TASK_DEFAULTS["n_train"],
    n_eval: int = TASK_DEFAULTS["n_eval"],
    seed: int = TASK_DEFAULTS["seed"],
    n_validation: int = TASK_DEFAULTS["n_validation"],
    turns: int = TASK_DEFAULTS["turns"],
    turn_tokens: int = TASK_DEFAULTS["turn_tokens"],
    reply_tokens: int = TASK_DEFAULTS["reply_tokens"],
    prompt_tokens: int = TASK_DEFAULTS["prompt_tokens"],
    chat: bool = TASK_DEFAULTS["chat"],
    **settings: Any,
) -> Task:
    """TextArena's `game_id` as an interactive task (see the module); `settings` go to the game."""
    ours = dict(n_train=n_train, n_eval=n_eval, n_validation=n_validation, seed=seed, turns=turns,
                turn_tokens=turn_tokens, reply_tokens=reply_tokens,
                prompt_tokens=prompt_tokens)  # fmt: skip
    for key, value in ours.items():
        if (
            not isinstance(value, (int, np.integer))
            or isinstance(value, bool)
            or value < 1 - (key == "seed")
        ):
            raise TextGenValueError(
                f"Expects {key} to be an integer >= {0 if key == 'seed' else 1}, got {value!r}"
            )
    if not isinstance(chat, bool):
        raise TextGenTypeError(f"Expects chat to be True or False, got {chat!r}")
    game = Game(game_id, settings, opponent)
    train_seeds = [seed * EVAL_OFFSET * 2 + i for i in range(n_train)]
    eval_seeds = [seed * EVAL_OFFSET * 2 + EVAL_OFFSET + i for i in range(n_eval)]
    # validation games: seeds of their own, half-way through the held-out range
    validation_seeds = [
        seed * EVAL_OFFSET * 2 + EVAL_OFFSET * 3 // 2 + i for i in range(n_validation)
    ]
    prompts = [game.start(s)[1] for s in train_seeds]
    eval_prompts = [game.start(s)[1] for s in eval_seeds]
    changed = {k: v for k, v in {**ours, "chat": chat}.items() if v != TASK_DEFAULTS[k]}
    if opponent is not None:  # a function is named, but a name does not parse back to it
        changed["opponent"] = opponent if isinstance(opponent, str) else _Named(opponent)
    return Task(
        name=task_name(game_id, {**settings, **changed}, prefix=PREFIX),
        prompts=tuple(prompts),
        eval_prompts=tuple(eval_prompts),
        validation_prompts=tuple(game.start(s)[1] for s in validation_seeds),
        references=tuple(train_seeds),
        eval_references=tuple(eval_seeds),
        validation_references=tuple(validation_seeds),
        scorer="none",
        template="{prompt}\n",
        description=f"TextArena {game_id}: the game's reward for the player",
        max_prompt_tokens=int(prompt_tokens),
        chat=chat,
        interaction=Interaction(
            ArenaParty(game),
            max_turns=int(turns),
            max_turn_tokens=int(turn_tokens),
            max_reply_tokens=int(reply_tokens),
            reply_template="{reply}\n",
        ),  # fmt: skip
    )


class _Named:
    """Shows a function by its name in a task's name."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __repr__(self) -> str:
        return getattr(self.fn, "__qualname__", type(self.fn).__name__)


def parse_task(spec: str) -> Task:
    """`make_task`'s `textarena:<game>?key=value&...`."""
    game_id, settings = parse_spec(spec.removeprefix(PREFIX), prefix=PREFIX, what="game")
    return textarena_task(game_id, **settings)


__all__ = ["ArenaParty", "Game", "PREFIX", "textarena_task"]
