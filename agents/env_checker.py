"""`check_env`: SB3's env checker, plus what a TextGen env needs from the policy."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym

from gym_textgen.errors import TextGenValueError

ADVICE = (
    "TextGen observations are token ids (Dict of integer Box arrays). stable-baselines3's "
    "MultiInputPolicy would cast them to floats and feed them to an MLP: it runs, but it sees "
    "numbers, not words, and has no language model. Use agents.TransformerPolicy "
    "(agents.MaskableTransformerPolicy for MaskablePPO), e.g. agents.make_algo('ppo', env)."
)


def is_textgen(env: Any) -> bool:
    """Whether `env` (a Gymnasium env, vector env or SB3 VecEnv) has TextGen's observations."""
    space = getattr(env, "observation_space", None)
    return isinstance(space, gym.spaces.Dict) and {"input_ids", "attention_mask"} <= set(space)


def check_env(env: Any, warn: bool = True, skip_render_check: bool = True) -> None:
    """`stable_baselines3.common.env_checker.check_env`, then, for a TextGen env, a warning that
    names the policy to use instead of SB3's MultiInputPolicy. A VecEnv (`agents.make_vec_env`,
    SB3's `make_vec_env`) is checked through its first slot.

    >>> import gymnasium as gym, gym_textgen, warnings
    >>> from agents.env_checker import check_env
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_env(gym.make("TextGen-v0", max_new_tokens=4).unwrapped)
    >>> any("Use agents.TransformerPolicy" in str(w.message) for w in caught)
    True
    """
    from stable_baselines3.common.env_checker import check_env as sb3_check_env
    from stable_baselines3.common.vec_env import VecEnv

    if isinstance(env, VecEnv):  # SB3's checker takes one env: check a slot of the batch
        from agents.vec_env import TextGenSB3VecEnv

        inner = env
        while hasattr(inner, "venv") and not isinstance(inner, TextGenSB3VecEnv):
            inner = inner.venv
        if isinstance(inner, TextGenSB3VecEnv):
            env = inner.venv.envs[0]
        elif hasattr(inner, "envs"):  # DummyVecEnv
            env = inner.envs[0]
        else:
            raise TextGenValueError(
                f"check_env needs a Gymnasium env or a VecEnv that holds them, got "
                f"{type(inner).__name__}"
            )
    sb3_check_env(env, warn=warn, skip_render_check=skip_render_check)
    if warn and is_textgen(env):
        warnings.warn(ADVICE, UserWarning, stacklevel=2)


__all__ = ["ADVICE", "check_env", "is_textgen"]
