"""Reward hacking: PPO games a naive reward by parroting the prompt; a mixed reward fixes it.

The naive reward is the seed blog's `overlap`: (completion length / prompt length) x the share of
the prompt's words reused. Saying nothing new but the prompt's words, at length, maximises it.
The fix mixes in what the naive reward ignores: `repetition` (the share of distinct word
trigrams, low for loops) and `fluency` (1 / perplexity under the initial default LM). For both
runs it prints the parrot rate (the share of completion words taken from the prompt) before and
after training, with samples: watch the first run's rate climb and the second's stay put.

    python examples/06_reward_hacking.py --timesteps 4096
"""

from dataclasses import dataclass

import numpy as np
from stable_baselines3 import PPO

import agents
from agents.config import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes
from gym_textgen.scorers.builtin import words

NAIVE = "overlap"
FIXED = {"overlap": 0.5, "repetition": 1.0, "fluency": 1.0}


def parrot_rate(samples) -> float:
    """Mean share of each completion's words that occur in its prompt."""
    rates = []
    for s in samples:
        prompt, completion = set(words(s.prompt)), words(s.completion)
        rates.append(sum(w in prompt for w in completion) / len(completion) if completion else 0.0)
    return float(np.mean(rates))


@dataclass
class Args:
    timesteps: int = 4096
    """environment steps per run"""
    n_envs: int = 8
    max_new_tokens: int = 16
    learning_rate: float = 3e-4
    """a large rate: we want to see the hack quickly"""
    eval_episodes: int = 16
    seed: int = 0


def run(args: Args, scorer) -> dict[str, float]:
    env_kwargs = {"max_new_tokens": args.max_new_tokens, "scorer": scorer}
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
    name = scorer if isinstance(scorer, str) else "mixed"
    for s in after[:3]:
        print(f"  [{name} {s.reward:.2f}] {s.prompt}«{s.completion}»")
    result = {
        "reward_before": mean_reward(before),
        "reward_after": mean_reward(after),
        "parrot_before": parrot_rate(before),
        "parrot_after": parrot_rate(after),
    }
    print(
        f"{name} reward: before {result['reward_before']:.3f}, after {result['reward_after']:.3f}; "
        f"parrot rate: before {result['parrot_before']:.3f}, after {result['parrot_after']:.3f}"
    )
    return result


def main(args: Args) -> dict[str, dict[str, float]]:
    print(f"1. the naive reward ({NAIVE})")
    naive = run(args, NAIVE)
    print(f"2. the mixed reward {FIXED}")
    fixed = run(args, FIXED)
    return {"naive": naive, "fixed": fixed}


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
