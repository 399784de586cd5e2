"""Lesson 1 - the environment by hand: state, action, reward; a random and a greedy agent.

Learning goal: see text generation as an MDP. The state is the prompt plus the tokens written
so far (`obs["input_ids"]`, padded, with `obs["attention_mask"]`); an action is one token id out
of V; the episode ends at EOS or after `max_new_tokens`; the reward (VADER sentiment in [0, 1])
arrives once, at the end.

What to observe: a uniformly random agent writes byte soup that VADER scores near 0.5 (neutral:
no words, no sentiment); greedy decoding with the pretrained LM writes English but always the
same continuation of each prompt; sampling from the LM writes varied English, and its rewards
spread out - that spread is what reinforcement learning exploits in the next lessons. The plot
(`lesson_01.png`) shows the three reward distributions.

    python examples/course/lesson_01_environment.py            # a few seconds
"""

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

import gym_textgen  # noqa: F401  (registers TextGen-v0)
from agents.dataclass_cli import parse_dataclass_args
from gym_textgen.models import load_model


@dataclass
class Args:
    episodes: int = 48
    """episodes per agent"""
    max_new_tokens: int = 24
    seed: int = 0
    plot: str = "lesson_01.png"
    """where the plot goes"""


def run_episode(env, choose, seed: int) -> tuple[float, str]:
    """One episode; `choose(obs) -> action`. Returns (reward, rendered text)."""
    obs, info = env.reset(seed=seed)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = env.step(choose(obs))
    return float(reward), env.render()


def main(args: Args) -> dict[str, float]:
    env = gym.make("TextGen-v0", max_new_tokens=args.max_new_tokens, render_mode="ansi")
    core = env.unwrapped.core
    obs, _ = env.reset(seed=args.seed)
    print(f"action space: {env.action_space} (one token id)")
    print(
        f"observation: input_ids {obs['input_ids'].shape}, attention_mask {obs['attention_mask'].shape}"
    )
    print(
        f"the prompt the state starts from: {core.decode(obs['input_ids'][obs['attention_mask'] > 0])!r}"
    )

    lm = load_model("default")
    rng = np.random.default_rng(args.seed)
    allowed = np.flatnonzero(core.mask)  # ids the tokenizer can produce

    def logits(obs) -> torch.Tensor:
        n = int(obs["attention_mask"].sum())
        with torch.no_grad():
            return lm(input_ids=torch.as_tensor(obs["input_ids"][:n])[None]).logits[0, -1]

    agents = {
        "random": lambda obs: int(rng.choice(allowed)),
        "greedy LM": lambda obs: int(logits(obs).argmax()),
        "sampled LM": lambda obs: int(torch.distributions.Categorical(logits=logits(obs)).sample()),
    }
    torch.manual_seed(args.seed)
    rewards: dict[str, list[float]] = {}
    for name, choose in agents.items():
        rewards[name] = []
        for i in range(args.episodes):
            reward, text = run_episode(env, choose, seed=args.seed + i)
            rewards[name].append(reward)
            if i < 2:
                print(f"  [{name} {reward:.2f}] {text}")
        print(f"{name}: mean reward {np.mean(rewards[name]):.3f} (std {np.std(rewards[name]):.3f})")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(list(rewards.values()), bins=np.linspace(0, 1, 21), label=list(rewards))
    ax.set_xlabel("episode reward (VADER sentiment, 0.5 = neutral)")
    ax.set_ylabel("episodes")
    ax.set_title("Lesson 1: who gets which reward")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")
    return {name: float(np.mean(r)) for name, r in rewards.items()}


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
