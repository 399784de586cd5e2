"""Random episodes on every registered id: no error, observations in space, finite rewards.

For each id, `--episodes` episodes (default 10,000) with random arguments per block of episodes
(length limits, EOS stop, dense rewards, a larger vocab_size) and uniformly random actions. The
property tests in tests/test_properties.py run the same checks on fewer, shrinkable examples.

    python benchmarks/random_episodes.py                   # 10,000 episodes per id
    python benchmarks/random_episodes.py --episodes 200    # a quick look
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import gymnasium as gym
import numpy as np
from _common import markdown_table

import gym_textgen

INFO_KEYS = ["prompt_index", "prompt_tokens", "prompt", "completion", "new_tokens",
             "reward_components"]  # fmt: skip


def run_id(env_id: str, episodes: int, block: int, rng: np.random.Generator) -> tuple[int, int]:
    steps = 0
    done = 0
    while done < episodes:
        kwargs = {
            "max_prompt_tokens": int(rng.integers(1, 33)),
            "max_new_tokens": int(rng.integers(1, 33)),
            "stop_on_eos": bool(rng.integers(2)),
            "dense_reward": bool(rng.integers(2)),
            "split": str(rng.choice(["train", "eval"])),
        }
        if rng.random() < 0.3:
            kwargs["vocab_size"] = len(gym_textgen.load_tokenizer("default")) + 64
        env = gym.make(env_id, **kwargs).unwrapped
        space, n = env.observation_space, env.action_space.n
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        for _ in range(min(block, episodes - done)):
            terminated = False
            while not terminated:
                obs, reward, terminated, truncated, info = env.step(int(rng.integers(n)))
                steps += 1
                assert type(reward) is float and math.isfinite(reward), reward
                assert not truncated and space.contains(obs)
                assert list(info) == INFO_KEYS  # on every step
            assert info["new_tokens"] <= kwargs["max_new_tokens"]
            done += 1
            obs, _ = env.reset()
    return done, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10_000)
    p.add_argument("--block", type=int, default=250, help="episodes per random argument set")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    rows = []
    warnings.filterwarnings("ignore", message=".*longer than max_prompt_tokens")
    for env_id in sorted(gym_textgen.ENV_IDS):
        t0 = time.perf_counter()
        episodes, steps = run_id(env_id, a.episodes, a.block, rng)
        seconds = time.perf_counter() - t0
        rows.append([env_id, episodes, steps, f"{seconds:.1f} s", "no error"])
    print(markdown_table(["id", "episodes", "steps", "time", "outcome"], rows))


if __name__ == "__main__":
    main()
