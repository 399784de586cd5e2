"""reasoning-gym's procedural tasks (https://github.com/open-thought/reasoning-gym) as `Task`s.

`make_task("reasoning_gym:<dataset>")` (e.g. `basic_arithmetic`, `leg_counting`, any name
`reasoning_gym.factory` knows) draws seeded questions; the `reasoning_gym` scorer grades each
answer with the library's own `score_answer`. Settings follow a `?` as `key=value` pairs joined
by `&`, so they also work from the command line and in YAML configs:
`reasoning_gym:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&n_train=256&seed=1` - the
dataset's own settings (its config class in reasoning-gym) and `n_train`, `n_eval`, `n_validation`, `seed`.
Values are Python literals where they parse as one, else strings; a value cannot hold `&`
(pass such settings from Python: `reasoning_gym_task(dataset, **settings)`). Needs the
optional extra: `pip install 'gym-textgen[reasoning]'`.

>>> import gymnasium as gym, gym_textgen
>>> env = gym.make("TextGen-v0", task="reasoning_gym:basic_arithmetic", max_new_tokens=8)
>>> env.unwrapped.core.task.prompts[0].endswith("Answer:")
True
"""

from __future__ import annotations

import ast
import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import logger

from gym_textgen.errors import TextGenTypeError, TextGenValueError, require
from gym_textgen.scorers.base import Scorer
from gym_textgen.scorers.metrics import reference_list
from gym_textgen.tasks.task import Task

PREFIX = "reasoning_gym:"


#: reasoning_gym_task's own settings and their defaults (the rest go to the dataset)
DRAW_DEFAULTS = {"n_train": 512, "n_eval": 32, "n_validation": 32, "seed": 0}

#: held-out questions seen in training (or twice) are skipped; this many draws per held-out
#: question (plus a fixed 100) are tried before the task gives up
EVAL_DRAWS_PER_QUESTION = 10


def parse_spec(
    spec: str, prefix: str = PREFIX, what: str = "dataset"
) -> tuple[str, dict[str, Any]]:
    """`"basic_arithmetic?max_terms=2&operators=('+','-')"` ->
    `("basic_arithmetic", {"max_terms": 2, "operators": ("+", "-")})`.

    Values are Python literals where they parse as one (numbers, True, tuples), else strings; no
    URL decoding, so `+` stays a plus. A value cannot hold `&` (it separates the pairs)."""
    dataset, _, query = spec.partition("?")
    dataset = dataset.strip()
    expected = f"Expects {prefix}<{what}>?key=value&key=value, got {prefix + spec!r}"
    if not dataset:
        raise TextGenValueError(f"{expected}: no {what} name")
    config: dict[str, Any] = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not (key and eq):
            raise TextGenValueError(f"{expected}: {item!r} is not key=value")
        if key in config:
            raise TextGenValueError(f"{expected}: {key!r} is set twice")
        if key == what:
            raise TextGenValueError(f"{expected}: the {what}'s name goes before the '?'")
        try:
            config[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            config[key] = value
    return dataset, config


def task_name(dataset: str, settings: dict[str, Any], prefix: str = PREFIX) -> str:
    """The task string that `make_task` parses back to the same settings, when each value's
    repr is a Python literal (a setting given from Python as an enum, say, is shown but does
    not parse back)."""
    query = "&".join(f"{k}={v!r}" for k, v in sorted(settings.items()))
    return f"{prefix}{dataset}" + (f"?{query}" if query else "")


def reasoning_gym_task(
    dataset: str,
    n_train: int = DRAW_DEFAULTS["n_train"],
    n_eval: int = DRAW_DEFAULTS["n_eval"],
    seed: int = DRAW_DEFAULTS["seed"],
    n_validation: int = DRAW_DEFAULTS["n_validation"],
    **config: Any,
) -> Task:
    """A task of `n_train` training, `n_eval` test and `n_validation` validation questions from
    reasoning-gym's `dataset`, seeded.

    Args:
        dataset: a reasoning-gym dataset name, e.g. "basic_arithmetic" or "leg_counting".
        n_train: training questions.
        n_eval: held-out test questions, drawn after the training ones from the same seed, each
            unlike every training question and every other held-out one (repeats are skipped
            and more are drawn; too few distinct ones is a `TextGenValueError`).
        seed: seeds the draw.
        n_validation: held-out validation questions, drawn after the test ones in the same
            way (the default 32 + 32 held-out questions are the 64 that tasks held out before
            the validation split: the test split is their first 32).
        config: the dataset's own settings (e.g. `min_terms=2, max_terms=3` for
            basic_arithmetic; see reasoning-gym's config class of each dataset).

    The task's name is the task string with every setting that differs from the defaults
    (`make_task(task.name)` rebuilds the task).
    """
    rg = require("reasoning_gym", "reasoning", f"task {PREFIX}{dataset}")
    sizes = (("n_train", n_train), ("n_eval", n_eval), ("n_validation", n_validation))
    for key, value in (*sizes, ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TextGenTypeError(
                f"Expects {key} to be an integer, got {type(value).__name__}: {value!r}"
            )
    if min(n_train, n_eval, n_validation) < 1:
        raise TextGenValueError(
            f"Expects n_train, n_eval and n_validation >= 1, got {n_train}, {n_eval}, "
            f"{n_validation}"
        )
    # numpy scalars as Python ones: reasoning-gym seeds random.Random, and names show repr
    n_train, n_eval, n_validation = int(n_train), int(n_eval), int(n_validation)
    seed = int(seed)
    draw = {"n_train": n_train, "n_eval": n_eval, "n_validation": n_validation, "seed": seed}
    config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}

    def create(size: int) -> Any:
        try:
            return rg.create_dataset(dataset, size=size, seed=seed, **config)
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            # (reasoning-gym checks its settings with assert: an AssertionError is a bad setting)
            settings = f" with {config}" if config else ""
            raise TextGenValueError(
                f"reasoning-gym cannot make dataset {dataset!r}{settings}: {e}"
            ) from e

    n_held = n_eval + n_validation
    data = create(n_train + n_held)
    train = [data[i] for i in range(n_train)]
    held_out = _held_out(dataset, data, create, train, n_train, n_held, config, draw)
    test, validation = held_out[:n_eval], held_out[n_eval:]
    changed = {k: v for k, v in draw.items() if v != DRAW_DEFAULTS[k]}
    return Task(
        name=task_name(dataset, {**config, **changed}),
        prompts=tuple(_prompt(e) for e in train),
        eval_prompts=tuple(_prompt(e) for e in test),
        validation_prompts=tuple(_prompt(e) for e in validation),
        references=tuple(train),
        eval_references=tuple(test),
        validation_references=tuple(validation),
        scorer="reasoning_gym",
        description=f"reasoning-gym {dataset}: graded by its own score_answer",
        max_prompt_tokens=192,  # long questions; the default model's context is 256
        max_new_tokens=16,
        chat=True,
    )


def _prompt(entry: dict[str, Any]) -> str:
    return f"{entry['question'].strip()}\nAnswer:"


def _held_out(
    dataset: str,
    data: Any,
    create: Callable[[int], Any],
    train: list[dict[str, Any]],
    n_train: int,
    n_eval: int,
    config: dict[str, Any],
    draw: dict[str, int],
) -> list[dict[str, Any]]:
    """`n_eval` entries whose questions are not training questions, nor each other's.

    The candidates are the dataset's items after the training ones, in order: first the
    `n_eval` items of the draw (so a task without repeats is what it always was), then, only
    where some were skipped, further items from a larger draw of the same seed (reasoning-gym
    items are mostly seeded by `seed + index`; a few datasets depend on the size or cannot index
    past it, so the further items come from a dataset of the larger size), up to
    `EVAL_DRAWS_PER_QUESTION * n_eval + 100` candidates in all.
    """
    seen = {_prompt(e) for e in train}
    held_out: list[dict[str, Any]] = []
    limit = n_train + EVAL_DRAWS_PER_QUESTION * n_eval + 100
    candidates, why = data, ""
    for i in range(n_train, limit):
        if i == n_train + n_eval:
            try:
                candidates = create(limit)
            except TextGenValueError as e:  # a dataset that caps its size, say
                why = f" (a larger draw fails: {e})"
                break
        entry = candidates[i]
        if _prompt(entry) not in seen:
            seen.add(_prompt(entry))
            held_out.append(entry)
            if len(held_out) == n_eval:
                return held_out
    draws = (limit if not why else n_train + n_eval) - n_train
    settings = {**config, **draw}
    raise TextGenValueError(
        f"Expects {n_eval} held-out questions of reasoning-gym dataset {dataset!r} that are not "
        f"training questions, got {len(held_out)} distinct unseen ones in {draws} draws after "
        f"the {n_train} training questions{why} (settings {settings}): lower n_train "
        "or n_eval and n_validation, or widen the dataset's settings so that it has more distinct "
        "questions"
    )


class ReasoningGymScorer(Scorer):
    """reasoning-gym's own grade of the answer (the completion's first non-empty line,
    stripped) against the question's entry, which the task gives as the reference. In [0, 1].

    Some of reasoning-gym's graders raise on answers they cannot parse (`prime_factorization`
    on "tw", `boxnet` on "1", `coin_flip` on "1e999", `game_of_life` on "{}"), and an untrained
    policy writes such answers all the time. Any `Exception` raised inside the library's
    `score_answer(answer, entry)` counts as "the grader could not parse the answer": that
    completion scores 0 (the lowest score), the count per dataset goes up in `grader_errors`,
    and the first such error of each dataset is warned about (gymnasium's logger). A reference
    that is not a reasoning-gym entry (a dict with 'question', 'answer' and 'metadata' naming a
    registered `source_dataset`) is our error, not the answer's: it raises `TextGenValueError`.

    Attributes:
        grader_errors: answers scored 0 because the grader raised, per dataset name (a
            `Counter`; `sum(scorer.grader_errors.values())` is the total).
    """

    name = "reasoning_gym"

    def __init__(self) -> None:
        self.grader_errors: Counter[str] = Counter()

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if references is None or len(references) != len(completions):
            reference_list(self.name, references, len(completions))  # raises the clear error
        rg = require("reasoning_gym", "reasoning", "the reasoning_gym scorer")
        out = np.zeros(len(completions))
        for i, (c, entry) in enumerate(zip(completions, references, strict=True)):
            dataset = _source_dataset(rg, entry)
            answer = next((line.strip() for line in c.splitlines() if line.strip()), "")
            try:
                value = _grader(dataset)(answer, entry)
            except Exception as e:  # the grader cannot parse this answer: the lowest score
                self.grader_errors[dataset] += 1
                if self.grader_errors[dataset] == 1:
                    message = (
                        f"reasoning-gym's {dataset!r} grader raised {type(e).__name__} "
                        f"({e!s:.120}) on the answer {answer!r:.80}; such answers score 0 "
                        "(counted in the scorer's grader_errors; further ones of this dataset "
                        "are silent)"
                    )
                    logger.warn(message.replace("%", "%%"))  # logger.warn %-formats its message
                continue
            out[i] = float(value)
        return np.clip(out, 0.0, 1.0)


def _source_dataset(rg: Any, entry: Any) -> str:
    """The registered dataset name that `entry` (a reference) comes from, or the clear error."""
    metadata = entry.get("metadata") if isinstance(entry, dict) else None
    name = metadata.get("source_dataset") if isinstance(metadata, dict) else None
    if not (isinstance(name, str) and {"question", "answer"} <= entry.keys()):
        raise TextGenValueError(
            "reasoning_gym scorer expects a reasoning-gym entry as reference (a dict with "
            f"'question', 'answer', 'metadata' holding 'source_dataset'), got {entry!r:.80}"
        )
    if name not in rg.factory.DATASETS:
        raise TextGenValueError(
            "reasoning_gym scorer expects a reference from a registered reasoning-gym dataset, "
            f"got source_dataset {name!r}, which the installed reasoning-gym does not know"
        )
    return name


@functools.cache
def _grader(dataset: str) -> Callable[[str, dict[str, Any]], float]:
    """reasoning-gym's `score_answer` of `dataset`, made once per process (the library builds a
    whole dataset for it, 0.7 s for arc_agi)."""
    import reasoning_gym as rg

    return rg.get_score_answer_fn(dataset)
