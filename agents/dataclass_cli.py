"""Dataclasses as YAML files and command-line flags: the generic layer under `TrainConfig`.

A field is a YAML key and a `--flag` (dashes for underscores), its docstring the flag's help;
values are type-checked with messages that name the field, what was expected and what arrived.
`textgen` and the examples use it (`parse_dataclass_args(Args)`, as CleanRL's `tyro.cli`); it
imports neither torch nor stable-baselines3.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import json
import re
import textwrap
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from gym_textgen.errors import TextGenTypeError, TextGenValueError


def at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise TextGenValueError(f"Expects {name} >= {low}, got {value}")


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether `value` fits the field type `hint` (int for float is fine; bool is not an int)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    origin = typing.get_origin(hint) or hint
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)


def _type_name(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace("NoneType", "null")


def check_types(obj: Any) -> None:
    """Raise a TextGenTypeError naming the field, its type and the value that arrived."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if not _type_ok(value, hints[f.name]):
            raise TextGenTypeError(
                f"Expects {f.name} to be {_type_name(hints[f.name])}, "
                f"got {type(value).__name__}: {value!r:.80}"
            )
        if hints[f.name] is float and isinstance(value, int):
            object.__setattr__(obj, f.name, float(value))


def unknown_keys_error(unknown: list[str], valid: list[str], what: str = "config key") -> str:
    """'Unknown config key(s) [...] (did you mean ...?); valid keys: [...]'."""
    hints = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
    maybe = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
    return f"Unknown {what}(s) {unknown}{maybe}; valid keys: {valid}"


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading `1e-4` as a float (YAML 1.2) rather than a string (1.1)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _unique_keys(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """A YAML mapping whose keys are all different: a key given twice (a task listed twice in a
    suite or hyperparameter file) would silently take the last entry."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_keys)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML file holds (`1e-4` read as a float), or a TextGenValueError that says
    where the file is wrong."""
    path = Path(path)
    if not path.is_file():
        why = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise TextGenValueError(f"Config file {path} {why}")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise TextGenValueError(f"Config file {path} is not valid YAML{at}: {problem}") from e
    if not isinstance(data, dict):
        raise TextGenValueError(
            f"Expects {path} to hold a mapping of config keys, got {type(data).__name__}"
        )
    return data


class ArgumentParser(argparse.ArgumentParser):
    """argparse without prefix matching, whose unknown-flag error suggests the nearest flag.

    `--timestep 5` is an error that names `--timesteps` (argparse would silently take it as
    `--timesteps`, and a typo in a longer flag could pick another one).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        ns, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(self._unknown_message(extra, ns))
        return ns

    def _unknown_message(self, extra: list[str], ns: argparse.Namespace) -> str:
        parser = self._chosen_subparser(ns)
        flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        for arg in extra:
            flag = arg.split("=", 1)[0]
            if flag.startswith("-"):
                near = difflib.get_close_matches(flag, flags, n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]}?" if near else f" (see {parser.prog} --help)"
                return f"unrecognized argument {flag}{hint}"
        return f"unrecognized arguments: {' '.join(extra)}"

    def _chosen_subparser(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                chosen = getattr(ns, action.dest, None)
                if chosen in action.choices:
                    sub = action.choices[chosen]
                    return sub._chosen_subparser(ns) if isinstance(sub, ArgumentParser) else sub
        return self


def field_docs(cls: type) -> dict[str, str]:
    """A dataclass's field docstrings (the string literal written under each field), its base
    dataclasses' included."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:  # a class defined in a notebook has no source file: no help text then
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        body = ast.parse(textwrap.dedent(source)).body[0].body
        for a, b in zip(body, body[1:], strict=False):
            if (
                isinstance(a, ast.AnnAssign)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
            ):
                docs[a.target.id] = str(b.value.value)
    return docs


def json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expects JSON, got {text!r} ({e})") from e


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--flag` per field of dataclass `cls` (default None: "not given"), help from its docstring.

    Fields whose default is a dict or None take JSON; bools take `--flag/--no-flag`.
    """
    docs = field_docs(cls)
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        help_ = docs.get(f.name, "") + f" (default: {default!r})"
        help_ = help_.replace("%", "%%")  # argparse %-formats help strings
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        elif isinstance(default, (int, float, str)):
            parser.add_argument(flag, type=type(default), help=help_)
        else:
            parser.add_argument(flag, type=json_value, help="JSON: " + help_)


#: in a Jupyter kernel (the course's notebooks), the flags `parse_dataclass_args` reads: the
#: kernel's own command line is not the lesson's (the notebook tests set tiny budgets here)
NOTEBOOK_ARGS = "TEXTGEN_NOTEBOOK_ARGS"


def _in_kernel() -> bool:
    import sys

    if "ipykernel" not in sys.modules:
        return False
    from ipykernel.kernelapp import IPKernelApp

    return IPKernelApp.initialized()


def parse_dataclass_args(cls: type, argv: list[str] | None = None, description: str = "") -> Any:
    """An instance of dataclass `cls` with fields overridden from the command line (in a
    Jupyter kernel: from the environment variable TEXTGEN_NOTEBOOK_ARGS, default none)."""
    if argv is None and _in_kernel():
        import os
        import shlex

        argv = shlex.split(os.environ.get(NOTEBOOK_ARGS, ""))
    parser = ArgumentParser(description=description)
    add_dataclass_flags(parser, cls)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return cls(**given)
