"""From a `TrainConfig` to objects: the env, the SB3 model with its policy, the KL callback,
and a run's saved model loaded back."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

from agents.config import TrainConfig, load_config
from agents.registry import algo_spec
from agents.rundir import RunDir, RunError
from gym_textgen.errors import TextGenError, TextGenValueError


def env_kwargs_for(cfg: TrainConfig) -> dict[str, Any]:
    """The env arguments, with the tokenizer matching the policy's model unless given."""
    kwargs = dict(cfg.env_kwargs)
    if cfg.task:
        kwargs["task"] = cfg.task
    if "tokenizer" not in kwargs and cfg.model not in ("default", "random-tiny"):
        kwargs["tokenizer"] = cfg.model
    return kwargs


ALGO_SETTINGS = (
    "learning_rate",
    "n_steps",
    "batch_size",
    "n_epochs",
    "gamma",
    "gae_lambda",
    "clip_range",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "seed",
    "device",
    "baseline",
    "scale_by_std",
    "n_rounds",
)


def algo_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The config's algorithm settings that the algorithm takes (`AlgoSpec.accepts`)."""
    kwargs = {n: getattr(cfg, n) for n in algo_spec(cfg.algo).accepts(ALGO_SETTINGS)}
    if cfg.lr_schedule == "linear":  # SB3 calls it with the progress remaining, 1 -> 0
        from stable_baselines3.common.utils import LinearSchedule

        kwargs["learning_rate"] = LinearSchedule(cfg.learning_rate, 0.0, 1.0)
    return kwargs


def unused_settings(cfg: TrainConfig) -> list[str]:
    """Settings changed from their defaults that the algorithm has no use for (A2C:
    batch_size...)."""
    accepted, defaults = algo_spec(cfg.algo).accepts(ALGO_SETTINGS), TrainConfig()
    return [
        n for n in ALGO_SETTINGS if n not in accepted and getattr(cfg, n) != getattr(defaults, n)
    ]


def check_device(device: str) -> None:
    """Raise a clear error when `device` names an accelerator this machine lacks."""
    import torch as th

    kind = device.split(":")[0]
    if kind == "cuda" and not th.cuda.is_available():
        raise TextGenValueError(
            f"device={device!r} but torch sees no CUDA GPU; use 'auto' or 'cpu'"
        )
    if kind == "mps" and not th.backends.mps.is_available():
        raise TextGenValueError(f"device={device!r} but MPS is not available; use 'auto' or 'cpu'")


def make_env(cfg: TrainConfig) -> Any:
    from agents.vec_env import make_vec_env

    env = make_vec_env(
        cfg.env_id, n_envs=cfg.n_envs, group_size=cfg.group_size, env_kwargs=env_kwargs_for(cfg)
    )
    if cfg.mask_top_k:
        from agents.masks import TopKMask

        env = TopKMask(env, cfg.mask_top_k, cfg.model, device=cfg.device)
    return env


def build(cfg: TrainConfig, run: RunDir) -> tuple[Any, Any]:
    """A new SB3 model and its env for `cfg` (nothing is written yet)."""
    check_device(cfg.device)
    spec = algo_spec(cfg.algo)
    unused = unused_settings(cfg)
    if spec.family == "dqn" and cfg.value_lr_scale != TrainConfig().value_lr_scale:
        unused.append("value_lr_scale")
    if unused:
        print(f"note: {cfg.algo} does not use {', '.join(unused)} (set in the config)")
    env = make_env(cfg)
    kwargs = algo_kwargs(cfg)
    if cfg.kl_in_loss:  # REINFORCE's own KL (its reference: the policy's initial LM)
        kwargs.update(kl_coef=cfg.kl_coef, kl_coef_target=cfg.kl_coef_target,
                      kl_horizon=cfg.kl_horizon)  # fmt: skip
    try:
        model = spec.build(
            env,
            cfg.policy_kwargs(),
            tensorboard_log=str(run.tensorboard),
            verbose=0,
            **kwargs,
        )
    except AssertionError as e:  # stable-baselines3 checks its arguments with asserts
        raise TextGenValueError(f"{cfg.algo} refused the settings: {e}") from e
    if cfg.mask_top_k:  # saved with the model, so evaluation uses the same mask
        from agents.masks import MASK_ATTR

        setattr(model, MASK_ATTR, {"k": cfg.mask_top_k, "model": cfg.model})
    return model, env


def kl_callback(cfg: TrainConfig, model: Any) -> Any:
    """The KL penalty in the reward against the run's initial model (reloaded by name, so
    resuming keeps it)."""
    from agents.kl import KLPenaltyCallback
    from gym_textgen.models import load_model

    reference = None
    if not cfg.lora:  # a LoRA policy's frozen base is its reference
        kwargs = {"vocab_size": model.action_space.n} if cfg.model == "random-tiny" else {}
        reference = load_model(cfg.model, **kwargs).to(model.device).requires_grad_(False)
    return KLPenaltyCallback(
        cfg.kl_coef, cfg.kl_coef_target, kl_horizon=cfg.kl_horizon, reference=reference
    )


def load_run_model(run: Path, env: Any = None, prefer: str = "final", device: str = "") -> Any:
    """The SB3 model saved in `run` (`model.zip`, else the latest checkpoint)."""
    run = RunDir(run)
    if not run.config.is_file():
        raise RunError(f"{run.path} is not a run folder: {run.config} does not exist")
    cfg = load_config(run.config)
    candidates = [run.model, run.checkpoint]
    if prefer == "checkpoint":
        candidates.reverse()
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise RunError(f"No model in {run.path}: expected {candidates[0]} or {candidates[1]}")
    device = device or cfg.device
    check_device(device)
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()  # the CRC of every member: a torn or damaged file shows here
        if bad is not None:
            raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise RunError(
            f"Checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})"
        ) from e
    # REINFORCE's own KL comes from the run's config, so a checkpoint saved before the KL moved
    # into the algorithm (it has no kl_coef) resumes with it rather than silently without
    kl = {}
    if cfg.kl_in_loss:
        kl = dict(kl_coef=cfg.kl_coef, kl_coef_target=cfg.kl_coef_target, kl_horizon=cfg.kl_horizon)
    try:
        return algo_spec(cfg.algo).algo_class().load(path, env=env, device=device, **kl)
    except TextGenError:  # e.g. the run's model folder has moved: that error says so
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, pickle.UnpicklingError) as e:
        raise RunError(
            f"Checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})"
        ) from e
    except (RuntimeError, ValueError) as e:
        raise RunError(f"Cannot load checkpoint {path} ({type(e).__name__}: {e})") from e
