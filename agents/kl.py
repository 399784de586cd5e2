"""KL control to a frozen reference model: the reference, the controller, and a reward penalty.

Three pieces, each used by the algorithms as they need:

* `KLReference`: the frozen model a policy's KL is measured against (the policy's initial LM; a
  LoRA policy's frozen base), with its next-token log-probabilities for rows of token ids.
* `KLController`: `kl_coef`, fixed or adapted toward a KL per episode by Ziegler et al.'s
  proportional controller: it grows when the measured KL per episode exceeds `kl_coef_target`
  and shrinks when it falls below; it logs `kl/ref_per_episode`, `kl/ref_per_token`, `kl/coef`.
* `KLPenaltyCallback`: for stock PPO, A2C and MaskablePPO, each step's reward gets the per-token
  penalty `-kl_coef * (log pi_old(a|s) - log pi_ref(a|s))` (Ziegler et al. 2019, "Fine-Tuning
  Language Models from Human Preferences"; as in TRL and RL4LMs). Summed over an episode it is
  `-kl_coef` times a sample of KL(pi || pi_ref), which keeps the policy's text close to the
  pretrained model's instead of collapsing onto a few tokens that please the scorer. The penalty
  is added after the rollout, in one batched pass of the reference over the buffer's episode
  segments, and advantages are recomputed; the algorithm itself is untouched.

`agents.algos.REINFORCE` takes `kl_coef`, `kl_coef_target` and a reference itself (as TRL's
trainers take `beta`) and adds `kl_coef` times the exact KL of each step's next-token
distribution to its loss, with the same reference and controller.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import obs_as_tensor

from agents.fast import grouped_last_hidden
from gym_textgen.errors import TextGenValueError

#: The attribute of the SB3 model that carries the penalty callback's controller state, so that
#: `model.save` writes it into the checkpoint's JSON and `load` restores it.
STATE_ATTR = "textgen_kl_state"
#: the model attribute that carries the per-episode KL of the episodes in progress (SB3 saves a
#: model's attributes: a checkpoint holds it, so an exact resume continues those episodes' sums)
CARRY_ATTR = "textgen_kl_carry"


class KLReference:
    """The frozen model that a policy's KL is measured against.

    Args:
        policy: the `agents.TransformerPolicy` being trained.
        model: the reference causal LM; None: a frozen copy of the policy's LM as it is now (a
            LoRA policy: its frozen base, through `policy.reference()`, with no copy). A model
            given here is left as it is (its gradients and train mode are yours), unless it
            shares weights with the policy, which would move it as the policy trains: then the
            reference is a frozen copy of it.

    Under action masks (MaskablePPO) the reference's distribution is renormalised over the same
    allowed ids as the policy's, so a policy equal to its reference has zero KL.
    """

    def __init__(self, policy: Any, model: Any = None) -> None:
        self.policy = policy
        if model is not None:
            policy_weights = {id(p) for p in policy.parameters()}
            if any(id(p) in policy_weights for p in model.parameters()):
                model = copy.deepcopy(model).requires_grad_(False)
        elif not policy.lora:
            model = copy.deepcopy(policy.lm).requires_grad_(False)
        self.model = model

    @th.no_grad()
    def log_softmax(
        self, ids: th.Tensor, lengths: th.Tensor, masks: th.Tensor | None = None
    ) -> th.Tensor:
        """The reference's next-token log-probabilities `(B, V)` for rows in episode order
        (with `masks`, `(B, V)` True = allowed, renormalised over the allowed ids)."""
        if self.model is None:  # LoRA: the frozen base is the reference
            with self.policy.reference():
                hidden = grouped_last_hidden(self.policy.features_extractor.trunk, ids, lengths)
                logits = self.policy.action_net(hidden)
        else:
            training = self.model.training
            self.model.eval()  # no dropout in the reference
            try:
                hidden = grouped_last_hidden(self.model.base_model, ids, lengths)
                logits = self.model.get_output_embeddings()(hidden)  # (B, V)
            finally:
                self.model.train(training)
        logits = logits.float()
        if masks is not None:
            logits = logits.masked_fill(~masks, float("-inf"))
        return th.log_softmax(logits, dim=-1)

    def log_probs(
        self,
        ids: th.Tensor,
        lengths: th.Tensor,
        actions: th.Tensor,
        masks: th.Tensor | None = None,
    ) -> th.Tensor:
        """log pi_ref(action | observation) for rows given in episode order."""
        return self.log_softmax(ids, lengths, masks).gather(1, actions[:, None]).squeeze(1)


class KLController:
    """`kl_coef`, fixed or adapted toward a KL per episode (Ziegler et al.'s controller).

    Args:
        kl_coef: the penalty coefficient (beta in the papers; its start value when adaptive).
            0 disables the penalty but still logs the KL.
        kl_coef_target: the KL to the reference per episode (nats) that an adaptive kl_coef
            steers toward; None keeps kl_coef fixed. (Not PPO's `target_kl`, which stops an
            update's epochs early.) The controller multiplies kl_coef, so it needs a start > 0.
        kl_horizon: environment steps over which the controller may change kl_coef by up to
            20%; one step of it changes kl_coef by at most 20% however many steps it covers.

    Its state (`state()`, `restore(state)`) is part of a run: an algorithm saves it with every
    checkpoint, and a resumed run continues from it.
    """

    def __init__(
        self, kl_coef: float, kl_coef_target: float | None = None, kl_horizon: int = 10_000
    ) -> None:
        if not 0 <= kl_coef < float("inf"):
            raise TextGenValueError(f"Expects kl_coef >= 0 (finite), got {kl_coef}")
        if kl_coef_target is not None and not 0 < kl_coef_target < float("inf"):
            raise TextGenValueError(f"Expects kl_coef_target > 0 or None, got {kl_coef_target}")
        if kl_coef_target is not None and kl_coef == 0:
            raise TextGenValueError(
                f"kl_coef_target={kl_coef_target} adapts kl_coef multiplicatively, so it never "
                "moves from kl_coef=0; give a starting kl_coef > 0 (e.g. kl_coef=0.05)"
            )
        if not kl_horizon > 0:
            raise TextGenValueError(f"Expects kl_horizon > 0 environment steps, got {kl_horizon}")
        self.kl_coef, self.kl_coef_target = float(kl_coef), kl_coef_target
        self.kl_horizon = kl_horizon
        self.initial_kl_coef = self.kl_coef
        #: environment steps measured since the controller last moved (a rollout in which no
        #: episode ended gives it no KL per episode to steer by)
        self.pending_steps = 0

    def settings(self) -> dict[str, Any]:
        """What a saved state must match to be restored."""
        return {"initial_kl_coef": self.initial_kl_coef, "kl_coef_target": self.kl_coef_target}

    def state(self) -> dict[str, Any]:
        """The controller's state, JSON-serialisable."""
        return {
            "kl_coef": self.kl_coef,
            "settings": self.settings(),
            "pending_steps": self.pending_steps,
        }

    def restore(self, state: Any) -> None:
        """Continue from `state` (a `state()`) when it was saved with the same settings."""
        if isinstance(state, dict) and state.get("settings") == self.settings():
            self.kl_coef = float(state["kl_coef"])
            self.pending_steps = int(state.get("pending_steps", 0))

    def measured(
        self, logger: Any, kl_per_episode: float | None, kl_per_token: float, steps: int
    ) -> None:
        """Log a KL to the reference measured on `steps` steps, then adapt kl_coef toward the
        target.

        Args:
            logger: the SB3 logger.
            kl_per_episode: the mean KL of the whole episodes measured, or None when no episode
                ended: then it is not logged and the controller waits, and its next step covers
                these steps too.
            kl_per_token: the KL per step.
            steps: the steps measured.
        """
        if kl_per_episode is not None:
            logger.record("kl/ref_per_episode", kl_per_episode)
        logger.record("kl/ref_per_token", kl_per_token)
        logger.record("kl/coef", self.kl_coef)
        self.pending_steps += steps
        if self.kl_coef_target is not None and kl_per_episode is not None:
            # Ziegler et al.'s proportional controller: error clipped to +-20%, scaled by the
            # steps measured since its last step, and at most one horizon's worth per step, so
            # kl_coef stays positive however long the rollout is.
            error = float(np.clip(kl_per_episode / self.kl_coef_target - 1.0, -0.2, 0.2))
            self.kl_coef *= 1.0 + error * min(1.0, self.pending_steps / self.kl_horizon)
        if kl_per_episode is not None:  # the controller has used (or, with no target, had) them
            self.pending_steps = 0


class KLPenaltyCallback(BaseCallback):
    """Penalise each step's reward by `kl_coef` times the log-ratio of the policy to a frozen
    reference (PPO, A2C, MaskablePPO; REINFORCE too, though its own `kl_coef` puts the exact KL
    in its loss instead).

    Args:
        kl_coef, kl_coef_target, kl_horizon: the `KLController`'s (the callback's attributes of
            the same names read it; `kl_coef` may be set).
        reference: the reference causal LM; by default a frozen copy of the policy's LM when
            training first starts (for a LoRA policy, its frozen base). The callback keeps it:
            a later `learn`, on this model or a loaded one, penalises against the same model.

    The adaptive kl_coef is part of the run: its state is stored on the model
    (`model.textgen_kl_state`), so it is saved with every checkpoint, and a callback with the
    same settings continues from it after `load`. The default reference is a copy of the policy
    when `learn` starts, which after a `load` is the trained policy: to keep penalising against
    the initial model, pass it (`reference=load_model(name)`), as `textgen train --resume` does.
    Its attributes: `reference` (the LM), `kl` (the `KLReference` built from it), `controller`.

    Logs `kl/ref_per_token` (the rollout's sampled KL per used step), `kl/coef`, and
    `kl/ref_per_episode`: the mean over the episodes that ended in this rollout of each one's
    whole KL (the sum of its steps' log-ratios, each measured when the step was sampled). An
    episode may span rollouts (stock PPO with `n_steps` shorter than an episode, or any episode
    that straddles a rollout's end), so the callback carries each env slot's sum for the episode
    in progress from one rollout to the next, and counts an episode when it ends: at a row whose
    next row starts an episode (or, for the rollout's last row, when the algorithm's
    `_last_episode_starts` says the next observation starts one) or, in a buffer with `valid`
    rows (REINFORCE's rounds), whose next row is not a step of a used episode. A rollout in
    which no episode ended logs no `kl/ref_per_episode` and moves no controller; the next step
    of the controller covers the steps of the rollouts in between (its `kl_horizon` rate is per
    environment step).

    An episode is only counted if the callback saw all of it: episodes already in progress when
    it first sees a model (a new callback, or rollouts in between that ran without it) are left
    out of the per-episode figure, though their steps count per token. The carried sums travel
    on the model too (`CARRY_ATTR`, in every checkpoint), so a run resumed exactly
    (`agents.resume`: its open episodes restored) continues them as the straight run does.
    """

    def __init__(
        self,
        kl_coef: float = 0.05,
        kl_coef_target: float | None = None,
        kl_horizon: int = 10_000,
        reference: Any = None,
    ) -> None:
        super().__init__()
        self.controller = KLController(kl_coef, kl_coef_target, kl_horizon)
        self.reference: Any = reference
        self.kl: KLReference | None = None  # built when training starts
        # each env slot's KL so far of the episode in progress (NaN: it started before this
        # callback saw the slot), valid for `_carry_model` from timestep `_carry_at` on
        self._episode_kl: np.ndarray | None = None
        self._carry_model: Any = None
        self._carry_at = -1
        self._rollout_start_at = -1

    @property
    def kl_coef(self) -> float:
        """The controller's current kl_coef (settable: the controller continues from it)."""
        return self.controller.kl_coef

    @kl_coef.setter
    def kl_coef(self, value: float) -> None:
        if not 0 <= value < float("inf"):
            raise TextGenValueError(f"Expects kl_coef >= 0 (finite), got {value}")
        self.controller.kl_coef = float(value)

    @property
    def kl_coef_target(self) -> float | None:
        """The controller's target KL per episode (None: kl_coef is fixed)."""
        return self.controller.kl_coef_target

    @property
    def initial_kl_coef(self) -> float:
        """kl_coef as given."""
        return self.controller.initial_kl_coef

    @property
    def kl_horizon(self) -> int:
        """The controller's horizon in environment steps."""
        return self.controller.kl_horizon

    def _on_training_start(self) -> None:
        if not hasattr(self.model, "rollout_buffer"):
            raise TextGenValueError(
                "KLPenaltyCallback penalises the steps of an on-policy rollout (PPO, A2C, "
                f"MaskablePPO, REINFORCE); got {type(self.model).__name__}, which has no rollout "
                "buffer (DQN learns from a replay buffer)"
            )
        if getattr(self.model, "kl_coef", 0) and getattr(self.model, "kl", None) is not None:
            raise TextGenValueError(
                f"{type(self.model).__name__} has a KL of its own in its loss "
                f"(kl_coef={self.model.kl_coef}); with KLPenaltyCallback too the KL would count "
                "twice: use one of them"
            )
        if self.kl is None or self.kl.policy is not self.model.policy:
            self.kl = KLReference(self.model.policy, self.reference)
            if self.reference is None:  # keep the first copy: a later learn uses the same
                self.reference = self.kl.model
        self.controller.restore(getattr(self.model, STATE_ATTR, None))  # a resumed run
        setattr(self.model, STATE_ATTR, self.controller.state())
        carried = getattr(self.model, CARRY_ATTR, None)
        if self._episode_kl is None and carried is not None:  # a loaded model's open episodes
            self._episode_kl, self._carry_at = np.asarray(carried["kl"]), int(carried["at"])
            self._carry_model = self.model

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        self._rollout_start_at = self.model.num_timesteps

    def _carried_episode_kl(self, n_envs: int) -> np.ndarray:
        """Each slot's KL so far of its episode in progress, if this rollout continues the one
        the callback last measured on this model; NaN (unknown) for slots it cannot vouch for."""
        carry = self._episode_kl
        if (
            carry is None
            or self._carry_model is not self.model
            or self._carry_at != self._rollout_start_at
            or len(carry) != n_envs
        ):
            return np.full(n_envs, np.nan)
        return carry.copy()

    def _whole_episode_kls(
        self,
        log_ratio: np.ndarray,
        episode_starts: np.ndarray,
        valid: np.ndarray,
        last_episode_starts: np.ndarray,
    ) -> np.ndarray:
        """The KL (float64) of each episode that ended in this rollout, and carry the episodes in
        progress to the next rollout.

        Args:
            log_ratio: `(n_steps, n_envs)`: each row's sampled log-ratio (0 on rows not used).
            episode_starts: `(n_steps, n_envs)`: whether the row starts an episode.
            valid: `(n_steps, n_envs)`: whether the row is a step of a used episode.
            last_episode_starts: `(n_envs,)`: whether the observation after the last row starts
                an episode.

        Returns:
            The whole episodes' KL sums, in no particular order (episodes that began before the
            callback saw their slot are left out).
        """
        n_steps, n_envs = log_ratio.shape
        used = valid > 0
        starts = episode_starts > 0
        next_starts = np.concatenate([starts[1:], np.asarray(last_episode_starts, bool)[None]])
        next_used = np.concatenate([used[1:], np.ones((1, n_envs), bool)])
        ends = used & (next_starts | ~next_used)
        carry = self._carried_episode_kl(n_envs)
        totals = []
        for t in range(n_steps):
            carry = np.where(starts[t], 0.0, carry) + log_ratio[t].astype(np.float64)
            totals.append(carry[ends[t] & ~np.isnan(carry)])
            carry = np.where(ends[t], 0.0, carry)
        self._episode_kl, self._carry_model = carry, self.model
        self._carry_at = self.model.num_timesteps
        setattr(self.model, CARRY_ATTR, {"kl": carry.copy(), "at": self._carry_at})
        return np.concatenate(totals) if totals else np.zeros(0)

    def _on_rollout_end(self) -> None:
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
        ref[valid] = self.kl.log_probs(ids, lengths, actions, masks).cpu().numpy()
        ref = ref.reshape(n_envs, n_steps).T
        used = valid.reshape(n_envs, n_steps).T
        # (n_steps, n_envs): a sample of the per-token KL, 0 on rows that are not steps
        log_ratio = (buf.log_probs - ref) * used
        buf.rewards -= self.controller.kl_coef * log_ratio
        # The value of the observation after the rollout and whether it starts a new episode,
        # as the algorithm computed them (sb3-contrib's MaskablePPO leaves self.locals stale).
        with th.no_grad():
            last_values = model.policy.predict_values(obs_as_tensor(model._last_obs, device))
        buf.compute_returns_and_advantage(last_values=last_values, dones=model._last_episode_starts)

        episodes = self._whole_episode_kls(
            log_ratio, buf.episode_starts, used, model._last_episode_starts
        )
        steps = int(valid.sum())
        total = float(log_ratio.astype(np.float64).sum())
        kl_per_episode = float(episodes.mean()) if len(episodes) else None
        self.controller.measured(self.logger, kl_per_episode, total / max(1, steps), steps)
        setattr(self.model, STATE_ATTR, self.controller.state())
