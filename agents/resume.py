"""Exact resumes: what a checkpoint carries beyond SB3's own save, so that a run killed after any
checkpoint and resumed gives the numbers of the run that was never stopped (same machine).

SB3 saves the weights, the optimizer and the counters, and `load` reseeds every random stream
from the run's seed and resets the env: the episodes that were open restart on other prompts and
every later draw differs. A checkpoint (written between an update and the next rollout:
`agents.callbacks.AtomicCheckpointCallback`) therefore also holds the run's `capture`: the random
streams (torch's, on the CPU and any GPU; numpy's global one, which SB3's rollout buffer shuffles
minibatches with; Python's; the action space's), every env slot's episode and generator and the
prompt groups' (`TextGenVectorEnv.get_state`), `VecMonitor`'s running episode sums, the policy's
last observation, and the logger's last values (metrics.csv's train/* columns). `restore` puts
them back at the start of the resumed `learn`, after everything that loading and building
consumed. The policy's rollout KV cache needs nothing: it is rebuilt at every rollout's start,
resumed or not, since the weights changed in the update before it.

What it cannot carry makes the resume inexact, and says why (`Capture.why`): DQN's replay buffer
(SB3 does not save it), an env that is not a TextGen one. An interactive task's turns are carried
(the other party answers from the episode's history alone: it keeps no state between calls).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

#: the attribute a checkpoint's capture travels in (SB3 saves a model's other attributes)
ATTR = "_textgen_resume"
#: the logger's tables of the values recorded since its last dump
_LOGGED = ("name_to_value", "name_to_count", "name_to_excluded")


@dataclass
class Capture:
    """A run's state at a checkpoint (see the module's doc); `why` says what it lacks ("" when
    a resume from it is exact)."""

    rng: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    last_obs: Any = None
    last_episode_starts: Any = None
    logged: dict[str, Any] = field(default_factory=dict)
    env_steps: int = 0
    why: str = ""


def _rng_state(model: Any) -> dict[str, Any]:
    state = {
        "torch": th.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "action_space": model.action_space.np_random.bit_generator.state,
    }
    if th.cuda.is_available():
        state["cuda"] = th.cuda.get_rng_state_all()
    return state


def _set_rng_state(model: Any, state: dict[str, Any]) -> None:
    th.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    model.action_space.np_random.bit_generator.state = state["action_space"]
    if "cuda" in state and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["cuda"])


def _textgen(env: VecEnv) -> tuple[Any, VecMonitor | None]:
    """The TextGen vector env inside SB3's wrappers (or None) and the VecMonitor among them."""
    from agents.vec_env import TextGenSB3VecEnv

    monitor = None
    while not isinstance(env, TextGenSB3VecEnv):
        if isinstance(env, VecMonitor):
            monitor = env
        if not hasattr(env, "venv"):
            return None, monitor
        env = env.venv
    return env, monitor


def capture(model: Any) -> Capture:
    """The state of `model`'s run now (between an update and the next rollout)."""
    from gym_textgen.errors import TextGenValueError

    state = Capture(rng=_rng_state(model), last_episode_starts=model._last_episode_starts)
    state.last_obs = model._last_obs
    logger = model.logger
    if logger is not None:
        state.logged = {k: dict(getattr(logger, k)) for k in _LOGGED}
    if hasattr(model, "replay_buffer"):
        state.why = "DQN's replay buffer is not saved with a checkpoint"
    textgen, monitor = _textgen(model.get_env())
    if textgen is None:
        state.why = state.why or "the env is not a TextGen vector env (its state is unknown)"
        return state
    state.env_steps = textgen.steps_taken
    try:
        state.env = textgen.venv.get_state()
    except TextGenValueError as e:
        state.why = state.why or str(e)
    if monitor is not None:
        state.monitor = {
            "episode_returns": monitor.episode_returns.copy(),
            "episode_lengths": monitor.episode_lengths.copy(),
            "episode_count": monitor.episode_count,
        }
    return state


def restore(model: Any, state: Capture) -> None:
    """Put `state` back into `model`'s run (at the start of the resumed `learn`)."""
    textgen, monitor = _textgen(model.get_env())
    if textgen is not None:
        textgen.steps_taken = state.env_steps
    if state.env is not None and textgen is not None:
        textgen.venv.set_state(state.env)
        textgen._reset_seeds()  # the seeds loading gave it are for a reset that never comes
        textgen._reset_options()
    if state.monitor is not None and monitor is not None:
        for key, value in state.monitor.items():
            setattr(monitor, key, value.copy() if isinstance(value, np.ndarray) else value)
    if state.last_obs is not None:
        model._last_obs = state.last_obs
        model._last_episode_starts = state.last_episode_starts
    for key, values in state.logged.items():
        getattr(model.logger, key).update(values)
    _set_rng_state(model, state.rng)


class RestoreCallback(BaseCallback):
    """Restores a checkpoint's `Capture` when the resumed `learn` starts: put it first in the
    callback list, so the others start from the restored state."""

    def __init__(self, state: Capture) -> None:
        super().__init__()
        self.state = state

    def _on_training_start(self) -> None:
        restore(self.model, self.state)

    def _on_step(self) -> bool:
        return True


__all__ = ["ATTR", "Capture", "RestoreCallback", "capture", "restore"]
