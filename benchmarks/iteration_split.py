"""Where a learn() iteration's time goes: collecting the batch against updating on it.

PPO with one update per batch (one epoch, one minibatch) and REINFORCE-RLOO (groups of 4) on
TextGen-v0, same 32 envs x 24-token episodes, same model; each iteration's `collect_rollouts` and
`train` are timed (after one warm-up iteration). Prints medians, env-steps/s and the ratio
PPO / REINFORCE, measured in the same run.

    python benchmarks/iteration_split.py                        # default model, about 1 minute
    python benchmarks/iteration_split.py --model smollm2-135m   # about 3 minutes
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from _common import markdown_table

import agents

N_ENVS, NEW_TOKENS = 32, 24


def timed_iterations(algo: str, model_name: str, iterations: int) -> dict[str, list[float]]:
    kwargs: dict[str, Any] = {}
    if model_name not in ("default", "random-tiny"):
        kwargs["tokenizer"] = model_name
    env = agents.make_vec_env(
        "TextGen-v0",
        n_envs=N_ENVS,
        group_size=4 if algo == "reinforce" else 1,
        seed=0,
        max_new_tokens=NEW_TOKENS,
        **kwargs,
    )
    policy_kwargs = {"model": model_name, "value_lr_scale": 100.0}
    if algo == "reinforce":
        model = agents.make_algo(
            "reinforce", env, policy_kwargs, learning_rate=5e-5, scale_by_std=True, seed=0
        )
    else:
        batch = N_ENVS * NEW_TOKENS
        model = agents.make_algo(
            "ppo", env, policy_kwargs, learning_rate=5e-5, n_steps=NEW_TOKENS,
            batch_size=batch, n_epochs=1, gamma=1.0, seed=0,
        )  # fmt: skip
    times: dict[str, list[float]] = {"collect": [], "train": [], "steps": []}
    collect, train = model.collect_rollouts, model.train

    def timed_collect(*args: Any, **kw: Any) -> bool:
        t0, n0 = time.perf_counter(), model.num_timesteps
        result = collect(*args, **kw)
        times["collect"].append(time.perf_counter() - t0)
        times["steps"].append(model.num_timesteps - n0)
        return result

    def timed_train() -> None:
        t0 = time.perf_counter()
        train()
        times["train"].append(time.perf_counter() - t0)

    model.collect_rollouts, model.train = timed_collect, timed_train
    model.learn(N_ENVS * NEW_TOKENS * (iterations + 1))
    return {k: v[1:] for k, v in times.items()}  # without the warm-up iteration


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--iterations", type=int, default=4)
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    rows, rates = [], {}
    for algo in ("ppo", "reinforce"):
        t = timed_iterations(algo, a.model, a.iterations)
        collect, train = float(np.median(t["collect"])), float(np.median(t["train"]))
        rates[algo] = sum(t["steps"]) / (sum(t["collect"]) + sum(t["train"]))
        share = train / (collect + train)
        rows.append([algo, f"{collect:.2f}", f"{train:.2f}", f"{share:.0%}", f"{rates[algo]:.0f}"])
    print(f"model {a.model}, {N_ENVS} envs x {NEW_TOKENS} tokens, {a.iterations} iterations")
    header = ["algorithm", "collect s", "update s", "update share", "env-steps/s"]
    print(markdown_table(header, rows))
    print(f"ratio PPO(1 update) / REINFORCE env-steps/s: {rates['ppo'] / rates['reinforce']:.2f}")


if __name__ == "__main__":
    main()
