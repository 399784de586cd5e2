"""What every TextGen environment shares: argument checks, tokenizer, task, scorer and spaces.

`TextGenEnv` (one episode) and `TextGenVectorEnv` (N episodes, batched scoring) both hold one
`TextGenCore`; the vector env's slots share it, so a batch is tokenized and scored in one call.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from gymnasium import logger, spaces

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.models import load_tokenizer
from gym_textgen.models.special import special_tokens_of
from gym_textgen.scorers import Scorer, make_scorer, score_batch
from gym_textgen.tasks import Task, make_task

#: the prompt splits an env draws from ("eval": the test split's older name)
SPLITS = ("train", "validation", "test", "eval")


@dataclass(frozen=True)
class TextGenConfig:
    """Every argument of a TextGen environment, each with its reason (as nanoGPT's `GPTConfig`).

    `gym.make("TextGen-v0", max_new_tokens=16)` builds one from keywords; unknown names are an
    error that lists these fields. Values are checked here where they can be without the
    tokenizer, and by `TextGenCore` where they need it.

    >>> TextGenConfig(max_new_tokens=16).max_new_tokens
    16
    >>> TextGenConfig.from_kwargs(max_tokens=16)
    Traceback (most recent call last):
    ...
    gym_textgen.errors.TextGenTypeError: TextGenEnv.__init__() got an unexpected keyword argument 'max_tokens'. Did you mean 'max_new_tokens'? (valid names: allowed_tokens, chat, dense_reward, max_new_tokens, max_prompt_tokens, party_retries, scorer, scorer_kwargs, scorer_timeout, split, stop_on_eos, task, tokenizer, vocab_size)
    """

    task: Any = "movie_sentiment"
    """a task name (`list_tasks()`), a `Task`, or a list of prompts: what the episodes are about"""
    scorer: Any = None
    """a scorer spec (`gym_textgen.scorers.make_scorer`); None uses the task's own scorer"""
    scorer_kwargs: dict[str, Any] | None = None
    """arguments for a named scorer, e.g. {"target": 10} for `length`"""
    scorer_timeout: float | None = None
    """seconds one scoring call may take (a hung remote scorer becomes a ScorerError); None: no
    limit, and the scorer runs in the caller's thread"""
    tokenizer: Any = "default"
    """a model name, folder or tokenizer object: it must be the policy model's tokenizer"""
    max_prompt_tokens: int | None = None
    """longer prompts keep their last tokens; None: the task's default (`Task.max_prompt_tokens`),
    else 24, which holds every bundled movie-review opening"""
    max_new_tokens: int | None = None
    """the episode length limit; None: the task's default (`Task.max_new_tokens`), else 32
    (about two short sentences)"""
    stop_on_eos: bool = True
    """end the episode when the agent writes EOS, as a language model ends its text"""
    dense_reward: bool = False
    """reward each step with the change in score (sums to the sparse reward); off, because most
    scorers judge finished text only"""
    allowed_tokens: Iterable[int] | None = None
    """ids the action mask allows (narrows the tokenizer's ids): a smaller effective action
    space for MaskablePPO"""
    vocab_size: int | None = None
    """V, the action space size, when the policy model's output is larger than the tokenizer"""
    split: str = "train"
    """which prompts `reset` draws: "train", or the held-out "validation" (for choosing
    settings) or "test" ones (`"eval"`: the test prompts, its older name)"""
    chat: bool | None = None
    """wrap each prompt in the tokenizer's chat template (an instruct model's format) when it
    has one; None: the task's choice (`Task.chat`)"""
    party_retries: int = 0
    """an interactive task's other party is asked again this many times after a failed call
    (a remote user's brief outage), 1 s before the first retry and doubling; 0: a failure is
    a PartyError at once (the step is not applied)"""

    def __post_init__(self) -> None:
        if self.allowed_tokens is not None and not isinstance(self.allowed_tokens, tuple):
            # a generator or range would be used up by the first env made from this config
            object.__setattr__(self, "allowed_tokens", tuple(int(i) for i in self.allowed_tokens))
        for key in ("max_prompt_tokens", "max_new_tokens"):
            value = getattr(self, key)
            if value is None:
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise TextGenValueError(f"Expects {key} to be an int >= 1 or None, got {value!r}")
        if self.split not in SPLITS:
            raise TextGenValueError(
                f"Expects split 'train', 'validation' or 'test' ('eval'), got {self.split!r}"
            )
        if (
            not isinstance(self.party_retries, (int, np.integer))
            or isinstance(self.party_retries, bool)
            or self.party_retries < 0
        ):
            raise TextGenValueError(
                f"Expects party_retries as an int >= 0, got {self.party_retries!r}"
            )
        timeout = self.scorer_timeout
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= threading.TIMEOUT_MAX
        ):
            raise TextGenValueError(
                f"Expects scorer_timeout to be seconds in (0, {threading.TIMEOUT_MAX:g}] or None "
                f"(no limit), got {timeout!r}"
            )

    @classmethod
    def names(cls) -> list[str]:
        """The valid argument names."""
        return sorted(f.name for f in fields(cls))

    @classmethod
    def resolve(
        cls, config: TextGenConfig | Mapping[str, Any] | None, owner: str, **kwargs: Any
    ) -> TextGenConfig:
        """The config an env gets: `config` (a TextGenConfig or a mapping of its fields) with
        `kwargs` on top. Keywords win, including those a registered id sets (its `task`)."""
        if config is None:
            return cls.from_kwargs(owner, **kwargs)
        if isinstance(config, Mapping):
            return cls.from_kwargs(owner, **{**config, **kwargs})
        if not isinstance(config, cls):
            raise TextGenTypeError(
                f"Expects config to be a TextGenConfig or a mapping of its fields, got "
                f"{type(config).__name__}: {config!r:.80}"
            )
        if kwargs:
            cls.from_kwargs(owner, **kwargs)  # unknown names: the usual error
            return dataclasses.replace(config, **kwargs)
        return config

    @classmethod
    def from_kwargs(cls, owner: str = "TextGenEnv", **kwargs: Any) -> TextGenConfig:
        """A config from keyword arguments; unknown names are an error listing the valid ones."""
        unknown = sorted(set(kwargs) - set(cls.names()))
        if unknown:
            # Python's own wording, one name at a time: clients such as TorchRL's GymEnv retry
            # without an optional keyword (its `frameskip`) only on this message
            name = unknown[0]
            near = difflib.get_close_matches(name, cls.names(), n=1)
            maybe = f". Did you mean {near[0]!r}?" if near else ""
            raise TextGenTypeError(
                f"{owner}.__init__() got an unexpected keyword argument {name!r}{maybe} "
                f"(valid names: {', '.join(cls.names())})"
            )
        return cls(**kwargs)


def _same(a: Any, b: Any) -> bool:
    """Whether two references are equal; where == has no single truth value (arrays, dicts of
    arrays) or says no to equal-looking values (NaN), whether they print the same."""
    try:
        if bool(a == b):
            return True
    except (ValueError, TypeError):
        pass
    return repr(a) == repr(b)


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
    """What the episodes of one configuration share: tokenizer, task, scorer, spaces, mask.

    Single envs made with `TextGenEnv.from_core(core)` share one core, as the slots of
    `TextGenVectorEnv` do, so a batch is tokenized and scored in one call.

    Args:
        config: the environment's `TextGenConfig`.
    """

    def __init__(self, config: TextGenConfig | None = None) -> None:
        self.config = config = config if config is not None else TextGenConfig()
        cfg = config
        self.task: Task = make_task(cfg.task)
        prompt_tokens = cfg.max_prompt_tokens or self.task.max_prompt_tokens or 24
        self.max_prompt_tokens = int(prompt_tokens)
        #: the task's `Interaction` (None: single-turn episodes)
        self.interaction = self.task.interaction
        turns = self.interaction
        default_new = turns.max_new_tokens if turns is not None else 32
        self.max_new_tokens = int(cfg.max_new_tokens or self.task.max_new_tokens or default_new)
        #: tokens the other party may insert in an episode (a reply after each turn but the last)
        self.max_inserted = 0 if turns is None else (turns.max_turns - 1) * turns.max_reply_tokens
        self.max_length = self.max_prompt_tokens + self.max_new_tokens + self.max_inserted
        self.stop_on_eos = bool(cfg.stop_on_eos)
        self.dense_reward = bool(cfg.dense_reward)
        self.split = cfg.split

        self.prompts = self.task.split(self.split)[0]
        spec = cfg.scorer if cfg.scorer is not None else self.task.scorer
        self.scorer: Scorer = make_scorer(spec, **(cfg.scorer_kwargs or {}))
        # info["reward_components"]: the scorer's parts, and an interactive episode's "party"
        # (the other party's reward for the step's turn: with it the parts add up to the reward;
        # with dense_reward the scorer's parts are scores of the text so far, not differences)
        party = ("party",) if self.interaction is not None else ()
        self.component_names = (*self.scorer.component_names(), *party)
        timeout = cfg.scorer_timeout
        self.scorer_timeout = None if timeout is None else float(timeout)

        tok = cfg.tokenizer
        if isinstance(tok, (str, os.PathLike)):
            tok = load_tokenizer(tok)
        elif not all(hasattr(tok, a) for a in ("encode", "decode", "eos_token_id")):
            raise TextGenTypeError(
                "Expects tokenizer to be a model name, a folder or a transformers tokenizer, "
                f"got {type(tok).__name__}: {tok!r:.80}"
            )
        self.tokenizer = tok
        self.tokenizer_vocab = len(self.tokenizer)
        self.vocab_size = int(cfg.vocab_size or self.tokenizer_vocab)
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
        #: every token the tokenizer marks special (`special_tokens`): never an action (EOS
        #: aside), and spelled in ordinary tokens wherever text is inserted into the state
        self.special_ids, self.special_tokens = special_tokens_of(self.tokenizer)
        context = getattr(self.tokenizer, "model_max_length", None)  # (huge when unset)
        if isinstance(context, int) and context < 10**9 and self.max_length > context:
            raise TextGenValueError(
                f"The state holds up to {self.max_length} tokens (max_prompt_tokens "
                f"{self.max_prompt_tokens} + max_new_tokens {self.max_new_tokens}"
                + (f" + the other party's replies {self.max_inserted}" if self.max_inserted else "")
                + f") but the tokenizer's model reads at most {context} positions "
                "(model_max_length): lower them, or use a model with a longer context"
            )

        obs = {
            "input_ids": spaces.Box(0, self.vocab_size - 1, (self.max_length,), np.int64),
            "attention_mask": spaces.Box(0, 1, (self.max_length,), np.int8),
        }
        if turns is not None:  # whose token is whose: 1 where the policy wrote it
            obs["policy_mask"] = spaces.Box(0, 1, (self.max_length,), np.int8)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Discrete(self.vocab_size)
        self.mask = self._build_mask(cfg.allowed_tokens)
        self._encoded: dict[str, tuple[np.ndarray, str]] = {}
        self._references: dict[str, Any] | None = None
        self._warned_truncation = False

    def _build_mask(self, allowed: Iterable[int] | None) -> np.ndarray:
        """True for ids the tokenizer can produce (special tokens other than EOS are off: its
        added tokens marked special too, such as SmolLM2's `<file_sep>`)."""
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[: self.tokenizer_vocab] = True
        for special in self.special_ids:
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
    def reference_of(self, prompt: str) -> Any:
        """The task's reference for `prompt` when it is one of the task's prompts (either
        split), else None: a forced prompt from the task keeps its reference. None too for a
        text the task pairs with different references (guess_number's prompts, each with 16
        secrets): which one is the caller's to say, with options["reference"]."""
        if self._references is None:
            table: dict[str, Any] = {}
            ambiguous: set[str] = set()
            for split in ("test", "validation", "train"):
                if split == "validation" and not self.task.validation_prompts:
                    continue
                for i, p in enumerate(self.task.split(split)[0]):
                    ref = self.task.reference(i, split)
                    if table.setdefault(p, ref) is not ref and not _same(table[p], ref):
                        ambiguous.add(p)
            self._references = {p: r for p, r in table.items() if p not in ambiguous}
        return self._references.get(prompt) if isinstance(prompt, str) else None

    def pick_prompt(
        self, options: dict[str, Any], rng: np.random.Generator
    ) -> tuple[int, Any, Any]:
        """(index, prompt, reference) for a reset with `options`: a forced `"prompt"` (index -1;
        its reference given, or the task's when it is one of the task's prompts), a
        `"prompt_index"`, or a prompt of the split drawn uniformly with `rng`."""
        unknown = set(options) - {"prompt", "prompt_index", "reference"}
        if unknown:
            raise TextGenValueError(
                f"Unknown reset option(s) {sorted(unknown)}; expected 'prompt' (with an optional "
                "'reference') or 'prompt_index'"
            )
        prompts = self.prompts
        if "prompt" in options:
            index = -1
            prompt = options["prompt"]
            reference = options.get("reference", self.reference_of(prompt))
        else:
            if "prompt_index" in options:
                index = options["prompt_index"]
                if not isinstance(index, (int, np.integer)) or not 0 <= index < len(prompts):
                    raise TextGenValueError(
                        f"Expects prompt_index in [0, {len(prompts) - 1}], got {index!r}"
                    )
            else:
                index = rng.integers(len(prompts))
            index = int(index)
            prompt = prompts[index]
            reference = self.task.reference(index, self.split)
        return index, prompt, reference

    def format_prompt(self, text: str) -> str:
        """What the model reads for prompt `text`: the task's template, then (when `chat` is on
        and the tokenizer has one) the chat template with `text` as the user's message."""
        text = self.task.template.replace("{prompt}", text)
        chat = self.config.chat if self.config.chat is not None else self.task.chat
        if chat and getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        return text

    def encode_prompt(self, prompt: str) -> tuple[np.ndarray, str]:
        """Token ids of `prompt` as the model reads it (`format_prompt`), left-truncated to
        `max_prompt_tokens`, and the prompt's text for scorers and `info`.

        The text is `prompt` itself unless it was truncated (then it is what the kept ids spell).
        Results are cached per prompt.
        """
        hit = self._encoded.get(prompt)
        if hit is not None:
            return hit
        text = as_text(prompt)
        if not text:
            raise TextGenValueError("Expects a non-empty prompt, got ''")
        ids = np.asarray(self.tokenizer.encode(self.format_prompt(text)), dtype=np.int64)
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

    @functools.cached_property
    def max_token_chars(self) -> int:
        """The most characters one token of the tokenizer spells (its longest vocabulary entry:
        a byte-level or sentencepiece entry decodes to no more characters than it has), at
        least 8: `n` tokens never spell more than `n` times this."""
        vocab = self.tokenizer.get_vocab() if hasattr(self.tokenizer, "get_vocab") else {}
        return max(8, max(map(len, vocab), default=0))

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
        total, comps = score_batch(
            self.scorer,
            list(prompts),
            completions,
            refs,
            completion_ids=[list(x) for x in ids] if self.scorer.uses_token_ids else None,
            timeout=self.scorer_timeout,
        )
        return total, comps, completions
