"""What users of stable-baselines3 and rl-zoo3 already do works unchanged with TextGen envs."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

import agents

ROOT = Path(__file__).resolve().parents[1]


def test_sb3_make_vec_env_and_stock_ppo():
    """SB3's own make_vec_env (which asks for render_mode="rgb_array") + the transformer policy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render_mode")
        env = sb3_make_vec_env(
            "TextGenTargetTokens-v0", n_envs=2, env_kwargs={"max_new_tokens": 4}, seed=0
        )
    model = PPO(
        agents.TransformerPolicy,
        env,
        n_steps=16,
        batch_size=16,
        policy_kwargs={"model": "random-tiny"},
        seed=0,
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(64)
    assert model.num_timesteps == 64
    assert any(not (a == b).all() for a, b in zip(before, model.policy.parameters(), strict=True))


@pytest.mark.slow
def test_rl_zoo3_trains_with_the_shipped_hyperparameters(tmp_path):
    pytest.importorskip("rl_zoo3")
    cmd = [
        sys.executable, "-m", "rl_zoo3.train",
        "--algo", "ppo", "--env", "TextGenTargetTokens-v0", "--gym-packages", "gym_textgen",
        "-conf", str(ROOT / "configs" / "rl-zoo3" / "ppo.yml"),
        "-n", "256", "--eval-freq", "-1", "--seed", "0", "-f", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (saved,) = tmp_path.glob("ppo/TextGenTargetTokens-v0_*/TextGenTargetTokens-v0.zip")
    model = PPO.load(saved)
    assert isinstance(model.policy, agents.TransformerPolicy)
    assert model.num_timesteps == 256 and model.policy.model_name == "random-tiny"
