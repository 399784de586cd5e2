"""SB3's categorical distributions with a faster sampler for language-model vocabularies.

`torch.distributions.Categorical.sample` calls `torch.multinomial`, which on a CPU costs about
42 ms per step for 32 rows over SmolLM2's 49,152 tokens (0.7 ms over 514): more than the
model's own one-token forward. Inverse-CDF sampling draws from the same law in a few ms: the
cumulative sum of the probabilities, one uniform draw per row in (0, total], and a binary search
for the first index whose cumulative mass reaches it. Ids with zero probability (masked) are
never drawn. `benchmarks/rollout_speed.py` measures the effect on whole rollouts.

The sums run in float64. A float32 cumulative sum over thousands of ids carries rounding errors
of about 1e-5, and the last bits of float32 probabilities differ between CPUs (AVX2 and AVX-512
kernels of `exp` and of the matrix products behind the logits); a uniform draw that lands
between two CPUs' versions of a boundary picks another token there, and one token changes the
whole rest of an episode. In float64 the same logits give the same token unless the logits
themselves differ at that boundary (`benchmarks/cpu_divergence.py` measures both).

Logits that are NaN or infinite, or a row with no allowed id, raise `DivergedError` (the
searchsorted of a NaN cumulative sum would return the last id every time, and a scorer would
still pay for the text). The distributions are built without argument validation (a Simplex
check on every step) otherwise: their logits come from the policy's own head and mask.
"""

from __future__ import annotations

import torch as th
from sb3_contrib.common.maskable.distributions import (
    MaskableCategorical,
    MaskableCategoricalDistribution,
)
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical

from gym_textgen.errors import DivergedError


def check_finite_rows(total: th.Tensor, what: str, positive: bool = False) -> None:
    """Raise `DivergedError` unless every row's `total` (a reduction over its ids, `(B, 1)` or
    `(B,)`: NaN or inf when one of them is) is finite, and > 0 when `positive` (a sum of
    probabilities: 0 when every id is masked)."""
    bad = ~th.isfinite(total)
    if positive:
        bad |= total <= 0
    if bool(bad.any()):
        rows = th.nonzero(bad.reshape(-1)).reshape(-1).tolist()
        raise DivergedError(
            f"Expects finite {what} with some allowed id in every row, got NaN, inf or no "
            f"allowed id in rows {rows[:8]}{' ...' if len(rows) > 8 else ''} of {total.shape[0]}: "
            "the policy diverged (NaN or inf weights or logits)"
        )


def sample_categorical(log_probs: th.Tensor) -> th.Tensor:
    """One id per row of `(B, V)` normalised log-probabilities, by inverse CDF in float64.

    Raises:
        DivergedError: a row's probabilities are NaN or infinite, or all zero.
    """
    device = log_probs.device
    work = "cpu" if device.type == "mps" else device  # MPS has no float64
    cdf = log_probs.detach().to(work, th.float64).exp().cumsum(dim=-1)  # (B, V)
    total = cdf[:, -1:]
    check_finite_rows(total, "action probabilities", positive=True)
    u = (1.0 - th.rand(total.shape, device=cdf.device, dtype=th.float64)) * total  # (0, total]
    ids = th.searchsorted(cdf, u).squeeze(1).clamp_max(cdf.shape[1] - 1)
    return ids.to(device)


def greedy_categorical(logits: th.Tensor) -> th.Tensor:
    """The likeliest id of each row of `(B, V)` logits (`deterministic=True`).

    Raises:
        DivergedError: a row holds NaN or +inf, or is -inf everywhere.
    """
    check_finite_rows(th.logsumexp(logits.detach().float(), dim=-1), "action logits")
    return th.argmax(logits, dim=-1)


class FastCategoricalDistribution(CategoricalDistribution):
    """`CategoricalDistribution` with inverse-CDF sampling and no per-step validation."""

    def proba_distribution(self, action_logits: th.Tensor) -> FastCategoricalDistribution:
        self.distribution = Categorical(logits=action_logits, validate_args=False)
        return self

    def sample(self) -> th.Tensor:
        return sample_categorical(self.distribution.logits)

    def mode(self) -> th.Tensor:
        return greedy_categorical(self.distribution.logits)


class FastMaskableCategoricalDistribution(MaskableCategoricalDistribution):
    """sb3-contrib's `MaskableCategoricalDistribution` with inverse-CDF sampling."""

    def proba_distribution(self, action_logits: th.Tensor) -> FastMaskableCategoricalDistribution:
        logits = action_logits.view(-1, self.action_dim)
        self.distribution = MaskableCategorical(logits=logits, validate_args=False)
        return self

    def sample(self) -> th.Tensor:
        return sample_categorical(self.distribution.logits)

    def mode(self) -> th.Tensor:
        return greedy_categorical(self.distribution.logits)


__all__ = [
    "FastCategoricalDistribution",
    "FastMaskableCategoricalDistribution",
    "check_finite_rows",
    "greedy_categorical",
    "sample_categorical",
]
