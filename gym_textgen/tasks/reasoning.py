"""reasoning-gym's procedural tasks (https://github.com/open-thought/reasoning-gym) as `Task`s.

`make_task("reasoning_gym:<dataset>")` (e.g. `basic_arithmetic`, `leg_counting`, any name
`reasoning_gym.factory` knows) draws seeded questions; the `reasoning_gym` scorer grades each
answer with the library's own `score_answer`. Settings follow a `?` as `key=value` pairs joined
by `&`, so they also work from the command line and in YAML configs:
`reasoning_gym:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&n_train=256&seed=1` - the
dataset's own settings (its config class in reasoning-gym) and `n_train`, `n_eval`, `seed`.
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
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError, require
from gym_textgen.scorers.base import Scorer
from gym_textgen.scorers.metrics import reference_list
from gym_textgen.tasks.task import Task

PREFIX = "reasoning_gym:"


#: reasoning_gym_task's own settings and their defaults (the rest go to the dataset)
DRAW_DEFAULTS = {"n_train": 512, "n_eval": 64, "seed": 0}


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`"basic_arithmetic?max_terms=2&operators=('+','-')"` ->
    `("basic_arithmetic", {"max_terms": 2, "operators": ("+", "-")})`.

    Values are Python literals where they parse as one (numbers, True, tuples), else strings; no
    URL decoding, so `+` stays a plus. A value cannot hold `&` (it separates the pairs)."""
    dataset, _, query = spec.partition("?")
    dataset = dataset.strip()
    expected = f"Expects {PREFIX}<dataset>?key=value&key=value, got {PREFIX + spec!r}"
    if not dataset:
        raise TextGenValueError(f"{expected}: no dataset name")
    config: dict[str, Any] = {}
    for item in query.split("&") if query else []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not (key and eq):
            raise TextGenValueError(f"{expected}: {item!r} is not key=value")
        if key in config:
            raise TextGenValueError(f"{expected}: {key!r} is set twice")
        if key == "dataset":
            raise TextGenValueError(f"{expected}: the dataset's name goes before the '?'")
        try:
            config[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            config[key] = value
    return dataset, config


def task_name(dataset: str, settings: dict[str, Any]) -> str:
    """The task string that `make_task` parses back to the same settings, when each value's
    repr is a Python literal (a setting given from Python as an enum, say, is shown but does
    not parse back)."""
    query = "&".join(f"{k}={v!r}" for k, v in sorted(settings.items()))
    return f"{PREFIX}{dataset}" + (f"?{query}" if query else "")


def reasoning_gym_task(
    dataset: str,
    n_train: int = DRAW_DEFAULTS["n_train"],
    n_eval: int = DRAW_DEFAULTS["n_eval"],
    seed: int = DRAW_DEFAULTS["seed"],
    **config: Any,
) -> Task:
    """A task of `n_train` + `n_eval` questions from reasoning-gym's `dataset`, seeded.

    Args:
        dataset: a reasoning-gym dataset name, e.g. "basic_arithmetic" or "leg_counting".
        n_train: training questions.
        n_eval: held-out questions (drawn after the training ones, from the same seed).
        seed: seeds the draw.
        config: the dataset's own settings (e.g. `min_terms=2, max_terms=3` for
            basic_arithmetic; see reasoning-gym's config class of each dataset).

    The task's name is the task string with every setting that differs from the defaults
    (`make_task(task.name)` rebuilds the task).
    """
    rg = require("reasoning_gym", "reasoning", f"task {PREFIX}{dataset}")
    for key, value in (("n_train", n_train), ("n_eval", n_eval), ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TextGenTypeError(
                f"Expects {key} to be an integer, got {type(value).__name__}: {value!r}"
            )
    if n_train < 1 or n_eval < 1:
        raise TextGenValueError(f"Expects n_train >= 1 and n_eval >= 1, got {n_train}, {n_eval}")
    # numpy scalars as Python ones: reasoning-gym seeds random.Random, and names show repr
    n_train, n_eval, seed = int(n_train), int(n_eval), int(seed)
    draw = {"n_train": n_train, "n_eval": n_eval, "seed": seed}
    config = {k: v.item() if isinstance(v, np.generic) else v for k, v in config.items()}
    try:
        data = rg.create_dataset(dataset, size=n_train + n_eval, seed=seed, **config)
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        # (reasoning-gym checks its settings with assert: an AssertionError is a bad setting)
        settings = f" with {config}" if config else ""
        raise TextGenValueError(
            f"reasoning-gym cannot make dataset {dataset!r}{settings}: {e}"
        ) from e
    entries = [data[i] for i in range(n_train + n_eval)]
    prompts = [f"{e['question'].strip()}\nAnswer:" for e in entries]
    changed = {k: v for k, v in draw.items() if v != DRAW_DEFAULTS[k]}
    return Task(
        name=task_name(dataset, {**config, **changed}),
        prompts=tuple(prompts[:n_train]),
        eval_prompts=tuple(prompts[n_train:]),
        references=tuple(entries[:n_train]),
        eval_references=tuple(entries[n_train:]),
        scorer="reasoning_gym",
        description=f"reasoning-gym {dataset}: graded by its own score_answer",
        max_prompt_tokens=192,  # long questions; the default model's context is 256
        max_new_tokens=16,
        chat=True,
    )


class ReasoningGymScorer(Scorer):
    """reasoning-gym's own grade of the answer (the completion's first non-empty line,
    stripped) against the question's entry, which the task gives as the reference. In [0, 1]."""

    name = "reasoning_gym"

    def score(self, prompts, completions, references=None, *, completion_ids=None) -> np.ndarray:
        if references is None or len(references) != len(completions):
            reference_list(self.name, references, len(completions))  # raises the clear error
        rg = require("reasoning_gym", "reasoning", "the reasoning_gym scorer")
        out = np.zeros(len(completions))
        for i, (c, entry) in enumerate(zip(completions, references, strict=True)):
            if not (isinstance(entry, dict) and "metadata" in entry):
                raise TextGenValueError(
                    "reasoning_gym scorer expects a reasoning-gym entry as reference (a dict with "
                    f"'question', 'answer', 'metadata'), got {entry!r:.80}"
                )
            answer = next((line.strip() for line in c.splitlines() if line.strip()), "")
            grade = rg.get_score_answer_fn(entry["metadata"]["source_dataset"])
            out[i] = float(grade(answer, entry))
        return np.clip(out, 0.0, 1.0)
