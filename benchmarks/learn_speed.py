"""Learning speed: `learn()` env-steps/s, naive against fast, next to `generate()` tokens/s.

PPO on TextGen-v0 (8 envs, 32-token episodes, n_epochs=4 unless --n-epochs, minibatches of 128), counting
everything `learn()` does: rollouts, scoring, GAE, updates. Variants:

* naive: a full forward per observation in rollouts and per transition in updates;
* grouping only: episode-segment minibatches, no rollout KV cache;
* fast: KV-cached rollouts + episode-segment minibatches (the default).

Targets: fast >= 0.3x `generate()` tok/s for the default model; SmolLM2-135M >= 40 env-steps/s.

    python benchmarks/learn_speed.py --quick          # default model (about 2 minutes)
    python benchmarks/learn_speed.py                  # + SmolLM2-135M when installed
"""

from __future__ import annotations

import argparse
import time

from _common import generate_tokens_per_second, markdown_table, models_to_run, ppo_model

import gym_textgen  # noqa: F401


def learn_steps_per_second(
    name: str, variant: str, n_steps: int, rollouts: int, n_epochs: int
) -> float:
    model = ppo_model(name, 8, 32, n_steps, variant != "naive", n_epochs=n_epochs, batch_size=128)
    if variant == "grouping only":
        model.policy.features_extractor.rollout_cache = None
    model.learn(n_steps * 8)  # warm-up rollout and update
    t0 = time.perf_counter()
    model.learn(n_steps * 8 * rollouts, reset_num_timesteps=False)
    return n_steps * 8 * rollouts / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="default model only")
    p.add_argument(
        "--naive-smollm2", action="store_true", help="also time SmolLM2's naive path (slow)"
    )
    p.add_argument("--n-epochs", type=int, default=4, help="PPO epochs per rollout")
    p.add_argument(
        "--variants",
        default="fast,grouping only,naive",
        help="comma-separated policy paths to time",
    )
    a = p.parse_args()
    rows = []
    for name in models_to_run(a.quick):
        small = name == "default"
        n_steps, rollouts = (64, 3) if small else (32, 1)
        gen = generate_tokens_per_second(name, 8, 32, 3 if small else 1)
        wanted = [v.strip() for v in a.variants.split(",")]
        variants = [v for v in wanted if v != "naive" or small or a.naive_smollm2]
        for variant in variants:
            speed = learn_steps_per_second(name, variant, n_steps, rollouts, a.n_epochs)
            rows.append(
                [name, a.n_epochs, variant, f"{speed:,.1f}", f"{gen:,.0f}", f"{speed / gen:.3f}"]
            )
            print(
                f"{name} {variant}: {speed:,.1f} env-steps/s (generate {gen:,.0f} tok/s)",
                flush=True,
            )
    print()
    print(
        markdown_table(
            [
                "model",
                "n_epochs",
                "policy path",
                "learn() env-steps/s",
                "generate() tok/s (batch 8)",
                "learn / generate",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
