"""PPO fine-tunes the shipped default LM to write positive movie reviews (VADER sentiment reward).

Prints the mean reward on held-out prompts before and after, with samples.

    python examples/03_ppo_sentiment.py --timesteps 8192
"""

from dataclasses import dataclass

from stable_baselines3 import PPO

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes


@dataclass
class Args:
    timesteps: int = 8192
    """total environment steps"""
    n_envs: int = 8
    """parallel episodes in one batched env"""
    max_new_tokens: int = 24
    """tokens per completion"""
    learning_rate: float = 1e-4
    """small steps keep the pretrained LM fluent"""
    eval_episodes: int = 16
    """held-out prompts scored before and after"""
    seed: int = 0


def main(args: Args) -> tuple[float, float]:
    env_kwargs = {"max_new_tokens": args.max_new_tokens}
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, **env_kwargs)
    model = agents.make_algo(
        PPO,
        env,
        {"model": "default"},
        n_steps=64,
        batch_size=128,
        n_epochs=4,
        learning_rate=args.learning_rate,
        gamma=1.0,
        seed=args.seed,
    )
    evaluate = lambda: sample_episodes(  # noqa: E731
        model, "TextGen-v0", env_kwargs, n=args.eval_episodes, seed=args.seed
    )
    before = evaluate()
    model.learn(args.timesteps, progress_bar=False)
    after = evaluate()
    for s in after[:4]:
        print(f"[{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(
        f"mean sentiment reward: before {mean_reward(before):.3f}, after {mean_reward(after):.3f}"
    )
    return mean_reward(before), mean_reward(after)


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
