"""What several test files share: a tiny run's settings, `textgen` on the command line, a seeded
random rollout, and a deep equality check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

#: the bundled tasks whose episodes have several turns
INTERACTIVE_TASKS = ("token_code", "guess_number", "calculator")

#: a `textgen train` run in seconds: a random-init model, 4-token episodes, checkpoints often
TINY_RUN = dict(
    model="random-tiny",
    env_id="TextGenTargetTokens-v0",
    env_kwargs={"max_new_tokens": 4, "stop_on_eos": False},
    n_envs=2,
    n_steps=16,
    batch_size=16,
    n_epochs=1,
    eval_episodes=2,
    checkpoint_every=32,
    progress_bar=False,
)


def rollout(env, seed: int, n_steps: int = 80, action_seed: int = 1):
    """(obs, reward, terminated, truncated, info) of `n_steps` seeded random steps, resetting."""
    rng = np.random.default_rng(action_seed)
    out = [env.reset(seed=seed)]
    for _ in range(n_steps):
        step = env.step(int(rng.integers(env.action_space.n)))
        out.append(step)
        if step[2] or step[3]:
            out.append(env.reset())
    return out


def assert_same(a, b):
    """Deep equality for nested dicts, tuples, arrays and scalars."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert isinstance(b, np.ndarray) and b.dtype == object and a.shape == b.shape
        for x, y in zip(a.ravel(), b.ravel(), strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b and type(a) is type(b), (a, b)


def textgen(*args, check=True, process=False, timeout=300):
    """`textgen ARGS` as a user types it: its exit code, stdout and stderr. In this process by
    default (`agents.cli.main`, what the console script calls: the same parsing, messages and
    exit codes, without paying ~7 s of imports per call); `process=True` runs it in a fresh
    Python, as the smoke test does once."""
    import contextlib
    import io
    import types

    argv = [str(a) for a in args]
    if process:
        result = subprocess.run(
            [sys.executable, "-m", "agents.cli", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    else:
        from agents import cli

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse: --help, --version and usage errors
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        result = types.SimpleNamespace(
            returncode=code, stdout=out.getvalue(), stderr=err.getvalue()
        )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result
