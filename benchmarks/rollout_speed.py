"""Rollout speed: SB3 `collect_rollouts` env-steps/s against HF `generate()` new tokens/s.

Same model, batch (= n_envs) and lengths; `generate()` uses its KV cache and samples. The SB3
side runs the real thing: a PPO rollout through the batched TextGen env (tokenizing, scoring and
buffering included), with the fast policy (KV cache) and the naive one (a full forward per step).
Target: fast / generate >= 0.8 for the default model at batch 8.

    python benchmarks/rollout_speed.py --quick     # default model, batch 8 (about a minute)
    python benchmarks/rollout_speed.py             # + batch 32, + SmolLM2-135M when installed
"""

from __future__ import annotations

import argparse

from _common import (
    best_of,
    collect,
    generate_tokens_per_second,
    markdown_table,
    models_to_run,
    ppo_model,
)

import gym_textgen  # noqa: F401


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="default model at batch 8 only")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rows = []
    for name in models_to_run(a.quick):
        batches = [8] if a.quick else [8, 32]
        for batch in batches:
            episodes = 2 if name == "default" else 1
            n_steps = episodes * a.new_tokens
            gen = generate_tokens_per_second(name, batch, a.new_tokens, a.repeats)
            speeds = {}
            for fast in (True, False):
                if not fast and name != "default" and batch > 8:
                    continue  # the naive path at this size takes minutes and shows nothing new
                model = ppo_model(name, batch, a.new_tokens, n_steps, fast)
                seconds = best_of(lambda m=model: collect(m), a.repeats if name == "default" else 1)
                speeds[fast] = n_steps * batch / seconds
            naive = speeds.get(False)
            rows.append(
                [
                    name,
                    batch,
                    a.new_tokens,
                    f"{gen:,.0f}",
                    f"{speeds[True]:,.0f}",
                    f"{naive:,.0f}" if naive else "-",
                    f"**{speeds[True] / gen:.2f}**",
                    f"{naive / gen:.2f}" if naive else "-",
                ]
            )
            print(
                f"{name} batch {batch}: generate {gen:,.0f} tok/s, fast {speeds[True]:,.0f}, naive {naive or 0:,.0f}",
                flush=True,
            )
    print()
    print(
        markdown_table(
            [
                "model",
                "batch",
                "new tokens",
                "generate() tok/s",
                "SB3 fast steps/s",
                "SB3 naive steps/s",
                "fast / generate",
                "naive / generate",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
