"""`TrainConfig`: values that load, values refused (run folders and resuming: test_runs.py)."""

from __future__ import annotations

import pytest

from agents.config import load_config
from agents.training import train
from gym_textgen.errors import TextGenValueError
from tests.helpers import TINY_RUN as TINY


def test_yaml_exponents_are_floats(tmp_path):
    """PyYAML's YAML 1.1 reads `1e-4` as a string; configs read it as the number it is."""
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1e-4\nkl_coef: 5E-2\nkl_coef_target: 3e0\nclip_range: .2\n")
    cfg = load_config(path)
    assert (cfg.learning_rate, cfg.kl_coef, cfg.kl_coef_target, cfg.clip_range) == (
        1e-4,
        0.05,
        3.0,
        0.2,
    )
    assert type(cfg.kl_coef_target) is float


def test_ints_for_floats_become_floats():
    cfg = load_config(None, learning_rate=1, gamma=1)
    assert type(cfg.learning_rate) is float and type(cfg.gamma) is float


def test_kl_in_loss_settings():
    cfg = load_config(None, algo="reinforce", kl_coef=0.1, kl_in_loss=True, kl_horizon=2048)
    assert cfg.kl_in_loss and cfg.kl_horizon == 2048
    with pytest.raises(TextGenValueError, match="kl_in_loss needs algo 'reinforce'.*got 'ppo'"):
        load_config(None, algo="ppo", kl_coef=0.1, kl_in_loss=True)
    with pytest.raises(TextGenValueError, match="kl_in_loss needs a kl_coef > 0"):
        load_config(None, algo="reinforce", kl_in_loss=True)
    with pytest.raises(TextGenValueError, match="Expects kl_horizon >= 1, got 0"):
        load_config(None, kl_horizon=0)


def test_linear_lr_schedule_decays_to_zero_over_the_run(tmp_path):
    from agents.build import load_run_model

    run = tmp_path / "run"
    train(load_config(None, timesteps=64, out=str(run), lr_schedule="linear", **TINY))
    model = load_run_model(run)
    start = load_config(run / "config.yaml").learning_rate
    assert model.lr_schedule(1.0) == pytest.approx(start)
    assert model.lr_schedule(0.25) == pytest.approx(start / 4)
    # the last update ran at the end of the schedule (constant: it would be `start`)
    assert model.policy.optimizer.param_groups[0]["lr"] < start / 2
    with pytest.raises(TextGenValueError, match="lr_schedule in"):
        load_config(None, lr_schedule="cosine")
