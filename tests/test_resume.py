"""A resumed cell equals the straight run, bitwise on the same machine (issue 39): a cell killed
with SIGKILL after a checkpoint, resumed, killed again after a later one and resumed to the end
gives the straight run's held-out rewards, learning curve and step counts (it used to reset the
open episodes and every random stream: another number, and nothing said so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from agents.bench import BenchConfig
from agents.bench.cells import run_cell
from agents.bench.grid import cell_folder

pytestmark = pytest.mark.slow

RUN = "import json, sys; from agents.bench.cells import run_cell; run_cell(json.load(open(sys.argv[1])))"


def spec_for(out, algo="ppo"):
    cfg = BenchConfig(algos=[algo], tasks=["target_tokens"], seeds=1, first_seed=3,
                      timesteps=1536, n_envs=4, eval_episodes=4, model="random-tiny",
                      task_env={"target_tokens": {"max_new_tokens": 8}}, out=str(out))  # fmt: skip
    (spec,) = cfg.cells()
    return spec


def checkpoint_step(spec) -> int:
    """The step of the cell's checkpoint (0: none yet)."""
    path = cell_folder(spec) / "run" / "checkpoints" / "latest.zip"
    try:
        with zipfile.ZipFile(path) as z:
            return int(json.loads(z.read("data"))["num_timesteps"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return 0


def kill_after_checkpoint(spec, tmp_path, after: int) -> int:
    """Run the cell in a fresh process and SIGKILL it as soon as its checkpoint is past step
    `after`; returns that checkpoint's step."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while (step := checkpoint_step(spec)) <= after:
            assert proc.poll() is None, "the cell ended before a checkpoint to kill it after"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (cell_folder(spec) / "result.json").exists()
    return step


@pytest.mark.parametrize("algo", ["ppo", "reinforce-rloo"])
def test_a_cell_killed_at_two_checkpoints_and_resumed_equals_the_straight_run(tmp_path, algo):
    straight = run_cell(spec_for(tmp_path / "straight", algo))
    spec = spec_for(tmp_path / "killed", algo)
    first = kill_after_checkpoint(spec, tmp_path, 0)
    second = kill_after_checkpoint(spec, tmp_path, first)
    assert 0 < first < second < spec["timesteps"]
    resumed = run_cell(spec)
    same = ("before", "after", "curve", "timesteps", "steps")
    assert {k: resumed[k] for k in same} == {k: straight[k] for k in same}
    assert resumed["resumes"] == 2 and resumed["resumed"] is False  # both exact
    runs = [cell_folder(s) / "run" for s in (spec_for(tmp_path / "straight", algo), spec)]
    assert [(r / "metrics.csv").read_text() for r in runs][0] == (
        runs[1] / "metrics.csv"
    ).read_text()


def _interrupted_then_resumed(tmp_path, monkeypatch, strip_state=False, **settings):
    """A `textgen train` run stopped (KeyboardInterrupt) right after its second checkpoint, then
    resumed to the end (`strip_state`: from a checkpoint as written before exact resumes);
    returns the straight run's folder and the resumed one's."""
    import agents.callbacks as callbacks
    from agents.config import TrainConfig
    from agents.resume import ATTR
    from agents.training import resume_config, train

    base = dict(model="random-tiny", task="target_tokens", env_kwargs={"max_new_tokens": 8},
                n_envs=4, timesteps=256, checkpoint_every=32, eval_episodes=4,
                progress_bar=False, seed=3, **settings)  # fmt: skip
    straight = train(TrainConfig(**base, out=str(tmp_path / "straight")))
    real, saves = callbacks.AtomicCheckpointCallback._save, []

    def save_then_stop(self):
        real(self)
        saves.append(self.num_timesteps)
        if len(saves) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(callbacks.AtomicCheckpointCallback, "_save", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig(**base, out=str(tmp_path / "stopped")))
    run = tmp_path / "stopped"
    if strip_state:  # the checkpoint as an older version wrote it: SB3's data, no run state
        path = run / "checkpoints" / "latest.zip"
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        data = json.loads(members["data"])
        del data[ATTR]
        members["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(path, "w") as z:
            for name, content in members.items():
                z.writestr(name, content)
    train(resume_config(run, {}), resume=run)
    return straight, run


def test_a_kl_run_whose_episodes_span_rollouts_resumes_exactly(tmp_path, monkeypatch):
    """The KL callback's per-episode sums of the episodes in progress travel in the checkpoint
    (a resume used to drop them: kl/ref_per_episode and the adaptive kl_coef then parted while
    resumes.json said the resume was exact)."""
    straight, resumed = _interrupted_then_resumed(
        tmp_path, monkeypatch, kl_coef=0.05, kl_coef_target=0.02, n_steps=6, batch_size=24
    )
    assert (straight / "metrics.csv").read_text() == (resumed / "metrics.csv").read_text()
    assert json.loads((resumed / "resumes.json").read_text())[0]["exact"] is True


def test_an_old_checkpoint_resumes_inexactly_and_the_env_count_goes_on(tmp_path, monkeypatch):
    from agents.callbacks import read_metrics

    _, resumed = _interrupted_then_resumed(tmp_path, monkeypatch, strip_state=True, n_steps=8)
    (entry,) = json.loads((resumed / "resumes.json").read_text())
    assert entry["exact"] is False and "holds no run state" in entry["why"]
    steps = [int(r["env/steps"]) for r in read_metrics(resumed / "metrics.csv")]
    assert steps == sorted(steps) and steps[-1] == 256  # (it restarted from 0)


def test_a_party_failure_checkpoints_the_last_update_and_the_resume_is_exact(tmp_path, monkeypatch):
    """A PartyError (a remote user's outage) ended `textgen train` with the rollout lost and
    only the last periodic checkpoint (or none) to resume from."""
    from agents.config import TrainConfig
    from agents.rundir import read_resumes
    from agents.training import resume_config, train
    from gym_textgen import tasks
    from gym_textgen.interactive import CallableParty, Interaction, PartyError, Reply
    from gym_textgen.tasks import Task, register_task

    outage = {"on": False, "calls": 0}

    def party(ex):
        outage["calls"] += 1
        if outage["on"] and outage["calls"] > 40:
            raise ConnectionError("the user's server is down")
        return Reply(f"code {len(ex.turns[-1]) % 4}")

    monkeypatch.setitem(tasks._TASKS, "flaky_talk", None)  # (removed again after the test)
    register_task("flaky_talk", lambda: Task(
        name="flaky_talk", prompts=("Say a word.", "Say two words."), scorer="length",
        interaction=Interaction(CallableParty(party), max_turns=2, max_turn_tokens=3,
                                max_reply_tokens=8, reply_template=" {reply}\n")))  # fmt: skip
    base = dict(model="random-tiny", task="flaky_talk", env_kwargs={"max_new_tokens": 6},
                n_envs=4, n_steps=8, batch_size=16, timesteps=256, checkpoint_every=10_000,
                eval_episodes=2, progress_bar=False, seed=2)  # fmt: skip
    straight = train(TrainConfig(**base, out=str(tmp_path / "straight")))
    outage.update(on=True, calls=0)
    run = tmp_path / "outage"
    with pytest.raises(PartyError, match=r"checkpointed at its last finished update \(step \d+"):
        train(TrainConfig(**base, out=str(run)))
    assert (run / "checkpoints" / "latest.zip").is_file()  # (checkpoint_every: none before)
    outage["on"] = False
    train(resume_config(run, {}), resume=run)
    assert (straight / "metrics.csv").read_text() == (run / "metrics.csv").read_text()
    assert [r["exact"] for r in read_resumes(run)] == [True]
