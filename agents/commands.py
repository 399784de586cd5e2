"""`textgen eval` and `textgen generate`: a run's policy (or a bare model's, the untrained
baseline) on held-out prompts."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from agents.build import build, env_kwargs_for, load_run_model
from agents.config import TrainConfig, load_config
from agents.rundir import RunDir, RunError


def policy_and_env(target: Path | str, env_id: str | None = None, env_kwargs: dict | None = None):
    """`(model, env_id, env_kwargs)` for a run folder (its saved policy, on its own env) or for
    a bare model name (an untrained policy of that model: the baseline a run starts from)."""
    rd = RunDir(target)
    if rd.config.is_file():
        if env_id is not None or env_kwargs is not None:
            raise RunError(f"{rd.path} is a run: it is evaluated on its own env; drop --env-*")
        cfg = load_config(rd.config)
        return load_run_model(rd.path), cfg.env_id, env_kwargs_for(cfg)
    looks_like_a_path = os.sep in str(target) or str(target).startswith((".", "~"))
    if looks_like_a_path and not Path(target).expanduser().exists():
        raise RunError(
            f"{target} does not exist: expected a run folder (with config.yaml), a model "
            "folder or a model name"
        )
    if Path(target).is_dir() and not (Path(target) / "config.json").is_file():
        raise RunError(
            f"{target} is neither a run folder (no config.yaml) nor a model folder (no config.json)"
        )
    cfg = TrainConfig(model=str(target), env_id=env_id or "TextGen-v0", env_kwargs=env_kwargs or {})
    model, _ = build(cfg, RunDir(Path("unused-untrained-baseline")))
    return model, cfg.env_id, env_kwargs_for(cfg)


def run_samples(run: Path, **kwargs: Any) -> list[Any]:
    """Episodes of the run's saved policy on its env (`kwargs` go to `sample_episodes`)."""
    from agents.evaluation import sample_episodes

    rd = RunDir(run)
    model = load_run_model(rd.path)
    cfg = load_config(rd.config)
    kwargs.setdefault("n", cfg.eval_episodes)
    return sample_episodes(model, cfg.env_id, env_kwargs_for(cfg), **kwargs)


def evaluate_run(
    target: Path | str,
    episodes: int | None = None,
    split: str = "test",
    seed: int = 0,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    json_path: Path | None = None,
) -> dict[str, Any]:
    """Evaluate a run's policy, or a bare model name as the untrained baseline, on `split`.

    Prints some samples and `mean reward: M ± S over N episodes`; returns (and with
    `json_path` writes) the figures with every sample.
    """
    import numpy as np

    from agents.evaluation import sample_episodes

    if json_path is not None and (Path(json_path).is_dir() or not Path(json_path).parent.is_dir()):
        raise RunError(f"--json {json_path}: expects a file path in an existing folder")
    model, env_id, env_kwargs = policy_and_env(target, env_id, env_kwargs)
    if episodes is None:
        rd = RunDir(target)
        episodes = load_config(rd.config).eval_episodes if rd.config.is_file() else 16
    samples = sample_episodes(model, env_id, env_kwargs, n=episodes, split=split, seed=seed)
    rewards = np.array([s.reward for s in samples])
    for s in samples[:8]:
        print(f"[{s.reward:.3f}] {s.prompt}«{s.completion}»")
    result = {
        "target": str(target),
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "split": split,
        "seed": seed,
        "episodes": len(samples),
        "mean": float(rewards.mean()),
        "std": float(rewards.std()),
        "samples": [dataclasses.asdict(s) for s in samples],
    }
    print(
        f"mean reward: {result['mean']:.3f} ± {result['std']:.3f} (std) over "
        f"{len(samples)} episodes ({split} prompts)"
    )
    if json_path is not None:
        from agents.callbacks import atomic_write_bytes

        try:
            atomic_write_bytes(Path(json_path), json.dumps(result, indent=2).encode())
        except OSError as e:
            raise RunError(f"Cannot write {json_path}: {e.strerror or e}") from e
    return result


def generate(
    run: Path, prompts: list[str], n: int = 1, seed: int = 0, deterministic: bool = False
) -> list[str]:
    """Print and return `n` completions of each of `prompts` by the run's policy."""
    samples = run_samples(
        run, n=n * len(prompts), prompts=prompts, seed=seed, deterministic=deterministic
    )
    for s in samples:
        print(f"{s.prompt}«{s.completion}»  (reward {s.reward:.3f})")
    return [s.completion for s in samples]
