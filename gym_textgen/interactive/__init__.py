"""Interactive episodes: the policy writes a turn, the other party answers, the policy goes on.

A task becomes interactive with an `Interaction` (`Task(..., interaction=Interaction(party))`):
who answers (`gym_textgen.interactive.party`), how turns end, and the limits. The environment
is the same `TextGenEnv`: the party's replies are appended to the state between the policy's
turns, so they are observations, never actions, and an algorithm's loss touches only the
policy's own tokens (the observation's `policy_mask` marks them).

>>> from gym_textgen.interactive import Interaction, CallableParty, Reply
>>> echo = Interaction(CallableParty(lambda ex: Reply(ex.last.upper(), done=len(ex.turns) >= 3)))
>>> echo.max_turns, echo.turn_ends
(4, ('\\n',))
"""

from __future__ import annotations

from dataclasses import dataclass

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.calculator import CalculatorError, calculate
from gym_textgen.interactive.party import (
    CallableParty,
    Exchange,
    OtherParty,
    PartyError,
    Reply,
    ToolParty,
)
from gym_textgen.interactive.users import HTTPUser, LMUser


@dataclass(frozen=True)
class Interaction:
    """How an interactive task's episodes go.

    Attributes:
        party: the `OtherParty` that answers each turn of the policy.
        max_turns: the policy's turns per episode; its last turn ends the episode (a limit of
            the task, so the episode terminates and is scored).
        max_turn_tokens: a policy turn ends after this many tokens.
        max_reply_tokens: a reply keeps its first this many tokens (formatting included).
        turn_ends: a policy turn also ends at the token that completes one of these (EOS ends
            it too, with `stop_on_eos`); `"\\n"` suits a base model writing one line a turn.
        reply_template: how a reply is written into the state without a chat template;
            `{reply}` stands for the reply's text.
    """

    party: OtherParty
    max_turns: int = 4
    max_turn_tokens: int = 16
    max_reply_tokens: int = 24
    turn_ends: tuple[str, ...] = ("\n",)
    reply_template: str = "{reply}\n"

    def __post_init__(self) -> None:
        if not isinstance(self.party, OtherParty):
            if callable(self.party):
                object.__setattr__(self, "party", CallableParty(self.party))
            else:
                raise TextGenTypeError(
                    "Expects party to be an OtherParty or a function of an Exchange, got "
                    f"{type(self.party).__name__}: {self.party!r:.80}"
                )
        for key in ("max_turns", "max_turn_tokens", "max_reply_tokens"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TextGenValueError(f"Expects {key} to be an int >= 1, got {value!r}")
        if isinstance(self.turn_ends, str):  # one string is one turn end, not its characters
            object.__setattr__(self, "turn_ends", (self.turn_ends,))
        object.__setattr__(self, "turn_ends", tuple(self.turn_ends))
        if not all(isinstance(s, str) and s for s in self.turn_ends):
            raise TextGenValueError(
                f"Expects turn_ends to be non-empty strings, got {self.turn_ends!r}"
            )
        if "{reply}" not in self.reply_template:
            raise TextGenValueError(
                f"Expects a reply_template holding '{{reply}}', got {self.reply_template!r}"
            )

    @property
    def max_new_tokens(self) -> int:
        """The policy's tokens in the longest episode: every turn at its limit."""
        return self.max_turns * self.max_turn_tokens


__all__ = [
    "CalculatorError",
    "CallableParty",
    "Exchange",
    "HTTPUser",
    "Interaction",
    "LMUser",
    "OtherParty",
    "PartyError",
    "Reply",
    "ToolParty",
    "calculate",
]
