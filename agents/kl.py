"""KL control to a frozen reference model, as an SB3 callback (stock algorithms, no fork).

Each step's reward gets the per-token penalty `-kl_coef * (log pi_old(a|s) - log pi_ref(a|s))`
(Ziegler et al. 2019, "Fine-Tuning Language Models from Human Preferences"; as in TRL and
RL4LMs). Summed over an episode it is `-kl_coef` times a sample of KL(pi || pi_ref), which keeps
the policy's text close to the pretrained model's instead of collapsing onto a few tokens that
please the scorer. The penalty is added after the rollout, in one batched pass of the reference
model over the buffer's episode segments, and advantages are recomputed; the algorithm itself is
untouched.

With `kl_coef_target`, kl_coef adapts (the proportional controller of Ziegler et al.): it grows
when the measured KL per episode exceeds the target and shrinks when it falls below.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor

from agents.fast import grouped_last_hidden
from gym_textgen.errors import TextGenValueError, deprecated

#: The attribute of the SB3 model that carries the controller's state, so that `model.save`
#: writes it into the checkpoint's JSON and `load` restores it (no file beside the checkpoint).
STATE_ATTR = "textgen_kl_state"


class KLPenaltyCallback(BaseCallback):
    """Penalise each step by `kl_coef` times the log-ratio of the policy to a frozen reference.

    Args:
        kl_coef: the penalty coefficient (beta in the papers; its start value when adaptive).
            0 disables the penalty but still logs the KL.
        kl_coef_target: the KL to the reference per episode (nats) that an adaptive kl_coef
            steers toward; None keeps kl_coef fixed. (Not PPO's `target_kl`, which stops an
            update's epochs early.) The controller multiplies kl_coef, so it needs a start > 0.
        horizon: environment steps over which the controller may change kl_coef by up to 20%;
            one rollout changes it by at most 20% however long it is.
        reference: the reference causal LM; by default a frozen copy of the policy's LM when
            training starts (for a LoRA policy, its frozen base).
        in_loss: instead of penalising the sampled tokens' log-ratios in the reward, add
            `kl_coef` times the exact KL of each step's whole next-token distribution to the
            loss (mean over the update's steps). The sampled penalty adds noise of the order of
            the reward itself once the policy has moved a few nats; the exact KL has none.
            Needs an algorithm that asks for it (`agents.algos.REINFORCE`). The update's exact
            KL is then what is logged and what the adaptive controller steers by (the rollout
            needs no reference pass of its own; the figures appear with the next rollout's
            row, as the update's `train/*` statistics do).
        beta, target_kl: deprecated names of kl_coef and kl_coef_target.

    Under action masks (MaskablePPO) the reference's distribution is renormalised over the same
    allowed ids as the policy's, so a policy equal to its reference has zero KL.

    The adaptive kl_coef is part of the run: it is stored on the model
    (`model.textgen_kl_state`), so it is saved with every checkpoint, and a callback with the
    same settings continues from it after `load`. The default reference is a copy of the policy
    when `learn` starts, which after a `load` is the trained policy: to keep penalising against
    the initial model, pass it (`reference=load_model(name)`), as `textgen train --resume` does.

    Logs `kl/ref_per_episode` (mean KL estimate per episode), `kl/ref_per_token` and
    `kl/coef`.
    """

    def __init__(
        self,
        kl_coef: float = 0.05,
        kl_coef_target: float | None = None,
        horizon: int = 10_000,
        reference: Any = None,
        *,
        in_loss: bool = False,
        beta: float | None = None,
        target_kl: float | None = None,
    ) -> None:
        super().__init__()
        if beta is not None:
            deprecated("KLPenaltyCallback(beta=...)", "KLPenaltyCallback(kl_coef=...)")
            kl_coef = beta
        if target_kl is not None:
            deprecated("KLPenaltyCallback(target_kl=...)", "KLPenaltyCallback(kl_coef_target=...)")
            kl_coef_target = target_kl
        if not 0 <= kl_coef < float("inf"):
            raise TextGenValueError(f"Expects kl_coef >= 0 (finite), got {kl_coef}")
        if kl_coef_target is not None and not 0 < kl_coef_target < float("inf"):
            raise TextGenValueError(f"Expects kl_coef_target > 0 or None, got {kl_coef_target}")
        if kl_coef_target is not None and kl_coef == 0:
            raise TextGenValueError(
                f"kl_coef_target={kl_coef_target} adapts kl_coef multiplicatively, so it never "
                "moves from kl_coef=0; give a starting kl_coef > 0 (e.g. kl_coef=0.05)"
            )
        if not horizon > 0:
            raise TextGenValueError(f"Expects horizon > 0 environment steps, got {horizon}")
        self.kl_coef, self.kl_coef_target, self.horizon = float(kl_coef), kl_coef_target, horizon
        self.initial_kl_coef = self.kl_coef
        self.reference: Any = reference
        self.in_loss = bool(in_loss)

    @property
    def beta(self) -> float:
        """Deprecated name of `kl_coef`."""
        deprecated("KLPenaltyCallback.beta", "KLPenaltyCallback.kl_coef")
        return self.kl_coef

    @beta.setter
    def beta(self, value: float) -> None:
        deprecated("KLPenaltyCallback.beta", "KLPenaltyCallback.kl_coef")
        self.kl_coef = float(value)

    @property
    def target_kl(self) -> float | None:
        """Deprecated name of `kl_coef_target`."""
        deprecated("KLPenaltyCallback.target_kl", "KLPenaltyCallback.kl_coef_target")
        return self.kl_coef_target

    @property
    def initial_beta(self) -> float:
        """Deprecated name of `initial_kl_coef`."""
        deprecated("KLPenaltyCallback.initial_beta", "KLPenaltyCallback.initial_kl_coef")
        return self.initial_kl_coef

    def _settings(self) -> dict[str, Any]:
        settings = {"initial_kl_coef": self.initial_kl_coef, "kl_coef_target": self.kl_coef_target}
        if self.in_loss:  # (absent otherwise, so states saved before it existed still match)
            settings["in_loss"] = True
        return settings

    def _on_training_start(self) -> None:
        policy = self.model.policy
        if self.in_loss:
            if not hasattr(self.model, "kl_loss"):
                raise TextGenValueError(
                    "KLPenaltyCallback(in_loss=True) needs an algorithm that adds the KL to its "
                    f"loss (agents.algos.REINFORCE), got {type(self.model).__name__}; use "
                    "in_loss=False to penalise the reward instead"
                )
            self.model.kl_loss = self
        if self.reference is None and not policy.lora:
            self.reference = copy.deepcopy(policy.lm).eval().requires_grad_(False)
        saved = getattr(self.model, STATE_ATTR, None)
        if isinstance(saved, dict) and "beta" in saved:  # saved before the 0.2 names
            old = saved.get("settings") or {}
            saved = {
                "kl_coef": saved["beta"],
                "settings": {
                    "initial_kl_coef": old.get("initial_beta"),
                    "kl_coef_target": old.get("target_kl"),
                },
            }
        if isinstance(saved, dict) and saved.get("settings") == self._settings():
            self.kl_coef = float(saved["kl_coef"])  # a resumed run continues its controller
        self._save_state()

    def _save_state(self) -> None:
        setattr(self.model, STATE_ATTR, {"kl_coef": self.kl_coef, "settings": self._settings()})

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if getattr(self.model, "kl_loss", None) is self:
            self.model.kl_loss = None

    @th.no_grad()
    def reference_log_softmax(
        self, ids: th.Tensor, lengths: th.Tensor, masks: th.Tensor | None = None
    ) -> th.Tensor:
        """The reference's next-token log-probabilities `(B, V)` for rows in episode order
        (with `masks`, renormalised over the allowed ids)."""
        policy = self.model.policy
        if self.reference is None:  # LoRA: the frozen base is the reference
            with policy.reference():
                hidden = grouped_last_hidden(policy.features_extractor.trunk, ids, lengths)
                logits = policy.action_net(hidden)
        else:
            hidden = grouped_last_hidden(self.reference.base_model, ids, lengths)
            logits = self.reference.get_output_embeddings()(hidden)  # (B, V)
        logits = logits.float()
        if masks is not None:
            logits = logits.masked_fill(~masks, float("-inf"))
        return th.log_softmax(logits, dim=-1)

    @th.no_grad()
    def reference_log_probs(
        self,
        ids: th.Tensor,
        lengths: th.Tensor,
        actions: th.Tensor,
        masks: th.Tensor | None = None,
    ) -> th.Tensor:
        """log pi_ref(action | observation) for rows given in episode order.

        With `masks` (`(B, V)`, True = allowed), the reference is renormalised over the allowed
        ids, as sb3-contrib's masked distribution renormalises the policy.
        """
        log_probs = self.reference_log_softmax(ids, lengths, masks)
        return log_probs.gather(1, actions[:, None]).squeeze(1)

    def _on_rollout_end(self) -> None:
        if self.in_loss:  # the update measures the exact KL and reports it: no pass needed here
            return
        model, buf = self.model, self.model.rollout_buffer
        n_steps, n_envs = buf.buffer_size, buf.n_envs
        device = model.device

        # SB3's own env-major flattening: consecutive rows are consecutive steps of one env,
        # so each episode segment forms a chain that grouped_last_hidden runs in one pass.
        flat = buf.swap_and_flatten
        # rows that are real steps: all of them, but for REINFORCE's rounds (agents.algos)
        valid = flat(getattr(buf, "valid", np.ones((n_steps, n_envs), np.float32)))[:, 0] > 0
        ids = th.as_tensor(flat(buf.observations["input_ids"])[valid], device=device).long()
        lengths = (
            th.as_tensor(flat(buf.observations["attention_mask"])[valid], device=device)
            .long()
            .sum(1)
        )
        actions = th.as_tensor(flat(buf.actions)[valid, 0], device=device).long()
        masks = None
        if getattr(buf, "action_masks", None) is not None:  # sb3-contrib's maskable buffers
            masks = th.as_tensor(flat(buf.action_masks)[valid], device=device) > 0.5  # (B, V)
        ref = np.zeros(n_steps * n_envs, dtype=np.float32)
        ref[valid] = self.reference_log_probs(ids, lengths, actions, masks).cpu().numpy()
        ref = ref.reshape(n_envs, n_steps).T
        # (n_steps, n_envs): a sample of the per-token KL, 0 on rows that are not steps
        log_ratio = (buf.log_probs - ref) * valid.reshape(n_envs, n_steps).T
        buf.rewards -= self.kl_coef * log_ratio
        # The value of the observation after the rollout and whether it starts a new episode,
        # as the algorithm computed them (sb3-contrib's MaskablePPO leaves self.locals stale).
        with th.no_grad():
            last_values = model.policy.predict_values(obs_as_tensor(model._last_obs, device))
        buf.compute_returns_and_advantage(last_values=last_values, dones=model._last_episode_starts)

        episodes = max(1.0, float((buf.episode_starts * valid.reshape(n_envs, n_steps).T).sum()))
        steps = max(1, int(valid.sum()))
        self.update_measured(
            float(log_ratio.sum()) / episodes, float(log_ratio.sum()) / steps, steps
        )

    def update_measured(self, kl_per_episode: float, kl_per_token: float, steps: int) -> None:
        """Log one rollout's KL to the reference, measured on `steps` steps, and adapt kl_coef
        toward the target. The sampled penalty calls it at the rollout's end; an algorithm that
        adds the KL to its loss (`in_loss=True`) calls it with the exact KL its update measured."""
        self.logger.record("kl/ref_per_episode", kl_per_episode)
        self.logger.record("kl/ref_per_token", kl_per_token)
        self.logger.record("kl/coef", self.kl_coef)
        if self.kl_coef_target is not None:
            # Ziegler et al.'s proportional controller: error clipped to +-20%, scaled by the
            # steps this rollout covers, and at most one horizon's worth per rollout, so kl_coef
            # stays positive however long the rollout is.
            error = float(np.clip(kl_per_episode / self.kl_coef_target - 1.0, -0.2, 0.2))
            self.kl_coef *= 1.0 + error * min(1.0, steps / self.horizon)
            self._save_state()
