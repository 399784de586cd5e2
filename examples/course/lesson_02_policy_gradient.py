"""Lesson 2 - policy gradient from scratch, with and without a baseline; then SB3's PPO.

Learning goal: the REINFORCE estimator as the literature writes it,

    grad J(theta) = E[ sum_t grad log pi_theta(a_t | s_t) * (R - b) ],

where R is the episode's reward and b a baseline that does not depend on the actions (here the
batch's mean reward). Subtracting b leaves the gradient's expectation unchanged and cuts its
variance. Then the same task with stable-baselines3's PPO, which reuses each batch for several
clipped updates (why it clips: a ratio pi_new / pi_old far from 1 means the batch no longer
describes the policy being updated).

Task: `target_tokens` (synthetic: the reward is the share of generated ids divisible by 4; a
uniformly random policy scores about 0.25) with a small randomly initialised LM, so it learns in
seconds. What to observe in `lesson_02.png`: both REINFORCE variants climb; with the baseline,
the curve climbs sooner for the same samples; PPO, reusing each batch, gets furthest per sample.

    python examples/course/lesson_02_policy_gradient.py         # about 40 seconds on 2 cores
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import agents
from agents.dataclass_cli import parse_dataclass_args
from gym_textgen.envs import TextGenVectorEnv
from gym_textgen.models import load_model


@dataclass
class Args:
    iterations: int = 150
    """policy-gradient updates per REINFORCE run"""
    batch: int = 16
    """episodes per update"""
    max_new_tokens: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    plot: str = "lesson_02.png"


def reinforce(args: Args, baseline: bool) -> list[float]:
    """REINFORCE in ~25 lines: sample a batch of episodes, then one gradient step."""
    env = TextGenVectorEnv(
        num_envs=args.batch, task="target_tokens", max_new_tokens=args.max_new_tokens,
        stop_on_eos=False,
    )  # fmt: skip
    policy = load_model("random-tiny", vocab_size=int(env.single_action_space.n), seed=args.seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate)
    torch.manual_seed(args.seed)
    rows = torch.arange(args.batch)
    curve = []
    for it in range(args.iterations):
        # 1. sample a batch of episodes with the current policy (no gradient needed here)
        obs, _ = env.reset(seed=args.seed + it)
        start = torch.as_tensor(obs["attention_mask"].sum(1))  # prompt lengths
        for _ in range(args.max_new_tokens):
            ids, n = (
                torch.as_tensor(obs["input_ids"]),
                torch.as_tensor(obs["attention_mask"].sum(1)),
            )
            with torch.no_grad():
                last = policy(input_ids=ids).logits[rows, n - 1]  # (B, V): pi(. | s_t)
            actions = torch.distributions.Categorical(logits=last).sample()
            obs, rewards, terminated, truncated, _ = env.step(actions.numpy())
        R = torch.as_tensor(rewards, dtype=torch.float32)  # each episode's reward
        # 2. log pi(a_t | s_t) summed over each episode, with gradient: one forward for the batch
        ids = torch.as_tensor(obs["input_ids"])  # the final states: prompt + all actions
        logp = policy(input_ids=ids).logits.log_softmax(-1)  # (B, L, V)
        t = start[:, None] + torch.arange(args.max_new_tokens)  # positions of the actions
        chosen = logp[rows[:, None], t - 1].gather(2, ids[rows[:, None], t][..., None])
        log_prob = chosen.squeeze(-1).sum(1)  # (B,)
        # 3. the estimator: -(sum_t log pi) * (R - b), averaged over the batch
        b = R.mean() if baseline else 0.0
        loss = -(log_prob * (R - b)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        curve.append(float(R.mean()))
    return curve


def ppo(args: Args) -> list[tuple[int, float]]:
    """The same task, the same number of episodes, with stable-baselines3's PPO."""
    from agents.callbacks import MetricsCallback, read_metrics

    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=args.batch,
                              max_new_tokens=args.max_new_tokens, stop_on_eos=False)  # fmt: skip
    model = agents.make_algo(
        "ppo", env, {"model": "random-tiny", "model_kwargs": {"seed": args.seed}},
        n_steps=args.max_new_tokens, batch_size=args.batch * args.max_new_tokens // 2,
        n_epochs=4, learning_rate=args.learning_rate, gamma=1.0, seed=args.seed,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.csv"
        steps = args.iterations * args.batch * args.max_new_tokens
        model.learn(steps, callback=MetricsCallback(metrics))
        rows = read_metrics(metrics)
    return [float(r["reward/total"]) for r in rows]  # one row per batch of `batch` episodes


def main(args: Args) -> dict[str, float]:
    curves = {
        "REINFORCE, no baseline": reinforce(args, baseline=False),
        "REINFORCE, mean baseline": reinforce(args, baseline=True),
        "PPO (stable-baselines3)": ppo(args),
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, curve in curves.items():
        episodes = (np.arange(len(curve)) + 1) * args.batch
        ax.plot(episodes, curve, label=name)
    ax.axhline(0.25, ls="--", color="gray", lw=1, label="uniformly random")
    ax.set_xlabel("episodes sampled")
    ax.set_ylabel("mean reward of the batch")
    ax.set_title("Lesson 2: target_tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot)
    finals = {}
    for name, curve in curves.items():
        finals[name] = float(np.mean(curve[-5:]))
        hit = next((i for i, r in enumerate(curve) if r >= 0.9), None)
        reached = f"{(hit + 1) * args.batch} episodes" if hit is not None else "not reached"
        print(f"{name}: reward 0.9 after {reached}; last 5 batches {finals[name]:.3f}")
    print(f"plot: {args.plot}")
    return finals


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
