"""A run folder: the files `textgen train` writes, named once, and how a failure leaves them.

A run folder holds: `config.yaml` (the resolved config), `checkpoints/latest.zip` (written
atomically every `checkpoint_every` steps, between an update and the next rollout, and when
training ends), `model.zip` (the final SB3 model), `hf_model/` (the policy's LM as a Hugging
Face folder), `tb/` (TensorBoard), `metrics.csv`, `curve.png`, `samples.md` (generations before
and after training), `samples_before.json` (so a resumed run still reports the "before"
samples) and `samples_after.json`; a resumed run adds `resumes.json` (each resume: the step it
continued from, and whether it continued exactly: `agents.resume`).

Failures keep the folder usable: a start that fails before its first checkpoint can simply be
run again (fresh or with `--resume`), a run stopped by a crash, a kill or a failing scorer
resumes from its last checkpoint, and leftovers of interrupted atomic writes are removed on
resume.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agents.config import load_config
from gym_textgen.errors import TextGenError

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
    "resumes.json",
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
    resumes = property(lambda self: self.path / "resumes.json")

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


def read_samples(path: Path) -> list[Any] | None:
    """The samples saved at `path`, or None when missing or unreadable (they are recomputed)."""
    from agents.evaluation import Sample

    try:
        return [Sample(**s) for s in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return None


def read_resumes(run: Path) -> list[dict[str, Any]]:
    """The resumes a run folder records (`resumes.json`): `[{"at": step, "exact": bool, "why":
    str}, ...]`, oldest first; [] for a run never resumed."""
    path = RunDir(run).resumes
    return json.loads(path.read_text()) if path.is_file() else []


def before_after(run: Path) -> tuple[list[Any], list[Any]]:
    """The held-out samples a finished run wrote before and after training (the same prompts
    and seed): `(before, after)`, lists of `agents.evaluation.Sample`."""
    rd = RunDir(run)
    pair = read_samples(rd.samples_before), read_samples(rd.samples_after)
    if None in pair:
        raise RunError(
            f"{rd.path} has no readable {rd.samples_before.name} and {rd.samples_after.name}: "
            "they are written when a run finishes"
        )
    return pair
