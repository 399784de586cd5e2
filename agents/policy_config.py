"""`PolicyConfig`: the transformer policy's settings, defined once.

The same fields are a policy's `policy_kwargs` (for every algorithm here), `TrainConfig`'s policy
settings (it inherits them: one YAML key and one `--flag` each) and what a saved policy stores.
No torch import: the config is checked before torch loads.

>>> PolicyConfig.split({"model": "random-tiny", "optimizer_kwargs": {"eps": 1e-5}})
(PolicyConfig(model='random-tiny', lora=None, separate_value_trunk=False, value_lr_scale=1.0, kv_cache=True, group_sequences=True, model_kwargs=None), {'optimizer_kwargs': {'eps': 1e-05}})
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from gym_textgen.errors import TextGenValueError


@dataclass
class PolicyConfig:
    """A transformer policy's settings (`agents.TransformerPolicy`, its maskable and DQN kin)."""

    model: Any = "default"
    """policy LM: default, random-tiny, smollm2-135m, a HF folder or a .gguf file (from Python
    also a transformers causal LM object, which becomes the actor and is pickled into the
    checkpoint: a name or folder makes smaller ones)"""
    lora: dict[str, Any] | None = None
    """LoRA settings (peft LoraConfig fields), e.g. {"r": 8}; None trains every weight"""
    separate_value_trunk: bool = False
    """give the value function its own copy of the LM trunk"""
    value_lr_scale: float = 1.0
    """the value head's learning rate as a multiple of learning_rate (a pretrained LM's small
    rate leaves a zero-initialised value head useless for hundreds of updates)"""
    kv_cache: bool = True
    """rollouts feed only each slot's new token to a per-slot KV cache (False: full forwards)"""
    group_sequences: bool = True
    """updates run one forward per episode in a minibatch (False: one per step, the reference)"""
    model_kwargs: dict[str, Any] | None = None
    """extra arguments for gym_textgen.models.load_model, e.g. {"seed": 1} for random-tiny"""

    def __post_init__(self) -> None:
        if not 0 < self.value_lr_scale < float("inf"):
            raise TextGenValueError(f"Expects value_lr_scale > 0, got {self.value_lr_scale}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names (the policy_kwargs keys)."""
        return tuple(f.name for f in fields(PolicyConfig))

    @classmethod
    def split(cls, kwargs: dict[str, Any]) -> tuple[PolicyConfig, dict[str, Any]]:
        """(the settings among `kwargs`, the other keyword arguments)."""
        names = cls.names()
        settings = PolicyConfig(**{k: v for k, v in kwargs.items() if k in names})
        return settings, {k: v for k, v in kwargs.items() if k not in names}

    def policy_kwargs(self) -> dict[str, Any]:
        """The settings as `policy_kwargs` (shallow: a model object stays itself); on a
        `TrainConfig`, its policy settings."""
        return {name: getattr(self, name) for name in self.names()}


__all__ = ["PolicyConfig"]
