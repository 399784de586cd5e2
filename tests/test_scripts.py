"""The data scripts of issue 11: corpus filters and the text-fit measurement."""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import generate_corpus  # noqa: E402
import text_fit  # noqa: E402

PROSE = (
    "The film follows a young teacher who moves to a small town in the mountains, and it is "
    "at its best when it lets the children of the village speak for themselves."
)


def test_corpus_filters_and_deduplicates(tmp_path):
    records = [
        {"register": "movie_review", "text": "Sure, here is a review:\n" + PROSE},
        {"register": "movie_review", "text": PROSE},  # the same text once cleaned: dropped
        {"register": "story", "text": "the cat sat " * 30},  # a loop of one phrase
        {"register": "story", "text": "Too short to keep."},
        {"register": "story", "text": "def f(x):\n    return [x * 2 for x in range(10)]  # " * 4},
    ]
    with gzip.open(tmp_path / "shard-00000.jsonl.gz", "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    kept = list(generate_corpus.read_corpus(tmp_path))
    assert [r["text"] for r in kept] == [PROSE]


def test_shipped_corpus_and_heldout_text_are_readable():
    corpus = list(generate_corpus.read_corpus())
    assert len(corpus) >= 500 and len({r["register"] for r in corpus}) == 7
    docs = text_fit.read_documents(text_fit.HUMAN)
    assert len(docs) >= 30 and all("===" not in d for d in docs)
    held_out = {" ".join(d.split()[:12]) for d in docs}
    assert not any(" ".join(r["text"].split()[:12]) in held_out for r in corpus)


def test_text_fit_equals_a_hand_computation(tmp_path):
    from gym_textgen.models import load_model, load_tokenizer

    path = tmp_path / "t.txt"
    path.write_text("The acting was fine.\n===\nA quiet, kind film about bread.\n")
    docs = text_fit.read_documents(path)
    assert docs == ["The acting was fine.", "A quiet, kind film about bread."]
    model, tok = load_model("random-tiny", seed=0).eval().double(), load_tokenizer("random-tiny")
    got = text_fit.fit(model, tok, docs)
    nll, n = 0.0, 0
    start = tok.eos_token_id if tok.bos_token_id is None else tok.bos_token_id
    for doc in docs:  # one token at a time, from the full prefix
        ids = [start, *tok(doc, add_special_tokens=False)["input_ids"]]
        for t in range(1, len(ids)):
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1]
            nll -= float(logits.log_softmax(-1)[ids[t]])
            n += 1
    n_bytes = len(docs[0].encode()) + len(docs[1].encode())
    assert got["tokens"] == n and got["bytes"] == n_bytes
    assert got["bits_per_byte"] == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-9)
    assert got["perplexity"] == pytest.approx(math.exp(nll / n), rel=1e-9)


def test_corpus_sampler_draws_from_the_distribution_generate_uses():
    from transformers import (
        LogitsProcessorList,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 300, generator=g, dtype=torch.float64) * 3
    seen = torch.randint(0, 300, (6, 20), generator=g)
    hf = LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(1.1),
            TemperatureLogitsWarper(0.7),
            TopKLogitsWarper(50),
            TopPLogitsWarper(0.9),
        ]
    )
    want = hf(seen, logits.clone()).softmax(-1)
    index, probs = generate_corpus.next_token_distribution(
        logits.clone(), seen, temperature=0.7, top_k=50, top_p=0.9, repetition_penalty=1.1
    )
    got = torch.zeros_like(want).scatter_(1, index, probs)
    assert (want > 0).sum(-1).min() > 1  # top-p cut somewhere inside the top 50
    assert (want > 0).sum(-1).max() < 50
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_corpus_sampler_is_seeded_and_stops_at_eos():
    from gym_textgen.models import load_model, load_tokenizer

    model, tok = load_model("random-tiny", seed=0).eval(), load_tokenizer("random-tiny")
    tok.padding_side = "left"
    enc = tok(["The film was", "A long and quiet story about"], return_tensors="pt", padding=True)

    def draw(seed, eos_id):
        return generate_corpus.sample(
            model,
            enc["input_ids"],
            enc["attention_mask"],
            temperature=1.0,
            max_new_tokens=12,
            eos_id=eos_id,
            generator=torch.Generator().manual_seed(seed),
        )

    a, b = draw(0, tok.eos_token_id), draw(0, tok.eos_token_id)
    assert torch.equal(a, b) and not torch.equal(a, draw(1, tok.eos_token_id))
    stop = int(a[0, 3])  # make a token drawn at step 4 the end of text: row 0 ends there
    c = draw(0, stop)
    assert torch.equal(c[0, :4], a[0, :4]) and (c[0, 4:] == stop).all()


def test_build_default_model_builds_a_loadable_model_from_a_corpus(tmp_path, monkeypatch):
    import build_default_model as build

    from gym_textgen.models import load_model, load_tokenizer

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = torch.Generator().manual_seed(0)
    words = PROSE.replace(",", "").replace(".", "").split()
    with gzip.open(corpus / "shard-00000.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(120):  # distinct shuffles of one sentence's words
            order = torch.randperm(len(words), generator=rng).tolist()
            text = "The " + " ".join(words[j] for j in order) + f" and {i}."
            f.write(json.dumps({"register": "story", "text": text}) + "\n")
    train, heldout = build.split_corpus(corpus)
    assert len(train) + len(heldout) == 120 and not set(train) & set(heldout)
    assert build.split_corpus(corpus) == (train, heldout)  # the split depends on the text only
    out = tmp_path / "model"
    argv = ["build", "--corpus", str(corpus), "--out", str(out), "--vocab-size", "300"]
    argv += ["--hidden", "32", "--layers", "1", "--heads", "2", "--block", "32", "--batch", "4"]
    monkeypatch.setattr(sys, "argv", [*argv, "--steps", "3"])
    build.main()
    tok, model = load_tokenizer(out), load_model(out)
    assert len(tok) == 300 and model.config.vocab_size == 300
    assert tok.decode(tok(PROSE)["input_ids"]) == PROSE
    lines = (out / "TRAINING.txt").read_text().splitlines()
    assert "steps=3" in lines[0] and any("held-out loss" in line for line in lines[1:])
    assert "bits per byte" in lines[-1]
