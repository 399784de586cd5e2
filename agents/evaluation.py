"""Sample completions from a trained policy on a task's prompts and score them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.masks import MASK_ATTR, TopKMask
from agents.vec_env import TextGenSB3VecEnv


@dataclass
class Sample:
    """One finished episode (`turns`: the policy's turns; 1 for a single-turn task)."""

    prompt: str
    completion: str
    reward: float
    turns: int = 1


def sample_episodes(
    model: BaseAlgorithm,
    env_id: str = "TextGen-v0",
    env_kwargs: dict[str, Any] | None = None,
    n: int = 16,
    split: str = "eval",
    prompts: list[str] | None = None,
    seed: int = 0,
    deterministic: bool = False,
    n_envs: int = 8,
) -> list[Sample]:
    """Run `n` episodes with `model`'s policy and return them in prompt order.

    Episodes cycle through the `split`'s prompts (or `prompts`), so repeated calls with the same
    seed see the same prompts and, for a given policy, draw the same samples. A DQN model runs
    its greedy policy (argmax Q): its epsilon is exploration, not the policy.
    """
    kwargs = {**(env_kwargs or {}), "split": split}
    env = TextGenSB3VecEnv(env_id, n_envs=min(n_envs, n), **kwargs)
    top_k = getattr(model, MASK_ATTR, None)  # trained under a top-k mask: sample under it too
    if top_k:
        env = TopKMask(env, top_k["k"], top_k["model"], device=str(model.device))
    pool = prompts if prompts is not None else list(env.core.prompts)
    options = [
        {"prompt": pool[i % len(pool)]} if prompts is not None else {"prompt_index": i % len(pool)}
        for i in range(n)
    ]
    maskable = isinstance(model, MaskablePPO)
    if isinstance(model, DQN):  # its policy is greedy; epsilon is exploration, unseeded
        deterministic = True
    samples: list[Sample] = []
    # a fork of every torch RNG (CPU and any GPU), so the caller's streams are left as they were
    with th.random.fork_rng(devices=range(th.cuda.device_count())):
        th.manual_seed(seed)
        try:
            for start in range(0, n, env.num_envs):
                batch = options[start : start + env.num_envs]
                env.set_options(batch + [None] * (env.num_envs - len(batch)))
                env.seed(seed + start)
                obs = env.reset()
                done = np.zeros(env.num_envs, dtype=bool)
                done[len(batch) :] = True
                returns = np.zeros(env.num_envs)  # summed: dense rewards arrive at every step
                results: list[Sample | None] = [None] * env.num_envs
                while not done.all():
                    kw = {"action_masks": env.action_masks()} if maskable else {}
                    actions, _ = model.predict(obs, deterministic=deterministic, **kw)
                    obs, rewards, dones, infos = env.step(actions)
                    returns[~done] += rewards[~done]
                    for i in np.flatnonzero(dones & ~done):
                        info = infos[i]
                        # an interactive episode's whole transcript ("«turn» reply «turn»",
                        # stored without its outer « » as printers wrap a completion in them)
                        transcript = info.get("transcript")
                        text = transcript[1:-1] if transcript else info["completion"]
                        turns = int(info.get("turns", 1))
                        results[i] = Sample(info["prompt"], text, float(returns[i]), turns)
                    done |= dones
                samples.extend(r for r in results[: len(batch)] if r is not None)
        finally:
            env.close()
    return samples


def mean_reward(samples: list[Sample]) -> float:
    """The mean reward of `samples`."""
    return float(np.mean([s.reward for s in samples])) if samples else float("nan")


def _cell(text: str) -> str:
    """`text` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def samples_markdown(title: str, samples: list[Sample]) -> str:
    """A Markdown section listing `samples` with their rewards."""
    lines = [
        f"## {title}",
        "",
        f"mean reward: {mean_reward(samples):.3f} over {len(samples)} episodes",
        "",
    ]
    lines += ["| reward | prompt | completion |", "| ---: | --- | --- |"]
    for s in samples:
        lines.append(f"| {s.reward:.3f} | {_cell(s.prompt)} | {_cell(s.completion)} |")
    return "\n".join(lines) + "\n"
