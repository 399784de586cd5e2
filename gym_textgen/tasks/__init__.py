"""Tasks: the prompts an environment samples, their references, and a default scorer.

`make_task(spec)` takes a registered name (`list_tasks()`), a `Task`, or a list of prompt
strings. Data files ship inside the package; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gym_textgen.errors import TextGenTypeError, TextGenValueError

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Task:
    """Prompts to continue, optional references, and the scorer used when none is given.

    Attributes:
        name: short identifier, shown in logs.
        prompts: training prompts; `reset()` draws one uniformly.
        eval_prompts: held-out prompts for evaluation (defaults to `prompts`).
        references: one reference per training prompt (a string, a list of keywords, ...) or
            None; scorers receive it as their third argument.
        eval_references: the same for `eval_prompts`.
        scorer: the default scorer spec (see `gym_textgen.scorers.make_scorer`).
        description: one line for humans.
    """

    name: str
    prompts: tuple[str, ...]
    eval_prompts: tuple[str, ...] = ()
    references: tuple[Any, ...] | None = None
    eval_references: tuple[Any, ...] | None = None
    scorer: Any = "sentiment"
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "eval_prompts", tuple(self.eval_prompts) or self.prompts)
        if not self.prompts:
            raise TextGenValueError(f"Task {self.name!r} needs at least one prompt, got none")
        for prompts, refs, what in (
            (self.prompts, self.references, "references"),
            (self.eval_prompts, self.eval_references, "eval_references"),
        ):
            if refs is not None and len(refs) != len(prompts):
                raise TextGenValueError(
                    f"Task {self.name!r}: expects one of {what} per prompt "
                    f"({len(prompts)}), got {len(refs)}"
                )
        for i, p in enumerate(self.prompts):
            if not isinstance(p, str):
                raise TextGenTypeError(
                    f"Task {self.name!r}: prompt {i} must be a str, got {type(p).__name__}"
                )

    def reference(self, index: int, split: str = "train") -> Any:
        """The reference of prompt `index` in `split` ("train" or "eval"), or None."""
        refs = self.references if split == "train" else self.eval_references
        return None if refs is None else refs[index]


def _read_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _movie_sentiment() -> Task:
    prompts = _read_lines(DATA / "movie_review_prompts.txt")
    return Task(
        name="movie_sentiment",
        prompts=tuple(prompts[:-16]),
        eval_prompts=tuple(prompts[-16:]),
        scorer="sentiment",
        description="continue a movie-review opening; reward = VADER positivity in [0, 1]",
    )


def _target_tokens() -> Task:
    prompts = _read_lines(DATA / "movie_review_prompts.txt")
    return Task(
        name="target_tokens",
        prompts=tuple(prompts[:-16]),
        eval_prompts=tuple(prompts[-16:]),
        scorer="target_tokens",
        description="synthetic: reward = fraction of generated ids in a target set (fast tests)",
    )


def _keywords() -> Task:
    prompts = _read_lines(DATA / "movie_review_prompts.txt")
    words = ("music", "story", "acting", "ending")
    return Task(
        name="keywords",
        prompts=tuple(prompts[:-16]),
        eval_prompts=tuple(prompts[-16:]),
        references=tuple([words[i % len(words)]] for i in range(len(prompts) - 16)),
        eval_references=tuple([words[i % len(words)]] for i in range(16)),
        scorer="keywords",
        description="mention the prompt's required keyword (given as its reference)",
    )


_TASKS: dict[str, Callable[[], Task]] = {
    "movie_sentiment": _movie_sentiment,
    "target_tokens": _target_tokens,
    "keywords": _keywords,
}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make `make_task(name)` return `factory()`."""
    _TASKS[name] = factory


def list_tasks() -> list[str]:
    """The registered task names."""
    return sorted(_TASKS)


def make_task(spec: str | Task | Sequence[str]) -> Task:
    """A `Task` from a registered name, a `Task`, or a list of prompts (scored by sentiment)."""
    if isinstance(spec, Task):
        return spec
    if isinstance(spec, str):
        if spec not in _TASKS:
            raise TextGenValueError(f"Unknown task {spec!r}; expected one of {list_tasks()}")
        return _TASKS[spec]()
    if isinstance(spec, Sequence) and spec and all(isinstance(p, str) for p in spec):
        return Task(name="custom", prompts=tuple(spec))
    raise TextGenTypeError(
        "Expects task as a registered name, a Task or a non-empty list of prompt strings, "
        f"got {type(spec).__name__}: {spec!r:.80}"
    )


__all__ = ["Task", "list_tasks", "make_task", "register_task"]
