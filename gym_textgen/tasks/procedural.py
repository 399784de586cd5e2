"""Procedural tasks of any size, drawn from a seed: fast, exact tests for RL algorithms.

| task | prompt | reference | scorer |
| --- | --- | --- | --- |
| `copy` | `copy: red cat sun ->` | `red cat sun` | `word_match` |
| `reverse` | `reverse: red cat sun ->` | `sun cat red` | `word_match` |
| `arithmetic` | `12 + 35 =` | `47` | `numeric` |

The registered names use the defaults; call the factories for other sizes:

>>> from gym_textgen.tasks.procedural import copy_task
>>> task = copy_task(n_train=3, n_eval=1, length=2, seed=1)
>>> len(task.prompts), len(task.eval_prompts), task.prompts[0].startswith("copy: ")
(3, 1, True)
"""

from __future__ import annotations

import numpy as np

from gym_textgen.errors import TextGenValueError
from gym_textgen.tasks.task import Task

# Short everyday words (a tokenizer may split them: the tasks' max_new_tokens leaves room).
WORDS = (
    "red blue green cat dog sun moon tree house water book road fish bird cake milk "
    "rain snow door hand ship star king song game bread stone apple river cloud horse"
).split()


def _lengths(length: int | tuple[int, int]) -> tuple[int, int]:
    lo, hi = (length, length) if isinstance(length, int) else length
    if not 1 <= lo <= hi:
        raise TextGenValueError(f"Expects length >= 1 or (lo, hi) with 1 <= lo <= hi, got {length}")
    return lo, hi


def _split_sizes(n_train: int, n_eval: int, n_validation: int) -> None:
    if n_train < 1 or n_eval < 1 or n_validation < 1:
        raise TextGenValueError(
            f"Expects n_train, n_eval and n_validation >= 1, got {n_train}, {n_eval}, "
            f"{n_validation}"
        )


def _draw_distinct(draw, sizes: tuple[int, int, int], what: str) -> dict[str, tuple]:
    """Distinct (prompt, reference) pairs for the training, test and validation splits, in
    that order from one stream (so each split is the same whatever the later ones' sizes):
    the held-out ones are never trained on."""
    total = sum(sizes)
    items: dict[str, str] = {}
    for _ in range(50 * total + 1000):
        prompt, ref = draw()
        items.setdefault(prompt, ref)
        if len(items) == total:
            break
    else:
        raise TextGenValueError(
            f"{what}: only {len(items)} distinct prompts exist with these settings, expects "
            f"n_train + n_eval + n_validation = {total}; ask for fewer or widen the settings"
        )
    prompts, refs = (tuple(x) for x in zip(*items.items(), strict=True))
    a, b = sizes[0], sizes[0] + sizes[1]
    return dict(prompts=prompts[:a], references=refs[:a], eval_prompts=prompts[a:b],
                eval_references=refs[a:b], validation_prompts=prompts[b:],
                validation_references=refs[b:])  # fmt: skip


def _word_task(kind: str, n_train: int, n_eval: int, n_validation: int, length, seed: int) -> Task:
    _split_sizes(n_train, n_eval, n_validation)
    lo, hi = _lengths(length)
    rng = np.random.default_rng(seed)

    def draw() -> tuple[str, str]:
        ws = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(lo, hi + 1))]
        return f"{kind}: {' '.join(ws)} ->", " ".join(ws if kind == "copy" else ws[::-1])

    return Task(
        name=kind,
        **_draw_distinct(draw, (n_train, n_eval, n_validation), f"{kind}_task"),
        scorer="word_match",
        description=f"synthetic: {kind} the words after '{kind}:'; reward = words in place",
        max_prompt_tokens=6 * hi + 8,
        max_new_tokens=4 * hi + 2,  # room for tokenizers that split these words
    )


def copy_task(
    n_train: int = 512,
    n_eval: int = 64,
    length: int | tuple[int, int] = (2, 4),
    seed: int = 0,
    n_validation: int = 64,
) -> Task:
    """Repeat the prompt's words: `copy: red cat sun ->` expects ` red cat sun`.

    Args:
        n_train: training prompts.
        n_eval: held-out test prompts (drawn after the training ones, from the same seed).
        length: words per prompt, or a (lo, hi) range.
        seed: seeds the draw.
        n_validation: held-out validation prompts (drawn after the test ones).
    """
    return _word_task("copy", n_train, n_eval, n_validation, length, seed)


def reverse_task(
    n_train: int = 512,
    n_eval: int = 64,
    length: int | tuple[int, int] = (2, 4),
    seed: int = 0,
    n_validation: int = 64,
) -> Task:
    """Say the prompt's words backwards: `reverse: red cat sun ->` expects ` sun cat red`.

    Args: as `copy_task`.
    """
    return _word_task("reverse", n_train, n_eval, n_validation, length, seed)


def arithmetic_task(
    n_train: int = 512,
    n_eval: int = 64,
    max_operand: int = 50,
    ops: str = "+-",
    seed: int = 0,
    n_validation: int = 64,
) -> Task:
    """Exact integer arithmetic: `12 + 35 =` expects `47` (the first number of the completion).

    Args:
        n_train: training prompts.
        n_eval: held-out test prompts.
        max_operand: operands are drawn from [0, max_operand].
        ops: the operators to draw from, any of `+-*`.
        seed: seeds the draw.
        n_validation: held-out validation prompts (drawn after the test ones).
    """
    _split_sizes(n_train, n_eval, n_validation)
    if not ops or set(ops) - set("+-*"):
        raise TextGenValueError(f"Expects ops to be made of '+', '-' and '*', got {ops!r}")
    if max_operand < 1:
        raise TextGenValueError(f"Expects max_operand >= 1, got {max_operand}")
    rng = np.random.default_rng(seed)

    def draw() -> tuple[str, str]:
        a, b = (int(x) for x in rng.integers(0, max_operand + 1, 2))
        op = ops[int(rng.integers(len(ops)))]
        return f"{a} {op} {b} =", str(a + b if op == "+" else a - b if op == "-" else a * b)

    splits = _draw_distinct(draw, (n_train, n_eval, n_validation), "arithmetic_task")
    longest = len(str(max_operand * max_operand if "*" in ops else 2 * max_operand)) + 1
    return Task(
        name="arithmetic",
        **splits,
        scorer="numeric",
        description="exact integer arithmetic; reward = 1 if the first number is right",
        max_new_tokens=longest + 3,  # the answer's characters (a digit a token at worst) + room
    )
