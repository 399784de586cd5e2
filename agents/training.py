"""`textgen train`: train a model from a `TrainConfig` in a run folder (`agents.rundir`), or
resume one from its last checkpoint."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from agents.build import build, env_kwargs_for, kl_callback, load_run_model, make_env
from agents.config import TrainConfig, config_yaml, load_config
from agents.registry import algo_label
from agents.rundir import RunDir, RunError, read_samples
from gym_textgen.errors import DivergedError, TextGenError
from gym_textgen.interactive.party import PartyError

#: Settings a resumed run may change; every other setting is fixed by the saved run. (Not
#: eval_episodes nor eval_split: the "before" samples were drawn with the saved ones.)
RESUMABLE = ("timesteps", "checkpoint_every", "device", "progress_bar")


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
    given = {k: v for k, v in overrides.items() if v is not None}
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
        default = f"runs/{algo_label(cfg.algo)}-{cfg.env_id}-{time.strftime('%Y%m%d-%H%M%S')}"
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


def _record_resume(run: RunDir, model: Any) -> Any:
    """The checkpoint's `agents.resume.Capture` (taken off the model), after appending this
    resume to the run's `resumes.json`: exact, or why not."""
    from agents.callbacks import atomic_write_bytes
    from agents.resume import ATTR
    from agents.rundir import read_resumes

    restored = getattr(model, ATTR, None)
    if restored is not None:
        delattr(model, ATTR)
    why = "the checkpoint holds no run state (written before exact resumes)"
    if restored is not None:
        why = restored.why
    entry = {"at": int(model.num_timesteps), "exact": not why, "why": why}
    atomic_write_bytes(run.resumes, json.dumps([*read_resumes(run.path), entry]).encode())
    return restored


def _train(cfg: TrainConfig, run: RunDir, resume: bool) -> Path:
    from stable_baselines3.common.callbacks import CallbackList

    from agents.callbacks import (
        KL_KEYS,
        AtomicCheckpointCallback,
        MetricsCallback,
        atomic_write_bytes,
        plot_curve,
        read_metrics,
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
    restored = None
    if resume and run.has_progress():
        env = make_env(cfg)
        model = load_run_model(run.path, env=env, prefer="checkpoint", device=cfg.device)
        restored = _record_resume(run, model)
        print(f"resuming {run.path} at {model.num_timesteps} of {cfg.timesteps} steps"
              + ("" if restored is None or not restored.why else f" (not exactly: {restored.why})"))  # fmt: skip
        truncate_metrics(run.metrics, model.num_timesteps)  # rows after it are redone
        if restored is None:  # a checkpoint without the env's count: its last logged one
            rows = read_metrics(run.metrics) if run.metrics.exists() else []
            counted = [int(r["env/steps"]) for r in rows if r.get("env/steps")]
            unwrap_textgen(env).steps_taken = counted[-1] if counted else model.num_timesteps
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
    sample_args = dict(env_id=cfg.env_id, env_kwargs=env_kwargs_for(cfg), n=cfg.eval_episodes,
                       seed=cfg.seed, split=cfg.eval_split)  # fmt: skip

    before = read_samples(run.samples_before)
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
        columns = [f"reward/{name}" for name in unwrap_textgen(env).core.component_names]
        checkpoints = AtomicCheckpointCallback(cfg.checkpoint_every, run.checkpoint)
        steps = [
            checkpoints,
            MetricsCallback(run.metrics, columns + (KL_KEYS if with_kl else [])),
        ]
        if with_kl and not cfg.kl_in_loss:
            # first, so the checkpoint and metrics callbacks run after the rewards are penalised
            steps.insert(0, kl_callback(cfg, model))
        if restored is not None:  # first of all: the others start from the restored state
            from agents.resume import RestoreCallback

            steps.insert(0, RestoreCallback(restored))
        try:
            try:
                model.learn(
                    remaining,
                    callback=CallbackList(steps),
                    reset_num_timesteps=not resume,
                    progress_bar=cfg.progress_bar,
                    tb_log_name="tb",
                )
            except DivergedError as e:
                raise DivergedError(
                    f"Training diverged at step {model.num_timesteps} of {cfg.timesteps}: {e}"
                ) from e
            except PartyError as e:  # lose the rollout in progress only
                at = checkpoints.save_last_update()
                if at is None:
                    raise
                fix = (
                    "when the party is back (give the env party_retries= to ride out a passing "
                    "outage)"
                    if e.transient
                    else "fix the party"
                )
                raise PartyError(
                    f"The other party failed at step {model.num_timesteps}: {e}. The run is "
                    f"checkpointed at its last finished update (step {at}, {run.checkpoint}): "
                    f"{fix}, then textgen train --resume {run.path}",
                    transient=e.transient,
                ) from e
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
