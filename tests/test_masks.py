"""Top-k action masks from a frozen LM (agents.masks.TopKMask) with MaskablePPO."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th

import agents
from agents.config import TrainConfig
from agents.masks import MASK_ATTR, TopKMask
from gym_textgen.errors import TextGenValueError
from gym_textgen.models import load_model


def test_masks_are_the_top_k_of_each_unpadded_text():
    """The batched, padded forward gives each slot the top k of the LM's next-token
    distribution computed on that slot's text alone (a wrong position or a missing attention
    mask would pick another row's or a padding position's logits)."""
    lm = load_model("random-tiny", seed=3)
    env = TopKMask(agents.make_vec_env("TextGen-v0", n_envs=3, seed=0, max_new_tokens=4), 7, lm)
    obs = env.reset()
    for _ in range(3):
        masks = env.action_masks()
        allowed = env.static_mask
        for i in range(3):
            n = int(obs["attention_mask"][i].sum())
            ids = th.as_tensor(obs["input_ids"][i, :n])[None]
            with th.no_grad():
                logits = lm(input_ids=ids).logits[0, -1, : len(allowed)].double()
            logits[~th.as_tensor(allowed)] = -np.inf
            expected = set(logits.topk(7).indices.tolist())
            assert set(np.flatnonzero(masks[i]).tolist()) == expected
        assert masks.sum(1).tolist() == [7, 7, 7]
        assert not (masks & ~allowed).any()  # never an id the tokenizer cannot produce
        actions = np.array([np.flatnonzero(m)[0] for m in masks])
        obs, *_ = env.step(actions)


def test_maskable_ppo_acts_only_inside_the_mask_and_evaluates_under_it(tmp_path, monkeypatch):
    """Every action of a training rollout lies inside its stored top-k mask, and the saved
    model carries the mask, so `sample_episodes` evaluates under it."""
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.build import build
    from agents.evaluation import sample_episodes
    from agents.rundir import RunDir

    cfg = TrainConfig(algo="maskable_ppo", model="random-tiny", mask_top_k=3, n_envs=4,
                      n_steps=8, batch_size=16, n_epochs=1, timesteps=64,
                      env_kwargs={"max_new_tokens": 4}, out=str(tmp_path / "run"))  # fmt: skip
    model, env = build(cfg, RunDir(tmp_path / "run"))
    seen = []

    class Check(BaseCallback):
        def _on_rollout_end(self) -> None:
            buf = self.model.rollout_buffer
            masks = buf.action_masks.reshape(-1, buf.action_masks.shape[-1]).astype(bool)
            actions = buf.actions.reshape(-1).astype(int)
            assert (masks.sum(1) == 3).all()
            seen.append(bool(masks[np.arange(len(actions)), actions].all()))

        def _on_step(self) -> bool:
            return True

    model.learn(64, callback=Check())
    assert seen and all(seen)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = type(model).load(path, device="cpu")
    assert getattr(loaded, MASK_ATTR) == {"k": 3, "model": "random-tiny"}
    calls = []

    class Recording(TopKMask):
        def action_masks(self) -> np.ndarray:
            calls.append(super().action_masks())
            return calls[-1]

    monkeypatch.setattr("agents.evaluation.TopKMask", Recording)
    samples = sample_episodes(loaded, "TextGen-v0", {"max_new_tokens": 4}, n=2, seed=0)
    assert len(samples) == 2
    assert calls and all((m.sum(1) == 3).all() for m in calls)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algo": "ppo", "mask_top_k": 5}, "only algo 'maskable_ppo'"),
        ({"algo": "maskable_ppo", "mask_top_k": -1}, "mask_top_k >= 0"),
    ],
)
def test_mask_settings_are_checked(kwargs, message):
    with pytest.raises(TextGenValueError, match=message):
        TrainConfig(**kwargs)


def test_k_beyond_the_allowed_ids_is_refused():
    env = agents.make_vec_env("TextGen-v0", n_envs=1, allowed_tokens=[5, 6, 7])
    with pytest.raises(TextGenValueError, match="at most the 3 ids the env allows, got k=4"):
        TopKMask(env, 4, load_model("random-tiny"))
    with pytest.raises(TextGenValueError, match="k >= 1"):
        TopKMask(env, 0, load_model("random-tiny"))


def test_a_given_lm_is_copied_not_frozen_and_random_tiny_fits_the_action_space():
    """The caller's module stays trainable (it may be the policy's own LM), and a random-tiny
    mask is built for a widened action space as the policy is."""
    lm = load_model("random-tiny")
    lm.train()
    env = agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=3)
    masked = TopKMask(env, 4, lm)
    assert lm.training and all(p.requires_grad for p in lm.parameters())
    assert masked.lm is not lm and not any(p.requires_grad for p in masked.lm.parameters())
    wide = agents.make_vec_env("TextGen-v0", n_envs=2, max_new_tokens=3, vocab_size=5000)
    masked = TopKMask(wide, 4, "random-tiny")
    masked.reset()
    assert masked.action_masks().shape == (2, 5000)
