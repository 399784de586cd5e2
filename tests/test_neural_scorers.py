"""Scorers that run a model (issue 12): similarity, fluency, classifier."""

from __future__ import annotations

import math
import pickle
import sys

import numpy as np
import pytest
import torch

from gym_textgen.errors import MissingDependencyError, TextGenValueError
from gym_textgen.models import load_model, load_tokenizer
from gym_textgen.scorers import make_scorer

REF = "The film is a warm story about a teacher in a mountain village."
CLOSE = "A kind movie about a village teacher in the mountains."
OFF = "Preheat the oven and grease the baking tray."


def test_similarity_ranks_identical_paraphrase_and_unrelated():
    pytest.importorskip("sentence_transformers")
    s = make_scorer("similarity")
    got = s(["p"] * 3, [REF, CLOSE, OFF], [REF, REF, [OFF, REF]])
    assert got[0] == pytest.approx(1.0, abs=1e-5)  # float32 embeddings of one text
    assert got[2] == pytest.approx(1.0, abs=1e-5)  # the best of several references
    assert 0 <= s(["p"], [OFF], [REF])[0] < 0.3 < got[1] < 1.0
    to_prompt = make_scorer("similarity", to="prompt")(["A village teacher film"], [CLOSE], None)
    assert to_prompt[0] > 0.5
    one = [s(["p"], [c], [REF])[0] for c in (REF, CLOSE, OFF)]  # batch padding: float32 noise
    np.testing.assert_allclose(s(["p"] * 3, [REF, CLOSE, OFF], [REF] * 3), one, atol=1e-5)
    assert pickle.loads(pickle.dumps(s))(["p"], [CLOSE], [REF])[0] == pytest.approx(
        got[1], abs=1e-5
    )


def test_similarity_without_the_extra_names_it(monkeypatch):
    from gym_textgen.scorers import neural

    neural._sentence_model.cache_clear()  # a model loaded by an earlier test would be reused
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match=r"gym-textgen\[embeddings\]"):
        make_scorer("similarity")(["p"], ["x"], ["y"])


def test_fluency_is_the_inverse_perplexity_of_the_completion_given_the_prompt():
    s = make_scorer("fluency", model="random-tiny")
    prompts, completions = ["The film was", "A"], [" good and long", " story"]
    got = s(prompts, completions)
    model, tok = load_model("random-tiny").double(), load_tokenizer("random-tiny")
    for p, c, value in zip(prompts, completions, got, strict=True):
        ids = [tok.eos_token_id, *tok(p, add_special_tokens=False)["input_ids"]]
        new = tok(c, add_special_tokens=False)["input_ids"]
        logp = []
        for t in new:  # one token at a time, from the whole prefix
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            logp.append(float(logits.log_softmax(-1)[t]))
            ids.append(t)
        assert value == pytest.approx(math.exp(np.mean(logp)), rel=1e-5)  # float32 model
    one = [s([p], [c])[0] for p, c in zip(prompts, completions, strict=True)]
    np.testing.assert_allclose(got, one, rtol=1e-5)
    assert s(["x"], [""])[0] == 0.0


def test_fluency_prefers_english_to_shuffled_words_under_the_default_model():
    s = make_scorer("perplexity")  # the same scorer under its other name
    text = " was a warm and funny film about a family."
    shuffled = " family. film a about warm was funny a and"
    fluent, scrambled = s(["The movie"] * 2, [text, shuffled])
    assert fluent > 2 * scrambled


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = load_tokenizer("default")
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_labels=3, id2label={0: "neg", 1: "neutral", 2: "pos"},
        label2id={"neg": 0, "neutral": 1, "pos": 2}, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("clf")
    LlamaForSequenceClassification(config).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_classifier_gives_the_label_probability(classifier_folder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = ["a fine film", "terrible, truly", "ok"]
    got = make_scorer("classifier", model=classifier_folder, label="pos")(["p"] * 3, texts)
    model = AutoModelForSequenceClassification.from_pretrained(classifier_folder).double()
    tok = AutoTokenizer.from_pretrained(classifier_folder)
    for text, value in zip(texts, got, strict=True):
        with torch.no_grad():
            logits = model(**tok([text], return_tensors="pt")).logits[0]
        assert value == pytest.approx(float(logits.softmax(-1)[2]), rel=1e-5)
    by_index = make_scorer("classifier", model=classifier_folder, label=2, batch_size=1)
    np.testing.assert_allclose(by_index(["p"] * 3, texts), got, rtol=1e-5)


def test_classifier_bad_label_or_folder(classifier_folder, tmp_path):
    with pytest.raises(TextGenValueError, match=r"label 'happy' is not one of the model's"):
        make_scorer("classifier", model=classifier_folder, label="happy")(["p"], ["x"])
    with pytest.raises(TextGenValueError, match=r"label index 5 outside \[0, 2\]"):
        make_scorer("classifier", model=classifier_folder, label=5)(["p"], ["x"])
    with pytest.raises(TextGenValueError, match="expects a local model folder"):
        make_scorer("classifier", model=tmp_path / "nowhere")(["p"], ["x"])
