"""Tasks: the prompts an environment samples, their references, and a default scorer.

`make_task(spec)` takes a registered name (`list_tasks()`), a `Task`, a list of prompt strings
or records, a `.txt`/`.jsonl` file or a `datasets` dataset (`load_task`, for your own data).
Data files ship inside the package; nothing is downloaded.

| name | prompts | default scorer |
| --- | --- | --- |
| `movie_sentiment` | movie-review openings | `sentiment` |
| `keywords` | movie-review openings + a required word | `keywords` |
| `commongen` | CommonGen-style: three concepts to use in a sentence (bundled) | `keywords` (inflections count) |
| `target_tokens` | movie-review openings | `target_tokens` (synthetic) |
| `summarize` | a four-sentence local-news passage (bundled) | `rouge` (ROUGE-L to the reference) |
| `translate` | a simple English sentence to say in French (bundled) | `chrf` |
| `dialogue` | a short exchange between two people; write the next turn (bundled) | similarity to the exchange + fluency + length |
| `copy`, `reverse` | `copy: red cat sun ->` (procedural) | `word_match` |
| `arithmetic` | `12 + 35 =` (procedural) | `numeric` |
| `token_code` | interactive, synthetic: the other party names a code (0-3) after the first turn | paid by the party: the share of the second turn's ids of that code |
| `guess_number` | interactive: find a secret number from higher/lower replies | paid by the party |
| `calculator` | interactive: arithmetic with a calculator tool (`<calc>...</calc>`) | `numeric` |
| `calculator_no_tool` | the same questions, one turn, no tool | `numeric` |
| `reasoning_gym:<dataset>[?key=value&...]` | reasoning-gym's questions, the dataset's settings after `?` (optional extra) | `reasoning_gym` |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.scorers import Scorer
from gym_textgen.tasks.arena import PREFIX as ARENA
from gym_textgen.tasks.arena import parse_task as parse_arena_task
from gym_textgen.tasks.arena import textarena_task
from gym_textgen.tasks.interactive import (
    calculator_task,
    film_request_task,
    guess_number_task,
    token_code_task,
)
from gym_textgen.tasks.loading import is_task_file, load_task, text_lines
from gym_textgen.tasks.procedural import arithmetic_task, copy_task, reverse_task
from gym_textgen.tasks.reasoning import PREFIX as REASONING_GYM
from gym_textgen.tasks.reasoning import parse_spec, reasoning_gym_task
from gym_textgen.tasks.task import Task

DATA = Path(__file__).resolve().parent / "data"


def _read_lines(path: Path) -> list[str]:
    lines = text_lines(path.read_text(encoding="utf-8"))
    return [line for line in lines if line.strip() and not line.startswith("#")]


def _movie_splits() -> dict[str, tuple[str, ...]]:
    """The movie-review openings: 48 to train on, the last 16 of the file to test on, and 16
    more (their own file) for validation."""
    prompts = _read_lines(DATA / "movie_review_prompts.txt")
    return dict(
        prompts=tuple(prompts[:-16]),
        eval_prompts=tuple(prompts[-16:]),
        validation_prompts=tuple(_read_lines(DATA / "movie_review_validation.txt")),
    )


def _movie_sentiment() -> Task:
    return Task(
        name="movie_sentiment",
        **_movie_splits(),
        scorer="sentiment",
        description="continue a movie-review opening; reward = VADER positivity in [0, 1]",
    )


def _target_tokens() -> Task:
    return Task(
        name="target_tokens",
        **_movie_splits(),
        scorer="target_tokens",
        description="synthetic: reward = fraction of generated ids in a target set (fast tests)",
    )


def _keywords() -> Task:
    splits = _movie_splits()
    words = ("music", "story", "acting", "ending")

    def required(prompts: tuple[str, ...]) -> tuple[list[str], ...]:
        return tuple([words[i % len(words)]] for i in range(len(prompts)))

    return Task(
        name="keywords",
        **splits,
        references=required(splits["prompts"]),
        eval_references=required(splits["eval_prompts"]),
        validation_references=required(splits["validation_prompts"]),
        scorer="keywords",
        description="mention the prompt's required keyword (given as its reference)",
    )


def _bundled(name: str, **settings: Any) -> Task:
    """A task from `data/<name>.jsonl` (written by scripts/make_task_data.py; see data/README.md)."""
    task = load_task(DATA / f"{name}.jsonl", name=name)
    return dataclasses.replace(task, **settings)


def _summarize() -> Task:
    return _bundled(
        "summarize",
        scorer="rouge",
        template="{prompt}\nSummary:",
        chat=True,
        max_prompt_tokens=192,
        max_new_tokens=32,
        description="summarize a short news passage in one sentence; reward = ROUGE-L",
    )


def _translate() -> Task:
    return _bundled(
        "translate",
        scorer="chrf",
        template="{prompt}\nFrench:",
        chat=True,
        max_prompt_tokens=64,
        max_new_tokens=24,
        description="translate a simple English sentence into French; reward = chrF",
    )


def _commongen() -> Task:
    from gym_textgen.scorers import KeywordsScorer

    return _bundled(
        "commongen",
        scorer=KeywordsScorer(inflected=True),
        template="{prompt}\nSentence:",
        chat=True,
        max_prompt_tokens=64,
        max_new_tokens=24,
        description="CommonGen-style: a sentence that uses three given concepts; reward = "
        "share of them used (inflections count)",
    )


def dialogue_scorer() -> Scorer:
    """Relevance (MiniLM similarity to the exchange) + 0.5 fluency (1/perplexity under the
    default LM) + 0.5 length (about 12 words): a reply that is on topic, reads well and is
    neither a word nor a speech. Needs the `embeddings` extra."""
    from gym_textgen.scorers import FluencyScorer, LengthScorer, SimilarityScorer, WeightedScorer

    return WeightedScorer(
        {
            "similarity": (1.0, SimilarityScorer(to="prompt")),
            "fluency": (0.5, FluencyScorer()),
            "length": (0.5, LengthScorer(target=12)),
        }
    )


def _dialogue() -> Task:
    return _bundled(
        "dialogue",
        scorer=dialogue_scorer(),
        max_prompt_tokens=96,
        max_new_tokens=24,
        description="write the next turn of a short exchange; reward = relevance + fluency + length",
    )


_TASKS: dict[str, Callable[[], Task]] = {
    "movie_sentiment": _movie_sentiment,
    "target_tokens": _target_tokens,
    "keywords": _keywords,
    "commongen": _commongen,
    "summarize": _summarize,
    "translate": _translate,
    "dialogue": _dialogue,
    "copy": copy_task,
    "reverse": reverse_task,
    "arithmetic": arithmetic_task,
    "token_code": token_code_task,
    "guess_number": guess_number_task,
    "calculator": calculator_task,
    "calculator_no_tool": lambda: calculator_task(tool=False),
    "film_request": film_request_task,
}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Make `make_task(name)` return `factory()`."""
    _TASKS[name] = factory


def list_tasks() -> list[str]:
    """The registered task names."""
    return sorted(_TASKS)


def make_task(spec: Any) -> Task:
    """A `Task` from a registered name, a `Task`, or your own data (`load_task`'s sources:
    a list of prompts or records, a `.txt`/`.jsonl` path, a `datasets` dataset)."""
    if isinstance(spec, Task):
        return spec
    if is_task_file(spec):
        return load_task(spec)
    if isinstance(spec, str) and spec.startswith(ARENA):
        return parse_arena_task(spec)
    if isinstance(spec, str) and spec.startswith(REASONING_GYM):
        dataset, config = parse_spec(spec.removeprefix(REASONING_GYM))
        return reasoning_gym_task(dataset, **config)
    if isinstance(spec, str):
        if spec not in _TASKS:
            raise TextGenValueError(
                f"Unknown task {spec!r}; expected one of {list_tasks()}, "
                f"'{REASONING_GYM}<dataset>', '{ARENA}<game>' or a prompts file ending in .txt "
                "or .jsonl"
            )
        return _TASKS[spec]()
    if (isinstance(spec, Sequence) and spec) or hasattr(spec, "column_names"):
        return load_task(spec)
    raise TextGenTypeError(
        "Expects task as a registered name, a Task, a non-empty list of prompts or records, a "
        f".txt/.jsonl path or a datasets.Dataset, got {type(spec).__name__}: {spec!r:.80}"
    )


__all__ = [
    "Task",
    "arithmetic_task",
    "copy_task",
    "dialogue_scorer",
    "list_tasks",
    "load_task",
    "reasoning_gym_task",
    "textarena_task",
    "make_task",
    "register_task",
    "reverse_task",
]
