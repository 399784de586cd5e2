"""Does RL learn interactive tasks? Random policy, untrained model and trained model on held-out
instances, over several seeds with 95% bootstrap intervals (issue 25's learning check; not CI).

    python benchmarks/interactive_learning.py --task token_code --seeds 3 --timesteps 6144
    python benchmarks/interactive_learning.py --task guess_number --timesteps 16384 --show 2

REINFORCE with a leave-one-out baseline over groups of 4 episodes of the same instance (the same
seeded other party), on the default model; every seed trains from the initial model and scores
the same `--episodes` held-out instances before and after, sampling (seeded). Prints whole
episodes before and after (`--show`) and a markdown table: for the random policy, the untrained
model and the trained model, the mean reward, the success rate (share of episodes with a reward
above 0) and the mean number of the policy's turns, each with its 95% interval over seeds
(percentile bootstrap of the per-seed means), and the training time per seed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import markdown_table

import agents
from agents.bench import RandomAgent
from agents.evaluation import mean_reward, sample_episodes


def interval(values: list[float], reps: int = 10_000, seed: int = 0) -> str:
    """The mean and a 95% percentile-bootstrap interval of it."""
    x = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(reps, len(x))).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return f"{x.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def record(row: dict[str, list[float]], samples: list, success_at: float | None = None) -> None:
    """Append one seed's mean reward, success rate (a reward above 0, or at least `success_at`)
    and mean policy turns to `row`."""
    row["reward"].append(mean_reward(samples))
    won = [s.reward > 0 if success_at is None else s.reward >= success_at for s in samples]
    row["success"].append(float(np.mean(won)))
    row["turns"].append(float(np.mean([s.turns for s in samples])))


def show(title: str, samples: list) -> None:
    print(f"  {title}")
    for s in samples:
        print(f"    [{s.reward:.2f}] {s.prompt}«{s.completion}»")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="token_code")
    parser.add_argument("--model", default="default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=6144)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lora-r", type=int, default=0, help="LoRA rank on the top 10 blocks")
    parser.add_argument("--episodes", type=int, default=64, help="held-out episodes per score")
    parser.add_argument("--show", type=int, default=3, help="whole episodes to print")
    parser.add_argument("--success-at", type=float, default=None,
                        help="a success is a reward of at least this (default: above 0); 1 for "
                        "a TextArena game, whose losses earn partial credit")  # fmt: skip
    args = parser.parse_args()

    env_id, env_kwargs = "TextGen-v0", {"task": args.task}
    if args.model != "default":
        env_kwargs["tokenizer"] = args.model
    rows = {name: {"reward": [], "success": [], "turns": []}
            for name in ("random", "untrained", "trained")}  # fmt: skip
    seconds = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        env = agents.make_vec_env(env_id, n_envs=args.n_envs, group_size=args.group_size,
                                  seed=seed, **env_kwargs)  # fmt: skip
        policy = {"model": args.model}
        if args.lora_r:
            top = list(range(-10, 0))
            policy["lora"] = {"r": args.lora_r, "lora_alpha": 2 * args.lora_r,
                              "layers_to_transform": top}  # fmt: skip
        model = agents.make_algo("reinforce", env, policy, baseline="rloo",
                                 learning_rate=args.lr, seed=seed)  # fmt: skip
        score = dict(env_id=env_id, env_kwargs=env_kwargs, n=args.episodes, seed=seed)
        random_agent = RandomAgent(env.get_attr("core")[0].mask, seed)
        record(rows["random"], sample_episodes(random_agent, **score), args.success_at)
        before = sample_episodes(model, **score)
        record(rows["untrained"], before, args.success_at)
        t0 = time.perf_counter()
        model.learn(args.timesteps)
        seconds.append(time.perf_counter() - t0)
        after = sample_episodes(model, **score)
        record(rows["trained"], after, args.success_at)
        print(f"seed {seed}: reward random {rows['random']['reward'][-1]:.3f}, untrained "
              f"{rows['untrained']['reward'][-1]:.3f}, trained {rows['trained']['reward'][-1]:.3f}"
              f" ({seconds[-1]:.0f} s)")  # fmt: skip
        if seed == args.first_seed and args.show:
            show("before", before[: args.show])
            show("after", after[: args.show])
    print()
    print(f"{args.task}, {args.model} model, REINFORCE-RLOO, {args.timesteps} steps, lr {args.lr}, "
          f"{args.seeds} seeds, {args.episodes} held-out episodes each")  # fmt: skip
    print(markdown_table(
        ["policy", "held-out reward", "success rate", "policy turns"],
        [[name, *(interval(v[k]) for k in ("reward", "success", "turns"))]
         for name, v in rows.items()],
    ))  # fmt: skip
    won = (
        "a reward above 0" if args.success_at is None else f"a reward of at least {args.success_at}"
    )
    print(f"(mean [95% CI over seeds]; success: {won})")
    print(f"training: {np.mean(seconds):.0f} s per seed (mean)")


if __name__ == "__main__":
    main()
