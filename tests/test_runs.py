"""Run folders: a run resumes from its checkpoint with only what may change, failures name the
folder and leave it usable, files that are not the run's are never touched."""

from __future__ import annotations

import pytest

from agents.config import load_config
from agents.rundir import RunDir, RunError
from agents.training import resume_config, train
from tests.helpers import TINY_RUN as TINY


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    train(load_config(None, timesteps=32, out=str(run), **TINY))
    return run


def test_resume_saves_the_new_target(finished_run):
    """A resume that extends the run writes its new target, so a plain --resume after another
    interruption still goes there (bug: it stopped at the old target)."""
    cfg = resume_config(finished_run, {"timesteps": 64})
    train(cfg, resume=finished_run)
    assert load_config(finished_run / "config.yaml").timesteps == 64
    assert resume_config(finished_run, {}).timesteps == 64


def test_resume_refuses_another_folder(finished_run, tmp_path):
    with pytest.raises(RunError, match="--out does not apply to --resume"):
        resume_config(finished_run, {"out": str(tmp_path / "elsewhere")})
    assert resume_config(finished_run, {"out": str(finished_run)}).out == str(finished_run)


def test_resume_removes_only_its_own_partial_writes(finished_run):
    ours = finished_run / "checkpoints" / "latest.zip.k2j3l4.tmp"
    ours.write_bytes(b"half")
    theirs = finished_run / "sub" / "notes.tmp"
    theirs.parent.mkdir()
    theirs.write_text("important")
    other = finished_run / "mydata.tmp"
    other.write_text("important")
    assert RunDir(finished_run).remove_partial_writes() == [ours]
    assert theirs.read_text() == other.read_text() == "important"


def test_out_folder_with_a_foreign_config_is_refused(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my: settings\n")
    (folder / "metrics.csv").write_text("mine\n")
    with pytest.raises(RunError, match="holds a config.yaml that is not a textgen run's"):
        train(load_config(None, timesteps=32, out=str(folder), **TINY))
    assert (folder / "config.yaml").read_text() == "my: settings\n"
    assert (folder / "metrics.csv").read_text() == "mine\n"


def test_out_that_is_a_file_is_refused_before_building(tmp_path, monkeypatch):
    import agents.training

    target = tmp_path / "afile"
    target.write_text("x")

    def must_not_build(*args, **kwargs):
        raise AssertionError("the model was built before the folder was checked")

    monkeypatch.setattr(agents.training, "build", must_not_build)
    with pytest.raises(RunError, match="is a file, not a folder"):
        train(load_config(None, timesteps=32, out=str(target), **TINY))


def test_write_errors_outside_the_run_folder_are_not_blamed_on_it(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(BrokenPipeError), run.writing():
        raise BrokenPipeError(32, "Broken pipe")  # e.g. `textgen ... | head`
    with pytest.raises(RunError, match="Cannot write to run folder"), run.writing():
        raise PermissionError(13, "Permission denied", str(run.path / "metrics.csv"))


def test_a_moved_model_folder_is_not_called_a_corrupt_checkpoint(finished_run, tmp_path):
    """Load errors that are gym-textgen's own keep their message (bug: every ValueError was
    reported as "corrupt or unreadable")."""
    import shutil

    from agents.build import load_run_model
    from gym_textgen.models import ModelNotFoundError

    folder = tmp_path / "my-model"
    shutil.copytree(finished_run / "hf_model", folder)  # a local Hugging Face folder
    run = tmp_path / "own"
    train(load_config(None, timesteps=32, out=str(run), **{**TINY, "model": str(folder)}))
    assert load_run_model(run).num_timesteps == 32
    shutil.rmtree(folder)  # the model folder the run was started from has moved
    with pytest.raises(ModelNotFoundError, match="my-model") as info:
        load_run_model(run)
    assert "corrupt" not in str(info.value)


def test_resume_continues_the_kl_controller_state(tmp_path):
    """The adaptive kl_coef is part of a run: a resume continues from the saved value."""
    from stable_baselines3 import PPO

    run = tmp_path / "run"
    cfg = load_config(None, timesteps=64, out=str(run), kl_coef=0.1, kl_coef_target=1e-6, **TINY)
    train(cfg)
    ckpt = run / "checkpoints" / "latest.zip"
    model = PPO.load(ckpt)
    # a saved coefficient far from the start value, so a restart would show
    model.textgen_kl_state = {
        "kl_coef": 0.5, "settings": {"initial_kl_coef": 0.1, "kl_coef_target": 1e-6}
    }  # fmt: skip
    model.save(ckpt)
    train(resume_config(run, {"timesteps": 128}), resume=run)
    resumed = PPO.load(run / "model.zip").textgen_kl_state
    assert abs(resumed["kl_coef"] - 0.5) < 0.01  # continued from the saved value, not restarted


def test_resume_keeps_reinforces_kl_from_the_config(tmp_path):
    """A REINFORCE checkpoint without its own kl_coef (saved before the KL moved into the
    algorithm) resumes with the run's KL in its loss, not silently without it."""
    from agents.algos import REINFORCE
    from agents.build import load_run_model

    run = tmp_path / "run"
    settings = {**TINY, "algo": "reinforce", "group_size": 2, "n_steps": 4, "batch_size": 8}
    cfg = load_config(None, timesteps=32, out=str(run), kl_coef=0.1, kl_in_loss=True, **settings)
    train(cfg)
    ckpt = run / "checkpoints" / "latest.zip"
    old = REINFORCE.load(ckpt)
    old.kl_coef, old.kl_controller = 0.0, None  # what an older checkpoint holds
    old.save(ckpt)
    model = load_run_model(run, prefer="checkpoint")
    assert model.kl_coef == 0.1 and model.kl_controller.kl_coef == 0.1
    assert model.kl is not None
