"""Built-in scorers. Each maps completions to floats; most lie in [0, 1]."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenValueError
from gym_textgen.scorers.base import Scorer

_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, apostrophes)."""
    return _WORD.findall(text.lower())


class SentimentScorer(Scorer):
    """VADER's compound polarity of the completion, mapped from [-1, 1] to [0, 1].

    0.5 is neutral (and the value of an empty completion). VADER is a lexicon and rule model:
    fast, offline, and deterministic. The analyzer is created on first use.
    """

    name = "sentiment"

    def __init__(self) -> None:
        self._analyzer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_analyzer": None}  # rebuilt lazily after unpickling

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if self._analyzer is None:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

            self._analyzer = SentimentIntensityAnalyzer()
        polarity = self._analyzer.polarity_scores
        return np.array([(polarity(c)["compound"] + 1.0) / 2.0 for c in completions])


class LengthScorer(Scorer):
    """Closeness of the completion's length to a target: `max(0, 1 - |n - target| / target)`.

    Args:
        target: the length that scores 1.
        unit: `"words"` or `"chars"`.
    """

    name = "length"

    def __init__(self, target: int = 16, unit: str = "words") -> None:
        if target <= 0:
            raise TextGenValueError(f"Expects target > 0, got {target}")
        if unit not in ("words", "chars"):
            raise TextGenValueError(f"Expects unit 'words' or 'chars', got {unit!r}")
        self.target, self.unit = target, unit

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        n = np.array([len(words(c)) if self.unit == "words" else len(c) for c in completions])
        return np.maximum(0.0, 1.0 - np.abs(n - self.target) / self.target)


# Irregular forms of everyday words (the bundled concept sets' among them).
IRREGULAR = {
    "child": {"children"}, "man": {"men"}, "woman": {"women"}, "foot": {"feet"},
    "mouse": {"mice"}, "tooth": {"teeth"}, "knife": {"knives"}, "leaf": {"leaves"},
    "throw": {"threw", "thrown"}, "swim": {"swam", "swum"}, "sing": {"sang", "sung"},
    "ride": {"rode", "ridden"}, "run": {"ran"}, "read": {"read"}, "eat": {"ate", "eaten"},
    "drink": {"drank", "drunk"}, "write": {"wrote", "written"}, "take": {"took", "taken"},
    "give": {"gave", "given"}, "see": {"saw", "seen"}, "go": {"went", "gone", "goes"},
    "make": {"made"}, "buy": {"bought"}, "bring": {"brought"}, "catch": {"caught"},
    "fly": {"flew", "flown", "flies"}, "sit": {"sat"}, "stand": {"stood"}, "find": {"found"},
    "get": {"got", "gotten"}, "hold": {"held"}, "keep": {"kept"}, "leave": {"left"},
    "meet": {"met"}, "pay": {"paid"}, "say": {"said"}, "sell": {"sold"}, "send": {"sent"},
    "sleep": {"slept"}, "speak": {"spoke", "spoken"}, "teach": {"taught"},
    "tell": {"told"}, "think": {"thought"}, "win": {"won"}, "begin": {"began", "begun"},
    "break": {"broke", "broken"}, "choose": {"chose", "chosen"}, "draw": {"drew", "drawn"},
    "drive": {"drove", "driven"}, "fall": {"fell", "fallen"}, "grow": {"grew", "grown"},
    "know": {"knew", "known"}, "lose": {"lost"}, "wear": {"wore", "worn"},
}  # fmt: skip


def inflections(word: str) -> set[str]:
    """`word` and its English inflections: regular ones (dog -> dogs; bake -> bakes, baked,
    baking; carry -> carries, carried; run -> running) and the irregular ones in `IRREGULAR`
    (throw -> threw, thrown; child -> children). A few non-words (runned) are harmless."""
    if not word:
        return set()
    forms = {word, word + "s", word + "es", word + "ed", word + "ing", word + "d"}
    forms |= IRREGULAR.get(word, set())
    if word.endswith("e"):
        forms.add(word[:-1] + "ing")
    if word.endswith("y") and len(word) > 2:
        forms |= {word[:-1] + "ies", word[:-1] + "ied"}
    if len(word) >= 3 and word[-1] not in "aeiouwxy" and word[-2] in "aeiou":
        forms |= {word + word[-1] + "ing", word + word[-1] + "ed"}
    return forms


class KeywordsScorer(Scorer):
    """Fraction of required words present in the completion (whole words, any case).

    The required words are `keywords` or, per prompt, the task's reference (a list of words or a
    comma-separated string). With neither, calling it is an error.

    Args:
        keywords: the required words for every prompt (None: each prompt's reference).
        inflected: also count regular inflections (`throw` is present in "she throws"), as
            CommonGen's concept sets are meant.
    """

    name = "keywords"

    def __init__(self, keywords: Iterable[str] | None = None, inflected: bool = False) -> None:
        self.keywords = None if keywords is None else [k.lower() for k in keywords]
        self.inflected = bool(inflected)

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        out = np.empty(len(completions))
        for i, c in enumerate(completions):
            required = self.keywords
            if required is None:
                ref = None if references is None else references[i]
                if ref is None:
                    raise TextGenValueError(
                        "keywords scorer needs keywords=[...] or a reference per prompt, got neither"
                    )
                parts = ref.split(",") if isinstance(ref, str) else ref
                required = [w.strip().lower() for w in parts if w.strip()]
            present = set(words(c))
            found = [
                bool(present & inflections(w)) if self.inflected else w in present for w in required
            ]
            out[i] = sum(found) / len(required) if required else 0.0
        return out


class OverlapScorer(Scorer):
    """The seed blog's reward: `(len(response) / len(prompt)) * fraction of prompt words reused`.

    Lengths count words. Empty prompts or completions score 0. This reward is easy to game: a
    policy that repeats the prompt verbatim (and then keeps going) scores high while saying
    nothing. It is kept as a teaching example of reward hacking, not as a quality measure.
    """

    name = "overlap"

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        out = np.zeros(len(completions))
        for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
            pw, cw = words(p), words(c)
            if pw and cw:
                out[i] = (len(cw) / len(pw)) * (len(set(pw) & set(cw)) / len(set(pw)))
        return out


class TargetTokensScorer(Scorer):
    """Synthetic: the fraction of generated token ids that lie in a target set.

    Reads token ids, not text, so it is exact and costs almost nothing: the scorer for fast
    learning tests. A random policy over V ids scores about `len(target_ids) / V`.

    Args:
        target_ids: the rewarded ids; by default every id divisible by 4 (a random policy over
            the whole vocabulary scores about 0.25).
    """

    name = "target_tokens"
    uses_token_ids = True

    def __init__(self, target_ids: Iterable[int] | None = None) -> None:
        self.target_ids = None if target_ids is None else frozenset(int(t) for t in target_ids)

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if completion_ids is None:
            raise TextGenValueError(
                "target_tokens scores token ids: pass completion_ids=[[...], ...]"
            )
        out = np.zeros(len(completion_ids))
        for i, ids in enumerate(completion_ids):
            if len(ids):
                if self.target_ids is None:
                    out[i] = float(np.mean(np.asarray(ids) % 4 == 0))
                else:
                    out[i] = sum(int(t) in self.target_ids for t in ids) / len(ids)
        return out


class NoScorer(Scorer):
    """0 for every completion: for tasks whose reward comes from elsewhere (an interactive
    task's other party pays per turn)."""

    name = "none"

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        return np.zeros(len(completions))


BUILTIN: dict[str, type[Scorer]] = {
    "none": NoScorer,
    "sentiment": SentimentScorer,
    "length": LengthScorer,
    "keywords": KeywordsScorer,
    "overlap": OverlapScorer,
    "target_tokens": TargetTokensScorer,
}
