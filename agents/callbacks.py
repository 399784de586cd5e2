"""Callbacks for training runs: atomic checkpoints and per-rollout metrics (CSV + logger)."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

from gym_textgen.errors import TextGenValueError

#: The columns every metrics.csv has; `reward/<component>` and `kl/*` columns follow when the
#: run has them. A column holds the same figure as the TensorBoard key of the same name, but for
#: `env/steps`: the slot-steps the env itself counted (`TextGenSB3VecEnv.steps_taken`), beside the
#: algorithm's own count (`timesteps`; REINFORCE leaves out the steps of idle slots).
METRIC_KEYS = [
    "timesteps",
    "env/steps",
    "reward/total",
    "rollout/episodes",
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "train/approx_kl",
    "train/entropy_loss",
    "train/value_loss",
    "train/policy_gradient_loss",
    "train/clip_fraction",
    "train/explained_variance",
]
KL_KEYS = ["kl/ref_per_episode", "kl/ref_per_token", "kl/coef"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_atomic(model: BaseAlgorithm, path: Path) -> Path:
    """`model.save` into memory, then an atomic write: a crash never leaves a torn checkpoint."""
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


#: what a rollout changes on an SB3 model besides `agents.resume.capture`'s state
_ROLLOUT_STATE = ("num_timesteps", "_episode_num", "ep_info_buffer", "ep_success_buffer")
ATTR_CAPTURE = "capture"


class AtomicCheckpointCallback(BaseCallback):
    """Every `save_freq` timesteps, atomically replace `path` with the current model.

    Unlike SB3's `CheckpointCallback`, which writes a new file in place each time, this keeps one
    file that is always complete, so `textgen train --resume` can trust it. It saves between a
    rollout's update and the next rollout (and when training ends), never inside a rollout: a
    checkpoint at step T holds the weights updated on every step up to T. A resume continues
    from those weights, the optimizer state, the step count and (with the KL callback) kl_coef;
    the episodes that were open and the random streams start afresh.
    """

    def __init__(self, save_freq: int, path: Path, verbose: int = 0) -> None:
        super().__init__(verbose)
        if not isinstance(save_freq, int) or save_freq < 1:
            raise TextGenValueError(f"Expects save_freq to be an int >= 1, got {save_freq!r}")
        self.save_freq, self.path = save_freq, Path(path)
        self._next = 0
        self._saved_at = -1

    def _on_training_start(self) -> None:
        self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq
        self._saved_at = -1

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:  # the previous rollout's update is done
        from agents.resume import capture

        if self.num_timesteps >= self._next:
            self._save()
            self._next = (self.num_timesteps // self.save_freq + 1) * self.save_freq
        model = self.model  # what a checkpoint written now would hold: `save_last_update`
        self._last_update = {
            **{k: copy.copy(getattr(model, k, None)) for k in _ROLLOUT_STATE},
            ATTR_CAPTURE: capture(model),
        }

    def save_last_update(self) -> int | None:
        """Write the checkpoint of the last finished update: the run as it stood when the
        rollout in progress began (a failure inside a rollout, such as the other party's, loses
        only that rollout, and a resume continues exactly). Returns its step (None: no rollout
        began)."""
        from agents.resume import ATTR

        snapshot = getattr(self, "_last_update", None)
        if snapshot is None:
            return None
        now = {k: getattr(self.model, k, None) for k in _ROLLOUT_STATE}
        for key in _ROLLOUT_STATE:
            setattr(self.model, key, snapshot[key])
        setattr(self.model, ATTR, snapshot[ATTR_CAPTURE])
        try:
            save_atomic(self.model, self.path)
        finally:
            delattr(self.model, ATTR)
            for key, value in now.items():
                setattr(self.model, key, value)
        return int(snapshot["num_timesteps"])

    def _on_training_end(self) -> None:
        if self._saved_at != self.num_timesteps:
            self._save()

    def _save(self) -> None:
        from agents.resume import ATTR, capture

        setattr(self.model, ATTR, capture(self.model))  # SB3 saves the model's attributes
        try:
            save_atomic(self.model, self.path)
        finally:
            delattr(self.model, ATTR)
        self._saved_at = self.num_timesteps
        if self.verbose:
            print(f"checkpoint at {self.num_timesteps} steps -> {self.path}")


class MetricsCallback(BaseCallback):
    """Appends one row per rollout to `metrics.csv` and logs the reward figures.

    `reward/total` is the mean return of the episodes that finished during that rollout (the
    learning curve) and `reward/<name>` the mean of each of the scorer's components on those
    episodes (from `info["reward_components"]`, as TRL logs `rewards/<func>/mean`); both go to
    the logger (TensorBoard) too. `rollout/ep_rew_mean` is SB3's mean over the last 100
    episodes. `train/*` columns hold the previous update's statistics and `kl/*` the KL
    penalty's, when the run has one (REINFORCE's KL in its loss: from the previous update).

    Args:
        path: the CSV file (appended to; a file from an earlier run keeps its columns).
        columns: the columns after `METRIC_KEYS`, e.g. `["reward/sentiment", *KL_KEYS]`.
    """

    def __init__(self, path: Path, columns: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__()
        self.path = Path(path)
        self.columns = [*METRIC_KEYS, *(c for c in columns if c not in METRIC_KEYS)]
        self._returns: list[float] = []
        self._components: dict[str, list[float]] = {}

    def _on_training_start(self) -> None:
        if self.path.exists():  # a resumed run: one header for old rows and new ones
            upgrade_metrics(self.path, self.columns)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            if "episode" in info:
                self._returns.append(float(info["episode"]["r"]))
                for name, value in (info.get("reward_components") or {}).items():
                    self._components.setdefault(name, []).append(float(value))
        return True

    def _on_rollout_end(self) -> None:
        values = self.model.logger.name_to_value
        buffer = self.model.ep_info_buffer or []
        row: dict[str, Any] = {
            "timesteps": self.num_timesteps,
            "env/steps": _env_steps(self.model.get_env()),
            "reward/total": float(np.mean(self._returns)) if self._returns else "",
            "rollout/episodes": len(self._returns),
            "rollout/ep_rew_mean": float(np.mean([e["r"] for e in buffer])) if buffer else "",
            "rollout/ep_len_mean": float(np.mean([e["l"] for e in buffer])) if buffer else "",
        }
        if self._returns:
            self.logger.record("reward/total", row["reward/total"])
        for name, scores in self._components.items():
            row[f"reward/{name}"] = float(np.mean(scores))
            self.logger.record(f"reward/{name}", row[f"reward/{name}"])
        for key in self.columns:
            if key not in row:
                row[key] = values.get(key, "")
        self._returns, self._components = [], {}
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore", restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _env_steps(env: Any) -> int | str:
    """The slot-steps a TextGen env counted (its `steps_taken`), "" for another env."""
    from agents.vec_env import unwrap_textgen

    try:
        return unwrap_textgen(env).steps_taken
    except TextGenValueError:
        return ""


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The complete rows of a `metrics.csv` (a row cut short by a crash is left out)."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if None not in r and None not in r.values()]


def upgrade_metrics(path: Path, columns: list[str]) -> None:
    """Rewrite `metrics.csv` (atomically) with `columns` first and any other column it had kept
    after them, so rows written from now on line up."""
    path = Path(path)
    rows = read_metrics(path)
    with path.open(newline="") as f:
        old = next(csv.reader(f), None) or []
    header = [*columns, *(c for c in old if c not in columns)]
    if header == old:
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, out.getvalue().encode())


def truncate_metrics(path: Path, timesteps: int) -> None:
    """Drop the rows of `metrics.csv` logged after `timesteps`, and any row a crash cut short
    (atomically; no file: nothing). The file keeps its columns."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        path.unlink()
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header)
    writer.writeheader()
    writer.writerows(r for r in read_metrics(path) if int(r["timesteps"]) <= timesteps)
    atomic_write_bytes(path, out.getvalue().encode())


def plot_curve(metrics: Path, out: Path, title: str = "") -> Path:
    """Plot rollout reward over timesteps (matplotlib, no display needed) to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "reward/total"
    rows = read_metrics(metrics)
    if rows and key not in rows[0]:
        key = "rollout_reward"  # the column's name in metrics.csv files before 0.2
    rows = [r for r in rows if r.get(key) not in ("", None)]
    steps = [int(r["timesteps"]) for r in rows]
    reward = [float(r[key]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, reward, marker="o", markersize=3, label="rollout reward")
    if len(reward) >= 5:
        k = max(2, len(reward) // 10)
        smooth = np.convolve(reward, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, label=f"moving mean ({k})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("mean episode reward")
    ax.set_title(title or "training curve")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(Path(out), buffer.getvalue())
    return Path(out)
