"""Training-run callbacks: atomic checkpoints that hold what they claim, metrics rows."""

from __future__ import annotations

import pytest
import torch as th
from stable_baselines3 import PPO

import agents
from agents.callbacks import AtomicCheckpointCallback


def make():
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=6)
    return agents.make_algo(
        "ppo", env, {"model": "random-tiny"}, n_steps=16, batch_size=16, n_epochs=2, seed=0
    )


def same_weights(a, b):
    return all(
        th.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("save_freq, rollouts", [(32, 2), (64, 3)])
def test_checkpoint_holds_the_weights_after_its_rollouts_update(tmp_path, save_freq, rollouts):
    """A checkpoint at step T holds the weights updated on the rollouts up to T (bug: it was
    written inside the rollout, before the update, so a resume silently lost that update)."""
    model = make()
    path = tmp_path / "latest.zip"
    model.learn(32 * rollouts, callback=AtomicCheckpointCallback(save_freq, path))
    saved = PPO.load(path)
    assert saved.num_timesteps == 32 * rollouts  # the end of training is always saved
    assert same_weights(saved.policy, model.policy)


def test_checkpoint_between_rollouts_matches_the_model_then(tmp_path):
    """The checkpoint at 64 of a 96-step run equals a 64-step run's final model."""
    path = tmp_path / "latest.zip"

    class StopCopy(AtomicCheckpointCallback):
        def _on_rollout_start(self):
            super()._on_rollout_start()
            if self.num_timesteps == 64:
                self.copy = PPO.load(self.path)

    model = make()
    callback = StopCopy(64, path)
    model.learn(96, callback=callback)
    reference = make()
    reference.learn(64)
    assert callback.copy.num_timesteps == 64
    assert same_weights(callback.copy.policy, reference.policy)
