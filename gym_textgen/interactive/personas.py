"""What the simulated users share (`gym_textgen.interactive.users`): the persona, the
conversation from the user's side, and how a reply ends an episode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.party import Exchange, PartyError, Reply

Persona = str | Callable[[Exchange], str]
Check = Callable[[Exchange, str], "Reply | None"]


def persona_of(persona: Persona, ex: Exchange) -> str:
    """The system prompt for `ex`: `persona(ex)`, or the template filled with the exchange's
    `prompt`, `reference` and, for a dict reference, its keys."""
    if callable(persona):
        out = persona(ex)
    else:
        fields = dict(ex.reference) if isinstance(ex.reference, dict) else {}
        try:
            out = persona.format(**{"prompt": ex.prompt, "reference": ex.reference, **fields})
        except (KeyError, IndexError, AttributeError, ValueError) as e:
            raise TextGenValueError(
                f"The persona template {persona!r:.80} cannot be filled from the exchange "
                f"({type(e).__name__}: {e}); it may name prompt, reference"
                f"{', ' + ', '.join(map(str, fields)) if fields else ''}"
            ) from None
    if not isinstance(out, str):
        raise TextGenTypeError(f"Expects the persona as a str, got {type(out).__name__}")
    return out


def messages_of(system: str, ex: Exchange) -> list[dict[str, str]]:
    """The conversation from the simulated user's side: its own lines (its replies) as the
    assistant's, the policy's turns as the user's, and its opening line (the episode's prompt)
    in the system message, so that the turns alternate from a user turn, as strict chat
    templates require."""
    opening = f"{system}\n\nYou opened the conversation by saying: {ex.prompt.strip()}"
    out = [{"role": "system", "content": opening}]
    for i, turn in enumerate(ex.turns):
        out.append({"role": "user" if i % 2 == 0 else "assistant", "content": turn.strip()})
    return out


def _check_sampling(temperature: Any, max_reply_tokens: Any) -> None:
    ok = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    ok = ok and temperature >= 0 and isinstance(max_reply_tokens, (int, np.integer))
    if not ok or isinstance(max_reply_tokens, bool) or max_reply_tokens < 1:
        raise TextGenValueError(
            "Expects temperature as a number >= 0 and max_reply_tokens as an int >= 1, got "
            f"{temperature!r}, {max_reply_tokens!r}"
        )


class _Ending:
    """`stop` phrases and the task's `check`, shared by both users."""

    def __init__(self, stop: Sequence[str], check: Check | None) -> None:
        if isinstance(stop, str):
            stop = (stop,)
        if not all(isinstance(s, str) and s for s in stop):
            raise TextGenValueError(f"Expects stop as non-empty strings, got {stop!r}")
        if check is not None and not callable(check):
            raise TextGenTypeError(f"Expects check to be callable, got {type(check).__name__}")
        self.stop, self.check = tuple(stop), check

    def finish(self, ex: Exchange, text: str) -> Reply:
        done = False
        for phrase in self.stop:
            if phrase in text:
                text, done = text.split(phrase, 1)[0], True
        text = text.strip()
        if self.check is not None:
            verdict = self.check(ex, text)
            if verdict is not None:
                if not isinstance(verdict, Reply):
                    raise PartyError(
                        f"Expects the task's check to return None or a Reply, got "
                        f"{type(verdict).__name__}: {verdict!r:.80}"
                    )
                return Reply(verdict.text or text, verdict.done, verdict.reward)
        return Reply(text, done)
