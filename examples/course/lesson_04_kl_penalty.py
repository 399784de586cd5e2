"""Lesson 4 - the KL penalty to a reference model: the same run with beta in {0, 0.05, 0.2}.

Learning goal: RL fine-tuning maximises reward *minus* beta times the KL divergence from the
policy to the initial (reference) model,

    J(theta) = E[ R(x, y) ] - beta * KL(pi_theta(. | x) || pi_ref(. | x)),

implemented as a per-token penalty -beta * (log pi_theta(a_t | s_t) - log pi_ref(a_t | s_t)) on
the reward (Ziegler et al. 2019; `agents.kl.KLPenaltyCallback`). Without it (beta = 0) nothing
stops the policy from collapsing onto a few tokens that please the scorer: the reward climbs,
the KL explodes and the text stops being language. With a large beta the policy barely moves.

What to observe in `lesson_04.png`: reward against KL for each beta, one point per rollout, the
run's path from the start (left) to the end (right). And in the printed samples: the beta = 0
text repeats itself - its share of distinct words is far below the others'. Ask: what KL per
episode would you accept, and how would you choose beta to get it? (`kl_coef_target` adapts
beta to a KL budget: see `configs/default.yaml`.)

    python examples/course/lesson_04_kl_penalty.py             # about 2 minutes on 2 cores
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
from gym_textgen.scorers.builtin import words


@dataclass
class Args:
    betas: str = "0,0.05,0.2"
    """comma-separated KL coefficients, one run each"""
    timesteps: int = 8192
    """environment steps per run"""
    n_envs: int = 8
    max_new_tokens: int = 16
    learning_rate: float = 3e-4
    """larger than lesson 3's, so that beta = 0 collapses within the budget"""
    eval_episodes: int = 32
    seed: int = 0
    plot: str = "lesson_04.png"


def distinct(samples) -> float:
    """Distinct words / all words over the completions: low when the text repeats itself."""
    ws = [w for s in samples for w in words(s.completion)]
    return len(set(ws)) / max(len(ws), 1)


def run(args: Args, beta: float, folder: Path) -> dict:
    cfg = TrainConfig(
        algo="ppo", env_kwargs={"max_new_tokens": args.max_new_tokens},
        timesteps=args.timesteps, n_envs=args.n_envs, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, seed=args.seed, eval_episodes=args.eval_episodes,
        # for beta = 0, a negligible 1e-12: the callback still measures the KL, adds nothing
        kl_coef=beta if beta > 0 else 1e-12, progress_bar=False, out=str(folder),
    )  # fmt: skip
    path = train(cfg)
    rows = read_metrics(path / "metrics.csv")
    before, after = before_after(path)
    return {
        "beta": beta,
        "reward": [float(r["reward/sentiment"]) for r in rows],  # the task reward, no penalty
        "kl": [float(r["kl/ref_per_episode"]) for r in rows],
        "before": mean_reward(before),
        "after": mean_reward(after),
        "distinct_before": distinct(before),
        "distinct_after": distinct(after),
        "samples": after[:2],
    }


def main(args: Args) -> dict[float, dict[str, float]]:
    try:
        betas = [float(b) for b in args.betas.split(",")]
    except ValueError:
        raise SystemExit(f"--betas: expects comma-separated numbers, got {args.betas!r}") from None
    if any(b < 0 for b in betas):
        raise SystemExit(f"--betas: expects coefficients >= 0, got {args.betas!r}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run(args, b, Path(tmp) / f"beta{i}") for i, b in enumerate(betas)]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for r in runs:
        ax.plot(r["kl"], r["reward"], marker="o", ms=3, label=f"beta = {r['beta']:g}")
    ax.set_xlabel("KL to the initial model (nats per episode)")
    ax.set_ylabel("rollout sentiment reward")
    ax.set_title("Lesson 4: reward against KL")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot)
    summary = {}
    for r in runs:
        kl = float(np.mean(r["kl"][-3:]))
        summary[r["beta"]] = {"before": r["before"], "after": r["after"], "kl": kl,
                              "distinct_after": r["distinct_after"]}  # fmt: skip
        print(
            f"beta = {r['beta']:g}: held-out reward {r['before']:.3f} -> {r['after']:.3f}, "
            f"KL {kl:.1f} nats per episode, distinct words {r['distinct_before']:.2f} -> "
            f"{r['distinct_after']:.2f}"
        )
        for s in r["samples"]:
            print(f"  [{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(f"plot: {args.plot}")
    return summary


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
