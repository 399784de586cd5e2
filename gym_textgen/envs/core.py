"""What every TextGen environment shares: argument checks, tokenizer, task, scorer and spaces.

`TextGenEnv` (one episode) and `TextGenVectorEnv` (N episodes, batched scoring) both hold one
`TextGenCore`; the vector env's slots share it, so a batch is tokenized and scored in one call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium import logger, spaces

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.models import load_tokenizer
from gym_textgen.scorers import Scorer, evaluate, make_scorer
from gym_textgen.tasks import Task, make_task

# Every keyword argument of TextGenEnv, with its default. Unknown names are an error that lists these.
DEFAULTS: dict[str, Any] = {
    "task": "movie_sentiment",
    "scorer": None,
    "tokenizer": "default",
    "max_prompt_tokens": 24,
    "max_new_tokens": 32,
    "stop_on_eos": True,
    "dense_reward": False,
    "render_mode": None,
    "allowed_tokens": None,
    "vocab_size": None,
    "scorer_kwargs": None,
    "scorer_timeout": None,
    "split": "train",
}


def check_kwargs(kwargs: dict[str, Any], owner: str, extra: Iterable[str] = ()) -> None:
    """Raise a TypeError naming the valid keyword arguments if `kwargs` has unknown ones."""
    valid = set(DEFAULTS) | set(extra)
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise TextGenTypeError(
            f"{owner} got unexpected keyword argument(s) {unknown}; valid names: {sorted(valid)}"
        )


def as_text(prompt: str | bytes) -> str:
    """`prompt` as valid Unicode text.

    Bytes are decoded as UTF-8 and text with lone surrogates is re-encoded; invalid sequences
    become U+FFFD / "?" rather than errors, so any prompt a user scraped from somewhere works.
    """
    if isinstance(prompt, bytes):
        return prompt.decode("utf-8", errors="replace")
    if not isinstance(prompt, str):
        raise TextGenTypeError(
            f"Expects the prompt as a str (or UTF-8 bytes), got {type(prompt).__name__}: {prompt!r:.80}"
        )
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        return prompt.encode("utf-8", errors="replace").decode("utf-8")
    return prompt


class TextGenCore:
    """The validated configuration of a TextGen environment and the work it shares.

    Args: see `TextGenEnv`.
    """

    def __init__(self, **kwargs: Any) -> None:
        check_kwargs(kwargs, "TextGenEnv")
        cfg = {**DEFAULTS, **kwargs}
        for key in ("max_prompt_tokens", "max_new_tokens"):
            value = cfg[key]
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise TextGenValueError(f"Expects {key} to be an int >= 1, got {value!r}")
        if cfg["split"] not in ("train", "eval"):
            raise TextGenValueError(f"Expects split 'train' or 'eval', got {cfg['split']!r}")
        self.max_prompt_tokens = int(cfg["max_prompt_tokens"])
        self.max_new_tokens = int(cfg["max_new_tokens"])
        self.max_length = self.max_prompt_tokens + self.max_new_tokens
        self.stop_on_eos = bool(cfg["stop_on_eos"])
        self.dense_reward = bool(cfg["dense_reward"])
        self.split = cfg["split"]

        self.task: Task = make_task(cfg["task"])
        self.prompts = self.task.prompts if self.split == "train" else self.task.eval_prompts
        spec = cfg["scorer"] if cfg["scorer"] is not None else self.task.scorer
        self.scorer: Scorer = make_scorer(spec, **(cfg["scorer_kwargs"] or {}))
        timeout = cfg["scorer_timeout"]
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= threading.TIMEOUT_MAX
        ):
            raise TextGenValueError(
                f"Expects scorer_timeout to be seconds in (0, {threading.TIMEOUT_MAX:g}] or None "
                f"(no limit), got {timeout!r}"
            )
        self.scorer_timeout = None if timeout is None else float(timeout)

        tok = cfg["tokenizer"]
        if isinstance(tok, (str, os.PathLike)):
            tok = load_tokenizer(tok)
        elif not all(hasattr(tok, a) for a in ("encode", "decode", "eos_token_id")):
            raise TextGenTypeError(
                "Expects tokenizer to be a model name, a folder or a transformers tokenizer, "
                f"got {type(tok).__name__}: {tok!r:.80}"
            )
        self.tokenizer = tok
        self.tokenizer_vocab = len(self.tokenizer)
        self.vocab_size = int(cfg["vocab_size"] or self.tokenizer_vocab)
        if self.vocab_size < self.tokenizer_vocab:
            raise TextGenValueError(
                f"Expects vocab_size >= the tokenizer's {self.tokenizer_vocab} tokens, "
                f"got {self.vocab_size}"
            )
        self.eos_id = self.tokenizer.eos_token_id
        if self.eos_id is None and self.stop_on_eos:
            raise TextGenValueError(
                "stop_on_eos=True needs a tokenizer with an eos_token, this one has none"
            )
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        self.observation_space = spaces.Dict(
            {
                "input_ids": spaces.Box(0, self.vocab_size - 1, (self.max_length,), np.int64),
                "attention_mask": spaces.Box(0, 1, (self.max_length,), np.int8),
            }
        )
        self.action_space = spaces.Discrete(self.vocab_size)
        self.mask = self._build_mask(cfg["allowed_tokens"])
        self._encoded: dict[str, tuple[np.ndarray, str]] = {}
        self._warned_truncation = False

    def _build_mask(self, allowed: Iterable[int] | None) -> np.ndarray:
        """True for ids the tokenizer can produce (special tokens other than EOS are off)."""
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[: self.tokenizer_vocab] = True
        for special in self.tokenizer.all_special_ids:
            if special != self.eos_id and special < self.vocab_size:
                mask[special] = False
        if allowed is not None:
            ids = np.fromiter((int(i) for i in allowed), dtype=np.int64)
            bad = ids[(ids < 0) | (ids >= self.vocab_size)]
            if bad.size:
                raise TextGenValueError(
                    f"Expects allowed_tokens in [0, {self.vocab_size - 1}], got {bad[:5].tolist()}"
                )
            narrowed = np.zeros_like(mask)
            narrowed[ids] = True
            mask &= narrowed
        if not mask.any():
            shown = sorted(int(i) for i in allowed)[:10] if allowed is not None else []
            raise TextGenValueError(
                "No token is allowed: expects allowed_tokens to hold at least one id the "
                f"tokenizer can produce (not a special token other than EOS), got {shown}"
            )
        return mask

    # -- text <-> ids -------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, str]:
        """Token ids of `prompt`, left-truncated to `max_prompt_tokens`, and the text they spell.

        The text is `prompt` itself unless it was truncated. Results are cached per prompt.
        """
        hit = self._encoded.get(prompt)
        if hit is not None:
            return hit
        text = as_text(prompt)
        if not text:
            raise TextGenValueError("Expects a non-empty prompt, got ''")
        ids = np.asarray(self.tokenizer.encode(text), dtype=np.int64)
        if ids.size == 0:
            raise TextGenValueError(f"Prompt {prompt!r:.80} encodes to no tokens")
        if ids.size > self.max_prompt_tokens:
            if not self._warned_truncation:
                logger.warn(
                    f"Prompt of {ids.size} tokens is longer than max_prompt_tokens="
                    f"{self.max_prompt_tokens}; keeping its last {self.max_prompt_tokens} tokens "
                    "(further truncations are silent)"
                )
                self._warned_truncation = True
            ids = ids[-self.max_prompt_tokens :]
            text = self.decode(ids.tolist())
        if len(self._encoded) < 10_000:
            self._encoded[prompt] = (ids, text)
        return ids, text

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids (special tokens and ids the tokenizer lacks are dropped)."""
        return self.tokenizer.decode(
            [i for i in ids if i < self.tokenizer_vocab], skip_special_tokens=True
        )

    # -- reward --------------------------------------------------------------------------------
    def score(
        self, prompts: Sequence[str], ids: Sequence[Sequence[int]], references: Sequence[Any]
    ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Rewards, reward components and completion texts for a batch of generated ids."""
        completions = [self.decode(x) for x in ids]
        refs = None if all(r is None for r in references) else list(references)
        total, comps = evaluate(
            self.scorer,
            list(prompts),
            completions,
            refs,
            completion_ids=[list(x) for x in ids] if self.scorer.uses_token_ids else None,
            timeout=self.scorer_timeout,
        )
        return total, comps, completions
