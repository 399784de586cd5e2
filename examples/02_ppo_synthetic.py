"""PPO learns the synthetic `target_tokens` task: emit ids from a target set (ids divisible by 4).

A random-init tiny transformer starts near the random policy's 0.25 and climbs towards 1.0 within
about 10k environment steps (about half a minute on 2 CPU cores). Stock stable-baselines3 PPO;
the policy is `agents.TransformerPolicy`.

    python examples/02_ppo_synthetic.py --timesteps 10240
"""

from dataclasses import dataclass

import numpy as np
from stable_baselines3 import PPO

import agents
from agents.dataclass_cli import parse_dataclass_args


@dataclass
class Args:
    timesteps: int = 10240
    """total environment steps"""
    n_envs: int = 8
    """parallel episodes in one batched env"""
    max_new_tokens: int = 8
    """episode length (EOS does not end episodes here)"""
    learning_rate: float = 1e-3
    """a random-init model tolerates a large step"""
    seed: int = 0


def main(args: Args) -> float:
    env = agents.make_vec_env(
        "TextGenTargetTokens-v0",
        n_envs=args.n_envs,
        max_new_tokens=args.max_new_tokens,
        stop_on_eos=False,
    )
    # stock PPO with agents.TransformerPolicy and agents.EpisodeDictRolloutBuffer
    model = agents.make_algo(
        PPO,
        env,
        {"model": "random-tiny"},
        n_steps=32,
        batch_size=64,
        n_epochs=4,
        learning_rate=args.learning_rate,
        gamma=1.0,  # undiscounted: the reward arrives at the end of a short episode
        seed=args.seed,
    )
    model.learn(args.timesteps, progress_bar=False)
    recent = [e["r"] for e in model.ep_info_buffer]
    mean = float(np.mean(recent))
    print(f"mean reward over the last {len(recent)} episodes: {mean:.3f} (random policy ~0.25)")
    return mean


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
