"""Does RL raise each task's reward? PPO (or REINFORCE-RLOO) per task for a fixed wall-clock
budget, held-out mean reward before and after (issue 12's learning check; not run in CI).

    python benchmarks/task_learning.py                                  # 3 tasks x 10 min, default model
    python benchmarks/task_learning.py --tasks summarize --seconds 60   # one quick cell
    python benchmarks/task_learning.py --model smollm2-135m --algo reinforce
    python benchmarks/task_learning.py --lr 3e-4 --seconds 240  # issue 12's published check

Each cell trains from the initial model with the same seed and settings, stops at the budget
(checked every step), and scores the same `--episodes` held-out prompts before and
after with sampling (seeded). Prints a few of those samples before and after (`--show`: read
what earned the reward) and a markdown table: reward before, after, the lift, env-steps.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

from _common import markdown_table
from stable_baselines3.common.callbacks import BaseCallback

import agents
from agents.evaluation import mean_reward, sample_episodes, samples_markdown

TASKS = "summarize,commongen,reasoning_gym:syllogism"


class Deadline(BaseCallback):
    """Stops `learn` at the first step past `seconds` (SB3 ends learn when on_step is False)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_step(self) -> bool:
        return time.perf_counter() - self.start < self.seconds


def cell(task: str, args: argparse.Namespace) -> list[Any]:
    env_kwargs: dict[str, Any] = {"task": task}
    if args.max_new_tokens:
        env_kwargs["max_new_tokens"] = args.max_new_tokens
    if args.model not in ("default", "random-tiny"):
        env_kwargs["tokenizer"] = args.model
    group = 4 if args.algo == "reinforce" else 1
    env = agents.make_vec_env(
        "TextGen-v0", n_envs=args.n_envs, group_size=group, seed=0, **env_kwargs
    )
    policy_kwargs = {"model": args.model}
    if args.algo == "reinforce":
        model = agents.make_algo(
            "reinforce", env, policy_kwargs, learning_rate=args.lr, scale_by_std=True, seed=0
        )
    else:
        model = agents.make_algo(
            "ppo", env, {**policy_kwargs, "value_lr_scale": 10.0}, learning_rate=args.lr,
            n_steps=32, batch_size=128, n_epochs=4, gamma=1.0, seed=0,
        )  # fmt: skip
    evaluate = lambda: sample_episodes(model, "TextGen-v0", env_kwargs, n=args.episodes)  # noqa: E731
    before_samples = evaluate()
    t0 = time.perf_counter()
    model.learn(10**9, callback=Deadline(args.seconds), progress_bar=False)
    seconds = time.perf_counter() - t0
    after_samples = evaluate()
    if args.show:  # read what earned the reward: a metric can be gamed
        for when, samples in (("before", before_samples), ("after", after_samples)):
            print(samples_markdown(f"{task}, {when} training", samples[: args.show]), flush=True)
    before, after = mean_reward(before_samples), mean_reward(after_samples)
    return [
        task,
        f"{before:.3f}",
        f"{after:.3f}",
        f"{after - before:+.3f}",
        model.num_timesteps,
        f"{seconds:.0f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=TASKS, help="comma-separated task names")
    p.add_argument("--model", default="default")
    p.add_argument("--algo", choices=["ppo", "reinforce"], default="ppo")
    p.add_argument("--seconds", type=float, default=600.0, help="training budget per task")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--n-envs", type=int, default=16)
    p.add_argument("--episodes", type=int, default=48, help="held-out episodes before and after")
    p.add_argument("--max-new-tokens", type=int, default=0, help="0: each task's own length")
    p.add_argument("--show", type=int, default=4, help="held-out samples to print per task")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    rows = [cell(task, a) for task in a.tasks.split(",")]
    print(f"{a.algo} on {a.model}, {a.seconds:.0f} s per task, lr {a.lr}, {a.n_envs} envs")
    header = ["task", "held-out before", "after", "lift", "env-steps", "seconds"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
