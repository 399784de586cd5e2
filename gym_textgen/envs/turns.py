"""The turns of an interactive episode, and the checked step both kinds of episode share.

`TextGenEnv` holds a `Conversation` when its task has an `Interaction`: which tokens are the
policy's, the turns so far, and the rules that end a turn and the episode. The other party's
reply comes between `prepare_step` and `commit_step` (`TextGenEnv.answer`), so that the vector
env asks the party once for all its slots and a failing party changes nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from gym_textgen.interactive.party import Exchange, Reply


@dataclass(frozen=True)
class PreparedStep:
    """A checked step that changes nothing until `TextGenEnv.commit_step` applies it.

    Attributes:
        action: the token id.
        terminated: whether this step ends the episode.
        score_ids: the completion's ids to score now (an interactive episode's: its last
            turn's), or None when the step needs no score.
        prompt: the episode's prompt text (what the scorer receives).
        reference: the prompt's reference, or None.
        episode, position: which episode of the env, and which step of it, this step is for.
        exchange: set when the step ends a policy turn: what the other party must answer
            (`TextGenEnv.answer`) before the step can be committed.
        reply, reply_ids, turn_reward: the other party's answer: its text and ids (appended
            after the action) and the reward for the turn.
    """

    action: int
    terminated: bool
    score_ids: list[int] | None
    prompt: str
    reference: Any
    episode: int = 0
    position: int = 0
    exchange: Exchange | None = None
    reply: str = ""
    reply_ids: tuple[int, ...] = ()
    turn_reward: float = 0.0


class Conversation:
    """An interactive episode's turns (one per `TextGenEnv`, reused across its episodes).

    Args:
        core: the env's `TextGenCore` (its `interaction` is set).
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.interaction = core.interaction
        self.policy_mask = np.zeros(core.max_length, dtype=np.int8)
        self.turns: list[str] = []  # finished turns: policy, party, policy, ...
        self.turn: list[int] = []  # the ids of the policy's current turn
        self.seed = 0

    def reset(self, seed: int) -> None:
        self.policy_mask.fill(0)
        self.turns, self.turn, self.seed = [], [], seed

    def turn_with(self, action: int, eos: bool) -> list[int]:
        """The current turn's ids if the policy writes `action` (EOS is not part of it)."""
        return self.turn if eos else [*self.turn, action]

    def ends_turn(self, turn: list[int]) -> bool:
        """Whether `turn` is over by itself: at its token limit or ending with a `turn_ends`."""
        if len(turn) >= self.interaction.max_turn_tokens:
            return True
        text = self.core.decode(turn[-8:])  # enough for a turn_ends string of a few tokens
        return text.endswith(self.interaction.turn_ends)

    def exchange(self, prompt: str, reference: Any, turn: list[int]) -> Exchange:
        """What the other party sees when the policy ends its turn with `turn`."""
        return Exchange(prompt, reference, (*self.turns, self.core.decode(turn)), self.seed)

    def answer(self, p: PreparedStep, reply: Reply, eos_id: int | None) -> PreparedStep:
        """`p` (a step that ends a turn) with the other party's reply (see `TextGenEnv.answer`)."""
        last_turn = len(p.exchange.turns) // 2 + 1 >= self.interaction.max_turns
        terminated = p.terminated or reply.done or last_turn
        eos = p.action == eos_id
        ids = () if terminated else tuple(self.core.reply_ids(reply.text, eos))
        return dataclasses.replace(
            p, terminated=terminated, score_ids=self.turn_with(p.action, eos) if terminated else None,
            exchange=None, reply="" if terminated else reply.text, reply_ids=ids,
            turn_reward=float(reply.reward),
        )  # fmt: skip

    def commit(self, p: PreparedStep, pos: int, ids: np.ndarray, mask: np.ndarray) -> bool:
        """Record the policy's token at `pos` and write the reply after it into `ids` and `mask`;
        True when the step ended a turn that the episode goes on after."""
        self.policy_mask[pos] = 1
        self.turn.append(p.action)
        if not (p.reply_ids or p.terminated):
            return False
        self.turns.append(self.core.decode(self.turn))
        self.turn = []
        if p.reply_ids:
            self.turns.append(p.reply)
            end = pos + 1 + len(p.reply_ids)
            ids[pos + 1 : end] = p.reply_ids
            mask[pos + 1 : end] = 1
        return bool(p.reply_ids)

    def info(self) -> dict[str, Any]:
        """`turns`: the policy's turns finished; `reply`: the party's last reply ("" if none)."""
        reply = self.turns[-1] if self.turns and len(self.turns) % 2 == 0 else ""
        return {"turns": (len(self.turns) + 1) // 2, "reply": reply}

    def text(self, prompt: str, done: bool) -> str:
        """The prompt, each policy turn between « and », the replies between them."""
        turns = [*self.turns, *([] if done else [self.core.decode(self.turn)])]
        return prompt + "".join(f"«{t}»" if i % 2 == 0 else f" {t} " for i, t in enumerate(turns))
