"""How much reward a KL budget can buy: the frontier of "reward - beta x KL" on a config's task.

The optimum of E[reward] - beta x KL(pi || pi_0) is pi_0 tilted by exp(reward / beta). This
script samples `--samples` completions of each of `--prompts` training prompts from the config's
initial model, reweights them by that tilt for a grid of beta, and prints the tilted mean reward
and its KL to the samples' uniform weights (a sample estimate: it cannot exceed
log(samples)), with best-of-n sampling beside it (KL <= log n - (n - 1) / n). A trained
policy's (KL, reward) point shows how far inside the frontier its update left it (not run in CI).

    python benchmarks/kl_frontier.py configs/smollm2-sentiment.yaml   # ~1.5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a training config (its model, task and env settings)")
    parser.add_argument("--prompts", type=int, default=16, help="training prompts drawn")
    parser.add_argument("--samples", type=int, default=32, help="completions per prompt")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("prompts", "samples"):
        if getattr(args, name) < 2:
            parser.error(f"--{name} must be >= 2, got {getattr(args, name)}")

    from agents.build import build, env_kwargs_for
    from agents.config import load_config
    from agents.evaluation import sample_episodes
    from agents.rundir import RunDir

    cfg = load_config(args.config)  # (LoRA adapters start at zero: the initial model)
    with tempfile.TemporaryDirectory() as tmp:
        model, env = build(cfg, RunDir(Path(tmp)))  # the initial model, nothing written
    pool = list(env.core.prompts)
    rng = np.random.default_rng(args.seed)
    chosen = [pool[i] for i in rng.choice(len(pool), min(args.prompts, len(pool)), replace=False)]
    k, start = args.samples, time.perf_counter()
    samples = sample_episodes(
        model,
        cfg.env_id,
        env_kwargs_for(cfg),
        n=k * len(chosen),
        split="train",
        prompts=[p for p in chosen for _ in range(k)],
        seed=args.seed,
        n_envs=cfg.n_envs,
    )
    rewards = np.array([s.reward for s in samples]).reshape(len(chosen), k)
    print(f"{len(samples)} samples in {time.perf_counter() - start:.0f}s; base mean reward "
          f"{rewards.mean():.3f}, mean per-prompt std {rewards.std(axis=1).mean():.3f}")  # fmt: skip
    print("\n| beta | tilted reward | lift | KL per episode |\n| ---: | ---: | ---: | ---: |")
    for beta in (1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05):
        w = np.exp((rewards - rewards.max(axis=1, keepdims=True)) / beta)
        w /= w.sum(axis=1, keepdims=True)
        kl = (w * np.log(np.maximum(w * k, 1e-300))).sum(axis=1).mean()
        tilted = (w * rewards).sum(axis=1).mean()
        print(f"| {beta} | {tilted:.3f} | {tilted - rewards.mean():+.3f} | {kl:.2f} |")
    print("\n| best of n | reward | lift | KL bound |\n| ---: | ---: | ---: | ---: |")
    for n in (2, 4, 8, 16):
        if n > k:
            break
        best = np.mean(
            [[rewards[p, rng.choice(k, n, replace=False)].max() for _ in range(200)]
             for p in range(len(chosen))]
        )  # fmt: skip
        print(
            f"| {n} | {best:.3f} | {best - rewards.mean():+.3f} | {np.log(n) - (n - 1) / n:.2f} |"
        )


if __name__ == "__main__":
    main()
