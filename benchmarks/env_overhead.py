"""Env overhead: TextGen-v0 steps/s against CartPole-v1 steps/s, measured in the same run.

Both envs come from `gymnasium.make` (with its default wrappers) and take random actions from
`action_space.sample()`, resetting when an episode ends. TextGen uses the `length` scorer, so the
figure is the env's own cost: a token append per step and one decode + score per episode.
Target: ratio >= 1.0 (a token append must cost no more than a physics step).

    python benchmarks/env_overhead.py [--steps 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import gym_textgen  # noqa: F401  (registers TextGen-v0)


def steps_per_second(env: gym.Env, n_steps: int, seed: int = 0) -> float:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    sample, step, reset = env.action_space.sample, env.step, env.reset
    t0 = time.perf_counter()
    for _ in range(n_steps):
        _, _, terminated, truncated, _ = step(sample())
        if terminated or truncated:
            reset()
    return n_steps / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the median is kept")
    a = p.parse_args()
    textgen = gym.make("TextGen-v0", scorer="length")
    cartpole = gym.make("CartPole-v1")
    tg, cp = [], []
    for _ in range(a.repeats):  # interleave so machine noise hits both alike
        tg.append(steps_per_second(textgen, a.steps))
        cp.append(steps_per_second(cartpole, a.steps))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    ratio = med(tg) / med(cp)
    print(f"| env | steps/s (median of {a.repeats}) |")
    print("| --- | ---: |")
    print(f"| TextGen-v0 (length scorer, 24+32 tokens) | {med(tg):,.0f} |")
    print(f"| CartPole-v1 | {med(cp):,.0f} |")
    print(f"\nratio TextGen/CartPole = {ratio:.2f} (target >= 1.0)")


if __name__ == "__main__":
    main()
