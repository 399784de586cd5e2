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
in the persona is a continuation it writes in the user's voice.
"""

from __future__ import annotations

import inspect
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gym_textgen.chatapi import chat_completion, check_base_url
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.interactive.party import Exchange, OtherParty, PartyError, Reply

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
    ) -> None:
        _check_sampling(temperature, max_reply_tokens)
        if chat not in (None, True, False):
            raise TextGenTypeError(f"Expects chat as None, True or False, got {chat!r}")
        bad_size = not isinstance(cache_size, (int, np.integer)) or isinstance(cache_size, bool)
        if bad_size or cache_size < 0:
            raise TextGenValueError(f"Expects cache_size as an int >= 0, got {cache_size!r}")
        self.model, self.persona, self.device, self.chat = model, persona, device, chat
        self.temperature, self.max_reply_tokens = float(temperature), int(max_reply_tokens)
        self.cache_size = int(cache_size) if self.temperature == 0 else 0
        self.ending = _Ending(stop, check)
        self._lm: Any = None
        self._tok: Any = None
        self._cache: OrderedDict[str, str] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_lm": None, "_tok": None, "_cache": OrderedDict()}

    def _load(self) -> None:
        from gym_textgen.models import load_model, load_tokenizer

        self._lm = load_model(self.model).to(self.device).eval()
        self._tok = load_tokenizer(self.model)

    def templated(self) -> bool:
        """Whether the model reads its chat template (else a plain transcript: `chat=False`,
        or a tokenizer without a template)."""
        return self.chat is not False and bool(getattr(self._tok, "chat_template", None))

    def text_of(self, ex: Exchange) -> str:
        """The model's input for `ex`: its chat template, or a plain transcript (`templated`)."""
        persona = persona_of(self.persona, ex)
        if self.templated():
            talk = messages_of(persona, ex)
            return self._tok.apply_chat_template(talk, tokenize=False, add_generation_prompt=True)
        lines = [persona, f"User: {ex.prompt.strip()}"]
        for i, turn in enumerate(ex.turns):
            lines.append(f"{'Assistant' if i % 2 == 0 else 'User'}: {turn.strip()}")
        return "\n".join(lines) + "\nUser:"

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        if not exchanges:
            return []
        if self._lm is None:
            self._load()
        texts = [self.text_of(ex) for ex in exchanges]
        seeds = [zlib.crc32(f"{ex.seed}:{len(ex.turns)}".encode()) for ex in exchanges]
        if not self.cache_size:
            outs = self.generate(texts, seeds)
        else:  # greedy: a reply is a function of its input; decode only the unseen ones
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                for text, out in zip(todo, self.generate(todo, [0] * len(todo)), strict=True):
                    self._cache[text] = out
            for text in texts:
                self._cache.move_to_end(text)
            outs = [self._cache[t] for t in texts]
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

    def generate(self, texts: list[str], seeds: list[int], stops: bool = True) -> list[str]:
        """One reply per text: a batched, KV-cached decode, left-padded, each row sampled
        from its own seeded generator; a row stops at EOS, its end of turn or a newline
        without a chat template (`stops=False`: every row writes `max_reply_tokens`, as a
        speed benchmark wants)."""
        import torch as th

        tok, lm = self._tok, self._lm
        rows = [tok.encode(t, add_special_tokens=False) for t in texts]
        width = max(map(len, rows))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = th.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = th.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        ends = self.end_ids() if stops else set()
        chat = self.templated() or not stops
        gens = [th.Generator().manual_seed(int(s)) for s in seeds]
        new: list[list[int]] = [[] for _ in rows]
        live = np.ones(len(rows), dtype=bool)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        from transformers import DynamicCache

        # transformers >= 5.2x names the argument `cache`; earlier releases `past_key_values`
        accepted = inspect.signature(lm.forward).parameters
        arg = "cache" if "cache" in accepted else "past_key_values"
        kv: dict[str, Any] = {arg: DynamicCache()}  # extended in place by each forward
        if "logits_to_keep" in accepted:  # the next token's logits only, as generate() asks
            kv["logits_to_keep"] = 1
        with th.no_grad():
            step_ids = ids
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


class HTTPUser(OtherParty):
    """A simulated user behind any OpenAI-compatible chat-completions endpoint (see the module
    and `gym_textgen.chatapi`: the key only from `api_key_env`, timeouts, retries with backoff
    and the server's Retry-After). A failure is a `PartyError` naming the endpoint, and the
    env's step is not applied. Requests for a batch run `concurrency` at a time.
    """

    def __init__(
        self,
        base_url: str,
        api_model: str = "gpt-4o-mini",
        persona: Persona = "You are a user talking with an assistant.",
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.7,
        max_reply_tokens: int = 64,
        stop: Sequence[str] = ("[DONE]",),
        check: Check | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
    ) -> None:
        _check_sampling(temperature, max_reply_tokens)
        if not isinstance(api_model, str) or not api_model:
            raise TextGenTypeError(f"Expects api_model as a non-empty str, got {api_model!r}")
        numbers = (retries, concurrency, timeout, backoff)
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers) or (
            retries < 1 or concurrency < 1 or timeout <= 0 or backoff < 0
        ):
            raise TextGenValueError(
                "Expects retries >= 1, concurrency >= 1, timeout > 0 and backoff >= 0, got "
                f"{retries!r}, {concurrency!r}, {timeout!r}, {backoff!r}"
            )
        self.base_url = check_base_url(base_url)
        self.api_model, self.persona, self.api_key_env = api_model, persona, api_key_env
        self.temperature, self.max_reply_tokens = float(temperature), int(max_reply_tokens)
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency = int(concurrency)
        self.ending = _Ending(stop, check)

    def __repr__(self) -> str:
        return f"HTTPUser({self.base_url}, api_model={self.api_model!r})"

    def _ask(self, ex: Exchange) -> Reply:
        body = {
            "model": self.api_model,
            "messages": messages_of(persona_of(self.persona, ex), ex),
            "temperature": self.temperature,
            "max_tokens": self.max_reply_tokens,
            "seed": int(ex.seed),  # honoured by servers that can; same episode, same replies
        }
        text = chat_completion(
            self.base_url, body, api_key_env=self.api_key_env, timeout=self.timeout,
            retries=self.retries, backoff=self.backoff, error=PartyError, who="simulated user",
        )  # fmt: skip
        return self.ending.finish(ex, text)

    def reply(self, exchanges: Sequence[Exchange]) -> list[Reply]:
        from concurrent.futures import ThreadPoolExecutor

        if len(exchanges) <= 1:
            return [self._ask(ex) for ex in exchanges]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._ask, exchanges))


__all__ = ["HTTPUser", "LMUser", "messages_of", "persona_of"]
