"""Your own algorithm under `textgen bench`'s protocol: REINFORCE as a plain loop, no
stable-baselines3.

A training function takes an env factory, a budget of env steps and a seed, and returns a policy
with SB3's `predict`; the bench evaluates it on the same held-out instances, with the same
statistics, as the built-in algorithms (and calls it with a budget of 0 for the "before" score):

    textgen bench --algos random,reinforce,examples/06_reinforce_function.py:reinforce_loop \
        --tasks target_tokens --timesteps 2048 --seeds 3
    python examples/06_reinforce_function.py --timesteps 2048
"""

from __future__ import annotations

import argparse

import numpy as np
import torch as th

from gym_textgen.models import load_model


class LMPolicy:
    """The LM as a policy: the next token's distribution at the end of each row's text."""

    def __init__(self, lm: th.nn.Module, n_actions: int) -> None:
        self.lm, self.n = lm, n_actions

    def dist(self, obs: dict) -> th.distributions.Categorical:
        mask = th.as_tensor(obs["attention_mask"]).long()  # right-padded: 1s are the text
        width = int(mask.sum(1).max())
        ids = th.as_tensor(obs["input_ids"])[:, :width]
        logits = self.lm(input_ids=ids, attention_mask=mask[:, :width]).logits
        return th.distributions.Categorical(
            logits=logits[th.arange(len(ids)), mask.sum(1) - 1, : self.n]
        )

    def predict(self, obs: dict, deterministic: bool = False, **_: object):
        with th.no_grad():
            dist = self.dist(obs)
        actions = dist.probs.argmax(-1) if deterministic else dist.sample()
        return actions.numpy(), None


def reinforce_loop(
    make_env,
    timesteps: int,
    seed: int,
    model: str = "default",
    learning_rate: float = 3e-4,
    episodes_per_update: int = 16,
) -> LMPolicy:
    """REINFORCE with the batch's mean reward as its baseline, one update per batch; no episode
    starts once the budget of env steps is spent (the bench counts them through `make_env`'s
    envs), so the last batch may be short."""
    th.manual_seed(seed)
    env = make_env()
    policy = LMPolicy(load_model(model), env.action_space.n)
    optimizer = th.optim.Adam(policy.lm.parameters(), lr=learning_rate)
    steps, first = 0, True
    while steps < timesteps:
        log_probs, rewards = [], []
        for _ in range(episodes_per_update):
            if steps >= timesteps:
                break
            obs, _ = env.reset(seed=seed if first else None)
            first, done, log_prob, ret = False, False, 0.0, 0.0
            while not done:
                dist = policy.dist({k: v[None] for k, v in obs.items()})
                action = dist.sample()
                log_prob = log_prob + dist.log_prob(action)[0]
                obs, reward, terminated, truncated, _ = env.step(int(action))
                ret, done, steps = ret + reward, terminated or truncated, steps + 1
            log_probs.append(log_prob)
            rewards.append(ret)
        advantages = th.tensor(rewards) - float(np.mean(rewards))
        loss = -(advantages * th.stack(log_probs)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    env.close()
    return policy


if __name__ == "__main__":
    import gymnasium

    from agents.evaluation import mean_reward, sample_episodes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="target_tokens")
    parser.add_argument("--timesteps", type=int, default=2048)
    parser.add_argument("--episodes", type=int, default=32)
    args = parser.parse_args()
    kwargs = {"task": args.task}

    def make_env(n_envs=None):
        return gymnasium.make("TextGen-v0", **kwargs)

    for budget in (0, args.timesteps):
        samples = sample_episodes(reinforce_loop(make_env, budget, seed=0), "TextGen-v0", kwargs,
                                  n=args.episodes)  # fmt: skip
        print(f"after {budget} steps: mean reward {mean_reward(samples):.3f}")
        print(f"  {samples[0].prompt}«{samples[0].completion}»")
