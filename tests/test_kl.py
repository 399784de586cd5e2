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
    before, kl, after = Snapshot(), KLPenaltyCallback(kl_coef=0.5), Snapshot()
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
                row = ids[t, e : e + 1, : lengths[t, e]]
                logits = kl.kl.model(input_ids=row).logits[0, -1]
                ref_lp[t, e] = th.log_softmax(logits, -1)[actions[t, e]].item()
    expected = before.rewards - 0.5 * (before.log_probs - ref_lp)
    np.testing.assert_allclose(after.rewards, expected, atol=1e-4)
    assert np.abs(before.log_probs - ref_lp).max() > 1e-3  # the policy did move
    assert not np.allclose(after.advantages, before.advantages)  # advantages were recomputed
    assert kl.kl_coef == 0.5  # no target: beta stays


def test_adaptive_beta_moves_towards_target():
    model = make(lr=3e-3)
    kl = KLPenaltyCallback(kl_coef=0.1, kl_coef_target=1e-6, kl_horizon=100)
    model.learn(80 * 4, callback=kl)
    assert kl.kl_coef > 0.1  # KL above a tiny target: beta grows
    model2 = make()
    kl2 = KLPenaltyCallback(kl_coef=0.1, kl_coef_target=1e6, kl_horizon=100)
    model2.learn(80 * 2, callback=kl2)
    assert kl2.kl_coef < 0.1  # far below the target: beta shrinks


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"Expects kl_coef >= 0 \(finite\), got -1"):
        KLPenaltyCallback(kl_coef=-1)
    with pytest.raises(ValueError, match="Expects kl_coef_target > 0 or None, got 0"):
        KLPenaltyCallback(kl_coef_target=0)


# -- regressions (issue 8) -------------------------------------------------------------------------


def make_algo(algo, n_envs=4, **env_kwargs):
    env = agents.make_vec_env("TextGen-v0", n_envs=n_envs, max_new_tokens=10, **env_kwargs)
    return agents.make_algo(
        algo, env, {"model": "default"}, n_steps=20, batch_size=40, n_epochs=2, seed=0
    )


@pytest.mark.parametrize("algo", ["ppo", "maskable_ppo"])
def test_zero_beta_leaves_advantages_unchanged(algo):
    """With beta = 0 the recomputed GAE must equal the algorithm's own (bug: MaskablePPO does not
    refresh the callback's locals, so a stale last value was used)."""
    model = make_algo(algo)
    model.learn(80)  # the value head moves away from its zero init, so last values matter
    before, after = Snapshot(), Snapshot()
    model.learn(
        80, callback=[before, KLPenaltyCallback(kl_coef=0.0), after], reset_num_timesteps=False
    )
    assert not model._last_episode_starts.all()  # episodes were open at the rollout's end
    np.testing.assert_allclose(after.advantages, before.advantages, atol=1e-6, rtol=0)


def test_masked_policy_equal_to_reference_has_zero_kl():
    """Under action masks the reference is renormalised over the same allowed ids (bug: the
    estimate was 5.2 nats/token with policy == reference)."""
    tok = gym_textgen_tokenizer()
    model = make_algo("maskable_ppo", allowed_tokens=range(len(tok) // 3))
    before, after = Snapshot(), Snapshot()
    model.learn(80, callback=[before, KLPenaltyCallback(kl_coef=0.1), after])  # policy == reference
    log_ratio = (before.rewards - after.rewards) / 0.1  # the penalty is beta * log(pi / pi_ref)
    assert np.abs(log_ratio).max() < 1e-4, np.abs(log_ratio).max()


def gym_textgen_tokenizer():
    from gym_textgen.models import load_tokenizer

    return load_tokenizer("default")


def test_adaptive_beta_needs_a_starting_beta():
    with pytest.raises(
        ValueError, match=r"kl_coef_target=2.0 adapts kl_coef multiplicatively.*kl_coef=0"
    ):
        KLPenaltyCallback(kl_coef=0.0, kl_coef_target=2.0)


class BetaProbe(BaseCallback):
    """Records a KL callback's beta at the start of every rollout."""

    def __init__(self, kl):
        super().__init__()
        self.kl, self.betas = kl, []

    def _on_step(self):
        return True

    def _on_rollout_start(self):
        self.betas.append(self.kl.kl_coef)


@pytest.mark.parametrize("target", [1e-6, 1e6])
def test_adaptive_beta_is_bounded_per_rollout(target):
    """A rollout far longer than the horizon changes beta by at most 20% (bug: it went negative)."""
    model = make_algo("ppo")
    kl = KLPenaltyCallback(
        kl_coef=0.1, kl_coef_target=target, kl_horizon=1
    )  # a rollout = 80 horizons
    probe = BetaProbe(kl)
    model.learn(80 * 4, callback=[kl, probe])
    betas = np.array([*probe.betas, kl.kl_coef])
    assert (betas > 0).all()
    ratios = betas[1:] / betas[:-1]
    assert ((ratios >= 0.8 - 1e-12) & (ratios <= 1.2 + 1e-12)).all(), ratios
    if target == 1e6:  # the KL never comes near: beta shrinks by the full 20% each rollout
        np.testing.assert_allclose(ratios, 0.8, rtol=1e-12)


def test_adaptive_beta_survives_save_and_load(tmp_path):
    """The controller's beta is part of the run's state (bug: a resume restarted it)."""
    from stable_baselines3 import PPO

    model = make_algo("ppo")
    kl = KLPenaltyCallback(kl_coef=0.1, kl_coef_target=1e-6, kl_horizon=100)
    model.learn(80 * 4, callback=kl)
    assert kl.kl_coef != 0.1
    model.save(tmp_path / "run.zip")
    loaded = PPO.load(tmp_path / "run.zip", env=model.get_env())
    resumed = KLPenaltyCallback(kl_coef=0.1, kl_coef_target=1e-6, kl_horizon=100)
    probe = BetaProbe(resumed)
    loaded.learn(80, callback=[resumed, probe], reset_num_timesteps=False)
    assert probe.betas[0] == kl.kl_coef
    # a callback with other settings starts from its own beta
    fresh = KLPenaltyCallback(kl_coef=0.3, kl_coef_target=5.0, kl_horizon=100)
    probe = BetaProbe(fresh)
    loaded.learn(80, callback=[fresh, probe], reset_num_timesteps=False)
    assert probe.betas[0] == 0.3


# -- the KL per episode is that of whole episodes --------------------------------------------------


class Rollouts(BaseCallback):
    """Per rollout: kl_coef at its start, the buffer's rewards (before or after the KL callback
    changes them) and the KL per episode logged for it, if any (SB3 clears the logger at each
    dump, which follows every rollout)."""

    def __init__(self, kl=None):
        super().__init__()
        self.kl, self.coefs, self.rewards, self.per_episode = kl, [], [], []

    def _on_step(self):
        return True

    def _on_rollout_start(self):
        self.coefs.append(self.kl.kl_coef if self.kl else None)

    def _on_rollout_end(self):
        self.rewards.append(self.model.rollout_buffer.rewards.astype(np.float64))
        self.per_episode.append(self.model.logger.name_to_value.get("kl/ref_per_episode"))


def ten_step_episodes():
    """PPO whose rollouts (4 steps of 2 envs) are shorter than its episodes (10 steps, no EOS):
    rows 0-9 of each env are its first episode, rows 10-19 its second; a reference that
    differs from the policy, so that every step has a log-ratio."""
    from gym_textgen.models import load_model

    env = agents.make_vec_env(
        "TextGen-v0", n_envs=2, max_new_tokens=10, stop_on_eos=False, scorer="length",
        scorer_kwargs={"target": 3}, seed=0,
    )  # fmt: skip
    model = agents.make_algo(
        "ppo", env, {"model": "random-tiny"}, n_steps=4, batch_size=8, n_epochs=1, seed=0
    )
    return model, load_model("random-tiny", seed=1)


def log_ratios(before, after, coefs):
    """(rows, n_envs): each step's log pi - log pi_ref, from the penalty kl_coef x it (float32
    rewards of magnitude <= ~2: each row within ~1e-6)."""
    return np.concatenate([(b - a) / c for b, a, c in zip(before, after, coefs, strict=True)])


def test_kl_per_episode_is_that_of_whole_episodes_across_rollouts():
    """Bug: the rollout's KL was divided by the episodes that started in it, max 1: a rollout
    inside episodes reported the KL of n_envs partial episodes as one episode's, one whose
    episodes were cut reported a fraction, and the controller steered by both."""
    model, reference = ten_step_episodes()
    kl = KLPenaltyCallback(kl_coef=1.0, kl_coef_target=1e6, kl_horizon=20, reference=reference)
    before, after = Rollouts(kl), Rollouts()
    model.learn(2 * 8, callback=[before, kl, after])  # rollouts 0-1: rows 0-7
    model.learn(3 * 8, callback=[before, kl, after], reset_num_timesteps=False)  # rows 8-19
    ratio = log_ratios(before.rewards, after.rewards, before.coefs)
    assert ratio.shape == (20, 2) and np.abs(ratio).sum(0).min() > 0.1
    # episodes end in rollouts 2 (rows 0-9) and 4 (rows 10-19); each is counted whole there,
    # though rollout 2 holds 2 of its 10 steps and the first spans the two learn calls
    got = after.per_episode
    assert got[0] is None and got[1] is None and got[3] is None, got
    assert got[2] == pytest.approx(ratio[:10].sum(0).mean(), abs=2e-5)
    assert got[4] == pytest.approx(ratio[10:].sum(0).mean(), abs=2e-5)
    # the controller steps only when it has a per-episode KL, by the steps since its last step
    # (far below the target: -20% x min(1, steps / horizon)): 24 steps, then 16
    coefs = [*before.coefs, kl.kl_coef]
    np.testing.assert_allclose(coefs, [1, 1, 1, 0.8, 0.8, 0.8 * 0.84], rtol=1e-12)


def test_kl_per_episode_leaves_out_episodes_it_did_not_see_whole():
    """Episodes in progress when the callback first sees the model, or that went on in rollouts
    trained without it, are not counted as whole (their steps still count per token)."""
    model, reference = ten_step_episodes()
    kl = KLPenaltyCallback(kl_coef=1.0, reference=reference)
    before, after = Rollouts(kl), Rollouts()
    model.learn(8)  # rollout 0 (rows 0-3) without the callback
    model.learn(4 * 8, callback=[before, kl, after], reset_num_timesteps=False)  # rows 4-19
    model.learn(8, reset_num_timesteps=False)  # rows 20-23 without it
    model.learn(2 * 8, callback=[before, kl, after], reset_num_timesteps=False)  # rows 24-31
    ratio = log_ratios(before.rewards, after.rewards, before.coefs)  # rows 4-19, 24-31
    # only the episode of rows 10-19 was seen whole; those of rows 0-9 and 20-29 were not
    assert after.per_episode[:2] == [None, None] and after.per_episode[4:] == [None, None]
    assert after.per_episode[2] is None  # (rows 12-15: none ends)
    assert after.per_episode[3] == pytest.approx(ratio[6:16].sum(0).mean(), abs=2e-5)


# -- the reference -------------------------------------------------------------------------------


def tiny_ppo():
    env = agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=4, stop_on_eos=False, seed=0)
    return agents.make_algo(
        "ppo", env, {"model": "random-tiny"}, n_steps=4, batch_size=8, n_epochs=1, seed=0,
        learning_rate=1e-2,
    )  # fmt: skip


def test_a_given_reference_is_used_as_it_is_and_never_frozen_in_place():
    """Bug: KLReference froze the model it was given, so `kl_reference=` the policy's own LM
    (or any model the user goes on training) silently stopped training."""
    from agents.kl import KLReference
    from gym_textgen.models import load_model

    model = tiny_ppo()
    policy = model.policy
    own = KLReference(policy, policy.lm)  # shares the policy's weights: a frozen copy
    assert own.model is not policy.lm
    assert all(p.requires_grad for p in policy.lm.parameters())
    assert not any(p.requires_grad for p in own.model.parameters())
    other = load_model("random-tiny", seed=1).train()
    kl = KLReference(policy, other)
    assert kl.model is other and other.training
    assert all(p.requires_grad for p in other.parameters())
    ids, lengths = th.zeros((1, 8), dtype=th.long), th.tensor([3])
    kl.log_softmax(ids, lengths)
    assert other.training  # its mode restored after an eval-mode forward


def test_a_reused_callback_keeps_penalising_against_its_first_reference(tmp_path):
    """A callback used again on a loaded model keeps its first reference (bug: it copied the
    loaded, trained policy as a new reference)."""
    from stable_baselines3 import PPO

    model = tiny_ppo()
    initial = {k: v.clone() for k, v in model.policy.lm.state_dict().items()}
    kl = KLPenaltyCallback(kl_coef=0.1)
    model.learn(16, callback=kl)
    first = kl.reference
    assert first is kl.kl.model and first is not model.policy.lm
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", env=model.get_env())
    assert any(
        not th.equal(v, initial[k]) for k, v in loaded.policy.lm.state_dict().items()
    )  # trained
    loaded.learn(8, callback=kl, reset_num_timesteps=False)
    assert kl.kl.policy is loaded.policy and kl.kl.model is first
    for k, v in kl.reference.state_dict().items():  # still the initial weights
        assert th.equal(v, initial[k]), k


def test_the_callback_reads_and_sets_its_controller():
    kl = KLPenaltyCallback(kl_coef=0.1, kl_coef_target=2.0, kl_horizon=500)
    assert (kl.kl_coef, kl.initial_kl_coef, kl.kl_coef_target, kl.kl_horizon) == (
        0.1,
        0.1,
        2.0,
        500,
    )
    kl.kl_coef = 0.3
    assert kl.controller.kl_coef == 0.3 and kl.initial_kl_coef == 0.1
    with pytest.raises(ValueError, match="kl_coef >= 0"):
        kl.kl_coef = -1.0


def test_the_callback_refuses_an_algorithm_with_a_kl_of_its_own():
    env = agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=4, stop_on_eos=False)
    model = agents.make_algo(
        "reinforce", env, {"model": "random-tiny"}, baseline="none", kl_coef=0.1
    )
    with pytest.raises(ValueError, match="KL would count twice"):
        model.learn(8, callback=KLPenaltyCallback(kl_coef=0.1))
