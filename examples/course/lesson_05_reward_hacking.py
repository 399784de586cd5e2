"""Lesson 5 - reward hacking: a naive reward is gamed by parroting the prompt; a mixed reward
fixes it.

Learning goal: the policy optimises the reward you wrote, not the one you meant. The naive
reward is the `overlap` scorer (the seed blog's: completion length / prompt length x the share
of the prompt's words reused). A completion that says nothing new but the prompt's words, at
length, maximises it - and RL finds that: the completions fill up with the prompt's words, often
the same few again and again ("the the the the"). The fix keeps the naive reward at half
weight and prices the exploits it found: `new_words` (the share of the completion's words that
are not in the prompt) and `distinct_words` (the share of its words that are distinct).

For both runs the lesson measures the parrot rate (the share of completion words taken from the
prompt) and the distinct-word share before and after training, and prints samples. What to
observe in `lesson_05.png`: under the naive reward its reward climbs, and so does the parrot
rate while the share of distinct words falls; compare the mixed run's. Ask: is the mixed
reward's text good now, or has the policy found a third trick? (Read its samples.)

    python examples/course/lesson_05_reward_hacking.py         # about 3 minutes on 2 cores
"""

from dataclasses import dataclass

import numpy as np

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes
from gym_textgen.scorers.builtin import words


def parroted(prompt: str, completion: str) -> float:
    """The share of the completion's words that occur in the prompt (0 for no words)."""
    seen, said = set(words(prompt)), words(completion)
    return sum(w in seen for w in said) / len(said) if said else 0.0


def new_words(prompt: str, completion: str) -> float:
    """The share of the completion's words that are not in the prompt (0 for no words)."""
    return 1.0 - parroted(prompt, completion) if words(completion) else 0.0


def distinct_words(prompt: str, completion: str) -> float:
    """The share of the completion's words that are distinct: low for "I should I should"."""
    said = words(completion)
    return len(set(said)) / len(said) if said else 0.0


NAIVE = "overlap"
FIXED = {"overlap": 0.5, new_words: 1.0, distinct_words: 1.0}


def parrot_rate(samples) -> float:
    """Mean share of each completion's words that occur in its prompt."""
    return float(np.mean([parroted(s.prompt, s.completion) for s in samples]))


def distinct_rate(samples) -> float:
    """Mean share of distinct words in each completion."""
    return float(np.mean([distinct_words(s.prompt, s.completion) for s in samples]))


@dataclass
class Args:
    timesteps: int = 16384
    """environment steps per run"""
    n_envs: int = 8
    max_new_tokens: int = 16
    learning_rate: float = 3e-4
    """a large rate: we want to see the hack quickly"""
    eval_episodes: int = 16
    seed: int = 0
    plot: str = "lesson_05.png"


def run(args: Args, scorer) -> dict[str, float]:
    env_kwargs = {"max_new_tokens": args.max_new_tokens, "scorer": scorer}
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, **env_kwargs)
    model = agents.make_algo(
        "ppo", env, {"model": "default"}, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, gamma=1.0, seed=args.seed,
    )  # fmt: skip
    evaluate = lambda: sample_episodes(  # noqa: E731
        model, "TextGen-v0", env_kwargs, n=args.eval_episodes, seed=args.seed
    )
    before = evaluate()
    model.learn(args.timesteps, progress_bar=False)
    after = evaluate()
    name = "naive" if scorer == NAIVE else "mixed"
    for s in after[:3]:
        print(f"  [{name} {s.reward:.2f}] {s.prompt}«{s.completion}»")
    result = {
        "reward_before": mean_reward(before),
        "reward_after": mean_reward(after),
        "parrot_before": parrot_rate(before),
        "parrot_after": parrot_rate(after),
        "distinct_before": distinct_rate(before),
        "distinct_after": distinct_rate(after),
    }
    print(
        f"{name} reward: before {result['reward_before']:.3f}, after {result['reward_after']:.3f}; "
        f"parrot rate: before {result['parrot_before']:.3f}, after {result['parrot_after']:.3f}; "
        f"distinct words: before {result['distinct_before']:.3f}, "
        f"after {result['distinct_after']:.3f}"
    )
    return result


def plot(results: dict[str, dict[str, float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), dpi=100)
    panels = (
        ("reward", "its own reward"),
        ("parrot", "parrot rate"),
        ("distinct", "distinct words"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for k, (name, r) in enumerate(results.items()):
            ax.plot([0, 1], [r[f"{key}_before"], r[f"{key}_after"]], marker="o", color=f"C{k}",
                    label=f"trained on the {name} reward")  # fmt: skip
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Lesson 5: reward hacking")
    fig.tight_layout()
    fig.savefig(path)


def main(args: Args) -> dict[str, dict[str, float]]:
    print(f"1. the naive reward ({NAIVE})")
    naive = run(args, NAIVE)
    print("2. the mixed reward: 0.5 overlap + 1.0 new_words + 1.0 distinct_words")
    fixed = run(args, FIXED)
    results = {"naive": naive, "mixed": fixed}
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    return results


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
