"""Your own task: prompts from a text file and a reward written in ten lines, trained with PPO.

The prompts are `examples/data/picnic_prompts.txt` (one a line); the reward counts food words in
the completion. Prints the mean reward on the prompts before and after, with samples.

    python examples/04_custom_task_and_scorer.py --timesteps 4096
"""

from dataclasses import dataclass
from pathlib import Path

from stable_baselines3 import PPO

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes
from gym_textgen.tasks import load_task

PROMPTS = Path(__file__).resolve().parent / "data" / "picnic_prompts.txt"
FOOD = {"bread", "cake", "cheese", "apples", "apple", "sandwiches", "fruit", "tea", "lemonade",
        "cookies", "salad", "pie", "juice", "soup", "eggs", "chocolate", "strawberries"}  # fmt: skip


def food_reward(prompt: str, completion: str) -> float:
    """Our scorer: 1/3 per food word in the completion, at most 1. Any f(prompt, completion)
    -> float works; `make_scorer` wraps it."""
    words = [w.strip(".,!?;:'\"").lower() for w in completion.split()]
    return min(1.0, sum(w in FOOD for w in words) / 3)


@dataclass
class Args:
    timesteps: int = 4096
    """total environment steps"""
    n_envs: int = 8
    """parallel episodes in one batched env"""
    max_new_tokens: int = 16
    """tokens per completion"""
    learning_rate: float = 3e-4
    eval_episodes: int = 12
    """prompts scored before and after"""
    seed: int = 0


def main(args: Args) -> tuple[float, float]:
    task = load_task(PROMPTS, scorer=food_reward)  # no held-out records: test on the same prompts
    env_kwargs = {"task": task, "max_new_tokens": args.max_new_tokens}
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, **env_kwargs)
    model = agents.make_algo(
        PPO, env, {"model": "default"}, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, gamma=1.0, seed=args.seed,
    )  # fmt: skip
    evaluate = lambda: sample_episodes(  # noqa: E731
        model, "TextGen-v0", env_kwargs, n=args.eval_episodes, seed=args.seed
    )
    before = evaluate()
    model.learn(args.timesteps, progress_bar=False)
    after = evaluate()
    for s in after[:4]:
        print(f"[{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(f"mean food reward: before {mean_reward(before):.3f}, after {mean_reward(after):.3f}")
    return mean_reward(before), mean_reward(after)


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
