"""The tokens a tokenizer marks special, which an env never lets the policy write and never lets
inserted text spell (`gym_textgen.envs.core`, `gym_textgen.interactive.users`)."""

from __future__ import annotations

from typing import Any


def special_tokens_of(tokenizer: Any) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """The ids and strings of every token `tokenizer` marks special: its special tokens
    (`all_special_ids`) and the added tokens marked special (SmolLM2's `<file_sep>`,
    `<jupyter_output>`, ...: 14 more than `all_special_ids` lists)."""
    found = {int(i): str(t) for i, t in zip(tokenizer.all_special_ids,
                                             tokenizer.all_special_tokens, strict=False)}  # fmt: skip
    for i, added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(added, "special", False):
            found[int(i)] = str(getattr(added, "content", added))
    ids = tuple(sorted(found))
    return ids, tuple(found[i] for i in ids)
