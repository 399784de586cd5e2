"""Lesson 6 - action masking: MaskablePPO with top-k masks against plain PPO.

Learning goal: the action space of a language model is its whole vocabulary (4,096 ids for the
default model), and almost every id is a bad next token. An action mask removes actions before
the policy samples: here, at every step, all but the k tokens that the *initial* model ranks
highest (the masking of NLPO, Ramamurthy et al. 2023). The policy gradient then only reshuffles
probability among plausible tokens: exploration is spent where it can pay, and the text cannot
drift into tokens the language model would never write. sb3-contrib's MaskablePPO reads the
mask from the env (`action_masks()`) before each step and stores it with the rollout, so the
update sees the same masked distribution.

The same sentiment task, model, seed and budget for both runs. What to observe in
`lesson_06.png`: the rollout reward against environment steps for each (sample efficiency), and
the KL to the initial model that each run ends at. Ask: what does a mask of k = 1 reduce the
policy to? What is lost with a small k?

    python examples/course/lesson_06_action_masking.py        # about 2 minutes on 2 cores
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.callbacks import read_metrics
from agents.config import TrainConfig
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward
from agents.rundir import before_after
from agents.training import train


@dataclass
class Args:
    timesteps: int = 8192
    """environment steps per run"""
    top_k: int = 10
    """tokens the mask allows at each step"""
    n_envs: int = 8
    max_new_tokens: int = 16
    learning_rate: float = 3e-4
    eval_episodes: int = 32
    seed: int = 0
    plot: str = "lesson_06.png"


def run(args: Args, folder: Path, masked: bool) -> dict:
    cfg = TrainConfig(
        algo="maskable_ppo" if masked else "ppo",
        mask_top_k=args.top_k if masked else 0,
        env_kwargs={"max_new_tokens": args.max_new_tokens},
        timesteps=args.timesteps, n_envs=args.n_envs, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, seed=args.seed, eval_episodes=args.eval_episodes,
        kl_coef=0.05,  # the same small penalty for both; it also logs the KL per episode
        progress_bar=False, out=str(folder),
    )  # fmt: skip
    run = train(cfg)
    rows = read_metrics(run / "metrics.csv")
    after = before_after(run)[1]
    name = f"MaskablePPO, top-{args.top_k} mask" if masked else "PPO, no mask"
    for s in after[:2]:
        print(f"  [{name} {s.reward:.2f}] {s.prompt}«{s.completion}»")
    return {
        "name": name,
        "steps": [int(r["timesteps"]) for r in rows],
        "reward": [float(r["reward/total"]) for r in rows],
        "kl": float(np.mean([float(r["kl/ref_per_episode"]) for r in rows[-3:]])),
        "after": mean_reward(after),
    }


def main(args: Args) -> dict[str, dict[str, float]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.top_k < 1:  # before any training: 0 would be no mask at all
        raise SystemExit(f"--top-k: expects at least 1 token allowed, got {args.top_k}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            run(args, Path(tmp) / name, masked)
            for name, masked in (("ppo", False), ("masked", True))
        ]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for r in runs:
        ax.plot(r["steps"], r["reward"], marker="o", markersize=3, label=r["name"])
    ax.set_xlabel("environment steps")
    ax.set_ylabel("rollout reward (sentiment)")
    ax.set_title("Lesson 6: action masking")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot)
    summary = {}
    for r in runs:
        # sample efficiency in one number: the mean rollout reward over the whole run (the area
        # under the curve); a run that climbs sooner has the larger one
        area = float(np.mean(r["reward"]))
        summary[r["name"]] = {"mean_over_training": area, "after": r["after"], "kl": r["kl"]}
        print(
            f"{r['name']}: mean rollout reward over training {area:.3f}, held-out reward after "
            f"{r['after']:.3f}, KL to the initial model {r['kl']:.2f} nats per episode"
        )
    print(f"plot: {args.plot}")
    return summary


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
