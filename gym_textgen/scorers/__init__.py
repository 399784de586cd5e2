"""Scorers turn finished texts into rewards.

A scorer maps lists `(prompts, completions, references)` to one float per completion.
`make_scorer(spec)` accepts:

| spec | example |
| --- | --- |
| a registered name | `"sentiment"` (see `list_scorers()`) |
| a plain function | `lambda prompt, completion: float(len(completion) > 10)` |
| an import path | `"my_module:my_reward"` (a function, a `Scorer` class or instance) |
| a weighted mix | `{"sentiment": 1.0, "length": 0.2}` |
| a scorer object | `KeywordsScorer(["great", "fun"])` |

>>> from gym_textgen.scorers import make_scorer
>>> make_scorer({"length": 1.0, "keywords": 0.5}, keywords=None).name
'1*length+0.5*keywords'
>>> make_scorer("length")(["The film"], ["was great fun and I loved it"]).tolist()
[0.4375]
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.scorers.base import (
    FunctionScorer,
    Scorer,
    ScorerError,
    WeightedScorer,
    check_scores,
    score_batch,
)
from gym_textgen.scorers.builtin import (
    BUILTIN,
    KeywordsScorer,
    LengthScorer,
    OverlapScorer,
    SentimentScorer,
    TargetTokensScorer,
)
from gym_textgen.scorers.judge import JudgeScorer
from gym_textgen.scorers.metrics import (
    METRICS,
    BLEUScorer,
    CHRFScorer,
    ExactMatchScorer,
    NumericScorer,
    RepetitionScorer,
    RougeScorer,
    WordMatchScorer,
)
from gym_textgen.scorers.neural import NEURAL, ClassifierScorer, FluencyScorer, SimilarityScorer

_REGISTRY: dict[str, Callable[..., Scorer]] = {**BUILTIN, **METRICS, **NEURAL, "judge": JudgeScorer}


def _reasoning_gym_scorer() -> Scorer:
    from gym_textgen.tasks.reasoning import ReasoningGymScorer

    return ReasoningGymScorer()


_REGISTRY["reasoning_gym"] = _reasoning_gym_scorer


def register_scorer(name: str, factory: Callable[..., Scorer]) -> None:
    """Make `make_scorer(name, **kwargs)` return `factory(**kwargs)`."""
    _REGISTRY[name] = factory


def list_scorers() -> list[str]:
    """The registered scorer names."""
    return sorted(_REGISTRY)


def _from_import_path(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise TextGenValueError(f"Cannot import module {module!r} for scorer {spec!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TextGenValueError(
                f"Module {module!r} has no attribute {attr!r} (scorer {spec!r})"
            )
        obj = getattr(obj, part)
    return obj


def make_scorer(spec: Any, **kwargs: Any) -> Scorer:
    """Build a `Scorer` from any of the specs in the module docstring.

    Args:
        spec: the scorer spec.
        kwargs: constructor arguments for a registered name or a `Scorer` class (for a weighted
            dict, `kwargs` go to every part whose constructor accepts them).
    """
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, str):
        if ":" in spec:
            return make_scorer(_from_import_path(spec), **kwargs)
        if spec not in _REGISTRY:
            raise TextGenValueError(
                f"Unknown scorer {spec!r}; expected one of {list_scorers()}, a function, "
                "'module:attr', a {name: weight} dict or a Scorer"
            )
        return _REGISTRY[spec](**kwargs)
    if isinstance(spec, dict):
        parts: dict[str, tuple[float, Scorer]] = {}
        for name, weight in spec.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise TextGenTypeError(
                    f"Weighted scorer expects {{name: float}}, got {name!r}: {weight!r}"
                )
            factory = _REGISTRY.get(name) if isinstance(name, str) else None
            own = {}
            if factory is not None and kwargs:
                accepted = inspect.signature(factory).parameters
                own = {k: v for k, v in kwargs.items() if k in accepted}
            scorer = make_scorer(name, **own)
            key, n = scorer.name, 1
            while key in parts:  # two functions both named "<lambda>" stay two parts
                n += 1
                key = f"{scorer.name}#{n}"
            parts[key] = (float(weight), scorer)
        return WeightedScorer(parts)
    if isinstance(spec, type) and issubclass(spec, Scorer):
        return spec(**kwargs)
    if callable(spec):
        if kwargs:
            raise TextGenTypeError(
                f"A function scorer takes no keyword arguments, got {sorted(kwargs)}"
            )
        return FunctionScorer(spec)
    raise TextGenTypeError(
        "Expects a scorer name, function, 'module:attr' path, {name: weight} dict or Scorer, "
        f"got {type(spec).__name__}: {spec!r:.80}"
    )


__all__ = [
    "BLEUScorer",
    "CHRFScorer",
    "ClassifierScorer",
    "ExactMatchScorer",
    "FluencyScorer",
    "FunctionScorer",
    "JudgeScorer",
    "KeywordsScorer",
    "LengthScorer",
    "NumericScorer",
    "OverlapScorer",
    "RepetitionScorer",
    "RougeScorer",
    "Scorer",
    "ScorerError",
    "SentimentScorer",
    "SimilarityScorer",
    "TargetTokensScorer",
    "WeightedScorer",
    "WordMatchScorer",
    "check_scores",
    "list_scorers",
    "make_scorer",
    "register_scorer",
    "score_batch",
]
