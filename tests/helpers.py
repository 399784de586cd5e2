"""What several test files share: a tiny run's settings, a seeded random rollout, and a deep
equality check."""

from __future__ import annotations

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
