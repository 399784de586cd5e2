"""Lesson 3 - sentiment steering with PPO and the default model.

Learning goal: the whole RL fine-tuning loop on a pretrained language model. The policy is the
shipped default LM (a 4M-parameter Llama trained on simple English); each episode it continues a
movie-review opening by 16 tokens; the reward is VADER's sentiment of the finished text
(0 = very negative, 1 = very positive). PPO (stable-baselines3, unchanged) collects 8 episodes
at a time, estimates advantages with a value head on the same transformer, and takes clipped
steps. A small KL penalty to the initial model (lesson 4) keeps the text English.

What to observe: the same held-out prompts before and after, sampled with the same seed (the
completions change from mixed to positive), and in `lesson_03.png` the rollout reward rising
over training with the KL to the initial model beside it. Ask: which words did the policy learn
to use? Is a higher reward always a better review?

    python examples/course/lesson_03_sentiment_ppo.py          # about a minute on 2 cores
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from agents.callbacks import read_metrics
from agents.config import TrainConfig
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward
from agents.rundir import before_after
from agents.training import train


@dataclass
class Args:
    timesteps: int = 12288
    """environment steps of training"""
    n_envs: int = 8
    max_new_tokens: int = 16
    learning_rate: float = 1e-4
    kl_coef: float = 0.05
    """the KL penalty's weight (lesson 4 varies it)"""
    eval_episodes: int = 32
    """held-out prompts scored before and after"""
    seed: int = 0
    plot: str = "lesson_03.png"


def main(args: Args) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            algo="ppo", env_kwargs={"max_new_tokens": args.max_new_tokens},
            timesteps=args.timesteps, n_envs=args.n_envs, n_steps=32, batch_size=128,
            n_epochs=4, learning_rate=args.learning_rate, kl_coef=args.kl_coef,
            seed=args.seed, eval_episodes=args.eval_episodes, progress_bar=False,
            out=str(Path(tmp) / "run"),
        )  # fmt: skip
        run = train(cfg)  # it scores the held-out prompts before and after, same seed
        before, after = before_after(run)
        rows = read_metrics(run / "metrics.csv")
    for name, samples in (("before", before), ("after", after)):
        print(f"{name} training: mean sentiment {mean_reward(samples):.3f}")
        for s in samples[:3]:
            print(f"  [{s.reward:.2f}] {s.prompt}«{s.completion}»")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(r["timesteps"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [float(r["reward/total"]) for r in rows], marker="o", ms=3, label="reward")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("rollout reward (sentiment)")
    kl = ax.twinx()
    kl.plot(steps, [float(r["kl/ref_per_episode"]) for r in rows], color="C3", ls="--",
            label="KL to the initial model")  # fmt: skip
    kl.set_ylabel("KL (nats per episode)", color="C3")
    ax.set_title("Lesson 3: PPO steers sentiment")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88), fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")
    return {"before": mean_reward(before), "after": mean_reward(after),
            "kl": float(rows[-1]["kl/ref_per_episode"])}  # fmt: skip


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
