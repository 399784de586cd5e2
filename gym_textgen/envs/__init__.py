"""TextGen environments."""

from gym_textgen.envs.core import TextGenConfig, TextGenCore
from gym_textgen.envs.textgen import PreparedStep, TextGenEnv
from gym_textgen.envs.vector import TextGenVectorEnv

__all__ = ["PreparedStep", "TextGenConfig", "TextGenCore", "TextGenEnv", "TextGenVectorEnv"]
