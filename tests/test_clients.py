"""RL libraries nobody here wrote run the env unpatched: TorchRL, Tianshou, a CleanRL-style loop.

Each client is used the way its own documentation shows, on `TextGen-v0` and one other id, with
a tiny bag-of-embeddings policy (the point is the env contract, not learning). The clients come
with the `clients` extra, which `make test` installs; without it these tests are skipped.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import gym_textgen  # noqa: F401  (registers the ids)

IDS = ["TextGen-v0", "TextGenArithmetic-v0"]
KW = {"max_new_tokens": 4, "stop_on_eos": False}  # episodes of exactly 4 steps
INFO_KEYS = {"prompt_index", "prompt_tokens", "prompt", "completion", "new_tokens",
             "reward_components"}  # fmt: skip


class Bag(nn.Module):
    """Mean embedding of the tokens on the text (the policy's features)."""

    def __init__(self, vocab: int, dim: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.float()[..., None]  # (B, L, 1)
        return (self.emb(ids.long()) * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, dim)


# -- TorchRL -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_torchrl_gymenv_by_id_passes_check_env_specs(env_id):
    """`GymEnv(id)` passes its own `frameskip` keyword first and falls back on Python's wording
    of an unexpected keyword (it raised our own wording before, and GymEnv gave up)."""
    pytest.importorskip("torchrl")
    from torchrl.envs import GymEnv
    from torchrl.envs.utils import check_env_specs

    env = GymEnv(env_id, categorical_action_encoding=True, **KW)
    check_env_specs(env)
    rollout = env.rollout(4)  # max_new_tokens=4: one whole episode
    assert rollout["next", "done"][-1].item() and not rollout["next", "done"][:-1].any()
    assert rollout["next", "input_ids"].shape == (4, env.observation_spec["input_ids"].shape[-1])
    assert rollout["next", "reward"][:-1].eq(0).all()  # sparse: the score comes at the end
    assert 0.0 <= rollout["next", "reward"][-1].item() <= 1.0


@pytest.mark.parametrize("env_id", IDS)
def test_torchrl_collector_over_the_vector_env_reads_info(env_id):
    """TorchRL's preferred vector mode (autoreset Disabled: it resets finished slots itself with
    `reset_mask`), with info keys read into the tensordict on every step."""
    pytest.importorskip("torchrl")
    from torchrl.collectors import Collector
    from torchrl.data import Unbounded
    from torchrl.envs import GymWrapper, default_info_dict_reader
    from torchrl.envs.utils import RandomPolicy, check_env_specs

    n = 3
    vec = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled", **KW)  # fmt: skip
    env = GymWrapper(vec, categorical_action_encoding=True)
    keys = ["prompt_tokens", "new_tokens"]
    spec = [Unbounded((n,), dtype=torch.int64)] * len(keys)
    env = env.auto_register_info_dict(info_dict_reader=default_info_dict_reader(keys, spec))
    check_env_specs(env)
    collector = Collector(env, RandomPolicy(env.action_spec), frames_per_batch=10 * n,
                          total_frames=20 * n)  # fmt: skip
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2
    for batch in batches:
        new_tokens = batch["next", "new_tokens"]  # (n, 10): 1, 2, 3, 4, 1, 2, ... per slot
        done = batch["next", "done"][..., 0]
        assert torch.equal(done, new_tokens == 4)
        assert new_tokens.min() == 1 and new_tokens.max() == 4
        rewards = batch["next", "reward"][..., 0]
        assert rewards[~done].eq(0).all() and rewards[done].ge(0).all()
        # every step reads prompt + the tokens so far: a slot that TorchRL reset with
        # reset_mask starts again from its new prompt, not from the ended text
        text = batch["attention_mask"].long().sum(-1)
        assert torch.equal(text, batch["next", "prompt_tokens"] + new_tokens - 1)


# -- Tianshou ----------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_tianshou_ppo_trains_a_few_hundred_steps(env_id):
    """Tianshou's Collector stacks infos across steps into its buffer and refuses NaNs: the same
    keys on every step and reset are what let it run (its PPO stopped at once before)."""
    pytest.importorskip("tianshou")
    from tianshou.algorithm.modelfree.ppo import PPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv
    from tianshou.trainer import OnPolicyTrainerParams
    from tianshou.utils.net.common import ModuleWithVectorOutput
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

    torch.manual_seed(0)
    space = gym.make(env_id, **KW).action_space

    class Features(ModuleWithVectorOutput):
        def __init__(self) -> None:
            super().__init__(16)
            self.bag = Bag(int(space.n))

        def forward(self, obs, state=None, info=None):
            ids, mask = (torch.as_tensor(x) for x in (obs.input_ids, obs.attention_mask))
            return self.bag(ids, mask), state

    envs = DummyVectorEnv([lambda: gym.make(env_id, **KW) for _ in range(2)])
    envs.seed(0)
    actor = DiscreteActor(preprocess_net=Features(), action_shape=int(space.n),
                          softmax_output=False)  # fmt: skip
    policy = ProbabilisticActorPolicy(
        actor=actor,
        dist_fn=lambda logits: torch.distributions.Categorical(logits=logits),
        action_space=space,
        action_scaling=False,
        action_bound_method=None,
    )
    algo = PPO(policy=policy, critic=DiscreteCritic(preprocess_net=Features()),
               optim=AdamOptimizerFactory(lr=1e-3))  # fmt: skip
    collector = Collector(algo, envs, VectorReplayBuffer(256, 2))
    before = [p.detach().clone() for p in algo.parameters()]
    stats = algo.run_training(
        OnPolicyTrainerParams(
            training_collector=collector,
            max_epochs=1,
            epoch_num_steps=256,
            collection_step_num_env_steps=64,
            batch_size=32,
            test_in_training=False,
            show_progress=False,
            verbose=False,
        )  # fmt: skip
    )
    assert stats.train_step == 256 and stats.train_episode == 64 and stats.update_step == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, algo.parameters(), strict=True))
    collector.collect(n_step=64, reset_before_collect=True)  # the trainer emptied the buffer
    data = collector.buffer[collector.buffer.sample_indices(0)]
    assert len(data) == 64 and set(data.info.keys()) >= INFO_KEYS
    done = data.done.astype(bool)
    completions = np.asarray(data.info.completion)
    assert done.sum() == 16 and all(isinstance(c, str) for c in completions[done])
    assert (np.asarray(data.info.new_tokens)[done] == 4).all()
    assert (completions[~done] == "").all()  # the neutral value before the last step


# -- a CleanRL-style loop ----------------------------------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_cleanrl_style_ppo_over_flattened_observations(env_id):
    """CleanRL's ppo.py shape: SyncVectorEnv of FlattenObservation envs, one flat float vector a
    step. The flat layout is `[attention_mask (L) | input_ids (L)]` (Dict keys are sorted), as the
    README says; a loop that read the halves the other way round would embed 0s and 1s."""
    num_envs, num_steps, epochs = 2, 8, 2
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.FlattenObservation(gym.make(env_id, **KW)) for _ in range(num_envs)]
    )
    single = gym.make(env_id, **KW)
    L, V = single.observation_space["input_ids"].shape[0], int(single.action_space.n)
    torch.manual_seed(0)
    bag, actor, critic = Bag(V), nn.Linear(16, V), nn.Linear(16, 1)
    params = [*bag.parameters(), *actor.parameters(), *critic.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def act(flat: torch.Tensor) -> tuple[torch.distributions.Categorical, torch.Tensor]:
        mask, ids = flat[:, :L], flat[:, L:]
        h = bag(ids, mask)
        return torch.distributions.Categorical(logits=actor(h)), critic(h)[:, 0]

    obs, _ = envs.reset(seed=0)
    direct, _ = single.reset(seed=0)
    flat0 = obs[0]
    assert np.array_equal(flat0[:L], direct["attention_mask"])
    assert np.array_equal(flat0[L:], direct["input_ids"])
    returns = []
    for _ in range(2):  # updates
        batch = {"obs": [], "actions": [], "logp": [], "values": [], "rewards": [], "dones": []}
        for _ in range(num_steps):
            x = torch.as_tensor(obs, dtype=torch.float32)
            with torch.no_grad():
                dist, value = act(x)
                action = dist.sample()
            obs, reward, terminated, truncated, info = envs.step(action.numpy())
            for key, val in zip(batch, (x, action, dist.log_prob(action), value,
                                        torch.as_tensor(reward, dtype=torch.float32),
                                        torch.as_tensor(terminated | truncated)), strict=True):  # fmt: skip
                batch[key].append(val)
            returns += list(reward[terminated])
        b = {k: torch.stack(v) for k, v in batch.items()}  # (T, N, ...)
        adv = torch.zeros_like(b["rewards"])  # GAE, gamma = lambda = 1 (episodes are short)
        last = torch.zeros(num_envs)
        for t in reversed(range(num_steps)):
            nonterminal = 1.0 - b["dones"][t].float()
            next_value = b["values"][t + 1] if t + 1 < num_steps else last
            delta = b["rewards"][t] + next_value * nonterminal - b["values"][t]
            last_adv = adv[t + 1] if t + 1 < num_steps else torch.zeros(num_envs)
            adv[t] = delta + nonterminal * last_adv
        ret = adv + b["values"]
        for _ in range(epochs):
            dist, value = act(b["obs"].reshape(num_steps * num_envs, -1))
            ratio = (dist.log_prob(b["actions"].flatten()) - b["logp"].flatten()).exp()
            a = adv.flatten()
            pg = -torch.min(ratio * a, ratio.clamp(0.8, 1.2) * a).mean()
            loss = pg + 0.5 * (value - ret.flatten()).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert torch.isfinite(loss)
    # 2 slots x 16 steps; an episode is 4 steps plus the autoreset step (NextStep): 3 each
    assert len(returns) == 6 and all(0.0 <= r <= 1.0 for r in returns)
