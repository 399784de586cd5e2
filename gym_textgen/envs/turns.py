"""The turns of an interactive episode, and the checked step both kinds of episode share.

`TextGenEnv` holds a `Conversation` when its task has an `Interaction`: which tokens are the
policy's, the turns so far, and the rules that end a turn and the episode. The other party's
reply comes between `prepare_step` and `commit_step` (`TextGenEnv.answer`), so that the vector
env asks the party once for all its slots and a failing party changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from gym_textgen.envs.core import as_text
from gym_textgen.errors import TextGenValueError
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
        ends_turn, reply, reply_ids, turn_reward: set by the other party's answer: the step
            ends a policy turn, the reply's text and ids (appended after the action; an empty
            reply may have none) and the reward for the turn.
    """

    action: int
    terminated: bool
    score_ids: list[int] | None
    prompt: str
    reference: Any
    episode: int = 0
    position: int = 0
    exchange: Exchange | None = None
    ends_turn: bool = False
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
        self.reset(seed=0)
        # no `max_reply_tokens` tokens spell more characters than this: a longer reply is cut
        # to it before it is tokenized, so a step's cost is bounded whatever the party sends
        self.reply_chars = self.interaction.max_reply_tokens * core.max_token_chars
        for after_eos in (False, True):  # a frame with no room for a reply: say so now
            self.reply("", after_eos)
        # the tail of a turn that can hold a turn end however it is spelled: every token spells
        # at least one byte of text but the special ones (EOS, an action with stop_on_eos=False),
        # which spell none and are left out: an end of n bytes lies within the last n of the
        # others, and one more holds a character cut
        ends = self.interaction.turn_ends
        self.tail = 2 + max((len(e.encode("utf-8")) for e in ends), default=0)
        self._silent = frozenset(core.special_ids)

    def reset(self, seed: int) -> None:
        self.policy_mask.fill(0)  # which positions hold the policy's own tokens
        self.turns: list[str] = []  # finished turns: policy, party, policy, ...
        self.turn: list[int] = []  # the ids of the policy's current turn
        self.turn_ids: list[tuple[int, ...]] = []  # the ids of the policy's finished turns
        self.inserted: list[str] = []  # each reply as the state holds it: frame and all
        self.seed = seed  # the episode's (a party that draws uses it)

    _STATE = ("policy_mask", "turns", "turn", "turn_ids", "inserted", "seed")

    def get_state(self) -> dict[str, Any]:
        """A copy of the episode's turns (the other party answers from them alone: a party
        keeps no state of its own between calls)."""
        return {k: copy.deepcopy(getattr(self, k)) for k in self._STATE}

    def set_state(self, state: dict[str, Any]) -> None:
        for k in self._STATE:
            setattr(self, k, copy.deepcopy(state[k]))

    def turn_with(self, action: int, eos: bool) -> list[int]:
        """The current turn's ids if the policy writes `action` (EOS is not part of it)."""
        return self.turn if eos else [*self.turn, action]

    def ends_turn(self, turn: list[int]) -> bool:
        """Whether `turn` is over by itself: at its token limit, or its last token completes one
        of the `turn_ends`."""
        if len(turn) >= self.interaction.max_turn_tokens:
            return True
        if not self.interaction.turn_ends:  # (token_code): no text to decode on each step
            return False
        # a turn end that the last token completes (also inside a token such as "\n ", and
        # spelled in any tokens: "</calc>" a character at a time)
        window = turn[-self.tail :]
        if self._silent.intersection(window):
            window = [i for i in turn if i not in self._silent][-self.tail :]
        new, old = self.core.decode(window), self.core.decode(window[:-1])
        return any(new.count(e) > old.count(e) for e in self.interaction.turn_ends)

    def exchange(self, prompt: str, reference: Any, turn: list[int]) -> Exchange:
        """What the other party sees when the policy ends its turn with `turn`."""
        texts = (*self.turns, self.core.decode(turn))
        return Exchange(prompt, reference, texts, self.seed, (*self.turn_ids, tuple(turn)))

    def answer(self, p: PreparedStep, reply: Reply, eos_id: int | None) -> PreparedStep:
        """`p` (a step that ends a turn) with the other party's reply (see `TextGenEnv.answer`)."""
        last_turn = len(p.exchange.turns) // 2 + 1 >= self.interaction.max_turns
        terminated = p.terminated or reply.done or last_turn
        eos = p.action == eos_id
        text, ids = ("", ()) if terminated else self.reply(reply.text, eos)
        return dataclasses.replace(
            p, terminated=terminated, score_ids=self.turn_with(p.action, eos) if terminated else None,
            exchange=None, ends_turn=True, reply=text, reply_ids=ids,
            turn_reward=float(reply.reward),
        )  # fmt: skip

    def reply(self, reply: str, after_eos: bool) -> tuple[str, tuple[int, ...]]:
        """(the reply's text as kept, the ids it adds to the state) after a policy turn
        (`after_eos`: the turn ended with EOS): the reply in its frame, at most
        `max_reply_tokens` ids; a longer reply keeps its first tokens and the frame stays whole.

        Without a chat template the frame is the interaction's `reply_template`; with one
        (`chat`), the end of the policy's turn (when the policy did not write EOS), the
        template's user message around the reply, and the assistant's header."""
        limit = self.interaction.max_reply_tokens
        core = self.core
        before, after = self._reply_frame(after_eos)
        encode = functools.partial(core.tokenizer.encode, add_special_tokens=False)
        text = as_text(reply[: self.reply_chars] if isinstance(reply, (str, bytes)) else reply)
        frame = len(encode(before + after))
        if frame >= limit:
            raise TextGenValueError(
                f"max_reply_tokens={limit} leaves no room for a reply in its frame of {frame} "
                f"tokens ({before!r} ... {after!r}); expects max_reply_tokens > {frame}"
            )
        ids = self._framed(before, text, after)
        if len(ids) > limit:  # keep the reply's first tokens, and the frame
            content = encode(text, split_special_tokens=True)
            for keep in range(min(len(content), limit - frame), -1, -1):
                # (a cut inside a character decodes to U+FFFD, which may re-encode longer)
                text = core.tokenizer.decode(content[:keep]).rstrip("\ufffd")
                ids = self._framed(before, text, after)
                if len(ids) <= limit:
                    break
        return text, tuple(int(i) for i in ids)

    def _framed(self, before: str, text: str, after: str) -> list[int]:
        """The ids of a reply's `text` in its frame. The text is only ever text: a special
        token's string in it ("<|im_end|>", "<|endoftext|>", an added token marked special such
        as "<file_sep>": `TextGenCore.special_tokens`) is spelled in ordinary tokens, so a party
        that relays what it was given cannot end a turn or forge the chat's frame."""
        tokenizer = self.core.tokenizer
        encode = functools.partial(tokenizer.encode, add_special_tokens=False)
        if not any(s in text for s in self.core.special_tokens):
            return encode(before + text + after)  # one encoding: no seam at the frame
        return encode(before) + encode(text, split_special_tokens=True) + encode(after)

    def _reply_frame(self, after_eos: bool) -> tuple[str, str]:
        """The text before and after a reply's own (see `reply_ids`)."""
        core = self.core
        chat = core.config.chat if core.config.chat is not None else core.task.chat
        if not (chat and getattr(core.tokenizer, "chat_template", None)):
            head, _, tail = self.interaction.reply_template.partition("{reply}")
            return head, tail
        mark, slot = "@@ASSISTANT@@", "@@REPLY@@"
        talk = [{"role": "user", "content": "x"}, {"role": "assistant", "content": mark}]
        template = functools.partial(core.tokenizer.apply_chat_template, tokenize=False)
        done = template(talk)
        more = template([*talk, {"role": "user", "content": slot}], add_generation_prompt=True)
        if not more.startswith(done):
            raise TextGenValueError(
                "This tokenizer's chat template writes a conversation's earlier turns "
                "differently once another message follows, so a reply cannot be appended to "
                "the state as it stands; use chat=False for interactive tasks with it"
            )
        end = done[done.rindex(mark) + len(mark) :]  # how an assistant's turn ends
        eos = core.tokenizer.eos_token or ""
        if after_eos and eos and end.startswith(eos):
            end = end[len(eos) :]
        head, _, tail = (end + more[len(done) :]).partition(slot)
        return head, tail

    def commit(self, p: PreparedStep, pos: int, ids: np.ndarray, mask: np.ndarray) -> bool:
        """Record the policy's token at `pos` and write the reply after it into `ids` and `mask`;
        True when the step ended a turn that the episode goes on after."""
        self.policy_mask[pos] = 1
        self.turn.append(p.action)
        if not (p.ends_turn or p.terminated):
            return False
        self.turns.append(self.core.decode(self.turn))
        eos = p.action == self.core.eos_id and self.core.stop_on_eos
        self.turn_ids.append(tuple(self.turn[:-1] if eos else self.turn))
        self.turn = []
        if p.terminated:
            return False
        self.turns.append(p.reply)
        # (special tokens shown: a chat frame's <|im_start|> is in the state too)
        self.inserted.append(self.core.tokenizer.decode(list(p.reply_ids)))
        end = pos + 1 + len(p.reply_ids)
        ids[pos + 1 : end] = p.reply_ids
        mask[pos + 1 : end] = 1
        return True

    def info(self, done: bool) -> dict[str, Any]:
        """`turns`: the policy's turns finished; `reply`: the party's last reply ("" if none);
        `transcript`: at the episode's end, its turns after the prompt (policy turns between «
        and »), else ""."""
        reply = self.turns[-1] if self.turns and len(self.turns) % 2 == 0 else ""
        transcript = self.text("", done=True) if done else ""
        return {"turns": (len(self.turns) + 1) // 2, "reply": reply, "transcript": transcript}

    def text(self, prompt: str, done: bool) -> str:
        """The prompt, each policy turn between « and », and between them each reply as the
        state holds it: in its frame (`reply_template`'s text, or the chat template's
        tokens), so the text shows what the policy reads."""
        turns = [*self.turns, *([] if done else [self.core.decode(self.turn)])]
        return prompt + "".join(
            f"«{t}»" if i % 2 == 0 else self.inserted[i // 2] for i, t in enumerate(turns)
        )
