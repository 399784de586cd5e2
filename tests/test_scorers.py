"""Scorer specs and the built-in scorers."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest

import gym_textgen  # noqa: F401  (registers the ids)
from gym_textgen.scorers import (
    KeywordsScorer,
    LengthScorer,
    Scorer,
    ScorerError,
    TargetTokensScorer,
    WeightedScorer,
    list_scorers,
    make_scorer,
    score_batch,
)

P = ["The film was"]


def reward_fn(prompt, completion):
    return float("great" in completion)


def test_list_scorers():
    assert list_scorers() == [
        *("bleu", "chrf", "classifier", "exact_match", "fluency", "judge", "keywords"),
        *("length", "none", "numeric", "overlap", "perplexity", "reasoning_gym", "repetition"),
        "rouge",
        *("sentiment", "similarity", "target_tokens", "word_match"),
    ]


def test_spec_name_function_path_dict_object():
    assert make_scorer("sentiment").name == "sentiment"
    fn = make_scorer(reward_fn)
    assert fn.name == "reward_fn" and fn(P * 2, ["great", "bad"]).tolist() == [1.0, 0.0]
    by_path = make_scorer("tests.test_scorers:reward_fn")
    assert by_path(P, [" great"]).tolist() == [1.0]
    obj = KeywordsScorer(["fun"])
    assert make_scorer(obj) is obj
    assert isinstance(make_scorer("gym_textgen.scorers:LengthScorer", target=4), LengthScorer)
    mix = make_scorer({"sentiment": 1.0, "length": 0.5}, target=2)
    assert isinstance(mix, WeightedScorer) and mix.parts["length"][1].target == 2


def test_function_scorer_with_reference():
    scorer = make_scorer(lambda p, c, ref: float(ref in c))
    assert scorer(P * 2, ["a cat", "a dog"], ["cat", "cat"]).tolist() == [1.0, 0.0]


def test_weighted_components_and_total():
    mix = make_scorer({"length": 2.0, "keywords": -1.0}, target=4, keywords=["fun"])
    total, comps = score_batch(mix, P * 2, ["so much fun today", "no"])
    assert comps["length"].tolist() == [1.0, 0.25]
    assert comps["keywords"].tolist() == [1.0, 0.0]
    np.testing.assert_allclose(total, [2.0 - 1.0, 0.5])


def test_sentiment_range_and_order():
    s = make_scorer("sentiment")
    values = s(P * 3, ["wonderful, I loved it", "", "terrible and boring"])
    assert values[0] > 0.8 and values[1] == 0.5 and values[2] < 0.2
    clone = pickle.loads(pickle.dumps(s))
    assert clone(P, ["wonderful, I loved it"])[0] == values[0]


def test_length_scorer():
    s = LengthScorer(target=4)
    assert s(P * 3, ["one two three four", "one two", ""]).tolist() == [1.0, 0.5, 0.0]
    assert LengthScorer(target=3, unit="chars")(P, ["abc"]).tolist() == [1.0]
    with pytest.raises(ValueError, match="Expects target > 0, got 0"):
        LengthScorer(target=0)


def test_keywords_scorer_whole_words_any_case_and_references():
    s = KeywordsScorer(["great", "fun"])
    assert s(P * 3, ["Great FUN!", "greatest", "fun only"]).tolist() == [1.0, 0.0, 0.5]
    by_ref = make_scorer("keywords")
    assert by_ref(
        P * 2, ["the music", "music and story"], [["music", "story"], "music, story"]
    ).tolist() == [0.5, 1.0]
    with pytest.raises(ScorerError, match="needs keywords"):
        score_batch(by_ref, P, ["x"])


def test_overlap_scorer_safe_for_empty_and_gameable():
    s = make_scorer("overlap")
    assert s(["", "the film", "the film"], ["words", "", "the film the film"]).tolist() == [
        0.0,
        0.0,
        2.0,
    ]
    # a degenerate echo of the prompt beats a real answer: the documented hack
    echo, answer = s(
        ["the acting was good"] * 2, ["the acting was good the acting was good", "I loved it"]
    )
    assert echo > answer


def test_target_tokens_scorer():
    s = TargetTokensScorer([1, 2])
    assert s(P * 3, ["", "", ""], completion_ids=[[1, 2, 3, 4], [], [2]]).tolist() == [
        0.5,
        0.0,
        1.0,
    ]
    default = make_scorer("target_tokens")
    assert default(P, [""], completion_ids=[[0, 4, 5, 6]]).tolist() == [0.5]
    assert default.uses_token_ids


def test_bad_specs():
    with pytest.raises(TypeError, match=r"Expects a scorer name, function.*got int: 3"):
        make_scorer(3)
    with pytest.raises(ValueError, match="Cannot import module 'no_such_module'"):
        make_scorer("no_such_module:f")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        make_scorer("gym_textgen.scorers:nope")
    with pytest.raises(TypeError, match=r"expects \{name: float\}, got 'sentiment': 'high'"):
        make_scorer({"sentiment": "high"})
    with pytest.raises(ValueError, match="at least one part"):
        make_scorer({})


def test_custom_scorer_subclass_batches():
    class Batch(Scorer):
        name = "batch"

        def score(self, prompts, completions, references=None, *, completion_ids=None):
            return np.array([len(c) for c in completions], dtype=float)

    total, comps = score_batch(Batch(), P * 2, ["ab", "abcd"])
    assert total.tolist() == [2.0, 4.0] and list(comps) == ["batch"]


class Parts(Scorer):
    """A scorer of two named parts, declared in `names`."""

    name = "parts"

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names

    def components(self, prompts, completions, references=None, *, completion_ids=None):
        return {
            "len": np.array([len(c) / 100 for c in completions]),
            "bonus": np.ones(len(prompts)),
        }

    def component_names(self):
        return self.names if self.names is not None else super().component_names()

    def combine(self, components):
        return components["len"] + components["bonus"]


def test_components_must_be_the_component_names_the_info_shows_on_every_step():
    """info["reward_components"] holds the keys on every step, before any score: a scorer whose
    components() returns other keys than component_names() is a clear error (any order is fine,
    and the info follows component_names()'s)."""
    with pytest.raises(ScorerError, match=r"returned \['bonus', 'len'\]: a scorer that overrides "):
        score_batch(Parts(), P, [" x"])
    total, comps = score_batch(Parts(["bonus", "len"]), P, [" xy"])
    assert list(comps) == ["bonus", "len"] and total.tolist() == [1.03]
    env = gym.make("TextGen-v0", scorer=Parts(["bonus", "len"]), max_new_tokens=2)
    _, info = env.reset(seed=0)
    assert info["reward_components"] == {"bonus": 0.0, "len": 0.0}
    env.step(5)
    *_, info = env.step(5)
    assert list(info["reward_components"]) == ["bonus", "len"]
    assert info["reward_components"]["bonus"] == 1.0
