"""The algorithms a grid names beside the registered ones (`VARIANTS`), and the random baseline."""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.registry import ALGORITHMS, algo_spec, training_function

# The variants --algos names beside the registered algorithms (agents.registry), each TrainConfig
# settings on top of the grid's own, under its hyperparameters (agents/hyperparams/<name>.yml).
VARIANTS: dict[str, dict[str, Any] | None] = {
    "random": None,  # a uniformly random policy over the allowed tokens: evaluated, not trained
    # NLPO-style: only the initial model's 20 likeliest next tokens are allowed (agents.masks)
    "maskable_ppo": {"algo": "maskable_ppo", "mask_top_k": 20},
    "reinforce": {"algo": "reinforce", "baseline": "none"},
    "reinforce-value": {"algo": "reinforce", "baseline": "value"},
    "reinforce-rloo": {"algo": "reinforce", "baseline": "rloo", "group_size": 4},
    "grpo": {"algo": "reinforce", "baseline": "rloo", "group_size": 4, "scale_by_std": True},
}


def bench_names() -> list[str]:
    """What --algos takes: the variants and every other registered algorithm by its name."""
    return sorted({*VARIANTS, *ALGORITHMS})


def variant(name: str) -> dict[str, Any] | None:
    """The settings --algos `name` trains with (None: the random baseline or a training
    function, which are not `textgen train` runs)."""
    if name in VARIANTS:
        return VARIANTS[name]
    return None if training_function(name) else {"algo": algo_spec(name).name}


class RandomAgent:
    """Uniformly random over the env's allowed ids, with SB3's `predict` signature."""

    def __init__(self, mask: np.ndarray, seed: int) -> None:
        self.allowed = np.flatnonzero(mask)
        self.rng = np.random.default_rng(seed)

    def predict(self, obs: Any, deterministic: bool = False, **_: Any) -> tuple[np.ndarray, None]:
        n = len(obs["input_ids"])
        return self.rng.choice(self.allowed, size=n), None
