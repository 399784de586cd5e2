"""An SB3 `VecEnv` over the native batched TextGen env: batched tokenization and scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

import gym_textgen  # noqa: F401  (registers the env ids)
from gym_textgen.envs import TextGenVectorEnv
from gym_textgen.errors import TextGenValueError


class TextGenSB3VecEnv(VecEnv):
    """SB3's VecEnv API on Gymnasium's `TextGenVectorEnv` (SameStep autoreset, as SB3 expects).

    (Named for what it adapts to: Gymnasium's vector env is `gym_textgen.TextGenVectorEnv`.)

    A finished slot resets in the same step; its last observation is in
    `infos[i]["terminal_observation"]`. `env_method`, `get_attr` and `set_attr` reach the slots'
    `TextGenEnv` objects, so MaskablePPO finds `action_masks`.

    Args:
        env_id: a registered TextGen id (its registered kwargs are the defaults).
        n_envs: number of slots.
        group_size: slots that share each prompt (see `TextGenVectorEnv`); 1: none share.
        **env_kwargs: `TextGenEnv` arguments.
    """

    def __init__(
        self, env_id: str = "TextGen-v0", n_envs: int = 8, group_size: int = 1, **env_kwargs: Any
    ) -> None:
        try:
            spec = gym.spec(env_id)
        except gym.error.Error as e:
            raise TextGenValueError(
                f"Unknown env id {env_id!r} ({e}); expected one of {sorted(gym_textgen.ENV_IDS)}"
            ) from e
        if spec.vector_entry_point != "gym_textgen.envs:TextGenVectorEnv":
            raise TextGenValueError(
                f"Expects a TextGen env id {sorted(gym_textgen.ENV_IDS)}, got {env_id!r}"
            )
        self.env_id = env_id
        self.env_kwargs = {**spec.kwargs, **env_kwargs}
        self.venv = TextGenVectorEnv(
            num_envs=n_envs,
            autoreset_mode=AutoresetMode.SAME_STEP,
            group_size=group_size,
            **self.env_kwargs,
        )
        self.render_mode = self.venv.render_mode
        super().__init__(n_envs, self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None
        #: slot-steps taken (n_envs per step): the env's own count, which `textgen bench`
        #: records beside the algorithm's (a checkpoint carries it: `agents.resume`)
        self.steps_taken = 0

    @property
    def core(self):
        """The shared `TextGenCore` (tokenizer, task, scorer)."""
        return self.venv.core

    @property
    def group_size(self) -> int:
        """Consecutive slots that share each prompt (SB3's wrappers forward it: `VecMonitor(env)
        .group_size` reads it too)."""
        return self.venv.group_size

    def reset(self) -> dict[str, np.ndarray]:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = [dict(o) if o else None for o in self._options]
        obs, _ = self.venv.reset(seed=seeds, options=options)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs).astype(np.int64)

    def step_wait(
        self,
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, infos, finals = self.venv.step_slots(self._actions)
        self.steps_taken += self.num_envs
        dones = terminated | truncated
        for i, final in enumerate(finals):
            if final is not None:
                final_obs, final_info = final
                infos[i] = {**final_info, "terminal_observation": final_obs}
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def _slots(self, indices: Any) -> list[Any]:
        return [self.venv.envs[i] for i in self._get_indices(indices)]

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(env, attr_name) for env in self._slots(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for env in self._slots(indices):
            setattr(env, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        return [getattr(env, method_name)(*args, **kwargs) for env in self._slots(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._slots(indices)]

    def action_masks(self) -> np.ndarray:
        """Boolean `(n_envs, V)`."""
        return self.venv.action_masks()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    def render(self, mode: str | None = None) -> Any:
        """Each slot's text (prompt«completion»), whatever the render mode."""
        return [env.text for env in self.venv.envs]


def env_group_size(env: VecEnv) -> int | None:
    """The env's prompt group size (`TextGenSB3VecEnv.group_size`, read through SB3's wrappers,
    which forward attributes), or None for an env without prompt groups."""
    try:
        return int(env.group_size)
    except AttributeError:
        return None


def env_horizon(env: VecEnv) -> int:
    """The longest episode of a TextGen VecEnv (its `max_new_tokens`)."""
    try:
        return int(env.get_attr("max_new_tokens")[0])
    except AttributeError as e:
        raise TextGenValueError(
            "REINFORCE needs episodes of a known maximum length: pass max_episode_steps=..."
        ) from e


def make_vec_env(
    env_id: str = "TextGen-v0",
    n_envs: int = 8,
    seed: int | None = None,
    start_index: int = 0,
    monitor_dir: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    group_size: int = 1,
    **kwargs: Any,
) -> VecMonitor:
    """A batched TextGen `VecEnv` for any SB3 algorithm, with episode statistics (`VecMonitor`).

    The arguments follow `stable_baselines3.common.env_util.make_vec_env` where they apply to
    one batched env: `seed` (slot i is seeded `seed + start_index + i` at the next reset),
    `env_kwargs`, `monitor_dir` and `monitor_kwargs` (for `VecMonitor`). Env arguments may also
    be given directly as keywords. `group_size=k` gives k consecutive slots the same prompts, for
    per-prompt baselines (`agents.algos.REINFORCE` with `baseline="rloo"`). SB3's per-env `wrapper_class` and `vec_env_cls` do not apply
    to a native batched env: use SB3's own `make_vec_env("TextGen-v0", ...)` for those.

    >>> import agents
    >>> env = agents.make_vec_env("TextGen-v0", n_envs=4, seed=0, env_kwargs={"max_new_tokens": 8})
    >>> env.reset()["input_ids"].shape
    (4, 32)
    """
    for name in ("wrapper_class", "wrapper_kwargs", "vec_env_cls", "vec_env_kwargs"):
        if kwargs.pop(name, None) is not None:
            raise TextGenValueError(
                f"agents.make_vec_env builds one native batched env, so {name} does not apply; "
                "use stable_baselines3.common.env_util.make_vec_env('TextGen-v0', ...) with "
                "per-env wrappers instead"
            )
    env_kwargs = dict(env_kwargs or {})
    clash = sorted(k for k in set(env_kwargs) & set(kwargs) if env_kwargs[k] != kwargs[k])
    if clash:
        raise TextGenValueError(
            f"Env argument(s) {clash} given twice with different values: in env_kwargs "
            f"{ {k: env_kwargs[k] for k in clash} } and as keywords { {k: kwargs[k] for k in clash} }"
        )
    venv = TextGenSB3VecEnv(env_id, n_envs, group_size=group_size, **{**env_kwargs, **kwargs})
    if seed is not None:
        venv.seed(seed + start_index)
    filename = None
    if monitor_dir is not None:
        import os

        os.makedirs(monitor_dir, exist_ok=True)
        filename = os.path.join(monitor_dir, "monitor.csv")
    return VecMonitor(venv, filename=filename, **(monitor_kwargs or {}))


def unwrap_textgen(env: VecEnv) -> TextGenSB3VecEnv:
    """The `TextGenSB3VecEnv` inside SB3 VecEnv wrappers."""
    while not isinstance(env, TextGenSB3VecEnv):
        if not hasattr(env, "venv"):
            raise TextGenValueError(
                f"Expects a VecEnv made by agents.make_vec_env, got {type(env).__name__}"
            )
        env = env.venv
    return env
