"""The other party of an interactive episode: whoever answers the policy's turns.

An interactive episode alternates turns. The policy writes a turn token by token; when the turn
ends, the environment asks the other party for its reply, appends the reply's tokens to the
state (they are state, never actions) and the policy writes its next turn, until the party says
the episode is over or a limit is reached.

A party is one method, batched over the vector env's slots (one call per step for every slot
whose policy just ended a turn):

    class OtherParty:
        def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]: ...

`Exchange` is what the party sees (the instance: prompt and reference; the turns so far; a
seed); `Reply` what it returns (its text, whether the episode is over, a reward for the policy's
turn it answers). `CallableParty` wraps a plain function of one exchange; `ToolParty` runs the
calculator on calls the policy writes as `<calc>12*(3+4)</calc>`.

>>> party = CallableParty(lambda ex: Reply("bye", done=True) if len(ex.turns) > 1 else "again?")
>>> party.reply([Exchange("hi", None, ("hello",), seed=0)])
[Reply(text='again?', done=False, reward=0.0)]
"""

from __future__ import annotations

import math
import numbers
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenError, TextGenTypeError
from gym_textgen.interactive.calculator import CalculatorError, calculate


class PartyError(TextGenError, RuntimeError):
    """The other party failed or returned something that is not a reply; the step is not
    applied, so the episode can go on. `transient`: whether asking again may cure it (an
    outage: a connection refused or timed out), as opposed to a reply that is not one or a
    request the party refuses (asking again gives the same error)."""

    def __init__(self, *args: object, transient: bool | None = None) -> None:
        super().__init__(*args)
        self._transient = transient

    @property
    def transient(self) -> bool:
        if self._transient is not None:
            return self._transient
        cause = self.__cause__  # a party's own exception: a network fault is an outage
        return isinstance(cause, OSError) or (isinstance(cause, PartyError) and cause.transient)

    @transient.setter
    def transient(self, value: bool) -> None:
        self._transient = bool(value)


@dataclass(frozen=True)
class Exchange:
    """What the other party sees when the policy ends a turn.

    Attributes:
        prompt: the episode's prompt text (the instance).
        reference: the prompt's reference (the instance's hidden data: a secret, an answer), or
            None.
        turns: the turns so far, oldest first, starting and ending with the policy's: policy,
            party, policy, ..., policy (each the text as decoded, without chat formatting).
        seed: a seed for this episode (the same every turn of it), for a party that draws.
        ids: the token ids of the policy's turns (EOS left out), for a party that reads tokens
            rather than text (a synthetic task, a test).
    """

    prompt: str
    reference: Any
    turns: tuple[str, ...]
    seed: int
    ids: tuple[tuple[int, ...], ...] = ()

    @property
    def policy_turns(self) -> tuple[str, ...]:
        """The policy's turns (the last is the one being answered)."""
        return self.turns[::2]

    @property
    def last(self) -> str:
        """The policy's turn being answered."""
        return self.turns[-1]


@dataclass(frozen=True)
class Reply:
    """The other party's answer to a policy's turn.

    Attributes:
        text: what is appended to the state (formatted by the chat template when the env's
            `chat` is on); ignored when `done`, since nothing follows the episode's end.
        done: the episode is over (the goal is reached, the game is lost).
        reward: the policy's reward for the turn answered, paid at the turn's last token.
    """

    text: str = ""
    done: bool = False
    reward: float = 0.0


class OtherParty:
    """The interface: `reply` answers a batch of exchanges, one `Reply` each, in order.

    A party must be deterministic given the exchanges (draw from `Exchange.seed`), so that a
    seeded env reproduces its episodes. Subclass it, or wrap a function in `CallableParty`.
    """

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        raise NotImplementedError


def as_reply(value: Any, where: str) -> Reply:
    """A `Reply` from what a party returned: a Reply, a str (the episode goes on), or a
    `(text, done[, reward])` tuple; anything else (or a non-finite reward) is a PartyError."""
    if isinstance(value, str):
        value = Reply(value)
    elif isinstance(value, tuple) and 2 <= len(value) <= 3 and isinstance(value[0], str):
        value = Reply(*value)
    if not isinstance(value, Reply) or not isinstance(value.text, str):
        raise PartyError(
            f"{where} expects a Reply, a str or a (text, done[, reward]) tuple, got "
            f"{type(value).__name__}: {value!r:.80}"
        )
    if not isinstance(value.done, (bool, np.bool_)):
        raise PartyError(f"{where} expects done to be a bool, got {value.done!r:.40}")
    reward = value.reward
    if isinstance(reward, (bool, np.bool_)) or not isinstance(reward, numbers.Real):
        raise PartyError(f"{where} expects reward to be a number, got {reward!r:.40}")
    if not math.isfinite(float(reward)):
        raise PartyError(f"{where} returned a non-finite reward {reward!r}")
    return Reply(value.text, bool(value.done), float(reward))


def replies_of(
    party: OtherParty, exchanges: Sequence[Exchange], retries: int = 0, backoff: float = 1.0
) -> list[Reply]:
    """`party.reply(exchanges)`, checked: one valid Reply per exchange, or a PartyError that
    names the party (its own exceptions too, chained). `retries`: tries more after a failure
    that asking again may cure (`PartyError.transient`: an outage; any other fails at once),
    `backoff` seconds before the first and doubled for each further one (a party answers from
    the history alone, so asking again changes nothing but the outcome of an outage)."""
    for attempt in range(retries + 1):
        try:
            return _replies_of(party, exchanges)
        except PartyError as e:
            if attempt == retries or not e.transient:
                if attempt:
                    raise PartyError(f"{e} (after {attempt + 1} tries)") from e
                raise
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


def _replies_of(party: OtherParty, exchanges: Sequence[Exchange]) -> list[Reply]:
    name = type(party).__name__
    try:
        out = party.reply(list(exchanges))
    except PartyError:
        raise
    except Exception as e:
        raise PartyError(f"The other party {name} raised {type(e).__name__}: {e}") from e
    if not isinstance(out, (list, tuple)) or len(out) != len(exchanges):
        got = len(out) if isinstance(out, (list, tuple)) else type(out).__name__
        raise PartyError(
            f"{name}.reply expects one reply per exchange ({len(exchanges)}), got {got}"
        )
    return [as_reply(r, f"{name}.reply") for r in out]


class CallableParty(OtherParty):
    """A party from a function of one `Exchange` that returns a `Reply`, a str or a
    `(text, done[, reward])` tuple; called once per exchange."""

    def __init__(self, fn: Callable[[Exchange], Any]) -> None:
        if not callable(fn):
            raise TextGenTypeError(f"Expects a callable party, got {type(fn).__name__}: {fn!r:.80}")
        self.fn = fn

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        return [
            as_reply(self.fn(ex), getattr(self.fn, "__name__", "the party")) for ex in exchanges
        ]


CALL = re.compile(r"<calc>(.*?)</calc>", re.DOTALL)


class ToolParty(OtherParty):
    """A calculator the policy calls by writing `<calc>EXPRESSION</calc>` in its turn.

    A turn with a call gets `<result>VALUE</result>` (or `<result>error: WHY</result>` for a
    malformed or refused expression: never an exception); only the turn's last call is run. A
    turn without a call is the policy's answer: the episode ends there, and the task's scorer
    judges that turn. `max_calls` caps the calls per episode (the next turn must answer).
    """

    def __init__(self, max_calls: int = 3) -> None:
        self.max_calls = max_calls

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        out = []
        for ex in exchanges:
            calls = CALL.findall(ex.last)
            if not calls:
                out.append(Reply(done=True))
                continue
            if len(ex.policy_turns) > self.max_calls:
                out.append(Reply("<result>error: no calls left, give the answer</result>"))
                continue
            try:
                value = calculate(calls[-1])
            except CalculatorError as e:
                value = f"error: {e}"
            out.append(Reply(f"<result>{value}</result>"))
        return out


__all__ = [
    "CallableParty",
    "Exchange",
    "OtherParty",
    "PartyError",
    "Reply",
    "ToolParty",
    "replies_of",
]
