"""Perplexity and bits per byte of language models on a text file, side by side.

    python scripts/text_fit.py                                  # default and SmolLM2-135M
    python scripts/text_fit.py --models default --text FILE     # documents separated by "==="

Each document is scored on its own, from an end-of-text token as the only context, in windows
of the model's context length (no overlap, so long documents are scored conservatively).
Bits per byte = total negative log-likelihood / ln 2 / UTF-8 bytes of the documents: comparable
across tokenizers, unlike perplexity, which is per token of each model's own vocabulary.
The default text, `data/heldout/human_written.txt`, was written by hand for this repository
and is never used for training (issue 11's acceptance: <= 2.0 bits per byte and perplexity
<= 0.05 x vocabulary size for the default model).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HUMAN = ROOT / "data" / "heldout" / "human_written.txt"


def read_documents(path: Path) -> list[str]:
    """The documents of a text file, separated by lines holding only `===`."""
    text = Path(path).read_text(encoding="utf-8")
    docs = [d.strip() for d in text.split("\n===\n")]
    return [d for d in docs if d]


@torch.no_grad()
def fit(model, tokenizer, docs: list[str]) -> dict[str, float]:
    """Total NLL (nats), tokens and bytes over `docs`, with perplexity and bits per byte."""
    limit = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    start = tokenizer.eos_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id
    nll, tokens = 0.0, 0
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        for i in range(0, len(ids), limit - 1):
            window = torch.tensor([[start, *ids[i : i + limit - 1]]])
            logits = model(input_ids=window).logits[0, :-1].double()
            targets = window[0, 1:]
            nll -= float(logits.log_softmax(-1).gather(1, targets[:, None]).sum())
            tokens += len(targets)
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    return {
        "nll": nll,
        "tokens": tokens,
        "bytes": n_bytes,
        "perplexity": math.exp(nll / tokens),
        "bits_per_byte": nll / math.log(2) / n_bytes,
        "vocab": len(tokenizer),
    }


def main() -> None:
    from gym_textgen.models import load_model, load_tokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="default,smollm2-135m", help="comma-separated")
    p.add_argument("--text", type=Path, default=HUMAN)
    a = p.parse_args()
    docs = read_documents(a.text)
    print(f"{a.text.name}: {len(docs)} documents, {sum(len(d.split()) for d in docs)} words")
    print("| model | vocabulary | tokens | perplexity | perplexity / vocabulary | bits per byte |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in a.models.split(","):
        model, tokenizer = load_model(name).eval(), load_tokenizer(name)
        r = fit(model, tokenizer, docs)
        print(
            f"| {name} | {r['vocab']} | {r['tokens']} | {r['perplexity']:.1f} | "
            f"{r['perplexity'] / r['vocab']:.3f} | {r['bits_per_byte']:.2f} |"
        )


if __name__ == "__main__":
    main()
