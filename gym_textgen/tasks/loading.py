"""Your own data as a `Task`: prompts (and optional references) from a list, a file or a dataset.

| source | what it holds |
| --- | --- |
| a list of strings | prompts |
| a list of dicts | `{"prompt": ..., "reference": ..., "split": ...}` records (`reference`, `split` optional) |
| a `.txt` file | one prompt a line; blank lines and lines starting with `#` are skipped |
| a `.jsonl` file | one record (as above) a line |
| a Hugging Face `datasets.Dataset` | rows with a `prompt` column (and `reference`, `split`) |
| a `datasets.DatasetDict` | its `train`, `validation` and `test` splits (those it has) |

A record whose `split` is `"test"` or `"eval"` (any case) goes to the test split, one whose split
is `"validation"`, `"val"`, `"valid"` or `"dev"` to the validation split, one with `"train"`,
`"training"` or none to training; any other name is an error (held-out data is never trained on
by a typo).
Data with validation records but no test ones keeps them as the test split (the one that
`split="test"` evaluates), and the task then has no validation split. With no held-out records
the test split is the training split, unless `eval_fraction` holds some out (a seeded draw).
References are all or nothing: a reference for every record or for none.

>>> from gym_textgen.tasks import load_task
>>> task = load_task([{"prompt": "2+2=", "reference": "4"}, {"prompt": "3+4=", "reference": "7"}],
...                  scorer="numeric")
>>> task.prompts, task.references, task.scorer
(('2+2=', '3+4='), ('4', '7'), 'numeric')
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.tasks.reasoning import PREFIX as REASONING_GYM
from gym_textgen.tasks.task import Task

#: the names a record's `split` (or a DatasetDict's key) may have, any case, by the split they
#: name (an empty or missing `split` is training)
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "eval": "test",
               "validation": "val", "val": "val", "valid": "val", "dev": "val"}  # fmt: skip


def _split_of(name: Any) -> str | None:
    """ "train", "test" or "val" for a split's name (None: no name: training), or None when the
    name is none of `SPLIT_NAMES`."""
    if name is None or name == "":
        return "train"
    return SPLIT_NAMES.get(str(name).strip().lower())


SUFFIXES = (".txt", ".jsonl")


def is_task_file(spec: Any) -> bool:
    """Whether `spec` names a prompts file (`.txt` or `.jsonl`); a reasoning-gym task string
    never does (`reasoning_gym:spell_backward?data_file=words.txt` ends in .txt too)."""
    return (
        isinstance(spec, (str, os.PathLike))
        and str(spec).lower().endswith(SUFFIXES)
        and not str(spec).startswith(REASONING_GYM)
    )


def text_lines(text: str) -> list[str]:
    """`text`'s lines, split at "\\n" only (`Path.read_text` has already turned "\\r\\n" and
    "\\r" into "\\n").

    `str.splitlines` also splits at U+2028, U+2029, U+0085 and other separators that
    `json.dumps(..., ensure_ascii=False)` writes raw inside strings, so it cut valid JSONL records
    and `.txt` prompts in two.
    """
    return text.split("\n")


def _check_record(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise TextGenTypeError(
            f"{where}: expects a record {{'prompt': str, 'reference': ...}}, got "
            f"{type(record).__name__}: {record!r:.80}"
        )
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise TextGenValueError(
            f"{where}: expects a non-empty string under 'prompt', got {prompt!r:.80} "
            f"(keys: {sorted(record)})"
        )
    return record


def _read_file(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TextGenValueError(f"Expects a prompts file (.txt or .jsonl), {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not part of a prompt
    except UnicodeDecodeError as e:
        raise TextGenValueError(f"Expects {path} to be UTF-8 text: {e}") from None
    if path.suffix.lower() == ".txt":
        lines = [line for line in text_lines(text) if line.strip() and not line.startswith("#")]
        return [{"prompt": line} for line in lines]
    records = []
    for n, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TextGenValueError(f"{path}:{n}: expects one JSON object a line: {e}") from e
        records.append(_check_record(record, f"{path}:{n}"))
    return records


def _records(source: Any) -> tuple[list[dict[str, Any]], str]:
    """(records, a name) from any supported source."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if path.suffix.lower() not in SUFFIXES:
            raise TextGenValueError(
                f"Expects a prompts file ending in .txt or .jsonl, got {str(source)!r}"
            )
        return _read_file(path), path.stem
    if hasattr(source, "keys") and hasattr(source, "column_names"):  # a datasets.DatasetDict
        splits = list(source.keys())
        if "train" not in splits:
            raise TextGenValueError(f"Expects a DatasetDict with a 'train' split, got {splits}")
        if "prompt" not in source["train"].column_names:
            raise TextGenValueError(
                "Expects a dataset with a 'prompt' column, got columns "
                f"{source['train'].column_names}"
            )
        unknown = [n for n in splits if _split_of(n) is None]
        if unknown:
            raise TextGenValueError(
                f"Expects a DatasetDict's splits among {list(SPLIT_NAMES)}, got {unknown}"
            )
        records = [{**row, "split": name} for name in splits for row in source[name]]
        return records, "dataset"
    if hasattr(source, "column_names") and hasattr(source, "__iter__"):  # a datasets.Dataset
        if "prompt" not in source.column_names:
            raise TextGenValueError(
                f"Expects a dataset with a 'prompt' column, got columns {source.column_names}"
            )
        return list(source), "dataset"
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)) and source:
        records = [{"prompt": r} if isinstance(r, str) else r for r in source]
        return [_check_record(r, f"record {i}") for i, r in enumerate(records)], "custom"
    raise TextGenTypeError(
        "Expects prompts as a non-empty list of strings or records, a .txt/.jsonl path or a "
        f"datasets.Dataset, got {type(source).__name__}: {source!r:.80}"
    )


def load_task(
    source: Any,
    *,
    name: str | None = None,
    scorer: Any = None,
    eval_fraction: float = 0.0,
    seed: int = 0,
    description: str = "",
) -> Task:
    """A `Task` from your own prompts (see the module docstring for the sources).

    Args:
        source: the prompts: a list, a `.txt`/`.jsonl` path, or a `datasets` dataset.
        name: the task's name (default: the file's stem, or "custom").
        scorer: the default scorer spec; None picks `"chrf"` when there are references and
            `"sentiment"` when there are none.
        eval_fraction: the share of training records to hold out as the eval split when the
            data marks none (0: evaluate on the training prompts).
        seed: seeds the held-out draw.
        description: one line for humans.
    """
    records, default_name = _records(source)
    if not records:
        raise TextGenValueError(f"Expects at least one prompt, {source!r:.80} holds none")
    for i, record in enumerate(records):
        _check_record(record, f"record {i}")
    with_ref = [r.get("reference") is not None for r in records]
    if any(with_ref) and not all(with_ref):
        missing = with_ref.index(False)
        raise TextGenValueError(
            f"Expects a reference for every record or for none; record {missing} "
            f"({records[missing]['prompt']!r:.60}) has none, {sum(with_ref)} others have one"
        )
    if not 0.0 <= eval_fraction < 1.0:
        raise TextGenValueError(f"Expects 0 <= eval_fraction < 1, got {eval_fraction}")

    def split(record: dict[str, Any]) -> str:
        found = _split_of(record.get("split"))
        if found is None:  # a held-out record must never be trained on by a typo
            raise TextGenValueError(
                f"Expects a record's split among {list(SPLIT_NAMES)} (or none: training), got "
                f"{record.get('split')!r} for {record['prompt']!r:.60}"
            )
        return found

    train = [r for r in records if split(r) == "train"]
    held = [r for r in records if split(r) == "test"]
    validation = [r for r in records if split(r) == "val"]
    if validation and not held:  # one held-out split: the one to test on
        held, validation = validation, []
    if not train:
        raise TextGenValueError(
            f"Expects at least one training record, got {len(records)} records, all in the eval split"
        )
    if not held and eval_fraction > 0:
        n_eval = max(1, round(len(train) * eval_fraction))
        if n_eval >= len(train):
            raise TextGenValueError(
                f"eval_fraction={eval_fraction} of {len(train)} records leaves none to train on"
            )
        order = np.random.default_rng(seed).permutation(len(train))
        chosen = set(order[:n_eval].tolist())
        held = [r for i, r in enumerate(train) if i in chosen]
        train = [r for i, r in enumerate(train) if i not in chosen]
    refs = all(with_ref)
    return Task(
        name=name or default_name,
        prompts=tuple(r["prompt"] for r in train),
        eval_prompts=tuple(r["prompt"] for r in held),
        references=tuple(r["reference"] for r in train) if refs else None,
        eval_references=tuple(r["reference"] for r in held) if refs and held else None,
        validation_prompts=tuple(r["prompt"] for r in validation),
        validation_references=tuple(r["reference"] for r in validation)
        if refs and validation
        else None,
        scorer=scorer if scorer is not None else ("chrf" if refs else "sentiment"),
        description=description,
    )
