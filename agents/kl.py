"""KL control to a frozen reference model, as an SB3 callback (stock algorithms, no fork).

Each step's reward gets the per-token penalty `-beta * (log pi_old(a|s) - log pi_ref(a|s))`
(Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences"; as in TRL and
RL4LMs). Summed over an episode it is `-beta` times a sample of KL(pi || pi_ref), which keeps
the policy's text close to the pretrained model's instead of collapsing onto a few tokens that
please the scorer. The penalty is added after the rollout, in one batched pass of the reference
model over the buffer's episode segments, and advantages are recomputed; the algorithm itself is
untouched.

With `target_kl`, beta adapts (the proportional controller of Ziegler et al.): it grows when the
measured KL per episode exceeds the target and shrinks when it falls below.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from agents.fast import grouped_last_hidden


class KLPenaltyCallback(BaseCallback):
    """Penalise each step by `beta` times the log-ratio of the policy to a frozen reference.

    Args:
        beta: initial penalty coefficient (0 disables the penalty but still logs the KL).
        target_kl: KL per episode (nats) to steer towards by adapting beta; None keeps beta.
        horizon: environment steps over which the controller may change beta by about 20%.
        reference: the reference causal LM; by default a frozen copy of the policy's LM when
            training starts (for a LoRA policy, its frozen base).

    Logs `textgen/kl_ref` (mean KL estimate per episode), `textgen/kl_per_token` and
    `textgen/beta`.
    """

    def __init__(
        self,
        beta: float = 0.05,
        target_kl: float | None = None,
        horizon: int = 10_000,
        reference: Any = None,
    ) -> None:
        super().__init__()
        if beta < 0:
            raise ValueError(f"Expects beta >= 0, got {beta}")
        if target_kl is not None and target_kl <= 0:
            raise ValueError(f"Expects target_kl > 0 or None, got {target_kl}")
        self.beta, self.target_kl, self.horizon = float(beta), target_kl, horizon
        self.reference: Any = reference

    def _on_training_start(self) -> None:
        policy = self.model.policy
        if self.reference is None and not policy.lora:
            self.reference = copy.deepcopy(policy.lm).eval().requires_grad_(False)

    def _on_step(self) -> bool:
        return True

    @th.no_grad()
    def reference_log_probs(
        self, ids: th.Tensor, lengths: th.Tensor, actions: th.Tensor
    ) -> th.Tensor:
        """log pi_ref(action | observation) for rows given in episode order."""
        policy = self.model.policy
        if self.reference is None:  # LoRA: the frozen base is the reference
            with policy.reference():
                hidden = grouped_last_hidden(policy.features_extractor.trunk, ids, lengths)
                logits = policy.action_net(hidden)
        else:
            hidden = grouped_last_hidden(self.reference.base_model, ids, lengths)
            logits = self.reference.get_output_embeddings()(hidden)
        return th.log_softmax(logits.float(), dim=-1).gather(1, actions[:, None]).squeeze(1)

    def _on_rollout_end(self) -> None:
        buf = self.model.rollout_buffer
        n_steps, n_envs = buf.buffer_size, buf.n_envs
        device = self.model.device

        # SB3's own env-major flattening: consecutive rows are consecutive steps of one env,
        # so each episode segment forms a chain that grouped_last_hidden runs in one pass.
        flat = buf.swap_and_flatten
        ids = th.as_tensor(flat(buf.observations["input_ids"]), device=device).long()
        lengths = (
            th.as_tensor(flat(buf.observations["attention_mask"]), device=device).long().sum(1)
        )
        actions = th.as_tensor(flat(buf.actions)[:, 0], device=device).long()
        ref = (
            self.reference_log_probs(ids, lengths, actions).cpu().numpy().reshape(n_envs, n_steps).T
        )
        log_ratio = buf.log_probs - ref  # (n_steps, n_envs): a sample of the per-token KL
        buf.rewards -= self.beta * log_ratio
        buf.compute_returns_and_advantage(
            last_values=self.locals["values"], dones=self.locals["dones"]
        )

        episodes = max(1.0, float(buf.episode_starts.sum()))
        kl_episode = float(log_ratio.sum()) / episodes
        self.logger.record("textgen/kl_ref", kl_episode)
        self.logger.record("textgen/kl_per_token", float(log_ratio.mean()))
        self.logger.record("textgen/beta", self.beta)
        if self.target_kl is not None:
            error = float(np.clip(kl_episode / self.target_kl - 1.0, -0.2, 0.2))
            self.beta *= 1.0 + error * n_steps * n_envs / self.horizon
