"""Sample completions from a trained policy on a task's prompts and score them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from agents.masks import MASK_ATTR, TopKMask
from agents.vec_env import TextGenSB3VecEnv
from gym_textgen.errors import DivergedError, TextGenValueError


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
    split: str = "test",
    prompts: list[str] | None = None,
    seed: int = 0,
    deterministic: bool = False,
    n_envs: int = 8,
    exact: bool | None = None,
) -> list[Sample]:
    """Run `n` episodes with `model`'s policy and return them in prompt order.

    The episodes' prompts come from the `split` ("test", "validation" or "train"; "eval" is
    "test") or from `prompts`: when `n` is at least their number, every one of them, in order,
    each `n // P` or `n // P + 1` times (the first ones once more); with fewer episodes, `n`
    of them drawn without replacement by `seed`. So every held-out prompt counts, and repeated
    calls with the same seed see the same prompts and, for a given policy, draw the same samples. A DQN model runs
    its greedy policy (argmax Q): its epsilon is exploration, not the policy.

    `exact`: sample from an SB3 model's policy in float64 (its weights converted for the
    episodes and back, exactly: `in_float64`), so that the same weights give the same episodes
    on every CPU (float32 logits differ in their last bits between AVX2 and
    AVX-512 kernels, and one token drawn differently changes a whole episode:
    `benchmarks/cpu_divergence.py`). None: on a CPU; not on a GPU, where float64 can be dozens
    of times slower and products are not bitwise reproducible anyway.

    Raises:
        DivergedError: the policy's weights (a torch module's, or an SB3 model's policy's) or its
            action probabilities are NaN or infinite: a diverged policy is not scored.
    """
    check_finite_weights(model)
    kwargs = {**(env_kwargs or {}), "split": split}
    env = TextGenSB3VecEnv(env_id, n_envs=min(n_envs, n), **kwargs)
    top_k = getattr(model, MASK_ATTR, None)  # trained under a top-k mask: sample under it too
    if top_k:
        env = TopKMask(env, top_k["k"], top_k["model"], device=str(model.device))
    pool = prompts if prompts is not None else list(env.core.prompts)
    order = prompt_order(len(pool), n, seed)
    options = [
        {"prompt": pool[i]} if prompts is not None else {"prompt_index": int(i)} for i in order
    ]
    maskable = isinstance(model, MaskablePPO)
    if isinstance(model, DQN):  # its policy is greedy; epsilon is exploration, unseeded
        deterministic = True
    policy = getattr(model, "policy", None)
    if not isinstance(policy, BasePolicy):
        exact = False
    elif exact is None:
        exact = policy.device.type == "cpu"
    samples: list[Sample] = []
    # a fork of every torch RNG (CPU and any GPU), so the caller's streams are left as they were
    precision = in_float64(policy) if exact else contextlib.nullcontext()
    with precision, th.random.fork_rng(devices=range(th.cuda.device_count())):
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
                    try:
                        actions, _ = model.predict(obs, deterministic=deterministic, **kw)
                    except DivergedError as e:
                        raise DivergedError(
                            f"While sampling held-out episodes {start + 1}-{start + len(batch)} "
                            f"of {n}: {e}"
                        ) from e
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


@contextlib.contextmanager
def in_float64(module: th.nn.Module) -> Iterator[None]:
    """`module` with its floating-point parameters and buffers in float64 inside the block, and
    exactly as they were after it (float32 -> float64 -> float32 is exact; the parameters stay
    the same objects, so an optimizer keeps them). Its rollout cache is dropped on both sides."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    dtypes = [t.dtype for t in tensors]
    clear = getattr(module, "clear_cache", lambda: None)
    with th.no_grad():
        for t in tensors:
            t.data = t.data.to(th.float64)
    clear()
    try:
        yield
    finally:
        with th.no_grad():
            for t, dtype in zip(tensors, dtypes, strict=True):
                t.data = t.data.to(dtype)
        clear()


def prompt_order(pool: int, n: int, seed: int) -> list[int]:
    """The indices of the prompts that `n` evaluation episodes use, out of `pool`: all of them in
    order (cycling) when `n >= pool`, else `n` drawn without replacement by `seed`.

    >>> prompt_order(3, 7, seed=0), prompt_order(8, 8, seed=5)
    ([0, 1, 2, 0, 1, 2, 0], [0, 1, 2, 3, 4, 5, 6, 7])
    >>> sorted(prompt_order(100, 4, seed=1)) == sorted(set(prompt_order(100, 4, seed=1)))
    True
    """
    if pool < 1 or n < 0:
        raise TextGenValueError(
            f"Expects at least one prompt and n >= 0 episodes, got {pool} prompts and n={n}"
        )
    if n >= pool:
        return [i % pool for i in range(n)]
    return sorted(np.random.default_rng(seed).choice(pool, size=n, replace=False).tolist())


def check_finite_weights(model: Any) -> None:
    """Raise `DivergedError` when a weight tensor of `model` (a torch module, or an object whose
    `policy` is one: an SB3 model) holds NaN or inf; other policies are not looked into."""
    module = model if isinstance(model, th.nn.Module) else getattr(model, "policy", None)
    if not isinstance(module, th.nn.Module):
        return
    tensors = [(name, p) for name, p in module.named_parameters() if p.is_floating_point()]
    bad = [name for name, p in tensors if not bool(th.isfinite(p).all())]
    if bad:
        raise DivergedError(
            f"Expects finite weights, got NaN or inf in {len(bad)} of the policy's "
            f"{len(tensors)} weight tensors (such as {bad[0]}): it diverged, and is not scored"
        )


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
