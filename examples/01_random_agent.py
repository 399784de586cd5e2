"""A random agent on TextGen-v0: the Gymnasium loop, the spaces, and what a reward looks like.

python examples/01_random_agent.py --episodes 3
"""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import gym_textgen  # noqa: F401  (registers TextGen-v0)
from agents.dataclass_cli import parse_dataclass_args


@dataclass
class Args:
    env_id: str = "TextGen-v0"
    """a registered TextGen id"""
    episodes: int = 5
    """episodes to play"""
    seed: int = 0
    """seeds the env's prompt draws and the action sampler"""
    masked: bool = True
    """sample only ids the tokenizer can produce (env.action_masks())"""


def main(args: Args) -> float:
    env = gym.make(args.env_id, render_mode="ansi")
    print("action space:", env.action_space)
    print("observation space:", env.observation_space)
    rng = np.random.default_rng(args.seed)
    returns = []
    obs, info = env.reset(seed=args.seed)
    for _ in range(args.episodes):
        terminated = truncated = False
        episode_return = 0.0
        while not (terminated or truncated):
            if args.masked:  # choose among the allowed ids only
                action = int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
            else:
                action = int(rng.integers(env.action_space.n))
            obs, reward, terminated, truncated, info = env.step(action)
            episode_return += reward
        print(f"[{episode_return:.3f}] {env.render()}")
        returns.append(episode_return)
        obs, info = env.reset()
    mean = float(np.mean(returns))
    print(f"mean return of a random agent: {mean:.3f}")
    return mean


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
