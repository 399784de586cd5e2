"""The reference-based metric scorers (issue 12): known answers, batching, bad input."""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest

from gym_textgen.errors import MissingDependencyError, TextGenValueError
from gym_textgen.scorers import make_scorer

REF = "The quiet film follows a teacher who moves to a village in the mountains."
WORSE = "A film follows a teacher in the mountains."
OFF = "Bananas are yellow and grow in warm places."


@pytest.mark.parametrize("name", ["bleu", "chrf", "rouge"])
def test_similarity_metrics_rank_identical_close_and_unrelated(name):
    s = make_scorer(name)
    got = s(["p"] * 3, [REF, WORSE, OFF], [REF] * 3)
    assert got[0] == pytest.approx(1.0, abs=1e-12)  # identical text: BLEU 100, chrF 100, ROUGE 1
    assert 0.0 <= got[2] < got[1] < got[0]


def test_bleu_equals_sacrebleu_and_takes_the_best_of_several_references():
    from sacrebleu.metrics import BLEU

    want = BLEU(effective_order=True).sentence_score(WORSE, [REF, OFF]).score / 100
    assert make_scorer("bleu")(["p"], [WORSE], [[REF, OFF]])[0] == pytest.approx(want, rel=1e-12)
    rouge = make_scorer("rouge", kind="rouge1")
    assert rouge(["p"], [WORSE], [[OFF, REF]])[0] == rouge(["p"], [WORSE], [REF])[0]


@pytest.mark.parametrize("name", ["bleu", "chrf", "rouge", "exact_match", "numeric", "repetition"])
def test_batched_equals_one_by_one_and_survives_pickling(name):
    completions = [REF, WORSE, OFF, "42", " 41.9 apples", "the the the the"]
    refs = [REF, REF, [OFF, REF], "42", "41.9", "the"]
    s = make_scorer(name)
    batch = s(["p"] * len(completions), completions, refs)
    single = [s(["p"], [c], [r])[0] for c, r in zip(completions, refs, strict=True)]
    np.testing.assert_array_equal(batch, single)
    assert batch.shape == (6,) and ((0 <= batch) & (batch <= 1)).all()
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(s))(["p"] * 6, completions, refs), batch
    )


def test_numeric_checks_the_first_number():
    s = make_scorer("numeric")
    got = s(
        ["2+2="] * 6,
        [" 4", "4.0 is it", "The answer is 5, not 4", "four", "-3", "1,234"],
        ["4", 4, 4, "4", -3, "1234"],
    )
    assert got.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]  # wrong arithmetic -> 0
    with pytest.raises(TextGenValueError, match="expects a number as reference, got 'four'"):
        s(["q"], ["4"], ["four"])


def test_exact_match_normalises_and_reads_the_first_line():
    s = make_scorer("exact_match")
    got = s(["q"] * 4, ["  Paris.", "\nparis\nbecause", "Paris is nice", "Rome"], [["Paris"]] * 4)
    assert got.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_exact_match_keeps_the_signs_and_decimal_points_of_numbers():
    """Stripping all punctuation made "-5" match "5" and "3.5" match "35"; a number keeps its
    sign, decimal point and what joins its digits (thousands separators, a leading "+" and a
    trailing full stop still go)."""
    s = make_scorer("exact_match")
    pairs = [("-5", "5", 0.0), ("3.5", "35", 0.0), ("−4", "-4", 1.0), ("+7", "7", 1.0),
             ("1,000", "1000", 1.0), ("It is 42.", "it is 42", 1.0), ("4.", "4", 1.0),
             ("don't", "dont", 1.0), ("x-5", "x5", 0.0), ("-5", "-5", 1.0), (".5", "5", 0.0),
             (".5", "0.5", 1.0), ("-.5", "-0.5", 1.0), ("1/2", "12", 0.0), ("3,4", "34", 0.0),
             ("2-1", "21", 0.0), ("v1.2", "v12", 0.0), ("1.000", "1000", 0.0)]  # fmt: skip
    got = s(["q"] * len(pairs), [c for c, _, _ in pairs], [[r] for _, r, _ in pairs])
    assert got.tolist() == [want for *_, want in pairs]


def test_repetition_counts_distinct_ngrams():
    s = make_scorer("repetition", n=2)
    got = s(["p"] * 3, ["a b c d", "a b a b a b", "a"], None)
    assert got.tolist() == [1.0, pytest.approx(2 / 5), 1.0]
    with pytest.raises(TextGenValueError, match="Expects n >= 1, got 0"):
        make_scorer("repetition", n=0)


@pytest.mark.parametrize("name", ["bleu", "chrf", "rouge", "exact_match", "numeric"])
def test_reference_metrics_say_when_references_are_missing_or_wrong(name):
    s = make_scorer(name)
    with pytest.raises(TextGenValueError, match="the task must give one per prompt"):
        s(["p"], ["x"], None)
    with pytest.raises(TextGenValueError, match=r"one reference per completion \(2\), got 1"):
        s(["p", "q"], ["x", "y"], ["x"])
    with pytest.raises(TextGenValueError, match="a string or a non-empty list of strings"):
        s(["p"], ["x"], [[]])


def test_a_missing_metrics_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # import sacrebleu now raises ImportError
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'gym-textgen\[metrics\]'"):
        make_scorer("bleu")(["p"], ["x"], ["x"])


def test_numbers_in_every_spelling():
    s = make_scorer("numeric")
    got = s(["q"] * 5, [" .5", " .5", " \u22125", " 1e999", " -0"], ["5", "0.5", "-5", "1e999", 0])
    assert got.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert s(["q"], ["4"], [np.int64(4)]).tolist() == [1.0]


@pytest.mark.parametrize("ref", [3, None, True, {"a": "b"}])
def test_a_reference_of_the_wrong_type_is_named(ref):
    with pytest.raises(TextGenValueError, match="a string or a non-empty list of strings, got"):
        make_scorer("exact_match")(["p"], ["x"], [ref])
