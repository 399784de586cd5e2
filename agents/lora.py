"""LoRA adapters on a causal LM's trunk (peft), chosen by module name and block index.

`TransformerExtractor(lora={...})` calls `inject` on its trunk; `adapters_off` is the frozen
base inside a block (the KL reference of a LoRA policy), `merged` the plain model with the
adapters folded in (what `save_pretrained` writes).
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterator
from typing import Any

from torch import nn

from gym_textgen.errors import TextGenValueError

#: peft LoraConfig fields that differ from peft's own defaults
DEFAULTS = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}


def lora_layer_modules(linear: list[str], targets: Any, layers: Any) -> list[str]:
    """The full names of the `targets` among `linear` module names that sit in transformer
    blocks `layers` (an index or a list; negative ones count from the last block).

    >>> lora_layer_modules(["layers.0.q", "layers.0.k", "layers.1.q"], ["q"], -1)
    ['layers.1.q']
    """
    if isinstance(targets, str):
        raise TextGenValueError(
            f"lora: layers_to_transform needs target_modules as a list of names, got the "
            f"pattern {targets!r}"
        )
    block = {}
    for name in linear:
        found = re.search(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.", name)
        if found:
            block[name] = int(found.group(1))
    n = max(block.values(), default=-1) + 1
    if not n:
        raise TextGenValueError(
            "lora: layers_to_transform needs numbered blocks (module names like "
            f"'layers.<i>.' or 'h.<i>.'), found none among {linear[:3]}"
        )
    wanted = [layers] if isinstance(layers, int) else layers
    if (
        not isinstance(wanted, list | tuple)
        or not wanted
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in wanted)
    ):
        raise TextGenValueError(
            f"lora: expects layers_to_transform to be a block index or a list of them, got "
            f"{layers!r}"
        )
    bad = [i for i in wanted if not -n <= i < n]
    if bad:
        raise TextGenValueError(
            f"lora: layers_to_transform {bad} out of range: the model has {n} blocks "
            f"(0..{n - 1}, or -{n}..-1 from the end)"
        )
    picked = {i % n for i in wanted}
    return [  # peft's own matching rule for a list of names: the name or its dotted suffix
        name
        for name in linear
        if block.get(name) in picked and any(name == t or name.endswith(f".{t}") for t in targets)
    ]


def inject(trunk: nn.Module, lm: nn.Module, settings: dict[str, Any]) -> None:
    """Add LoRA adapters (peft's `LoraConfig` fields in `settings`, over `DEFAULTS`) to `trunk`,
    the transformer inside `lm`, and leave only them trainable in `lm`.

    `layers_to_transform` picks blocks by index (negative: from the top) among the trunk's own
    module names; "all-linear" means every linear (or GPT-2 Conv1D) projection's name.
    """
    try:
        from peft import LoraConfig, inject_adapter_in_model
        from transformers.pytorch_utils import Conv1D
    except ImportError as e:
        raise ImportError("lora=... needs peft: pip install 'gym-textgen[lora]'") from e
    settings = {**DEFAULTS, **settings}
    # peft's layer selection looks for "<something>.layers.<i>." in module names, which the
    # trunk's own names ("layers.3.mlp.up_proj") never match: the layers are picked here
    layers = settings.pop("layers_to_transform", None)
    if layers is not None:
        settings.pop("layers_pattern", None)
    given = {**settings, "layers_to_transform": layers} if layers is not None else settings
    try:
        config = LoraConfig(**settings)
    except (TypeError, ValueError) as e:
        raise TextGenValueError(f"lora={given} is not a valid peft LoraConfig: {e}") from e
    linear = [  # GPT-2's projections are transformers' Conv1D, which peft adapts too
        name for name, m in trunk.named_modules() if isinstance(m, nn.Linear | Conv1D)
    ]
    if config.target_modules == "all-linear" or config.target_modules == {"all-linear"}:
        config.target_modules = sorted({name.rsplit(".", 1)[-1] for name in linear})
    if layers is not None:
        targets = config.target_modules
        config.target_modules = lora_layer_modules(linear, targets, layers)
        if not config.target_modules:
            raise TextGenValueError(
                f"lora: no module of target_modules {sorted(targets)} in blocks {layers}; "
                f"names are relative to the transformer trunk, e.g. {linear[:2]}"
            )
    try:
        inject_adapter_in_model(config, trunk)
    except (TypeError, ValueError) as e:  # peft checks r, alpha, ... only here
        raise TextGenValueError(f"lora={given} could not be applied: {e}") from e
    for name, p in lm.named_parameters():
        p.requires_grad = "lora_" in name


def adapter_layers(lm: nn.Module) -> list[nn.Module]:
    """The modules of `lm` that carry LoRA adapters."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in lm.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def adapters_off(lm: nn.Module) -> Iterator[None]:
    """Inside this block `lm` is its frozen base: every adapter is switched off."""
    layers = adapter_layers(lm)
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m in layers:
            m.enable_adapters(True)


def merged(lm: nn.Module) -> nn.Module:
    """A plain `transformers` copy of `lm` with its LoRA weights merged in."""
    copied = copy.deepcopy(lm)
    for module in copied.modules():
        if hasattr(module, "merge") and hasattr(module, "get_base_layer"):
            module.merge()
    state = {
        key.replace(".base_layer.", "."): value
        for key, value in copied.state_dict().items()
        if "lora_" not in key
    }
    plain = type(lm)(lm.config)
    plain.load_state_dict(state)
    return plain.eval()
