"""KL penalty to a frozen reference model, applied by a callback to stock PPO."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

import agents
from agents.kl import KLPenaltyCallback


class Snapshot(BaseCallback):
    """Copies the buffer's rewards and log-probs before the KL callback changes them."""

    def _on_step(self):
        return True

    def _on_rollout_end(self):
        buf = self.model.rollout_buffer  # (n_steps, n_envs, ...) until the update flattens it
        self.rewards, self.log_probs = buf.rewards.copy(), buf.log_probs.copy()
        self.advantages = buf.advantages.copy()
        self.obs = {k: v.copy() for k, v in buf.observations.items()}
        self.actions = buf.actions.copy()


def make(lr=1e-4, **kw):
    env = agents.make_vec_env("TextGen-v0", n_envs=4, max_new_tokens=10)
    return agents.make_algo(
        "ppo",
        env,
        {"model": "default"},
        n_steps=20,
        batch_size=40,
        n_epochs=2,
        learning_rate=lr,
        seed=0,
        **kw,
    )


def test_penalty_is_beta_times_log_ratio_and_zero_at_start():
    model = make()
    before, kl, after = Snapshot(), KLPenaltyCallback(beta=0.5), Snapshot()
    model.learn(80, callback=[before, kl, after])
    # at the first rollout the policy is the reference: log-ratio ~ 0, rewards unchanged
    np.testing.assert_allclose(after.rewards, before.rewards, atol=1e-4)
    model.learn(80 * 6, callback=[before, kl, after], reset_num_timesteps=False)
    # later the policy has moved: each reward dropped by beta * (log pi - log pi_ref)
    ids = th.as_tensor(before.obs["input_ids"]).long()  # (n_steps, n_envs, L)
    lengths = th.as_tensor(before.obs["attention_mask"]).long().sum(-1)
    actions = th.as_tensor(before.actions[..., 0]).long()
    ref_lp = np.zeros(actions.shape)
    with th.no_grad():
        for t in range(ids.shape[0]):
            for e in range(ids.shape[1]):
                logits = kl.reference(input_ids=ids[t, e : e + 1, : lengths[t, e]]).logits[0, -1]
                ref_lp[t, e] = th.log_softmax(logits, -1)[actions[t, e]].item()
    expected = before.rewards - 0.5 * (before.log_probs - ref_lp)
    np.testing.assert_allclose(after.rewards, expected, atol=1e-4)
    assert np.abs(before.log_probs - ref_lp).max() > 1e-3  # the policy did move
    assert not np.allclose(after.advantages, before.advantages)  # advantages were recomputed
    assert kl.beta == 0.5  # no target: beta stays


def test_adaptive_beta_moves_towards_target():
    model = make(lr=3e-3)
    kl = KLPenaltyCallback(beta=0.1, target_kl=1e-6, horizon=100)
    model.learn(80 * 4, callback=kl)
    assert kl.beta > 0.1  # KL above a tiny target: beta grows
    model2 = make()
    kl2 = KLPenaltyCallback(beta=0.1, target_kl=1e6, horizon=100)
    model2.learn(80 * 2, callback=kl2)
    assert kl2.beta < 0.1  # far below the target: beta shrinks


def test_bad_arguments():
    with pytest.raises(ValueError, match="Expects beta >= 0, got -1"):
        KLPenaltyCallback(beta=-1)
    with pytest.raises(ValueError, match="Expects target_kl > 0 or None, got 0"):
        KLPenaltyCallback(target_kl=0)
