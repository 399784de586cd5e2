"""`textgen`: train, evaluate and sample transformer policies on TextGen environments.

    textgen train --algo ppo --timesteps 2048 --out runs/smoke     # or: --config run.yaml
    textgen train --resume runs/smoke --timesteps 4096             # continue from the checkpoint
    textgen eval runs/smoke                                        # mean reward on eval prompts
    textgen generate runs/smoke --prompt "The acting was"

A run folder holds: `config.yaml` (the resolved config), `checkpoints/latest.zip` (written
atomically every `checkpoint_every` steps), `model.zip` (the final SB3 model), `hf_model/` (the
policy's LM as a Hugging Face folder), `tb/` (TensorBoard), `metrics.csv`, `curve.png` and
`samples.md` (generations before and after training; the "before" ones are kept in
`samples_before.json` so a resumed run still reports them).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import sys
import time
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gym_textgen.errors import TextGenValueError

CONFIG_NAME = "config.yaml"
CHECKPOINT = Path("checkpoints") / "latest.zip"


@dataclass
class TrainConfig:
    """Everything `textgen train` needs; a YAML config holds the same keys."""

    algo: str = "ppo"
    """ppo, a2c or maskable_ppo"""
    env_id: str = "TextGen-v0"
    """a registered TextGen id"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """TextGenEnv arguments, e.g. {"max_new_tokens": 16, "scorer": "length"}"""
    model: str = "default"
    """policy LM: default, random-tiny, smollm2-135m, a HF folder or a .gguf file"""
    timesteps: int = 8192
    """total environment steps"""
    n_envs: int = 8
    """parallel episodes (one batched env)"""
    seed: int = 0
    out: str = ""
    """run folder (default runs/<algo>-<env_id>-<time>)"""
    learning_rate: float = 1e-4
    n_steps: int = 64
    """steps per env per rollout"""
    batch_size: int = 128
    """PPO minibatch size"""
    n_epochs: int = 4
    """PPO epochs per rollout"""
    gamma: float = 1.0
    """no discount: episodes are short and the reward comes at the end"""
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    """PPO: stop an epoch early when the update's KL to the rollout policy exceeds this"""
    kl_coef: float = 0.0
    """per-token penalty beta * log(pi / pi_ref) against the initial model (0: none)"""
    kl_target: float | None = None
    """adapt kl_coef so the KL to the initial model per episode stays near this (nats)"""
    lora: dict[str, Any] | None = None
    """LoRA settings, e.g. {"r": 8}; None trains every weight"""
    separate_value_trunk: bool = False
    fast: bool = True
    """KV-cached rollouts and one forward per episode segment; False: the naive reference"""
    checkpoint_every: int = 2048
    """environment steps between atomic checkpoints"""
    eval_episodes: int = 16
    """episodes for the before/after samples and `textgen eval`"""
    device: str = "auto"
    progress_bar: bool = True


def config_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a YAML file and overrides; unknown keys are an error listing valid ones."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TextGenValueError(
                f"Expects {path} to hold a mapping of config keys, got {type(data).__name__}"
            )
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(data) - set(config_keys()))
    if unknown:
        raise TextGenValueError(f"Unknown config key(s) {unknown}; valid keys: {config_keys()}")
    cfg = TrainConfig(**data)
    from agents import ALGOS

    if cfg.algo not in ALGOS:
        raise TextGenValueError(f"Unknown algorithm {cfg.algo!r}; expected one of {sorted(ALGOS)}")
    return cfg


def env_kwargs_for(cfg: TrainConfig) -> dict[str, Any]:
    """The env arguments, with the tokenizer matching the policy's model unless given."""
    kwargs = dict(cfg.env_kwargs)
    if "tokenizer" not in kwargs and cfg.model not in ("default", "random-tiny"):
        kwargs["tokenizer"] = cfg.model
    return kwargs


def algo_kwargs(cfg: TrainConfig, algo_class: type) -> dict[str, Any]:
    """The config fields that `algo_class.__init__` accepts."""
    accepted = inspect.signature(algo_class.__init__).parameters
    names = [
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
    ]
    return {n: getattr(cfg, n) for n in names if n in accepted}


def build(cfg: TrainConfig, run: Path) -> tuple[Any, Any]:
    """A new SB3 model and its env for `cfg`."""
    from agents import ALGOS, make_algo, make_vec_env

    algo_class = ALGOS[cfg.algo]
    env = make_vec_env(cfg.env_id, n_envs=cfg.n_envs, **env_kwargs_for(cfg))
    model = make_algo(
        algo_class,
        env,
        {
            "model": cfg.model,
            "lora": cfg.lora,
            "separate_value_trunk": cfg.separate_value_trunk,
            "fast": cfg.fast,
        },
        tensorboard_log=str(run / "tb"),
        verbose=0,
        **algo_kwargs(cfg, algo_class),
    )
    return model, env


def kl_callback(cfg: TrainConfig, model: Any) -> Any:
    """The KL penalty against the run's initial model (reloaded by name, so resuming keeps it)."""
    from agents.kl import KLPenaltyCallback
    from gym_textgen.models import load_model

    reference = None
    if not cfg.lora:  # a LoRA policy's frozen base is its reference
        kwargs = {"vocab_size": model.action_space.n} if cfg.model == "random-tiny" else {}
        reference = load_model(cfg.model, **kwargs).to(model.device).requires_grad_(False)
    return KLPenaltyCallback(cfg.kl_coef, cfg.kl_target, reference=reference)


def load_run_model(run: Path, env: Any = None, prefer: str = "final") -> Any:
    """The SB3 model saved in `run` (`model.zip`, else the latest checkpoint)."""
    run = Path(run)
    cfg = load_config(run / CONFIG_NAME)
    from agents import ALGOS

    candidates = [run / "model.zip", run / CHECKPOINT]
    if prefer == "checkpoint":
        candidates.reverse()
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"No model in {run}: expected {candidates[0]} or {candidates[1]}")
    try:
        return ALGOS[cfg.algo].load(path, env=env, device=cfg.device)
    except (zipfile.BadZipFile, EOFError, KeyError, RuntimeError, ValueError) as e:
        raise TextGenValueError(
            f"Checkpoint {path} is corrupt or unreadable ({type(e).__name__}: {e})"
        ) from e


def train(cfg: TrainConfig, resume: Path | None = None) -> Path:
    """Train (or resume) a run; returns the run folder."""
    from stable_baselines3.common.callbacks import CallbackList

    from agents.callbacks import (
        AtomicCheckpointCallback,
        MetricsCallback,
        plot_curve,
        save_atomic,
        truncate_metrics,
    )
    from agents.evaluation import Sample, mean_reward, sample_episodes, samples_markdown
    from agents.vec_env import unwrap_textgen

    if resume is not None:
        run = Path(resume)
        ckpt = run / CHECKPOINT
        if not ckpt.is_file():
            raise FileNotFoundError(f"Cannot resume {run}: no checkpoint at {ckpt}")
        from agents import make_vec_env

        env = make_vec_env(cfg.env_id, n_envs=cfg.n_envs, **env_kwargs_for(cfg))
        model = load_run_model(run, env=env, prefer="checkpoint")
        print(f"resuming {run} at {model.num_timesteps} of {cfg.timesteps} steps")
        truncate_metrics(run / "metrics.csv", model.num_timesteps)  # rows after it are redone
    else:
        run = Path(cfg.out or f"runs/{cfg.algo}-{cfg.env_id}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run / CONFIG_NAME).exists():
            raise FileExistsError(f"{run} already holds a run; use --resume {run} or another --out")
        run.mkdir(parents=True, exist_ok=True)
        cfg = dataclasses.replace(cfg, out=str(run))
        (run / CONFIG_NAME).write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
        model, env = build(cfg, run)
    tokenizer = unwrap_textgen(env).core.tokenizer
    sample_args = dict(
        env_id=cfg.env_id, env_kwargs=env_kwargs_for(cfg), n=cfg.eval_episodes, seed=cfg.seed
    )

    before_file = run / "samples_before.json"  # kept so that a resumed run still reports them
    if before_file.exists():
        before = [Sample(**s) for s in json.loads(before_file.read_text())]
    else:
        before = sample_episodes(model, **sample_args)
        before_file.write_text(json.dumps([dataclasses.asdict(s) for s in before]))
    print(f"mean reward before training: {mean_reward(before):.3f} ({len(before)} eval episodes)")

    remaining = cfg.timesteps - model.num_timesteps
    t0 = time.time()
    if remaining > 0:
        steps = [
            AtomicCheckpointCallback(cfg.checkpoint_every, run / CHECKPOINT),
            MetricsCallback(run / "metrics.csv"),
        ]
        if cfg.kl_coef > 0 or cfg.kl_target is not None:
            # first, so the checkpoint and metrics callbacks run after the rewards are penalised
            steps.insert(0, kl_callback(cfg, model))
        callbacks = CallbackList(steps)
        model.learn(
            remaining,
            callback=callbacks,
            reset_num_timesteps=resume is None,
            progress_bar=cfg.progress_bar,
            tb_log_name="tb",
        )
        save_atomic(model, run / CHECKPOINT)
    seconds = time.time() - t0
    save_atomic(model, run / "model.zip")
    model.policy.save_pretrained(run / "hf_model", tokenizer=tokenizer)
    if (run / "metrics.csv").exists():
        plot_curve(
            run / "metrics.csv",
            run / "curve.png",
            title=f"{cfg.algo} on {cfg.env_id} ({cfg.model})",
        )

    after = sample_episodes(model, **sample_args)
    (run / "samples.md").write_text(
        f"# Samples: {cfg.algo} on {cfg.env_id} with {cfg.model}\n\n"
        + samples_markdown("Before training", before)
        + "\n"
        + samples_markdown(f"After {model.num_timesteps} steps", after)
    )
    print(f"mean reward after training:  {mean_reward(after):.3f} ({len(after)} eval episodes)")
    if remaining > 0:
        print(
            f"trained {remaining} steps in {seconds:.0f}s ({remaining / max(seconds, 1e-9):.0f} env-steps/s)"
        )
    print("samples after training:")
    for s in after[:4]:
        print(f"  [{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(f"run folder: {run}")
    return run


def run_samples(run: Path, **kwargs: Any) -> list[Any]:
    """Episodes of the run's saved policy on its env (`kwargs` go to `sample_episodes`)."""
    from agents.evaluation import sample_episodes

    cfg = load_config(Path(run) / CONFIG_NAME)
    kwargs.setdefault("n", cfg.eval_episodes)
    return sample_episodes(load_run_model(Path(run)), cfg.env_id, env_kwargs_for(cfg), **kwargs)


def evaluate(run: Path, episodes: int | None = None, split: str = "eval", seed: int = 0) -> float:
    """Print and return the mean reward of the run's model on `split` prompts."""
    from agents.evaluation import mean_reward

    kwargs = {"n": episodes} if episodes else {}
    samples = run_samples(run, split=split, seed=seed, **kwargs)
    for s in samples[:8]:
        print(f"[{s.reward:.3f}] {s.prompt}«{s.completion}»")
    value = mean_reward(samples)
    print(f"mean reward: {value:.3f} over {len(samples)} episodes ({split} prompts)")
    return value


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="textgen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a policy (a new run, or --resume one)")
    t.add_argument("--config", type=Path, help="a YAML file with TrainConfig keys")
    t.add_argument("--resume", type=Path, help="a run folder to continue from its last checkpoint")
    add_dataclass_flags(t, TrainConfig)
    e = sub.add_parser("eval", help="mean reward of a run's policy on the task's eval prompts")
    e.add_argument("run", type=Path)
    e.add_argument("--episodes", type=int)
    e.add_argument("--split", choices=["train", "eval"], default="eval")
    e.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("generate", help="complete prompts with a run's policy")
    g.add_argument("run", type=Path)
    g.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    g.add_argument("-n", type=int, default=1, help="samples per prompt")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    return p


def field_docs(cls: type) -> dict[str, str]:
    """A dataclass's field docstrings (the string literal written under each field)."""
    import ast
    import textwrap

    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for a, b in zip(body, body[1:], strict=False):
        if (
            isinstance(a, ast.AnnAssign)
            and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)
        ):
            docs[a.target.id] = str(b.value.value)
    return docs


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--flag` per field of dataclass `cls` (default None: "not given"), help from its docstring.

    Fields whose default is a dict or None take JSON; bools take `--flag/--no-flag`.
    """
    docs = field_docs(cls)
    for f in fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        flag = "--" + f.name.replace("_", "-")
        help_ = docs.get(f.name, "") + f" (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_
            )
        elif isinstance(default, (int, float, str)):
            parser.add_argument(flag, type=type(default), help=help_)
        else:
            parser.add_argument(flag, type=json.loads, help="JSON: " + help_)


def parse_dataclass_args(cls: type, argv: list[str] | None = None, description: str = "") -> Any:
    """An instance of dataclass `cls` with fields overridden from the command line."""
    parser = argparse.ArgumentParser(description=description)
    add_dataclass_flags(parser, cls)
    given = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    return cls(**given)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
            if args.resume is not None:
                saved = Path(args.resume) / CONFIG_NAME
                if not saved.is_file():
                    raise FileNotFoundError(f"Cannot resume {args.resume}: no {CONFIG_NAME} there")
                cfg = load_config(saved, **overrides)
            else:
                cfg = load_config(args.config, **overrides)
            train(cfg, resume=args.resume)
        elif args.command == "eval":
            evaluate(args.run, args.episodes, args.split, args.seed)
        elif args.command == "generate":
            generate(args.run, args.prompt, args.n, args.seed, args.greedy)
    except (ValueError, FileNotFoundError, FileExistsError, TypeError) as e:
        print(f"textgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
