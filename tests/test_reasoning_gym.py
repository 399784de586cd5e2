"""reasoning-gym tasks: graders that raise on malformed answers, held-out questions unseen in
training. The sweep over every dataset is benchmarks/reasoning_gym_sweep.py."""

from __future__ import annotations

import warnings

import pytest

from gym_textgen import make_task
from gym_textgen.errors import TextGenValueError
from gym_textgen.scorers import make_scorer, score_batch

rg = pytest.importorskip("reasoning_gym")

#: the datasets whose own score_answer raises on these answers (reasoning-gym 0.1.25)
RAISING = {
    "prime_factorization": "tw",  # int("tw"): ValueError
    "boxnet": "1",  # json.loads gives an int, then 1.items(): TypeError
    "coin_flip": "1e999",  # float(Fraction("1e999")): OverflowError
    "game_of_life": "{}",  # json.loads gives a dict without the board: KeyError
}
MALFORMED = ["", "tw", "???", "1 2 3", "7" * 3000, "None", "ünï©ødé ✓ 数字", "1", "{}", "1e999"]


def small(dataset: str):
    return make_task(f"reasoning_gym:{dataset}?n_train=2&n_eval=1")


def test_an_answer_the_reasoning_gym_grader_cannot_parse_scores_0_and_is_counted():
    scorer = make_scorer("reasoning_gym")
    for dataset, bad in RAISING.items():
        task = small(dataset)
        entry = task.references[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rewards, _ = score_batch(scorer, task.prompts[:1] * 2, [bad, bad], [entry, entry])
        assert rewards.tolist() == [0.0, 0.0]
        assert scorer.grader_errors[dataset] == 2
        # warned once per dataset, naming the dataset and what the grader raised
        (warning,) = [str(w.message) for w in caught if dataset in str(w.message)]
        assert "grader raised" in warning and "Error" in warning
    assert sum(scorer.grader_errors.values()) == 2 * len(RAISING)
    # the right answer still scores 1 next to a malformed one, and later errors are silent
    task = small("prime_factorization")
    entry = task.references[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rewards, _ = score_batch(
            scorer, task.prompts[:1] * 2, [f"{entry['answer']}\nso", "tw"], [entry, entry]
        )
    assert rewards.tolist() == [1.0, 0.0] and not caught
    assert scorer.grader_errors["prime_factorization"] == 3


def test_malformed_answers_never_stop_scoring_on_the_raising_datasets_and_a_few_others():
    scorer = make_scorer("reasoning_gym")
    for dataset in [*RAISING, "basic_arithmetic", "leg_counting", "word_sorting", "maze"]:
        task = small(dataset)
        refs = [task.references[0]] * len(MALFORMED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rewards, _ = score_batch(scorer, task.prompts[:1] * len(MALFORMED), MALFORMED, refs)
        assert ((rewards >= 0) & (rewards <= 1)).all(), dataset
    assert set(scorer.grader_errors) == set(RAISING)


def test_a_reference_that_is_not_a_reasoning_gym_entry_is_still_our_error():
    scorer = make_scorer("reasoning_gym")
    entry = small("prime_factorization").references[0]
    for bad in [
        {"metadata": {}},  # a grader would raise KeyError, which is no malformed answer
        {"question": "q", "answer": "2", "metadata": {"source_dataset": "no_such"}},
        {k: v for k, v in entry.items() if k != "answer"},
    ]:
        with pytest.raises(TextGenValueError, match="reasoning_gym scorer expects a"):
            scorer(["q"], ["tw"], [bad])
    assert not scorer.grader_errors


def test_held_out_questions_are_never_training_questions_and_training_ones_stay_as_they_were():
    # the module docstring's example: 9 of its 64 held-out questions were training questions
    spec = "reasoning_gym:basic_arithmetic?min_terms=2&max_terms=2&max_digits=1&n_train=256&seed=1"
    task = make_task(spec)
    held_prompts = [*task.eval_prompts, *task.validation_prompts]  # test, then validation
    held = [*task.eval_references, *task.validation_references]
    assert len(held_prompts) == len(set(held_prompts)) == 64 and len(task.eval_prompts) == 32
    assert not set(held_prompts) & set(task.prompts)
    assert [e["question"].strip() + "\nAnswer:" for e in held] == held_prompts
    # training questions: exactly the first n_train of the draw, in order
    config = {"min_terms": 2, "max_terms": 2, "max_digits": 1}
    data = rg.create_dataset("basic_arithmetic", size=256 + 64, seed=1, **config)
    assert task.references == tuple(data[i] for i in range(256))
    # held-out: the draw's later questions minus the repeats, in order, then further ones
    later = [data[i] for i in range(256, 320)]
    kept = [e for e in later if e["question"].strip() + "\nAnswer:" not in task.prompts]
    assert len(kept) < 64 and held[: len(kept)] == kept
    assert make_task(task.name) == task  # the name still rebuilds the task


def test_held_out_questions_are_distinct_from_each_other_even_in_a_tiny_dataset():
    # gcd of two numbers in 1..3: nine questions in all, so repeats come often
    spec = "reasoning_gym:gcd?min_numbers=2&max_numbers=2&min_value=1&max_value=3"
    task = make_task(f"{spec}&n_train=3&n_eval=4&n_validation=1")
    held = [*task.eval_prompts, *task.validation_prompts]
    assert len(set(held)) == 5 and len(task.eval_prompts) == 4
    assert not set(held) & set(task.prompts)
    assert make_task(task.name) == task
    with pytest.raises(
        TextGenValueError,
        match=r"Expects 5 held-out questions of reasoning-gym dataset 'gcd' that are not training "
        r"questions, got 0 distinct unseen ones in 150 draws after the 64 training questions "
        r".*lower n_train or n_eval and n_validation",
    ):
        make_task(f"{spec}&n_train=64&n_eval=4&n_validation=1")
