"""`check_env`: SB3's env checker, plus what a TextGen env needs from the policy."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym

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


def check_env(env: gym.Env, warn: bool = True, skip_render_check: bool = True) -> None:
    """`stable_baselines3.common.env_checker.check_env`, then, for a TextGen env, a warning that
    names the policy to use instead of SB3's MultiInputPolicy.

    >>> import gymnasium as gym, gym_textgen, warnings
    >>> from agents.env_checker import check_env
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     check_env(gym.make("TextGen-v0", max_new_tokens=4).unwrapped)
    >>> any("Use agents.TransformerPolicy" in str(w.message) for w in caught)
    True
    """
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(env, warn=warn, skip_render_check=skip_render_check)
    if warn and is_textgen(env):
        warnings.warn(ADVICE, UserWarning, stacklevel=2)


__all__ = ["ADVICE", "check_env", "is_textgen"]
