"""Reference-based metric scorers, each lazy-loading a light, well-kept library.

| name | what it measures | library (extra) |
| --- | --- | --- |
| `bleu` | sentence BLEU against the reference(s), / 100 | sacrebleu (`metrics`) |
| `chrf` | sentence chrF against the reference(s), / 100 | sacrebleu (`metrics`) |
| `rouge` | ROUGE F-measure (`rougeL` by default), best over the references | rouge-score (`metrics`) |
| `exact_match` | 1 if the normalised completion equals a reference, else 0 | none |
| `numeric` | 1 if the completion's first number equals the reference number, else 0 | none |
| `word_match` | the share of the reference's words the completion has at the same positions | none |
| `repetition` | the share of the completion's word n-grams that are distinct (1: no repeats) | none |

A reference is a string or a list of strings (several acceptable answers); the task supplies one
per prompt (`Task.references`). All scores lie in [0, 1].

>>> from gym_textgen.scorers import make_scorer
>>> make_scorer("numeric")(["2+2="], [" 4, I think"], ["4"]).tolist()
[1.0]
>>> make_scorer("repetition")([""], ["the cat the cat the cat"]).round(2).tolist()
[0.5]
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenValueError, require
from gym_textgen.scorers.base import Scorer
from gym_textgen.scorers.builtin import words


def reference_list(scorer: str, references: Sequence[Any] | None, n: int) -> list[list[str]]:
    """The references as one list of strings per completion, or a clear error."""
    if references is None:
        raise TextGenValueError(
            f"{scorer} scorer compares with references: the task must give one per prompt "
            "(Task(references=...)), got none"
        )
    if len(references) != n:
        raise TextGenValueError(
            f"{scorer} scorer expects one reference per completion ({n}), got {len(references)}"
        )
    out = []
    for ref in references:
        refs = (
            [ref] if isinstance(ref, str) else list(ref) if isinstance(ref, (list, tuple)) else []
        )
        if not refs or not all(isinstance(r, str) for r in refs):
            raise TextGenValueError(
                f"{scorer} scorer expects each reference to be a string or a non-empty list of "
                f"strings, got {ref!r:.80}"
            )
        out.append(refs)
    return out


class _SacreBLEU(Scorer):
    metric = ""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._metric: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_metric": None}  # rebuilt lazily after unpickling

    def _make(self, metrics: Any) -> Any:
        raise NotImplementedError

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        refs = reference_list(self.name, references, len(completions))
        if self._metric is None:
            self._metric = self._make(
                require("sacrebleu.metrics", "metrics", f"{self.name} scorer")
            )
        values = [
            self._metric.sentence_score(c, r).score for c, r in zip(completions, refs, strict=True)
        ]
        return np.clip(np.asarray(values, dtype=np.float64) / 100.0, 0.0, 1.0)


class BLEUScorer(_SacreBLEU):
    """Sentence BLEU (sacrebleu, effective order for short texts) against the references, / 100.

    Args:
        options: passed to `sacrebleu.metrics.BLEU` (e.g. `tokenize="intl"`, `lowercase=True`).
    """

    name = "bleu"

    def _make(self, metrics: Any) -> Any:
        return metrics.BLEU(**{"effective_order": True, **self.options})


class CHRFScorer(_SacreBLEU):
    """Sentence chrF (sacrebleu; character n-grams, robust for short texts and morphology), / 100.

    Args:
        options: passed to `sacrebleu.metrics.CHRF` (e.g. `word_order=2` for chrF++).
    """

    name = "chrf"

    def _make(self, metrics: Any) -> Any:
        return metrics.CHRF(**self.options)


class RougeScorer(Scorer):
    """ROUGE F-measure (Google's rouge-score, Porter stemming), best over the references.

    Args:
        kind: `"rougeL"` (longest common subsequence), `"rouge1"`, `"rouge2"` or `"rougeLsum"`.
    """

    name = "rouge"

    def __init__(self, kind: str = "rougeL") -> None:
        if kind not in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
            raise TextGenValueError(
                f"Expects kind 'rouge1', 'rouge2', 'rougeL' or 'rougeLsum', got {kind!r}"
            )
        self.kind = kind
        self._scorer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorer": None}

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        refs = reference_list(self.name, references, len(completions))
        if self._scorer is None:
            rouge = require("rouge_score.rouge_scorer", "metrics", "rouge scorer")
            self._scorer = rouge.RougeScorer([self.kind], use_stemmer=True)
        return np.array(
            [
                self._scorer.score_multi(r, c)[self.kind].fmeasure
                for c, r in zip(completions, refs, strict=True)
            ],
            dtype=np.float64,
        )


_PUNCT = str.maketrans("", "", string.punctuation)
# a number, with what joins its digits ("3.5", "1/2", "2-1", "1,000"): part of the answer
_NUMBER_IN_TEXT = re.compile(r"(?<![\d.])[-+\u2212]?(?:\d+(?:[.,/:-]\d+)*|\.\d+)")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _number(match: re.Match[str]) -> str:
    """A number as `normalize` writes it: "-" for any minus, no "+", "0.5" for ".5", and no
    thousands commas ("1,000" but not "3,4")."""
    text = match.group().replace("\u2212", "-").lstrip("+")
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if text.startswith((".", "-.")):
        text = text.replace(".", "0.", 1)
    return text


def normalize(text: str) -> str:
    """Lower case, no punctuation but what a number is written with, single spaces: what
    `exact_match` compares.

    >>> normalize("  It's -3.5, not 35!"), normalize("1,000."), normalize("1/2 of .5")
    ('its -3.5 not 35', '1000', '1/2 of 0.5')
    """
    text = text.lower()
    parts, end = [], 0
    for match in _NUMBER_IN_TEXT.finditer(text):
        parts += [text[end : match.start()].translate(_PUNCT), _number(match)]
        end = match.end()
    parts.append(text[end:].translate(_PUNCT))
    return " ".join("".join(parts).split())


class ExactMatchScorer(Scorer):
    """1 if the completion equals one of the references after `normalize`, else 0.

    Args:
        first_line: compare only the completion's first non-empty line (a model that answers and
            then keeps talking still gets the answer counted).
    """

    name = "exact_match"

    def __init__(self, first_line: bool = True) -> None:
        self.first_line = first_line

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        refs = reference_list(self.name, references, len(completions))
        out = np.zeros(len(completions))
        for i, (c, r) in enumerate(zip(completions, refs, strict=True)):
            if self.first_line:
                c = next((line for line in c.splitlines() if line.strip()), "")
            out[i] = float(normalize(c) in {normalize(x) for x in r})
        return out


_NUMBER = re.compile(r"[-+\u2212]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def first_number(text: str) -> float | None:
    """The first number written in `text` (`1,234.5`, `-3`, `.5`, `2e3`, `−4`), or None."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    return float(match.group().replace(",", "").replace("\u2212", "-"))


class NumericScorer(Scorer):
    """1 if the completion's first number equals the reference number, else 0.

    Args:
        rel_tol: relative tolerance (answers are compared as floats).
        abs_tol: absolute tolerance.
    """

    name = "numeric"

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> None:
        self.rel_tol, self.abs_tol = float(rel_tol), float(abs_tol)

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if references is not None:  # numbers may be given as numbers
            references = [
                [_as_text(x) for x in r] if isinstance(r, (list, tuple)) else _as_text(r)
                for r in references
            ]
        refs = reference_list(self.name, references, len(completions))
        out = np.zeros(len(completions))
        for i, (c, r) in enumerate(zip(completions, refs, strict=True)):
            got = first_number(c)
            if got is None:
                continue
            for want_text in r:
                want = first_number(want_text)
                if want is None:
                    raise TextGenValueError(
                        f"numeric scorer expects a number as reference, got {want_text!r}"
                    )
                if got == want or abs(got - want) <= max(self.abs_tol, self.rel_tol * abs(want)):
                    out[i] = 1.0
        return out


def _as_text(ref: Any) -> Any:
    is_number = isinstance(ref, (int, float, np.integer, np.floating)) and not isinstance(ref, bool)
    return str(ref) if is_number else ref


class WordMatchScorer(Scorer):
    """The share of the reference's words that the completion has at the same positions
    (words as `words()` splits them, lower case); the best over several references. Dense and
    exact: the scorer of the procedural `copy` and `reverse` tasks."""

    name = "word_match"

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        refs = reference_list(self.name, references, len(completions))
        out = np.zeros(len(completions))
        for i, (c, r) in enumerate(zip(completions, refs, strict=True)):
            got = words(c)
            for ref in r:
                want = words(ref)
                if want:
                    hits = sum(a == b for a, b in zip(got, want, strict=False))
                    out[i] = max(out[i], hits / len(want))
        return out


class RepetitionScorer(Scorer):
    """The share of the completion's word n-grams that are distinct: 1 with no repeats, lower
    the more it loops. Texts shorter than `n` words score 1. Mix it into a reward as a penalty
    against degenerate loops (`{"sentiment": 1.0, "repetition": 0.5}`).

    Args:
        n: the n-gram length in words.
    """

    name = "repetition"

    def __init__(self, n: int = 3) -> None:
        if int(n) < 1:
            raise TextGenValueError(f"Expects n >= 1, got {n}")
        self.n = int(n)

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        out = np.ones(len(completions))
        for i, c in enumerate(completions):
            w = words(c)
            grams = [tuple(w[j : j + self.n]) for j in range(len(w) - self.n + 1)]
            if grams:
                out[i] = len(set(grams)) / len(grams)
        return out


METRICS: dict[str, type[Scorer]] = {
    "bleu": BLEUScorer,
    "chrf": CHRFScorer,
    "rouge": RougeScorer,
    "exact_match": ExactMatchScorer,
    "numeric": NumericScorer,
    "repetition": RepetitionScorer,
    "word_match": WordMatchScorer,
}
