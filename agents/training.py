"""Training runs: build a model from a `TrainConfig`, train or resume it in a run folder, evaluate it.

A run folder (`RunDir` names its files) holds: `config.yaml` (the resolved config),
`checkpoints/latest.zip` (written atomically every `checkpoint_every` steps, between an update
and the next rollout, and when training ends), `model.zip` (the final SB3 model), `hf_model/`
(the policy's LM as a Hugging Face folder), `tb/` (TensorBoard), `metrics.csv`, `curve.png`,
`samples.md` (generations before and after training), `samples_before.json` (so a resumed run
still reports the "before" samples) and `samples_after.json`.

Failures keep the folder usable: a start that fails before its first checkpoint can simply be
run again (fresh or with `--resume`), a run stopped by a crash, a kill or a failing scorer
resumes from its last checkpoint, and leftovers of interrupted atomic writes are removed on
resume.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.config import TrainConfig, config_yaml, load_config, upgrade_keys
from gym_textgen.errors import TextGenError, TextGenValueError, deprecated

#: Settings a resumed run may change; every other setting is fixed by the saved run. (Not
#: eval_episodes: the "before" samples were drawn with the saved count.)
RESUMABLE = ("timesteps", "checkpoint_every", "device", "progress_bar")
#: The files an atomic write may leave half-written (as `<name>.<random>.tmp`) when killed.
ATOMIC_FILES = (
    "config.yaml",
    "metrics.csv",
    "samples_before.json",
    "samples_after.json",
    "samples.md",
    "curve.png",
    "model.zip",
    "latest.zip",
)


class RunError(TextGenError, RuntimeError):
    """A run folder cannot be created, written, resumed or read; the message says why."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The files of a run folder, named once."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    config = property(lambda self: self.path / "config.yaml")
    checkpoint = property(lambda self: self.path / "checkpoints" / "latest.zip")
    model = property(lambda self: self.path / "model.zip")
    hf_model = property(lambda self: self.path / "hf_model")
    tensorboard = property(lambda self: self.path / "tb")
    metrics = property(lambda self: self.path / "metrics.csv")
    curve = property(lambda self: self.path / "curve.png")
    samples = property(lambda self: self.path / "samples.md")
    samples_before = property(lambda self: self.path / "samples_before.json")
    samples_after = property(lambda self: self.path / "samples_after.json")

    def has_progress(self) -> bool:
        """Whether a checkpoint or a final model exists (a started run, not a failed start)."""
        return self.checkpoint.is_file() or self.model.is_file()

    def remove_partial_writes(self) -> list[Path]:
        """Delete the temporary files that an interrupted atomic write of ours left behind
        (`<one of ATOMIC_FILES>.<random>.tmp` in the folder or `checkpoints/`), nothing else."""
        removed = []
        for folder in (self.path, self.checkpoint.parent):
            for name in ATOMIC_FILES:
                for tmp in folder.glob(f"{name}.*.tmp"):
                    if tmp.is_file():
                        tmp.unlink()
                        removed.append(tmp)
        return removed

    def failed_start(self) -> bool:
        """Whether the folder holds a textgen run's config but no checkpoint or model yet."""
        if not self.config.is_file() or self.has_progress():
            return False
        try:
            load_config(self.config)
        except TextGenError:
            return False
        return True

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turn an OSError on a file inside the folder into a RunError that names the folder."""
        try:
            yield
        except OSError as e:
            # only errors on a file inside the folder (not a broken stdout pipe, say)
            if e.filename is None or not str(Path(e.filename).resolve()).startswith(
                str(self.path.resolve())
            ):
                raise
            raise RunError(
                f"Cannot write to run folder {self.path}: {e.strerror or e} "
                f"({e.filename or type(e).__name__}); check its permissions and free space"
            ) from e


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


def algo_kwargs(cfg: TrainConfig, algo_class: type) -> dict[str, Any]:
    """The config fields that `algo_class.__init__` accepts."""
    import inspect

    accepted = dict(inspect.signature(algo_class.__init__).parameters)
    if cfg.algo == "dqn":  # DQN's n_steps means n-step returns, not the rollout length
        accepted.pop("n_steps", None)
    kwargs = {n: getattr(cfg, n) for n in ALGO_SETTINGS if n in accepted}
    if cfg.lr_schedule == "linear":  # SB3 calls it with the progress remaining, 1 -> 0
        from stable_baselines3.common.utils import LinearSchedule

        kwargs["learning_rate"] = LinearSchedule(cfg.learning_rate, 0.0, 1.0)
    return kwargs


def unused_settings(cfg: TrainConfig, algo_class: type) -> list[str]:
    """Settings changed from their defaults that `algo_class` has no use for (A2C: batch_size...)."""
    import inspect

    accepted = dict(inspect.signature(algo_class.__init__).parameters)
    if cfg.algo == "dqn":
        accepted.pop("n_steps", None)
    defaults = TrainConfig()
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
    from agents.algos import ALGOS, make_algo

    check_device(cfg.device)
    algo_class = ALGOS[cfg.algo]
    unused = unused_settings(cfg, algo_class)
    if cfg.algo == "dqn" and cfg.value_lr_scale != TrainConfig().value_lr_scale:
        unused.append("value_lr_scale")
    if unused:
        print(f"note: {cfg.algo} does not use {', '.join(unused)} (set in the config)")
    env = make_env(cfg)
    kwargs = algo_kwargs(cfg, algo_class)
    if cfg.kl_in_loss:  # REINFORCE's own KL (its reference: the policy's initial LM)
        kwargs.update(kl_coef=cfg.kl_coef, kl_coef_target=cfg.kl_coef_target,
                      kl_horizon=cfg.kl_horizon)  # fmt: skip
    try:
        model = make_algo(
            algo_class,
            env,
            {
                "model": cfg.model,
                "lora": cfg.lora,
                "separate_value_trunk": cfg.separate_value_trunk,
                "value_lr_scale": cfg.value_lr_scale,
                "kv_cache": cfg.kv_cache,
                "group_sequences": cfg.group_sequences,
            },
            tensorboard_log=str(run.tensorboard),
            verbose=0,
            **kwargs,
        )
    except AssertionError as e:  # stable-baselines3 checks its arguments with asserts
        raise TextGenValueError(f"{algo_class.__name__} refused the settings: {e}") from e
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
    from agents.algos import ALGOS

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
    try:
        model = ALGOS[cfg.algo].load(path, env=env, device=device)
        if "fast" in model.policy_kwargs:  # saved before 0.2: re-save under the new names
            fast = model.policy_kwargs.pop("fast")
            model.policy_kwargs.setdefault("kv_cache", fast)
            model.policy_kwargs.setdefault("group_sequences", fast)
        return model
    except TextGenError:  # e.g. the run's model folder has moved: that error says so
        raise
    except (zipfile.BadZipFile, EOFError, KeyError, pickle.UnpicklingError) as e:
        raise RunError(
            f"Checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})"
        ) from e
    except (RuntimeError, ValueError) as e:
        raise RunError(f"Cannot load checkpoint {path} ({type(e).__name__}: {e})") from e


def resume_config(run: Path, overrides: dict[str, Any]) -> TrainConfig:
    """The saved config of `run`, with the overrides a resumed run may change (`RESUMABLE`).

    A flag that would change anything else (the algorithm, the model, the env, the
    hyperparameters saved in the checkpoint, the folder) is refused with the list of those that
    can change; repeating a saved value is fine.
    """
    run = RunDir(run)
    if not run.config.is_file():
        raise RunError(
            f"Cannot resume {run.path}: it holds no run (no {run.config.name}); "
            f"start one with textgen train --out {run.path}"
        )
    saved = load_config(run.config)
    given = upgrade_keys({k: v for k, v in overrides.items() if v is not None}, "flags")
    if "out" in given and Path(given.pop("out")).resolve() != run.path.resolve():
        raise RunError("--out does not apply to --resume: a resumed run stays in its folder")
    fixed = {
        k: (getattr(saved, k), v)
        for k, v in given.items()
        if k not in RESUMABLE and getattr(saved, k) != v
    }
    if fixed:
        shown = ", ".join(f"{k}: saved {old!r}, given {new!r}" for k, (old, new) in fixed.items())
        raise RunError(
            f"A resumed run keeps its settings; these differ from {run.config} ({shown}). "
            f"Only {', '.join(RESUMABLE)} can change on --resume; start a new run to change others"
        )
    changes = {k: v for k, v in given.items() if k in RESUMABLE}
    return dataclasses.replace(saved, out=str(run.path), **changes)


def train(cfg: TrainConfig, resume: Path | None = None) -> Path:
    """Train (or resume) a run; returns the run folder."""
    if resume is not None:
        run = RunDir(resume)
    else:
        default = f"runs/{cfg.algo}-{cfg.env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = RunDir(cfg.out or default)
        if run.path.exists() and not run.path.is_dir():
            raise RunError(f"--out {run.path} is a file, not a folder; choose another --out")
        if run.has_progress():
            raise RunError(
                f"{run.path} already holds a run; use --resume {run.path} or another --out"
            )
        if run.config.exists() and not run.failed_start():
            raise RunError(
                f"{run.path} holds a {run.config.name} that is not a textgen run's; "
                "choose another --out"
            )
        cfg = dataclasses.replace(cfg, out=str(run.path))
    with run.writing():
        return _train(cfg, run, resume is not None)


def _train(cfg: TrainConfig, run: RunDir, resume: bool) -> Path:
    from stable_baselines3.common.callbacks import CallbackList

    from agents.callbacks import (
        KL_KEYS,
        AtomicCheckpointCallback,
        MetricsCallback,
        atomic_write_bytes,
        plot_curve,
        save_atomic,
        truncate_metrics,
    )
    from agents.evaluation import mean_reward, sample_episodes, samples_markdown
    from agents.vec_env import unwrap_textgen

    # a killed run (resumed, or a failed start run again with --out) may have left half-written
    # files of ours; a new folder has none
    if run.path.is_dir():
        for tmp in run.remove_partial_writes():
            print(f"removed {tmp} (left by an interrupted write)")
    if resume and run.has_progress():
        env = make_env(cfg)
        model = load_run_model(run.path, env=env, prefer="checkpoint", device=cfg.device)
        print(f"resuming {run.path} at {model.num_timesteps} of {cfg.timesteps} steps")
        truncate_metrics(run.metrics, model.num_timesteps)  # rows after it are redone
        # the new target (and the other changes) are the run's settings from now on, so a
        # plain --resume after another interruption continues towards them
        atomic_write_bytes(run.config, config_yaml(cfg).encode())
    else:
        if resume:
            print(f"{run.path} has no checkpoint yet (its start failed): starting it from step 0")
        model, env = build(cfg, run)  # every setting is checked before anything is written
        run.path.mkdir(parents=True, exist_ok=True)
        for stale in (run.metrics, run.samples_before):  # from a start that failed
            stale.unlink(missing_ok=True)
        atomic_write_bytes(run.config, config_yaml(cfg).encode())
    tokenizer = unwrap_textgen(env).core.tokenizer
    sample_args = dict(
        env_id=cfg.env_id, env_kwargs=env_kwargs_for(cfg), n=cfg.eval_episodes, seed=cfg.seed
    )

    before = _load_samples(run.samples_before)
    if before is None:
        before = sample_episodes(model, **sample_args)
        data = json.dumps([dataclasses.asdict(s) for s in before])
        atomic_write_bytes(run.samples_before, data.encode())
    print(f"mean reward before training: {mean_reward(before):.3f} ({len(before)} eval episodes)")

    start = model.num_timesteps
    remaining = cfg.timesteps - start
    t0 = time.time()
    if remaining > 0:
        with_kl = cfg.kl_coef > 0 or cfg.kl_coef_target is not None
        scorer = unwrap_textgen(env).core.scorer
        columns = [f"reward/{name}" for name in scorer.component_names()]
        steps = [
            AtomicCheckpointCallback(cfg.checkpoint_every, run.checkpoint),
            MetricsCallback(run.metrics, columns + (KL_KEYS if with_kl else [])),
        ]
        if with_kl and not cfg.kl_in_loss:
            # first, so the checkpoint and metrics callbacks run after the rewards are penalised
            steps.insert(0, kl_callback(cfg, model))
        try:
            model.learn(
                remaining,
                callback=CallbackList(steps),
                reset_num_timesteps=not resume,
                progress_bar=cfg.progress_bar,
                tb_log_name="tb",
            )
        except (TextGenError, KeyboardInterrupt):
            if run.checkpoint.is_file():
                print(
                    f"training stopped; {run.checkpoint} is intact: fix the cause, then "
                    f"textgen train --resume {run.path}",
                    file=sys.stderr,
                )
            raise
    seconds = time.time() - t0
    trained = model.num_timesteps - start
    save_atomic(model, run.model)
    model.policy.save_pretrained(run.hf_model, tokenizer=tokenizer)
    if run.metrics.exists():
        plot_curve(run.metrics, run.curve, title=f"{cfg.algo} on {cfg.env_id} ({cfg.model})")

    after = sample_episodes(model, **sample_args)
    text = (
        f"# Samples: {cfg.algo} on {cfg.env_id} with {cfg.model}\n\n"
        + samples_markdown("Before training", before)
        + "\n"
        + samples_markdown(f"After {model.num_timesteps} steps", after)
    )
    atomic_write_bytes(run.samples, text.encode())
    data = json.dumps([dataclasses.asdict(s) for s in after])
    atomic_write_bytes(run.samples_after, data.encode())
    print(f"mean reward after training:  {mean_reward(after):.3f} ({len(after)} eval episodes)")
    if trained > 0:
        print(
            f"trained {trained} steps in {seconds:.0f}s "
            f"({trained / max(seconds, 1e-9):.0f} env-steps/s), {model.num_timesteps} in all"
        )
    print("samples after training:")
    for s in after[:4]:
        print(f"  [{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(f"run folder: {run.path}")
    return run.path


def _load_samples(path: Path) -> list[Any] | None:
    """The samples saved at `path`, or None when missing or unreadable (they are recomputed)."""
    from agents.evaluation import Sample

    try:
        return [Sample(**s) for s in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return None


def before_after(run: Path) -> tuple[list[Any], list[Any]]:
    """The held-out samples a finished run wrote before and after training (the same prompts
    and seed): `(before, after)`, lists of `agents.evaluation.Sample`."""
    rd = RunDir(run)
    pair = _load_samples(rd.samples_before), _load_samples(rd.samples_after)
    if None in pair:
        raise RunError(
            f"{rd.path} has no readable {rd.samples_before.name} and {rd.samples_after.name}: "
            "they are written when a run finishes"
        )
    return pair


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
    split: str = "eval",
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


__all__ = [
    "RESUMABLE",
    "RunDir",
    "RunError",
    "before_after",
    "build",
    "evaluate_run",
    "generate",
    "load_run_model",
    "resume_config",
    "run_samples",
    "train",
]


def __getattr__(name: str) -> Any:
    if name == "evaluate":  # the name until 0.2 (agents.cli.evaluate before that)
        deprecated("agents.training.evaluate", "agents.training.evaluate_run")
        return evaluate_run
    raise AttributeError(f"module 'agents.training' has no attribute {name!r}")
