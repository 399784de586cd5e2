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
