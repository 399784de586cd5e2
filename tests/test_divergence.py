"""A diverged policy is a failure, never a score (issue 39): NaN or infinite logits raise in the
sampler and in greedy decoding, a policy with NaN weights is not evaluated, a bench cell that
diverges is a failed cell with that reason, and no statistic takes a NaN score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch as th

from agents.distributions import greedy_categorical, sample_categorical
from gym_textgen.errors import DivergedError, TextGenValueError


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_the_sampler_refuses_non_finite_logits_rather_than_returning_the_last_id(bad):
    logits = th.randn(3, 10)
    logits[1, 4] = bad
    with pytest.raises(DivergedError, match=r"rows \[1\] of 3"):
        sample_categorical(th.log_softmax(logits, -1))  # (searchsorted on NaN gave id 9)
    with pytest.raises(DivergedError, match=r"rows \[1\] of 3"):
        greedy_categorical(logits)


def test_the_sampler_refuses_a_row_with_no_allowed_id():
    log_probs = th.log_softmax(th.randn(2, 5), -1)
    log_probs[0] = -float("inf")
    with pytest.raises(DivergedError, match="no allowed id"):
        sample_categorical(log_probs)


def test_the_sampler_sums_in_float64_whatever_the_logits_dtype():
    """The same law from float32 and float64 logits: the same ids for the same uniforms."""
    logits = th.randn(64, 4096, dtype=th.float64, generator=th.Generator().manual_seed(0))
    ids = []
    for dtype in (th.float32, th.float64):
        th.manual_seed(1)
        ids.append(sample_categorical(th.log_softmax(logits, -1).to(dtype)))
    assert (ids[0] == ids[1]).float().mean() > 0.95  # float32 rounding moves a few boundaries
    assert ids[0].dtype == th.long


def test_a_policy_with_nan_weights_is_not_evaluated():
    import agents
    from agents.evaluation import sample_episodes

    env = agents.make_vec_env("TextGenTargetTokens-v0", n_envs=2, max_new_tokens=4)
    model = agents.make_algo("ppo", env, {"model": "random-tiny"}, seed=0)
    with th.no_grad():
        next(model.policy.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(DivergedError, match="1 of the policy's"):
        sample_episodes(model, "TextGenTargetTokens-v0", {"max_new_tokens": 4}, n=2)


def test_a_diverging_cell_is_a_failed_cell_that_says_so(tmp_path, capsys):
    """Stock PPO at lr 1e4: NaN weights after its first update. It used to finish with rc 0 and
    a plausible score (the sampler drew the last id every step)."""
    from agents.cli import main

    hp = tmp_path / "hp"
    hp.mkdir()
    (hp / "ppo.yml").write_text("default: {learning_rate: 1.0e+4, n_steps: 16, batch_size: 32}\n")
    out = tmp_path / "grid"
    argv = ["bench", "--algos", "ppo", "--tasks", "target_tokens", "--seeds", "1",
            "--timesteps", "256", "--n-envs", "4", "--eval-episodes", "4", "--model",
            "random-tiny", "--hyperparams", str(hp), "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    assert "DivergedError: Training diverged at step" in capsys.readouterr().err
    (folder,) = (out / "cells").iterdir()
    failure = json.loads((folder / "failure.json").read_text())
    assert failure["error"].startswith("DivergedError: Training diverged at step")
    assert not (folder / "result.json").exists()
    assert "Failed cells" in (out / "results.md").read_text()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_no_statistic_takes_a_non_finite_score(bad):
    from agents.bench import aggregates, iqm, iqm_table, normalised, stratified_bootstrap_iqm

    scores = np.array([0.1, 0.2, 0.3, 0.4, bad])
    with pytest.raises(TextGenValueError, match="finite"):
        iqm(scores)  # a NaN sorted last counted as the best run: 0.300
    with pytest.raises(TextGenValueError, match="finite"):
        stratified_bootstrap_iqm([scores])
    results = [
        {"algo": "a", "task": "t", "seed": s, "after": float(x)} for s, x in enumerate(scores)
    ]
    with pytest.raises(TextGenValueError, match="finite"):
        iqm_table(results, ["a"], ["t"])
    with pytest.raises(TextGenValueError, match="finite"):
        aggregates({"a": scores.reshape(5, 1)})
    with pytest.raises(TextGenValueError, match="finite"):
        normalised({"normalise": {"t": [0.0, 1.0]}}, "t", bad)
    with pytest.raises(TextGenValueError, match="finite"):
        normalised({"normalise": {"t": [-np.inf, 1.0]}}, "t", 0.5)
    with pytest.raises(TextGenValueError, match="at least one score"):
        iqm(np.array([]))  # (NaN with a warning)
    with pytest.raises(TextGenValueError, match="at least one task"):
        stratified_bootstrap_iqm([])


def test_one_seed_gives_no_interval_rather_than_a_zero_width_one():
    from agents.bench import aggregates, improvement
    from agents.bench.stats import interval_text

    one = np.array([[0.4, 0.6]])
    point, low, high = aggregates({"a": one})["a"]["iqm"]
    assert point == pytest.approx(0.5) and np.isnan(low) and np.isnan(high)
    assert interval_text(point, low, high) == "0.500 [n/a: one seed]"
    many = np.array([[0.1, 0.2], [0.3, 0.2], [0.5, 0.1]])
    p, low, high = improvement({("a", "b"): (one, many)})[("a", "b")]
    assert 0.5 < p <= 1 and np.isnan(low) and np.isnan(high)  # never "[1.000, 1.000]"
    _, low, high = improvement({("b", "b"): (many, many)})[("b", "b")]
    assert low < 0.5 < high
