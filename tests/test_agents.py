"""Transformer policies with stock SB3 PPO/A2C and sb3-contrib MaskablePPO."""

from __future__ import annotations

from types import MappingProxyType

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO
from transformers import AutoModelForCausalLM

import agents
from agents import MaskableTransformerPolicy, TransformerPolicy, make_vec_env
from gym_textgen.models import ModelNotFoundError
from tests.tokens import WORDS, V

TINY = MappingProxyType({"model": "random-tiny"})  # read-only: SB3 A2C writes into its dict
ENV = dict(max_new_tokens=6)


def make(algo, env=None, **kwargs):
    env = env or make_vec_env("TextGenTargetTokens-v0", n_envs=2, **ENV)
    policy = MaskableTransformerPolicy if algo is MaskablePPO else TransformerPolicy
    extra = {"batch_size": 16, "n_epochs": 2} if algo is not A2C else {}
    return algo(
        policy,
        env,
        n_steps=16,
        policy_kwargs=dict(kwargs.pop("policy_kwargs", TINY)),  # A2C writes into the dict
        seed=0,
        **extra,
        **kwargs,
    )


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO])
def test_smoke_learn(algo):
    model = make(algo)
    before = [p.detach().clone() for p in model.policy.lm.parameters()]
    model.learn(64)
    assert model.num_timesteps == 64
    changed = any(
        not th.equal(a, b) for a, b in zip(before, model.policy.lm.parameters(), strict=True)
    )
    assert changed, "the LM's weights did not move"


def test_policy_uses_lm_head_and_value_head():
    model = make(PPO)
    policy = model.policy
    assert policy.action_net is policy.lm.get_output_embeddings()
    assert policy.value_net.out_features == 1
    assert (
        not hasattr(policy, "mlp_extractor")
        or policy.mlp_extractor.latent_dim_pi == policy.features_dim
    )
    assert not policy.ortho_init


def prefix_obs(env, ids):
    """A TextGen observation holding `ids` (and its length)."""
    space = env.observation_space
    L = space["input_ids"].shape[0]
    obs = {
        "input_ids": np.full((1, L), 1, dtype=np.int64),
        "attention_mask": np.zeros((1, L), dtype=np.int8),
    }
    obs["input_ids"][0, : len(ids)] = ids
    obs["attention_mask"][0, : len(ids)] = 1
    return obs


@pytest.mark.parametrize("algo", [PPO, MaskablePPO])
def test_log_prob_equals_plain_hf_model(algo):
    model = make(algo)
    policy = model.policy
    rng = np.random.default_rng(0)
    obs_batch = []
    for n in (3, 7, 11):  # rows of different lengths in one batch
        ids = rng.integers(2, V, size=n)
        obs_batch.append(prefix_obs(model.env, ids))
    obs = {k: np.concatenate([o[k] for o in obs_batch]) for k in obs_batch[0]}
    actions = th.tensor(WORDS[:3])
    obs_t, _ = policy.obs_to_tensor(obs)
    with th.no_grad():
        _, log_prob, entropy = policy.evaluate_actions(obs_t, actions)
        for row, o in enumerate(obs_batch):
            n = int(o["attention_mask"].sum())
            logits = policy.lm(input_ids=th.tensor(o["input_ids"][:, :n])).logits[0, -1]
            ref = th.log_softmax(logits, -1)
            assert log_prob[row].item() == pytest.approx(ref[actions[row]].item(), abs=1e-5)
            assert entropy[row].item() == pytest.approx(-(ref.exp() * ref).sum().item(), abs=1e-5)


def test_save_load_round_trip_gives_identical_log_probs(tmp_path):
    model = make(PPO)
    model.learn(32)
    obs = model.env.reset()
    obs_t, _ = model.policy.obs_to_tensor(obs)
    actions = th.tensor([3, 9])
    with th.no_grad():
        v1, lp1, _ = model.policy.evaluate_actions(obs_t, actions)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip")
    with th.no_grad():
        v2, lp2, _ = loaded.policy.evaluate_actions(obs_t, actions)
    th.testing.assert_close(lp1, lp2, rtol=0, atol=0)
    th.testing.assert_close(v1, v2, rtol=0, atol=0)
    assert loaded.policy.model_name == "random-tiny"


def test_save_pretrained_loads_with_auto_model(tmp_path):
    model = make(PPO)
    model.learn(32)
    tok = agents.vec_env.unwrap_textgen(model.env).core.tokenizer
    folder = model.policy.save_pretrained(tmp_path / "hf", tokenizer=tok)
    hf = AutoModelForCausalLM.from_pretrained(folder)
    ids = th.tensor([[5, 6, 7, 8]])
    th.testing.assert_close(hf(ids).logits, model.policy.lm(ids).logits)
    assert (folder / "tokenizer.json").is_file()


def trunk_params(extractor):
    return [p.detach().clone() for p in extractor.trunk.parameters()]


def test_separate_value_trunk():
    model = make(PPO, policy_kwargs={**TINY, "separate_value_trunk": True})
    policy = model.policy
    pi, vf = policy.pi_features_extractor, policy.vf_features_extractor
    assert vf is not pi and vf.lm is not pi.lm
    pi0, vf0 = trunk_params(pi), trunk_params(vf)
    assert all(th.equal(a, b) for a, b in zip(pi0, vf0, strict=True))  # both start pretrained
    model.learn(32)
    pi1, vf1 = trunk_params(pi), trunk_params(vf)
    # each trunk moved, and differently: the value loss trains the value trunk only
    assert any(not th.equal(a, b) for a, b in zip(pi0, pi1, strict=True))
    assert any(not th.equal(a, b) for a, b in zip(vf0, vf1, strict=True))
    assert any(not th.equal(a, b) for a, b in zip(pi1, vf1, strict=True))


def dropout_lm(vocab_size):
    """A random-init Llama whose config asks for dropout (as a user's model might)."""
    from gym_textgen.models import random_tiny_config

    return AutoModelForCausalLM.from_config(
        random_tiny_config(vocab_size, attention_dropout=0.5)
    ).train()


@pytest.mark.parametrize(
    "separate_value_trunk, lora", [(False, None), (True, None), (True, {"r": 4})]
)
def test_model_object_in_policy_kwargs(tmp_path, separate_value_trunk, lora):
    """A transformers model passed as `model=` is the actor, treated as a loaded one (bug: it
    crashed with "cannot assign module before Module.__init__()")."""
    env = make_vec_env("TextGenTargetTokens-v0", n_envs=2, **ENV)
    lm = dropout_lm(env.action_space.n)
    kwargs = {"model": lm, "separate_value_trunk": separate_value_trunk, "lora": lora}
    model = make(PPO, env=env, policy_kwargs=kwargs)
    policy = model.policy
    assert policy.lm is lm
    if separate_value_trunk:  # the value function gets its own copy, not the actor's object
        assert policy.vf_features_extractor.lm is not lm
    # dropout is off, so two forwards in training mode agree exactly (PPO's first ratio is 1)
    policy.set_training_mode(True)
    obs_t, _ = policy.obs_to_tensor(env.reset())
    actions = th.zeros(2, dtype=th.long)
    _, lp1, _ = policy.evaluate_actions(obs_t, actions)
    _, lp2, _ = policy.evaluate_actions(obs_t, actions)
    th.testing.assert_close(lp1, lp2, rtol=0, atol=0)
    model.learn(64)
    # the value head is not in the pickled model object: only the checkpoint's weights restore it
    assert policy.value_net.weight.abs().sum() > 0
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip")
    with th.no_grad():
        want = policy.evaluate_actions(obs_t, actions)
        got = loaded.policy.evaluate_actions(obs_t, actions)
    for a, b in zip(got, want, strict=True):
        th.testing.assert_close(a, b, rtol=0, atol=0)


def test_lora_trains_adapters_only_and_base_is_reference(tmp_path):
    model = make(PPO, policy_kwargs={**TINY, "lora": {"r": 4}})
    policy = model.policy
    trainable = {n for n, p in policy.lm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    base = {n: p.detach().clone() for n, p in policy.lm.named_parameters() if not p.requires_grad}
    obs_t, _ = policy.obs_to_tensor(model.env.reset())
    with th.no_grad():
        with policy.reference():
            ref_before = policy.get_distribution(obs_t).distribution.logits
    model.learn(48)
    for n, p in policy.lm.named_parameters():
        if n in base:
            assert th.equal(p, base[n]), f"{n} is frozen but moved"
    with th.no_grad():
        with policy.reference():
            ref_after = policy.get_distribution(obs_t).distribution.logits
        tuned = policy.get_distribution(obs_t).distribution.logits
    th.testing.assert_close(ref_before, ref_after)  # the reference is the frozen base
    assert not th.allclose(tuned, ref_after)  # the adapters changed the policy
    folder = policy.save_pretrained(tmp_path / "merged")
    hf = AutoModelForCausalLM.from_pretrained(folder)
    ids = th.tensor([[5, 6, 7]])
    th.testing.assert_close(hf(ids).logits, policy.lm(ids).logits, atol=1e-5, rtol=1e-4)


def test_lora_on_chosen_layers_backpropagates_through_those_only():
    """`layers_to_transform` picks transformer blocks (peft's own rule never matched the trunk's
    names: it raised for the default "all-linear", found no module for a list)."""
    model = make(PPO, policy_kwargs={**TINY, "lora": {"r": 4, "layers_to_transform": [-1]}})
    lm = model.policy.lm
    adapted = {n.split(".lora_")[0] for n, p in lm.named_parameters() if p.requires_grad}
    last = len(lm.model.layers) - 1
    assert adapted and all(f"layers.{last}." in n for n in adapted), adapted
    assert len(adapted) == 7  # q, k, v, o, gate, up, down of the last block
    model.learn(32)  # trains: the frozen blocks below need no backward pass


def test_lora_layers_on_a_gpt2_model_whose_projections_are_conv1d():
    from transformers import GPT2Config, GPT2LMHeadModel

    from agents.policies import TransformerExtractor

    lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=V)).eval()
    env = make_vec_env("TextGen-v0", n_envs=1, vocab_size=V, max_new_tokens=2)
    extractor = TransformerExtractor(
        env.observation_space, model=lm, lora={"r": 2, "layers_to_transform": [-1]}
    )
    adapted = {n.split(".lora_")[0] for n, p in extractor.lm.named_parameters() if p.requires_grad}
    assert adapted and all(".h.1." in n for n in adapted), adapted
    assert any(n.endswith("attn.c_attn") for n in adapted)  # a Conv1D, not an nn.Linear


@pytest.mark.parametrize(
    "lora, message",
    [
        ({"r": 4, "layers_to_transform": [9]}, "out of range: the model has 2 blocks"),
        ({"r": 4, "layers_to_transform": "1"}, "block index or a list"),
        ({"r": 4, "target_modules": "q_proj", "layers_to_transform": 0}, "list of names"),
        ({"rank": 4}, "not a valid peft LoraConfig"),
        ({"r": 0}, "could not be applied"),  # peft checks r only when it injects
        (
            {"r": 4, "layers_to_transform": 0, "target_modules": ["model.layers.0.mlp.up_proj"]},
            "no module of target_modules",
        ),  # fmt: skip
    ],
)
def test_lora_settings_errors_name_the_problem(lora, message):
    with pytest.raises(ValueError, match=message):
        make(PPO, policy_kwargs={**TINY, "lora": lora})


@pytest.mark.slow
def test_learning_target_tokens():
    """PPO raises the synthetic reward well above the random policy's ~0.25 within a small budget."""
    env = make_vec_env("TextGenTargetTokens-v0", n_envs=8, max_new_tokens=8, stop_on_eos=False)
    model = PPO(
        TransformerPolicy,
        env,
        n_steps=32,
        batch_size=64,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=1.0,
        policy_kwargs=TINY,
        seed=0,
    )
    model.learn(2048)
    early = np.mean([e["r"] for e in model.ep_info_buffer])
    model.learn(8192, reset_num_timesteps=False)
    late = np.mean([e["r"] for e in list(model.ep_info_buffer)[-64:]])
    assert early < 0.4
    assert late > 0.6, f"mean reward {late:.3f} after 10k steps (random policy ~0.25)"


def test_lazy_attributes_of_the_agents_package():
    assert agents.kl.KLPenaltyCallback is agents.KLPenaltyCallback  # submodules and names
    assert "make_algo" in dir(agents) and "importlib" not in dir(agents)
    assert getattr(agents, "kl.foo", None) is None and not hasattr(agents, "no_such_name")


def test_model_name_that_cannot_be_resolved():
    env = make_vec_env("TextGen-v0", n_envs=1)
    with pytest.raises(
        ModelNotFoundError, match=r"Cannot resolve model 'no/such-model-xyz'.*'default'.*network"
    ):
        PPO(TransformerPolicy, env, policy_kwargs={"model": "no/such-model-xyz"})


def test_vocab_mismatch_names_both_numbers():
    env = make_vec_env("TextGen-v0", n_envs=1, vocab_size=V + 7)
    with pytest.raises(
        ValueError, match=rf"{V + 7} actions but model 'default' outputs {V} logits"
    ):
        PPO(TransformerPolicy, env, policy_kwargs={"model": "default"})


def test_non_text_observation_space():
    with pytest.raises(ValueError, match="expects a text observation space"):
        PPO(TransformerPolicy, gym.make("CartPole-v1"), policy_kwargs=TINY)


def test_vec_env_is_native_and_reports_terminal_observation():
    env = make_vec_env("TextGen-v0", n_envs=3, max_new_tokens=2, stop_on_eos=False)
    inner = agents.vec_env.unwrap_textgen(env)
    assert isinstance(inner.venv, agents.vec_env.TextGenVectorEnv)
    obs = env.reset()
    for _ in range(2):
        obs, rewards, dones, infos = env.step(np.array(WORDS[:3]))
    assert dones.all()
    for i, info in enumerate(infos):
        term = info["terminal_observation"]
        n = int(term["attention_mask"].sum())
        assert term["input_ids"][n - 2 : n].tolist() == [WORDS[i]] * 2  # the finished text
        m = int(obs["attention_mask"][i].sum())
        assert obs["input_ids"][i][m - 2 : m].tolist() != [WORDS[i]] * 2  # a new prompt
        assert "episode" in info and info["episode"]["l"] == 2
        assert not info["TimeLimit.truncated"]
    assert np.stack(env.env_method("action_masks")).shape == (3, V)


def test_scattered_minibatches_warn_once_naming_the_fix():
    """SB3's default buffer works (grouped, exact) but is slower: say so once, with the fix."""
    import warnings

    env = make_vec_env("TextGenTargetTokens-v0", n_envs=2, **ENV)
    model = PPO(TransformerPolicy, env, n_steps=16, batch_size=16, policy_kwargs=TINY, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.learn(64)
    scattered = [w for w in record if "scattered order" in str(w.message)]
    assert len(scattered) == 1
    assert "rollout_buffer_class=agents.EpisodeDictRolloutBuffer" in str(scattered[0].message)
    fast = agents.make_algo("ppo", env, TINY, n_steps=16, batch_size=16, seed=0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        fast.learn(64)
    assert not [w for w in record if "scattered order" in str(w.message)]


def test_value_head_learning_rate_scale():
    """value_lr_scale multiplies the value head's step only; SB3's schedule value stays put."""
    env = make_vec_env("TextGenTargetTokens-v0", n_envs=2, **ENV)
    model = PPO(
        TransformerPolicy,
        env,
        n_steps=16,
        batch_size=32,
        n_epochs=1,
        learning_rate=1e-4,
        policy_kwargs={**TINY, "value_lr_scale": 100.0},
        seed=0,
    )
    policy = model.policy
    bias, lm = (
        policy.value_net.bias.detach().clone(),
        [p.detach().clone() for p in policy.lm.parameters()],
    )
    model.learn(32)  # one rollout, one Adam step: each weight moves by about lr (x its scale)
    assert abs(float(policy.value_net.bias - bias)) == pytest.approx(1e-2, rel=0.05)
    moved = max(float((a - b).abs().max()) for a, b in zip(policy.lm.parameters(), lm, strict=True))
    assert 1e-5 < moved < 2e-4
    assert [g["lr"] for g in policy.optimizer.param_groups] == [1e-4, 1e-4]


def test_algorithm_seeds_give_different_streams():
    """PPO seeds 1 and 2 sample different actions from the same initial model (bug: loading
    random-tiny re-seeded torch, so every seed shared one stream)."""
    actions = []
    for seed in (1, 2):
        env = agents.make_vec_env(
            "TextGenTargetTokens-v0", n_envs=2, max_new_tokens=6, scorer="length",
            scorer_kwargs={"target": 3},
        )  # fmt: skip
        model = agents.make_algo("ppo", env, {"model": "random-tiny"}, n_steps=8, batch_size=16,
                                 seed=seed)  # fmt: skip
        model.env.seed(0)  # the same prompts: only the policy's sampling stream may differ
        model.learn(16)
        actions.append(model.rollout_buffer.actions.copy())
    assert not np.array_equal(actions[0], actions[1])
