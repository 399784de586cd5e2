"""An LLM judge: rates each completion against a rubric, with a local LM or over HTTP.

Local (the default): a causal LM from `gym_textgen.models` reads the rubric, the prompt and the
completion and is asked to answer yes or no; the score is P(yes) / (P(yes) + P(no)) of its next
token (case variants summed), one batched forward for a batch. An instruct model (one whose
tokenizer has a chat template, like `smollm2-135m`) gets the question in its chat format.

HTTP: any OpenAI-compatible chat-completions endpoint (`base_url=".../v1"`, `api_model=...`), the
way the seed drove GPT-3. The judge asks for a rating from 1 to 10 and scores `(rating - 1) / 9`.
The API key is read from the environment variable `api_key_env` at request time; it is never
stored on the scorer, logged or saved. Requests run `concurrency` at a time with a `timeout` each
and `retries` tries with exponential backoff on connection errors, 429 and 5xx answers
(`gym_textgen.chatapi`); a server that stays unreachable gives a `ScorerError` naming the URL (the env then loses no episode: see
`gym_textgen.scorers.score_batch`).

>>> from gym_textgen.scorers import make_scorer
>>> judge = make_scorer("judge", model="smollm2-135m", rubric="Is the response about films?")
>>> judge.name
'judge'
"""

from __future__ import annotations

import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from gym_textgen.chatapi import chat_completion, check_base_url
from gym_textgen.errors import ScorerError, TextGenValueError
from gym_textgen.scorers.base import Scorer

DEFAULT_RUBRIC = "Is the response a fluent, relevant continuation of the prompt?"
_NUM = r"(?<![\d.])(\d+(?:\.\d+)?)"  # a whole or decimal number, not the tail of another one
_END = r"(?!\.?\d)"  # "7." ends a sentence; "7.5" and "70" are other numbers
# "Rating: 8", "Overall score - 7", "I'd rate it 8", "Score is 6": a number the reply names
_NAMED = re.compile(
    r"\b(?:rating|rated|rate|score|scored|overall|grade|verdict)\b[^\d\n]{0,12}?" + _NUM + _END
    + r"(?:\s*(?:/|out of)\s*" + _NUM + _END + r")?",
    re.IGNORECASE,
)  # fmt: skip
_OUT_OF = re.compile(_NUM + r"\s*(?:/|out of)\s*" + _NUM + _END, re.IGNORECASE)  # "8/10", "4/5"
_RANGE = re.compile(r"(?<![\d.])[01]\s*(?:-|–|—|to)\s*10" + _END)  # "1-10", "1 to 10"
_SCALE = re.compile(r"(?:/|out of)\s*10" + _END, re.IGNORECASE)  # "(out of 10)" after no number
_NUMBER = re.compile(_NUM + _END)


def parse_rating(reply: str) -> float | None:
    """The 1-10 rating a judge's reply gives, or None when it gives none.

    In order: the last number the reply names as its rating ("Rating: 8", "I'd rate it 8 out of
    10", "Overall: 7"); else the last "x/N" or "x out of N" ("8/10", "3 out of 10"; a "/10"
    names the scale, not a rating of 10); else the last number from 1 to 10 once scale mentions
    ("on a 1-10 scale", "from 1 to 10", "(out of 10)") are set aside. A rating out of N is
    rescaled to 10 ("4/5" is 8), and a named or "/N" rating outside 1-10 is clipped to it.

    >>> [parse_rating(r) for r in ("8/10", "3 out of 10", "Rating: 2/10", "9", "On a 1-10 scale: 7.5")]
    [8.0, 3.0, 2.0, 9.0, 7.5]
    >>> [parse_rating(r) for r in ("It has 3 sentences. Rating: 8", "1. Fluency\\n2. Overall: 7", "4/5")]
    [8.0, 7.0, 8.0]
    >>> parse_rating("I cannot rate this.") is None
    True
    """
    text = _RANGE.sub(" ", reply)
    named = _NAMED.findall(text)
    if named:
        value, out_of = named[-1]
        return _clipped(float(value), float(out_of) if out_of else 10.0)
    out_of = _OUT_OF.findall(text)
    if out_of:
        value, scale = out_of[-1]
        return _clipped(float(value), float(scale))
    numbers = [float(n) for n in _NUMBER.findall(_SCALE.sub(" ", text))]
    return next((n for n in reversed(numbers) if 1.0 <= n <= 10.0), None)


def _clipped(value: float, scale: float) -> float | None:
    """`value` out of `scale` as a rating from 1 to 10 (None for a scale of 0)."""
    if scale <= 0:
        return None
    return min(10.0, max(1.0, value * 10.0 / scale))


def question(rubric: str, prompt: str, completion: str, rating: bool) -> str:
    """The text the judge reads."""
    ask = (
        "Rate the response from 1 (worst) to 10 (best). Reply with the number only."
        if rating
        else "Answer yes or no."
    )
    return f"{rubric}\n\nPrompt: {prompt}\nResponse: {completion}\n\n{ask}"


class JudgeScorer(Scorer):
    """Scores completions with an LLM judge (see the module docstring).

    Args:
        rubric: the question the judge answers about each (prompt, response).
        model: the local judge, a name or folder for `gym_textgen.models.load_model`
            (ignored when `base_url` is given).
        base_url: an OpenAI-compatible API root, e.g. "http://localhost:8000/v1".
        api_model: the model name sent to the API.
        api_key_env: the environment variable holding the API key (unset: no key is sent).
        timeout: seconds per HTTP request.
        retries: tries per request (>= 1).
        backoff: seconds before the second try; doubled for each further try.
        concurrency: HTTP requests in flight at once.
        batch_size: texts per forward pass of the local judge.
        device: where the local judge runs.
    """

    name = "judge"

    def __init__(
        self,
        rubric: str = DEFAULT_RUBRIC,
        model: str | os.PathLike = "default",
        base_url: str | None = None,
        api_model: str = "gpt-4o-mini",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        batch_size: int = 16,
        device: str = "cpu",
    ) -> None:
        if int(retries) < 1 or int(concurrency) < 1 or float(timeout) <= 0 or int(batch_size) < 1:
            raise TextGenValueError(
                "Expects retries >= 1, concurrency >= 1, batch_size >= 1 and timeout > 0, got "
                f"{retries}, {concurrency}, {batch_size}, {timeout}"
            )
        if base_url is not None:
            check_base_url(base_url)
        self.rubric, self.model, self.base_url = rubric, model, base_url
        self.api_model, self.api_key_env = api_model, api_key_env
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency, self.batch_size, self.device = int(concurrency), int(batch_size), device
        self._model: Any = None
        self._tokenizer: Any = None
        self._warned = False

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None, "_tokenizer": None}

    def __repr__(self) -> str:
        where = self.base_url or f"model={self.model!r}"
        return f"JudgeScorer({where}, rubric={self.rubric!r})"

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if self.base_url is not None:
            return self._score_http(prompts, completions)
        return self._score_local(prompts, completions)

    # -- local --------------------------------------------------------------------------------
    def _load(self) -> None:
        from gym_textgen.models import load_model, load_tokenizer

        self._model = load_model(self.model).to(self.device).eval()
        tok = load_tokenizer(self.model)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self._tokenizer = tok
        vocab = tok.get_vocab()

        def ids(words: tuple[str, ...]) -> set[int]:
            """The words that are one token each (a piece of a longer word says nothing)."""
            out = set()
            for w in words:
                enc = tok(w, add_special_tokens=False)["input_ids"]
                if len(enc) == 1 and enc[0] < len(vocab):
                    out.add(enc[0])
            return out

        yes, no = ids(("yes", " yes", "Yes", " Yes")), ids(("no", " no", "No", " No"))
        if not yes or not no:
            raise TextGenValueError(
                f"judge model {self.model!r}: its tokenizer has no single token for 'yes' or "
                "'no', so it cannot answer yes or no; use a larger model (smollm2-135m) or an API"
            )
        self._yes, self._no = sorted(yes), sorted(no)

    def _text(self, prompt: str, completion: str) -> str:
        q = question(self.rubric, prompt, completion, rating=False)
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
            )
        return q + "\nAnswer:"

    def _score_local(self, prompts, completions) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        texts = [self._text(p, c) for p, c in zip(prompts, completions, strict=True)]
        out: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            enc = self._tokenizer(
                texts[i : i + self.batch_size], return_tensors="pt", padding=True,
                add_special_tokens=False,
            ).to(self.device)  # fmt: skip
            with torch.no_grad():
                logits = self._model(**enc).logits[:, -1].double()
            probs = logits.softmax(-1).cpu()
            yes, no = probs[:, self._yes].sum(-1), probs[:, self._no].sum(-1)
            if float((yes + no).min()) < 1e-3 and not self._warned:
                self._warned = True
                warnings.warn(
                    f"judge model {self.model!r} puts {float((yes + no).min()):.1e} of its "
                    "probability on yes/no: its scores are close to noise",
                    stacklevel=3,
                )
            out.extend((yes / (yes + no).clamp_min(1e-300)).tolist())
        return np.asarray(out, dtype=np.float64)

    # -- HTTP ---------------------------------------------------------------------------------
    def _request(self, prompt: str, completion: str) -> float:
        body = {
            "model": self.api_model,
            "messages": [
                {"role": "system", "content": "You are a strict, consistent judge."},
                {"role": "user", "content": question(self.rubric, prompt, completion, True)},
            ],
            "temperature": 0,
            "max_tokens": 16,  # "I'd rate it 8 out of 10." fits; 4 cut it to "I'd rate"
        }
        content = chat_completion(
            self.base_url, body, api_key_env=self.api_key_env, timeout=self.timeout,
            retries=self.retries, backoff=self.backoff, error=ScorerError, who="judge",
        )  # fmt: skip
        rating = parse_rating(content)
        if rating is None:
            raise ScorerError(f"judge: expected a rating from 1 to 10, got {content!r:.80}")
        return (rating - 1.0) / 9.0

    def _score_http(self, prompts, completions) -> np.ndarray:
        pairs = list(zip(prompts, completions, strict=True))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            scores = list(pool.map(lambda pc: self._request(*pc), pairs))
        return np.asarray(scores, dtype=np.float64)
