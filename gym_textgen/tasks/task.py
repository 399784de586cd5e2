"""The `Task` record: prompts, references, splits and a default scorer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError


@dataclass(frozen=True)
class Task:
    """Prompts to continue, optional references, and the scorer used when none is given.

    Attributes:
        name: short identifier, shown in logs.
        prompts: training prompts; `reset()` draws one uniformly.
        eval_prompts: held-out test prompts, for evaluation (`split="test"`, or `"eval"`;
            defaults to `prompts`).
        references: one reference per training prompt (a string, a list of keywords, ...) or
            None; scorers receive it as their third argument.
        eval_references: the same for `eval_prompts`.
        validation_prompts: held-out prompts for choosing settings (`split="validation"`), so
            that tuning never sees the test prompts; every bundled task has them, disjoint
            from the other two splits. None here: `split="validation"` is an error.
        validation_references: the same for `validation_prompts`.
        scorer: the default scorer spec (see `gym_textgen.scorers.make_scorer`).
        description: one line for humans.
        max_prompt_tokens: the env's default `max_prompt_tokens` for this task (None: 24).
        max_new_tokens: the env's default `max_new_tokens` for this task (None: 32).
        template: how a prompt is shown to the model; `{prompt}` stands for the prompt (e.g.
            `"Question: {prompt}\nAnswer:"`).
        chat: wrap the templated prompt in the tokenizer's chat template when it has one, so an
            instruct model (`smollm2-135m`) reads its own format and a base model a plain prompt.
        interaction: a `gym_textgen.interactive.Interaction` makes the episodes interactive (an
            other party answers each of the policy's turns); None: one prompt, one completion.
    """

    name: str
    prompts: tuple[str, ...]
    eval_prompts: tuple[str, ...] = ()
    references: tuple[Any, ...] | None = None
    eval_references: tuple[Any, ...] | None = None
    scorer: Any = "sentiment"
    description: str = ""
    max_prompt_tokens: int | None = None
    max_new_tokens: int | None = None
    template: str = "{prompt}"
    chat: bool = False
    interaction: Any = None
    validation_prompts: tuple[str, ...] = ()
    validation_references: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if not self.eval_prompts:  # no eval split: evaluate on the training prompts
            object.__setattr__(self, "eval_prompts", self.prompts)
            if self.eval_references is None:
                object.__setattr__(self, "eval_references", self.references)
        elif self.references is not None and self.eval_references is None:
            raise TextGenValueError(
                f"Task {self.name!r}: has references for its training prompts but none for its "
                f"{len(self.eval_prompts)} eval_prompts; expects eval_references too"
            )
        object.__setattr__(self, "eval_prompts", tuple(self.eval_prompts))
        object.__setattr__(self, "validation_prompts", tuple(self.validation_prompts))
        if (
            self.validation_prompts
            and self.references is not None
            and (self.validation_references is None)
        ):
            raise TextGenValueError(
                f"Task {self.name!r}: has references for its training prompts but none for its "
                f"{len(self.validation_prompts)} validation_prompts; expects "
                "validation_references too"
            )
        if not self.prompts:
            raise TextGenValueError(f"Task {self.name!r} needs at least one prompt, got none")
        for prompts, refs, what in (
            (self.prompts, self.references, "references"),
            (self.eval_prompts, self.eval_references, "eval_references"),
            (self.validation_prompts, self.validation_references, "validation_references"),
        ):
            if refs is not None and len(refs) != len(prompts):
                raise TextGenValueError(
                    f"Task {self.name!r}: expects one of {what} per prompt "
                    f"({len(prompts)}), got {len(refs)}"
                )
        for key in ("max_prompt_tokens", "max_new_tokens"):
            value = getattr(self, key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise TextGenValueError(
                    f"Task {self.name!r}: expects {key} to be an int >= 1 or None, got {value!r}"
                )
        if not isinstance(self.template, str) or "{prompt}" not in self.template:
            raise TextGenValueError(
                f"Task {self.name!r}: expects a template holding '{{prompt}}', got {self.template!r}"
            )
        if self.interaction is not None:
            from gym_textgen.interactive import Interaction

            if not isinstance(self.interaction, Interaction):
                raise TextGenTypeError(
                    f"Task {self.name!r}: expects interaction to be an Interaction or None, got "
                    f"{type(self.interaction).__name__}"
                )
        for i, p in enumerate((*self.prompts, *self.validation_prompts)):
            if not isinstance(p, str):
                raise TextGenTypeError(
                    f"Task {self.name!r}: prompt {i} must be a str, got {type(p).__name__}"
                )

    def split(self, split: str) -> tuple[tuple[str, ...], tuple[Any, ...] | None]:
        """(prompts, references) of `split`: "train", "validation", or "test" (also "eval",
        its older name).

        Raises:
            TextGenValueError: an unknown split, or "validation" for a task without one.
        """
        if split == "train":
            return self.prompts, self.references
        if split in ("test", "eval"):
            return self.eval_prompts, self.eval_references
        if split != "validation":
            raise TextGenValueError(
                f"Expects split 'train', 'validation' or 'test' ('eval'), got {split!r}"
            )
        if not self.validation_prompts:
            raise TextGenValueError(
                f"Task {self.name!r} has no validation prompts: give it validation_prompts "
                "(records with split 'validation' in a task file), or evaluate on 'test'"
            )
        return self.validation_prompts, self.validation_references

    def reference(self, index: int, split: str = "train") -> Any:
        """The reference of prompt `index` in `split` (see `split`), or None."""
        refs = self.split(split)[1]
        return None if refs is None else refs[index]
