"""Simulated users: the other party played by a language model, local or behind an API.

`LMUser` runs a causal LM from `gym_textgen.models` (SmolLM2-135M-Instruct by default, the
package's small default model, any local folder); `HTTPUser` asks any OpenAI-compatible chat endpoint (the same client as the judge's:
`gym_textgen.chatapi`). Both are given a persona and a goal as a system prompt per task instance
(`persona`: a template of the exchange's `prompt` and `reference`, whose keys it may name when
the reference is a dict, or a function of the exchange), see the conversation from the user's
side (the episode's prompt and the user's replies are its own turns, the policy's turns the other
side's) and answer every slot awaiting a reply in one call.

A reply ends the episode when it contains one of `stop` (e.g. "[DONE]", cut from the text), or
when the task's `check(exchange, reply_text)` says so: it returns None (the stop phrases
decide) or a `Reply`, whose `done` and `reward` are the reply's (so a check may also overrule a
stop phrase) and whose text, if any, replaces the model's.

`LMUser` samples each slot's reply with its own generator, seeded from the exchange's seed and
the turn, so the same episode gets the same replies whatever else is in the batch (up to float
rounding of a padded batch) and a seeded env reproduces its episodes. `temperature=0` is greedy,
and then a reply depends on the conversation alone: a greedy user remembers its last
`cache_size` replies by their input text, so a policy that has settled on a few questions pays
for the user's model only on conversations it has not seen.

`chat=False` shows a small model a plain transcript ("User: ..." / "Assistant: ...", its reply
after "User:") even when its tokenizer has a chat template: an instruct model asked to play the
user through the template tends to answer as the assistant it was tuned to be (SmolLM2-135M:
"I'm sorry for any confusion, but as a film buff..."), while a transcript with a worked example
in the persona is a continuation it writes in the user's voice. Every reply of such a
transcript starts with the same lines for an instance (the persona and the opening), so the user
keeps their keys and values (`prefix_cache` of them, LRU) and prefills only the conversation
after them: the persona is most of a reply's input (SmolLM2 on `film_request`: ~65 of ~85
tokens), and its prefill most of the reply's cost.
"""

from __future__ import annotations

import functools
import inspect
import re
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.http_user import HTTPUser
from gym_textgen.interactive.party import Exchange, OtherParty, Reply
from gym_textgen.interactive.personas import (
    Check,
    Persona,
    _check_sampling,
    _Ending,
    messages_of,
    persona_of,
)

#: marks a turn's place in a chat template's text (private-use characters: never in a turn)
_MARK = "\ue000{}\ue001"


class LMUser(OtherParty):
    """A simulated user played by a local causal LM (see the module).

    Args:
        model: a name or folder for `gym_textgen.models.load_model`.
        persona: the system prompt per instance (a template or a function of the exchange).
        temperature: sampling temperature (0: greedy).
        max_reply_tokens: the most tokens the model writes per reply (the env's
            `max_reply_tokens` then bounds what is kept of it, in its frame).
        stop: phrases that end the episode when a reply contains one.
        check: the task's check of a reply (see the module).
        device: where the model runs.
        chat: show the model its chat template (None: when its tokenizer has one) or, False,
            a plain transcript ending in "User:" (see the module).
        cache_size: how many replies a greedy user remembers by their input (0: none; unused
            when sampling, whose replies depend on the episode's seed).
        prefix_cache: how many instances' persona-and-opening keys and values a plain
            transcript's user keeps (0: it prefills every reply whole).
    """

    def __init__(
        self,
        model: str = "smollm2-135m",
        persona: Persona = "You are a user talking with an assistant.",
        temperature: float = 0.7,
        max_reply_tokens: int = 32,
        stop: Sequence[str] = ("[DONE]",),
        check: Check | None = None,
        device: str = "cpu",
        chat: bool | None = None,
        cache_size: int = 4096,
        prefix_cache: int = 64,
    ) -> None:
        _check_sampling(temperature, max_reply_tokens)
        if chat not in (None, True, False):
            raise TextGenTypeError(f"Expects chat as None, True or False, got {chat!r}")
        for name, size in (("cache_size", cache_size), ("prefix_cache", prefix_cache)):
            bad = not isinstance(size, (int, np.integer)) or isinstance(size, bool)
            if bad or size < 0:
                raise TextGenValueError(f"Expects {name} as an int >= 0, got {size!r}")
        self.model, self.persona, self.device, self.chat = model, persona, device, chat
        self.temperature, self.max_reply_tokens = float(temperature), int(max_reply_tokens)
        self.cache_size = int(cache_size) if self.temperature == 0 else 0
        self.ending = _Ending(stop, check)
        self._lm: Any = None
        self._tok: Any = None
        self._special: tuple[str, ...] = ()  # the tokenizer's special tokens' strings
        self._cache: OrderedDict[tuple[int, ...], str] = OrderedDict()
        self.prefix_cache = int(prefix_cache)
        self._prefixes: OrderedDict[str, tuple[list[int], list[tuple[Any, Any]]]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        empty = {"_cache": OrderedDict(), "_prefixes": OrderedDict()}
        return {**self.__dict__, "_lm": None, "_tok": None, "_special": (), **empty}

    def _load(self) -> None:
        from gym_textgen.models import load_model, load_tokenizer
        from gym_textgen.models.special import special_tokens_of

        lm = load_model(self.model)
        positions = getattr(lm.config, "max_position_embeddings", None)
        if isinstance(positions, int) and self.max_reply_tokens >= positions:
            raise TextGenValueError(
                f"LMUser's max_reply_tokens must leave room for its input in the model's "
                f"{positions} positions ({self.model!r}); got max_reply_tokens="
                f"{self.max_reply_tokens}"
            )
        self._lm = lm.to(self.device).eval()
        self._tok = load_tokenizer(self.model)
        self._special = special_tokens_of(self._tok)[1]

    def templated(self) -> bool:
        """Whether the model reads its chat template (else a plain transcript: `chat=False`,
        or a tokenizer without a template)."""
        return self.chat is not False and bool(getattr(self._tok, "chat_template", None))

    def text_of(self, ex: Exchange) -> str:
        """The model's input for `ex`: its chat template, or a plain transcript (`templated`).
        Where a turn holds a special token's text, the ids it reads are `ids_of`'s."""
        return "".join(piece for piece, _ in self._pieces(ex))

    def _pieces(self, ex: Exchange) -> list[tuple[str, bool]]:
        """`text_of(ex)` in pieces: (text, whether it is a turn of the conversation)."""
        persona = persona_of(self.persona, ex)
        if not self.templated():
            pieces = [(self.prefix_of(ex, persona), False)]
            for i, turn in enumerate(ex.turns):  # a turn is one line: its own newlines
                # cannot start a line of the other speaker ("\nUser: I like horror. [DONE]")
                pieces += [(f"\n{'Assistant' if i % 2 == 0 else 'User'}: ", False),
                           (re.sub(r"\s*\n\s*", " ", turn.strip()), True)]  # fmt: skip
            return [*pieces, ("\nUser:", False)]
        talk = messages_of(persona, ex)  # each turn's content by a marker, then the template
        marked = [talk[0], *({**m, "content": _MARK.format(k)} for k, m in enumerate(talk[1:]))]
        text = self._tok.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
        parts = re.split(_MARK.format(r"(\d+)"), text)
        pieces = [(parts[0], False)]
        for k, after in zip(parts[1::2], parts[2::2], strict=True):
            pieces += [(talk[1 + int(k)]["content"], True), (after, False)]
        return pieces

    def ids_of(self, ex: Exchange) -> list[int]:
        """The ids the model reads for `ex`: `text_of`'s, with each turn's text only ever text:
        a special token's string in a turn (a policy that writes "<|im_end|><|im_start|>user")
        is spelled in ordinary tokens, so a turn cannot forge the conversation's frame."""
        pieces = self._pieces(ex)
        encode = functools.partial(self._tok.encode, add_special_tokens=False)
        if not any(turn and any(s in piece for s in self._special) for piece, turn in pieces):
            return encode("".join(piece for piece, _ in pieces))  # one encoding: no seams
        return [i for piece, turn in pieces if piece
                for i in encode(piece, split_special_tokens=turn)]  # fmt: skip

    def prefix_of(self, ex: Exchange, persona: str | None = None) -> str:
        """The start of a plain transcript that every reply of `ex`'s instance shares: the
        persona and the opening line."""
        persona = persona_of(self.persona, ex) if persona is None else persona
        return f"{persona}\nUser: {ex.prompt.strip()}"

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        if not exchanges:
            return []
        if self._lm is None:
            self._load()
        texts = [self.text_of(ex) for ex in exchanges]
        ids = [self.ids_of(ex) for ex in exchanges]
        seeds = [zlib.crc32(f"{ex.seed}:{len(ex.turns)}".encode()) for ex in exchanges]
        shared = self.prefix_cache > 0 and not self.templated()
        prefixes = [self.prefix_of(ex) for ex in exchanges] if shared else None
        if not self.cache_size:
            outs = self.generate(texts, seeds, prefixes=prefixes, ids=ids)
        else:  # greedy: a reply is a function of its input ids (not its text: a policy's
            # turn spelling the frame is the same text as a real frame, not the same ids)
            keys = [tuple(row) for row in ids]
            first: dict[tuple[int, ...], int] = {}  # each unseen input, by its first row
            for i, key in enumerate(keys):
                if key not in self._cache:
                    first.setdefault(key, i)
            if first:
                rows = list(first.values())
                starts = [prefixes[i] for i in rows] if prefixes else None
                made = self.generate([texts[i] for i in rows], [0] * len(rows), prefixes=starts,
                                     ids=[ids[i] for i in rows])  # fmt: skip
                for key, out in zip(first, made, strict=True):
                    self._cache[key] = out
            for key in keys:
                self._cache.move_to_end(key)
            outs = [self._cache[k] for k in keys]
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [self.ending.finish(ex, text) for ex, text in zip(exchanges, outs, strict=True)]

    def end_ids(self) -> set[int]:
        """The ids that end a reply: EOS, and `<|im_end|>` where the tokenizer has it (one
        without maps it to unk, which may be EOS itself: GPT-2's tokenizer)."""
        tok = self._tok
        ends = {tok.eos_token_id} - {None}
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        if im_end is not None and im_end != tok.unk_token_id:
            ends.add(im_end)
        return ends

    def _forward_args(self, cache: Any) -> dict[str, Any]:
        """`cache` and the next token's logits only (as generate() asks), under the names this
        transformers takes (>= 5.2x: `cache`; earlier releases: `past_key_values`)."""
        accepted = inspect.signature(self._lm.forward).parameters
        kv: dict[str, Any] = {"cache" if "cache" in accepted else "past_key_values": cache}
        if "logits_to_keep" in accepted:
            kv["logits_to_keep"] = 1
        return kv

    def _prefix_kv(self, prefix: str, ids: list[int]) -> tuple[list[int], list[tuple[Any, Any]]]:
        """`ids` (those of `prefix`) and each layer's (keys, values) for them (LRU,
        `prefix_cache`)."""
        import torch as th
        from transformers import DynamicCache

        if prefix in self._prefixes:
            self._prefixes.move_to_end(prefix)
            return self._prefixes[prefix]
        cache = DynamicCache()  # filled in place
        with th.no_grad():
            self._lm(input_ids=th.tensor([ids], device=self.device), use_cache=True,
                     **self._forward_args(cache))  # fmt: skip
        entry = (ids, [(layer.keys, layer.values) for layer in cache.layers])
        self._prefixes[prefix] = entry
        while len(self._prefixes) > self.prefix_cache:
            self._prefixes.popitem(last=False)
        return entry

    def _start(
        self, texts: list[str], prefixes: list[str] | None, ids: list[list[int]] | None = None
    ) -> tuple[Any, ...]:
        """The first forward's (ids, mask, positions, cache): each text whole, left-padded; or,
        with `prefixes` (each a start of its text), each prefix's cached keys and values
        (left-padded to the longest) and only the rest of the text to prefill (left-padded
        after them). Tokens are the text's own (`ids`: each text's, as `ids_of` makes them):
        where the prefix and the rest tokenize apart otherwise than the whole text, the texts
        are prefilled whole. An input too long for the model's context with a reply after it
        keeps its last tokens (and is prefilled whole)."""
        import torch as th
        from transformers import DynamicCache

        tok, dev = self._tok, self.device
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        rows = ids if ids is not None else [tok.encode(t, add_special_tokens=False) for t in texts]
        # the model's context holds the input and the reply: a longer input keeps its end
        positions = getattr(self._lm.config, "max_position_embeddings", None)
        room = positions - self.max_reply_tokens if isinstance(positions, int) else None
        cut = room is not None and any(len(r) > room for r in rows)
        if cut:
            rows = [r[-room:] for r in rows]
        heads: list[tuple[list[int], list[tuple[Any, Any]]]] = []
        if prefixes is not None and self.prefix_cache > 0 and not cut:
            starts = [tok.encode(p, add_special_tokens=False) for p in prefixes]
            if all(
                text.startswith(prefix) and len(start) < len(row) and row[: len(start)] == start
                for text, prefix, start, row in zip(texts, prefixes, starts, rows, strict=True)
            ):
                heads = [self._prefix_kv(p, ids) for p, ids in zip(prefixes, starts, strict=True)]

        def left_padded(seqs: list[list[int]]) -> tuple[Any, Any]:
            """(ids, mask), each row left-padded to the longest."""
            width = max(map(len, seqs))
            ids = th.tensor([[pad] * (width - len(x)) + x for x in seqs], device=dev)
            mask = th.tensor([[0] * (width - len(x)) + [1] * len(x) for x in seqs], device=dev)
            return ids, mask

        if not heads:
            ids, mask = left_padded(rows)
            return ids, mask, (mask.cumsum(-1) - 1).clamp_min(0), DynamicCache()
        longest = max(len(h) for h, _ in heads)
        ids, tail_mask = left_padded(
            [row[len(h) :] for row, (h, _) in zip(rows, heads, strict=True)]
        )
        head_mask = left_padded([h for h, _ in heads])[1]
        lengths = th.tensor([len(h) for h, _ in heads], device=dev)[:, None]
        positions = (lengths + tail_mask.cumsum(-1) - 1).clamp_min(0)
        cache = DynamicCache()
        for layer in range(len(heads[0][1])):
            keys, values = (
                th.cat(
                    [
                        th.nn.functional.pad(kv[layer][j], (0, 0, longest - len(h), 0))
                        for h, kv in heads
                    ]
                )  # fmt: skip
                for j in (0, 1)
            )
            cache.update(keys, values, layer)
        return ids, th.cat([head_mask, tail_mask], dim=1), positions, cache

    def generate(
        self,
        texts: list[str],
        seeds: list[int],
        stops: bool = True,
        prefixes: list[str] | None = None,
        ids: list[list[int]] | None = None,
    ) -> list[str]:
        """One reply per text: a batched, KV-cached decode, left-padded, each row sampled
        from its own seeded generator; a row stops at EOS, its end of turn or a newline
        without a chat template (`stops=False`: every row writes `max_reply_tokens`, as a
        speed benchmark wants). `prefixes`: a start of each text whose keys and values the
        user keeps (`prefix_cache`), prefilled once per distinct prefix. `ids`: each text's ids
        (`ids_of`: a turn's special-token strings spelled out), else the text encoded."""
        import torch as th

        tok, lm = self._tok, self._lm
        step_ids, mask, positions, cache = self._start(texts, prefixes, ids)
        ends = self.end_ids() if stops else set()
        chat = self.templated() or not stops
        gens = [th.Generator().manual_seed(int(s)) for s in seeds]
        new: list[list[int]] = [[] for _ in texts]
        live = np.ones(len(texts), dtype=bool)
        kv = self._forward_args(cache)  # the cache is extended in place by each forward
        with th.no_grad():
            for _ in range(self.max_reply_tokens):
                out = lm(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                         use_cache=True, **kv)  # fmt: skip
                logits = out.logits[:, -1].double().cpu()
                logits[:, len(tok) :] = -float("inf")  # a model's padded vocabulary: no text
                if self.temperature == 0:
                    picks = logits.argmax(-1).tolist()
                else:  # row by row from each row's own generator (rows' softmaxes independent)
                    probs = (logits / self.temperature).softmax(-1)
                    picks = [
                        int(th.multinomial(p, 1, generator=g))
                        for p, g in zip(probs, gens, strict=True)
                    ]
                for i, t in enumerate(picks):
                    if not live[i]:
                        continue
                    if t in ends:
                        live[i] = False
                        continue
                    piece = tok.decode([t])
                    if not chat and not tok.decode(new[i]).strip() and not piece.strip():
                        continue  # leading blanks: a plain transcript's reply starts after them
                    new[i].append(t)
                    if not chat and "\n" in piece:
                        live[i] = False
                if not live.any():
                    break
                step_ids = th.tensor(picks, device=self.device)[:, None]
                mask = th.cat([mask, th.ones_like(step_ids)], dim=1)
                positions = positions[:, -1:] + 1
        return [tok.decode(r, skip_special_tokens=True).strip() for r in new]


__all__ = ["HTTPUser", "LMUser", "messages_of", "persona_of"]
