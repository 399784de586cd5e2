"""The scorer protocol, adapters for plain functions and weighted mixes, and safe evaluation."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gym_textgen.errors import ScorerError, TextGenValueError


class Scorer:
    """Maps lists of prompts, completions and references to one float per completion.

    Subclasses implement `score`. Scorers that need the generated token ids (not only the text)
    set `uses_token_ids = True` and read the `completion_ids` keyword.

    Attributes:
        name: shown in errors and in `info["reward_components"]`.
    """

    name: str = "scorer"
    uses_token_ids: bool = False

    def score(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Any] | None = None,
        *,
        completion_ids: Sequence[Sequence[int]] | None = None,
    ) -> np.ndarray:
        """One float per completion (shape `(len(completions),)`)."""
        raise NotImplementedError

    def components(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Any] | None = None,
        *,
        completion_ids: Sequence[Sequence[int]] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each named part of the reward; the reward is their (weighted) sum."""
        return {
            self.name: self.score(prompts, completions, references, completion_ids=completion_ids)
        }

    def component_names(self) -> list[str]:
        """The keys `components` returns (and `info["reward_components"]` holds on every step,
        0.0 each before a score): a scorer that overrides `components` overrides this too."""
        return [self.name]

    def combine(self, components: dict[str, np.ndarray]) -> np.ndarray:
        """The reward from the output of `components`."""
        (value,) = components.values()
        return value

    def __call__(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        return self.score(prompts, completions, references, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class FunctionScorer(Scorer):
    """Adapts `f(prompt, completion) -> float` (or `f(prompt, completion, reference)`)."""

    def __init__(self, fn: Callable[..., float], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        try:
            params = inspect.signature(fn).parameters.values()
            positional = [
                p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            self._takes_reference = len(positional) >= 3 or any(
                p.kind == p.VAR_POSITIONAL for p in params
            )
        except (TypeError, ValueError):  # builtins without a signature
            self._takes_reference = False

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        refs = references if references is not None else [None] * len(completions)
        out = np.empty(len(completions), dtype=np.float64)
        for i, (p, c, r) in enumerate(zip(prompts, completions, refs, strict=True)):
            value = self.fn(p, c, r) if self._takes_reference else self.fn(p, c)
            try:
                out[i] = float(value)
            except (TypeError, ValueError) as e:
                raise ScorerError(
                    f"Scorer {self.name!r} must return a float, returned "
                    f"{type(value).__name__}: {value!r:.80} for completion {c!r:.200}"
                ) from e
        return out


class WeightedScorer(Scorer):
    """A weighted sum of scorers: `{"sentiment": 1.0, "length": 0.2}`."""

    def __init__(self, parts: dict[str, tuple[float, Scorer]]) -> None:
        if not parts:
            raise TextGenValueError("A weighted scorer needs at least one part, got an empty dict")
        self.parts = parts
        self.name = "+".join(f"{w:g}*{name}" for name, (w, _) in parts.items())
        self.uses_token_ids = any(s.uses_token_ids for _, s in parts.values())

    def components(self, prompts, completions, references=None, *, completion_ids=None):
        return {
            name: check_scores(
                scorer,
                scorer.score(prompts, completions, references, completion_ids=completion_ids),
                completions,
            )
            for name, (_, scorer) in self.parts.items()
        }

    def component_names(self) -> list[str]:
        return list(self.parts)

    def combine(self, components: dict[str, np.ndarray]) -> np.ndarray:
        return sum(w * components[name] for name, (w, _) in self.parts.items())

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        return self.combine(
            self.components(prompts, completions, references, completion_ids=completion_ids)
        )


def check_scores(scorer: Scorer, values: Any, completions: Sequence[str]) -> np.ndarray:
    """`values` as a float64 array of shape `(len(completions),)`, all finite, or a ScorerError."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ScorerError(
            f"Scorer {scorer.name!r} must return {len(completions)} floats, returned "
            f"{type(values).__name__}: {values!r:.80}"
        ) from e
    if arr.shape != (len(completions),):
        raise ScorerError(
            f"Scorer {scorer.name!r} must return shape ({len(completions)},) for "
            f"{len(completions)} completions, returned shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise ScorerError(
            f"Scorer {scorer.name!r} returned {arr[i]} (not finite) for completion "
            f"{completions[i]!r:.200}"
        )
    return arr


def score_batch(
    scorer: Scorer,
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[Any] | None = None,
    completion_ids: Sequence[Sequence[int]] | None = None,
    timeout: float | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rewards and their components, with every failure turned into a `ScorerError`.

    The error names the scorer and the completion being scored, so a crash deep inside a user's
    reward function points at the text that caused it.

    Args:
        timeout: seconds the scorer may take for this batch (None: no limit). A scorer that
            takes longer raises a `ScorerError`; Python cannot stop a running function, so it
            finishes in a background thread and its result is dropped.
    """
    if timeout is None:
        return _score_batch(scorer, prompts, completions, references, completion_ids)
    result: list[Any] = []

    def work() -> None:
        try:
            result.append(_score_batch(scorer, prompts, completions, references, completion_ids))
        except BaseException as e:  # handed to the caller's thread
            result.append(e)

    # a daemon thread: a scorer that never returns cannot keep the process alive at exit
    thread = threading.Thread(target=work, name=f"scorer-{scorer.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        shown = completions[0] if len(completions) == 1 else list(completions)
        raise ScorerError(
            f"Scorer {scorer.name!r} did not return within its timeout of {timeout:g} s while "
            f"scoring completion {shown!r:.300}"
        )
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _score_batch(
    scorer: Scorer,
    prompts: Sequence[str],
    completions: Sequence[str],
    references: Sequence[Any] | None,
    completion_ids: Sequence[Sequence[int]] | None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    try:
        comps = scorer.components(prompts, completions, references, completion_ids=completion_ids)
        names = list(scorer.component_names())
        if not isinstance(comps, dict) or set(comps) != set(names):
            # the env's info holds these keys on every step, before any score: they are fixed
            got = sorted(comps) if isinstance(comps, dict) else type(comps).__name__
            raise ScorerError(
                f"Scorer {scorer.name!r}'s components() must return a dict with the keys its "
                f"component_names() lists, {names}, returned {got}: a scorer that overrides "
                "components() overrides component_names() too"
            )
        comps = {k: check_scores(scorer, comps[k], completions) for k in names}
        total = check_scores(scorer, scorer.combine(comps), completions)
    except ScorerError:
        raise
    except Exception as e:
        shown = completions[0] if len(completions) == 1 else list(completions)
        raise ScorerError(
            f"Scorer {scorer.name!r} raised {type(e).__name__}: {e} while scoring "
            f"completion {shown!r:.300}"
        ) from e
    return total, comps
