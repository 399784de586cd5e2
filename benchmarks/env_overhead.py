"""Env overhead: TextGen-v0 steps/s against CartPole-v1 steps/s, measured in the same run.

Both envs come from `gymnasium.make` (with its default wrappers) and take random actions from
`action_space.sample()`, resetting when an episode ends. TextGen uses the `length` scorer, so the
figure is the env's own cost: a token append per step and one decode + score per episode.
Target: ratio >= 1.0 (a token append must cost no more than a physics step). Vectorized, the
same for 8 slots: the native `TextGenVectorEnv` against CartPole's `SyncVectorEnv` (env-steps/s,
batched infos included).

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
    n = 8
    textgen_vec = gym.make_vec("TextGen-v0", num_envs=n, vectorization_mode="vector_entry_point",
                               scorer="length")  # fmt: skip
    cartpole_vec = gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="sync")
    tg, cp, tgv, cpv = [], [], [], []
    for _ in range(a.repeats):  # interleave so machine noise hits all alike
        tg.append(steps_per_second(textgen, a.steps))
        cp.append(steps_per_second(cartpole, a.steps))
        tgv.append(vector_steps_per_second(textgen_vec, a.steps // n))
        cpv.append(vector_steps_per_second(cartpole_vec, a.steps // n))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"| env | steps/s (median of {a.repeats}) |")
    print("| --- | ---: |")
    print(f"| TextGen-v0 (length scorer, 24+32 tokens) | {med(tg):,.0f} |")
    print(f"| CartPole-v1 | {med(cp):,.0f} |")
    print(f"| TextGen-v0, native vector env, {n} slots (env-steps/s) | {med(tgv):,.0f} |")
    print(f"| CartPole-v1, SyncVectorEnv, {n} slots (env-steps/s) | {med(cpv):,.0f} |")
    print(f"\nratio TextGen/CartPole = {med(tg) / med(cp):.2f} (target >= 1.0)")
    print(f"ratio TextGen/CartPole vectorized = {med(tgv) / med(cpv):.2f} (target >= 1.0)")


def vector_steps_per_second(envs: gym.vector.VectorEnv, n_steps: int, seed: int = 0) -> float:
    """Env-steps/s of `n_steps` batched random steps (the vector env resets finished slots)."""
    envs.reset(seed=seed)
    envs.action_space.seed(seed)
    sample, step = envs.action_space.sample, envs.step
    t0 = time.perf_counter()
    for _ in range(n_steps):
        step(sample())
    return n_steps * envs.num_envs / (time.perf_counter() - t0)


if __name__ == "__main__":
    main()
