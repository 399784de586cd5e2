"""The errors gym-textgen raises on purpose.

Every one of them derives from `TextGenError`, so a program (the `textgen` CLI among them) can
tell bad input, a failing scorer or a broken run folder from a bug: catch `TextGenError` and show
its message; let anything else show its traceback. Each also derives from the built-in error a
Python user expects (`ValueError`, `TypeError`, ...), so `except ValueError` keeps working.

>>> import gymnasium as gym, gym_textgen
>>> try:
...     gym.make("TextGen-v0", max_new_tokens=0)
... except gym_textgen.TextGenError as e:
...     print(type(e).__name__, isinstance(e, ValueError), e)
TextGenValueError True Expects max_new_tokens to be an int >= 1 or None, got 0
"""

from __future__ import annotations


class TextGenError(Exception):
    """Base class of the errors that gym-textgen raises on purpose."""


class TextGenValueError(TextGenError, ValueError):
    """An argument, file or setting has a value that cannot work; the message says which."""


class TextGenTypeError(TextGenError, TypeError):
    """An argument has the wrong type; the message says what was expected and what arrived."""


class ScorerError(TextGenError, RuntimeError):
    """A scorer raised, timed out, or returned something other than one finite float per text."""


class ModelNotFoundError(TextGenValueError):
    """A model or tokenizer name that cannot be resolved offline."""


class DivergedError(TextGenError, FloatingPointError):
    """A policy's logits, probabilities or weights are NaN or infinite: training diverged (a
    learning rate too high, say). Sampling from them would return arbitrary ids that a scorer
    still pays, so it is refused; the message says where it happened."""


class MissingDependencyError(TextGenError, ImportError):
    """An optional library is not installed; the message gives the install command."""


def require(module: str, extra: str, what: str):
    """`import module`, or a `MissingDependencyError` naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} needs the {module!r} package, which is not installed: "
            f"pip install 'gym-textgen[{extra}]'"
        ) from e


__all__ = [
    "DivergedError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "ScorerError",
    "TextGenError",
    "TextGenTypeError",
    "TextGenValueError",
    "require",
]
