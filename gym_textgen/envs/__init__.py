"""TextGen environments."""

from gym_textgen.envs.core import TextGenCore
from gym_textgen.envs.textgen import TextGenEnv
from gym_textgen.envs.vector import TextGenVectorEnv

__all__ = ["TextGenCore", "TextGenEnv", "TextGenVectorEnv"]
