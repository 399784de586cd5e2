"""`TrainConfig`: every setting of a `textgen train` run, its YAML form and its command-line flags.

A YAML config holds the same keys as the dataclass; each `--flag` is a field (dashes for
underscores). Values are checked when the config is made, so a bad setting fails before a run
folder exists. This module imports neither torch nor stable-baselines3 (`textgen --help` is fast).

>>> cfg = load_config(None, timesteps=4096, kl_coef=0.05)
>>> cfg.algo, cfg.timesteps, cfg.kl_coef
('ppo', 4096, 0.05)
>>> load_config(None, n_envs=0)
Traceback (most recent call last):
...
gym_textgen.errors.TextGenValueError: Expects n_envs >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agents.dataclass_cli import at_least, check_types, read_yaml_mapping, unknown_keys_error
from agents.policy_config import PolicyConfig
from agents.registry import BASELINES, algo_spec, canonical_algo
from gym_textgen.errors import TextGenTypeError, TextGenValueError
from gym_textgen.tasks.loading import is_task_file

#: learning-rate schedules (`lr_schedule`): linear decays to 0 at the end of `timesteps`
LR_SCHEDULES = ("constant", "linear")


@dataclass
class TrainConfig(PolicyConfig):
    """Everything `textgen train` needs; a YAML config holds the same keys. The policy's
    settings (`model`, `lora`, ...) are `PolicyConfig`'s fields, inherited."""

    algo: str = "ppo"
    """ppo, a2c, maskable_ppo, reinforce, dqn, or your own SB3 algorithm class by import path
    (package.module:Name or path/to/file.py:Name; a PPO subclass trains as PPO does)"""
    env_id: str = "TextGen-v0"
    """a registered TextGen id"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """TextGenEnv arguments, e.g. {"max_new_tokens": 16, "scorer": "length"}"""
    task: str = ""
    """a task name (gym_textgen.list_tasks()), `reasoning_gym:<dataset>[?key=value&...]` or your
    own prompts file (.txt or .jsonl): sets env_kwargs["task"] (empty: the env id's own task)"""
    timesteps: int = 8192
    """total environment steps"""
    n_envs: int = 8
    """parallel episodes (one batched env)"""
    group_size: int = 1
    """env slots that share each prompt, for per-prompt baselines (reinforce's rloo needs >= 2)"""
    seed: int = 0
    """seeds the algorithm, the env's prompt draws and the evaluation samples"""
    out: str = ""
    """run folder (default runs/<algo>-<env_id>-<time>)"""
    learning_rate: float = 1e-4
    """Adam step size"""
    lr_schedule: str = "constant"
    """constant, or linear: learning_rate decays linearly to 0 over `timesteps` (rl-zoo's lin_;
    as there, the last update runs at about 0)"""
    n_steps: int = 64
    """steps per env per rollout"""
    batch_size: int = 128
    """transitions per minibatch (PPO, reinforce; one optimizer step each)"""
    n_epochs: int = 4
    """passes over each rollout (PPO, reinforce)"""
    baseline: str = "rloo"
    """reinforce: none, value (the value head) or rloo (leave-one-out over a prompt group)"""
    scale_by_std: bool = False
    """reinforce: divide rloo advantages by the group's reward std (GRPO's scaling)"""
    n_rounds: int = 1
    """reinforce: rounds of episodes (one per env slot) per update"""
    gamma: float = 1.0
    """no discount: episodes are short and the reward comes at the end"""
    gae_lambda: float = 0.95
    """GAE's bias/variance trade-off"""
    clip_range: float = 0.2
    """PPO's ratio clip"""
    ent_coef: float = 0.0
    """entropy bonus"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    target_kl: float | None = None
    """PPO: stop an epoch early when the update's KL to the rollout policy exceeds this"""
    kl_coef: float = 0.0
    """per-token penalty kl_coef * log(pi / pi_ref) against the initial model (0: none)"""
    kl_coef_target: float | None = None
    """adapt kl_coef (from its start value) so the KL to the initial model per episode stays
    near this many nats; not PPO's target_kl"""
    kl_in_loss: bool = False
    """reinforce: the KL is REINFORCE's own (its kl_coef), kl_coef x the exact KL of each step's
    next-token distribution in the loss, instead of a sampled log-ratio penalty in the reward
    (KLPenaltyCallback); no sampling noise"""
    kl_horizon: int = 10_000
    """environment steps over which the adaptive kl_coef may change by up to 20% (shorter
    reacts faster)"""
    mask_top_k: int = 0
    """maskable_ppo: allow only the k next tokens the initial model ranks highest at each step
    (NLPO's mask, agents.masks.TopKMask); 0: every id the tokenizer can produce"""
    checkpoint_every: int = 2048
    """environment steps between atomic checkpoints"""
    eval_episodes: int = 16
    """episodes for the before/after samples and `textgen eval`"""
    eval_split: str = "test"
    """the held-out prompts the before/after samples come from: test, or validation (for
    choosing settings without looking at the test prompts)"""
    device: str = "auto"
    """auto (a GPU when there is one), cpu, cuda or cuda:N"""
    progress_bar: bool = True
    """show SB3's progress bar"""

    def __post_init__(self) -> None:
        check_types(self)
        if not isinstance(self.model, str):  # (a model object works from Python: policy_kwargs)
            raise TextGenTypeError(
                f"Expects model to be a name, folder or .gguf path (str), got "
                f"{type(self.model).__name__}"
            )
        super().__post_init__()
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise TextGenValueError(f"Expects {f.name} to be a finite number, got {value}")
        # a prompts file is kept by its absolute path, so `textgen eval`, `--resume` and
        # `generate` find it from any folder (the run reads the file, it does not copy it)
        if is_task_file(self.task):
            self.task = str(Path(self.task).expanduser().resolve())
        if is_task_file(self.env_kwargs.get("task")):
            self.env_kwargs = {
                **self.env_kwargs,
                "task": str(Path(self.env_kwargs["task"]).expanduser().resolve()),
            }
        if self.task and self.env_kwargs.get("task", self.task) != self.task:
            raise TextGenValueError(
                f"Expects one task, got task={self.task!r} and env_kwargs task="
                f"{self.env_kwargs['task']!r}"
            )
        for name in ("timesteps", "n_envs", "n_steps", "n_epochs", "group_size", "n_rounds"):
            at_least(name, getattr(self, name), 1)
        for name in ("checkpoint_every", "eval_episodes", "kl_horizon"):
            at_least(name, getattr(self, name), 1)
        if self.eval_split not in ("test", "validation"):
            raise TextGenValueError(
                f"Expects eval_split 'test' or 'validation', got {self.eval_split!r}"
            )
        at_least("batch_size", self.batch_size, 2)  # PPO normalises advantages per minibatch
        if self.n_steps * self.n_envs < 2:
            raise TextGenValueError(
                "Expects n_steps * n_envs >= 2 (a rollout of one step has no advantage to "
                f"normalise), got {self.n_steps} * {self.n_envs}"
            )
        if not 0 <= self.seed < 2**32:
            raise TextGenValueError(f"Expects seed in [0, 2**32 - 1], got {self.seed}")
        if self.n_envs % self.group_size:
            raise TextGenValueError(
                f"Expects group_size to divide n_envs={self.n_envs}, got {self.group_size}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise TextGenValueError(
                f"Expects lr_schedule in {list(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.baseline not in BASELINES:
            raise TextGenValueError(f"Expects baseline in {list(BASELINES)}, got {self.baseline!r}")
        self.algo = canonical_algo(self.algo)  # your own algorithm's file, found from anywhere
        family = algo_spec(self.algo).family  # an unknown name: the error lists the known ones
        for name in ("learning_rate", "clip_range", "max_grad_norm"):
            if not getattr(self, name) > 0:
                raise TextGenValueError(f"Expects {name} > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0 <= getattr(self, name) <= 1:
                raise TextGenValueError(f"Expects {name} in [0, 1], got {getattr(self, name)}")
        for name in ("kl_coef", "ent_coef", "vf_coef"):
            if not getattr(self, name) >= 0:
                raise TextGenValueError(f"Expects {name} >= 0, got {getattr(self, name)}")
        for name in ("target_kl", "kl_coef_target"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise TextGenValueError(f"Expects {name} > 0 or null, got {value}")
        if self.kl_coef_target is not None and self.kl_coef == 0:
            raise TextGenValueError(
                f"kl_coef_target={self.kl_coef_target} adapts kl_coef multiplicatively, so it "
                "never moves from kl_coef=0; give a starting kl_coef > 0 as well "
                "(e.g. --kl-coef 0.05)"
            )
        if self.kl_in_loss and family != "reinforce":
            raise TextGenValueError(
                f"kl_in_loss needs algo 'reinforce' (its update adds the KL to the loss), got "
                f"{self.algo!r}; without it, the KL penalty goes into the reward"
            )
        if family == "dqn" and (self.kl_coef > 0 or self.kl_coef_target is not None):
            raise TextGenValueError(
                "a KL penalty needs an on-policy rollout to penalise; algo 'dqn' learns from a "
                "replay buffer: drop kl_coef / kl_coef_target, or pick another algo"
            )
        if family == "dqn" and self.group_size > 1:
            raise TextGenValueError("group_size > 1 is for reinforce's rloo; algo 'dqn' takes 1")
        at_least("mask_top_k", self.mask_top_k, 0)
        if self.mask_top_k and family != "maskable_ppo":
            raise TextGenValueError(
                f"mask_top_k={self.mask_top_k} masks actions, which only algo 'maskable_ppo' "
                f"reads; got algo {self.algo!r}"
            )
        if self.kl_in_loss and self.kl_coef == 0:
            raise TextGenValueError("kl_in_loss needs a kl_coef > 0 (e.g. --kl-coef 0.1)")
        if self.device != "auto" and self.device.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise TextGenValueError(
                f"Expects device 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}"
            )


def config_keys() -> list[str]:
    """The keys a YAML config (and `TrainConfig`) accepts."""
    return [f.name for f in fields(TrainConfig)]


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a YAML file and overrides (None values are "not given").

    Unknown keys, wrong types and impossible values are errors that name the key, what was
    expected and what arrived.
    """
    data = read_yaml_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - set(config_keys()))
    if unknown:
        raise TextGenValueError(unknown_keys_error(unknown, config_keys()))
    return TrainConfig(**data)


def config_yaml(cfg: TrainConfig) -> str:
    """The YAML text of `cfg` (keys in field order)."""
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


__all__ = ["TrainConfig", "config_keys", "config_yaml", "load_config"]
