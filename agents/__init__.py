"""stable-baselines3 integration for gym-textgen: transformer policies, a batched VecEnv, the CLI.

>>> import agents
>>> sorted(agents.ALGOS)
['a2c', 'maskable_ppo', 'ppo']
"""

# Short names, as stable-baselines3's policy_aliases: PPO("TransformerPolicy", env) style.
from sb3_contrib import MaskablePPO
from stable_baselines3 import A2C, PPO

from agents.policies import MaskableTransformerPolicy, TransformerExtractor, TransformerPolicy
from agents.vec_env import TextGenVecEnv, make_vec_env

ALGOS = {"ppo": PPO, "a2c": A2C, "maskable_ppo": MaskablePPO}

__all__ = [
    "ALGOS",
    "MaskableTransformerPolicy",
    "TextGenVecEnv",
    "TransformerExtractor",
    "TransformerPolicy",
    "make_vec_env",
]
