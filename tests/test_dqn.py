"""DQN over the transformer (issue 13): Q-values are the LM's logits; it trains, saves, loads."""

from __future__ import annotations

import pytest
import torch as th
from stable_baselines3 import DQN

import agents
from agents import cli
from agents.config import TrainConfig
from agents.kl import KLPenaltyCallback
from gym_textgen.errors import TextGenValueError
from gym_textgen.models import load_model


def test_q_values_start_as_the_lm_logits_and_the_target_is_a_separate_copy():
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    model = agents.make_algo("dqn", env, {"model": "random-tiny"}, seed=0)
    assert isinstance(model, DQN) and model.exploration_initial_eps == 0.1
    obs = env.reset()
    lm = load_model("random-tiny").double()
    ids = th.as_tensor(obs["input_ids"]).long()
    lengths = obs["attention_mask"].sum(1)
    want = th.stack([lm(input_ids=ids[i : i + 1, :n]).logits[0, -1] for i, n in enumerate(lengths)])
    target = model.policy.q_net_target.double()
    with th.no_grad():
        got = target(model.policy.obs_to_tensor(obs)[0])
    th.testing.assert_close(got, want.detach(), rtol=1e-9, atol=1e-9)
    online = {id(p) for p in model.policy.q_net.parameters()}
    assert not online & {id(p) for p in model.policy.q_net_target.parameters()}


def test_textgen_trains_evaluates_and_resumes_dqn(tmp_path):
    run = tmp_path / "dqn"
    flags = ["--algo", "dqn", "--model", "random-tiny", "--env-id", "TextGenTargetTokens-v0"]
    flags += ["--env-kwargs", '{"max_new_tokens": 4}', "--n-envs", "2", "--batch-size", "8"]
    flags += ["--eval-episodes", "2", "--no-progress-bar", "--checkpoint-every", "32"]
    assert cli.main(["train", *flags, "--timesteps", "300", "--out", str(run)]) == 0
    assert (run / "model.zip").exists() and (run / "hf_model" / "config.json").exists()
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    assert cli.main(["train", "--resume", str(run), "--timesteps", "332"]) == 0
    loaded = DQN.load(run / "model.zip")
    assert loaded.num_timesteps >= 332


def test_dqn_refuses_what_it_cannot_do():
    with pytest.raises(TextGenValueError, match="learns from a replay buffer"):
        TrainConfig(algo="dqn", kl_coef=0.1)
    with pytest.raises(TextGenValueError, match="algo 'dqn' takes 1"):
        TrainConfig(algo="dqn", group_size=4, n_envs=8)
    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    with pytest.raises(TextGenValueError, match="DQN has no value function"):
        agents.make_algo("dqn", env, {"model": "random-tiny", "separate_value_trunk": True})
    # outside TrainConfig, a KL callback given to DQN says why before any step (bug: an
    # AttributeError for the missing rollout buffer, after the first rollout)
    model = agents.make_algo("dqn", env, {"model": "random-tiny"}, seed=0)
    with pytest.raises(TextGenValueError, match=r"on-policy rollout .*got DQN.*replay buffer"):
        model.learn(8, callback=KLPenaltyCallback(kl_coef=0.1))
    assert model.num_timesteps == 0


def test_dqn_defaults_suit_a_language_model_and_it_is_evaluated_greedily():
    from agents.evaluation import sample_episodes

    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    model = agents.make_algo("dqn", env, {"model": "random-tiny"}, seed=0)
    assert model.learning_starts == 0 and model.target_update_interval == 512
    assert not model.policy.q_net.features_extractor.group_sequences
    model.exploration_rate = 1.0  # all exploration: yet evaluation runs the greedy policy
    kwargs = {"max_new_tokens": 4}
    # every test prompt, in order, whatever the seed: the episodes differ only if the policy does
    a = sample_episodes(model, "TextGenTargetTokens-v0", kwargs, n=16, seed=3)
    b = sample_episodes(model, "TextGenTargetTokens-v0", kwargs, n=16, seed=4)
    assert [s.completion for s in a] == [s.completion for s in b]  # greedy: seed-free
