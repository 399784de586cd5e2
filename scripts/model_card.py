"""Measure the default model and write `gym_textgen/assets/default_model/MODEL_CARD.md`.

    python scripts/model_card.py                 # a few minutes on 2 cores (loads SmolLM2 too)
    python scripts/model_card.py --no-teacher    # without the SmolLM2-135M columns

Perplexity and bits per byte (`scripts/text_fit.py`) on two held-out texts, the hand-written
English of `data/heldout/human_written.txt` and the generated texts `build_default_model.py`
holds out, for this model, SmolLM2-135M-Instruct (its teacher), a unigram model of the training
tokens (add-one smoothed) and a random-init model of the same shape; sampled continuations of
the default task's eval prompts (with their reward) and of prompts outside the corpus' registers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_default_model import HELDOUT_EVERY, OUT, split_corpus  # noqa: E402
from generate_corpus import CORPUS  # noqa: E402
from text_fit import HUMAN, fit, read_documents  # noqa: E402

# Prompts from registers the corpus does not hold (news, letters, facts, verse, code, another language).
OUTSIDE = [
    "The city council voted on Tuesday to",
    "Dear Sir or Madam, I am writing to",
    "The capital of France is",
    "Roses are red, violets are blue,",
    "def add(a, b):",
    "Le chat est sur",
]


def unigram_fit(train_ids: list[int], tokenizer, docs: list[str]) -> dict[str, float]:
    """`text_fit.fit`'s numbers for an add-one smoothed unigram model of `train_ids`."""
    counts = np.bincount(train_ids, minlength=len(tokenizer)).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    ids = [i for d in docs for i in tokenizer(d, add_special_tokens=False)["input_ids"]]
    nll = float(-logp[np.asarray(ids)].sum())
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    return {
        "perplexity": math.exp(nll / len(ids)),
        "bits_per_byte": nll / math.log(2) / n_bytes,
        "vocab": len(tokenizer),
    }


def sample(model, tok, prompts: list[str], max_new_tokens: int = 32) -> list[str]:
    """One sampled continuation (temperature 1, no top-k/top-p) per prompt, seed 0."""
    torch.manual_seed(0)
    out = []
    for prompt in prompts:
        ids = torch.tensor([tok.encode(prompt)])
        gen = model.generate(
            ids,
            do_sample=True,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        out.append(tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True))
    return out


def cell(text: str) -> str:
    return " ".join(text.replace("|", "/").split())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=OUT)
    p.add_argument("--corpus", type=Path, default=CORPUS)
    p.add_argument("--no-teacher", action="store_true", help="skip the SmolLM2-135M columns")
    a = p.parse_args()
    import gymnasium as gym

    import gym_textgen  # noqa: F401
    from gym_textgen.models import load_model, load_tokenizer

    tok = load_tokenizer(a.folder)
    model = load_model(a.folder).eval()
    torch.manual_seed(0)
    random_model = type(model)(model.config).eval()
    train_texts, heldout_texts = split_corpus(a.corpus)
    human = read_documents(HUMAN)
    train_ids = [i for enc in tok(train_texts)["input_ids"] for i in enc]
    texts = {"human-written (data/heldout)": human, "generated, held out": heldout_texts}
    rows: dict[str, dict[str, dict[str, float]]] = {name: {} for name in texts}
    for name, docs in texts.items():
        rows[name]["this model"] = fit(model, tok, docs)
        rows[name]["unigram of the training tokens"] = unigram_fit(train_ids, tok, docs)
        rows[name]["random init, same shape"] = fit(random_model, tok, docs)
    if not a.no_teacher:
        teacher, teacher_tok = load_model("smollm2-135m").eval(), load_tokenizer("smollm2-135m")
        for name, docs in texts.items():
            rows[name]["SmolLM2-135M-Instruct (teacher)"] = fit(teacher, teacher_tok, docs)
        del teacher

    env = gym.make("TextGen-v0").unwrapped
    prompts = list(env.core.task.eval_prompts[:8])
    completions = sample(model, tok, prompts)
    rewards = [float(r) for r in env.core.scorer(prompts, completions)]
    outside = sample(model, tok, OUTSIDE)

    human_fit = rows["human-written (data/heldout)"]["this model"]
    met = human_fit["bits_per_byte"] <= 2.0 and human_fit["perplexity"] <= 0.05 * len(tok)
    n_params = sum(p.numel() for p in model.parameters())
    size_mb = sum(f.stat().st_size for f in a.folder.iterdir() if f.is_file()) / 1e6
    training = (a.folder / "TRAINING.txt").read_text().splitlines()
    provenance = json.loads((a.corpus / "PROVENANCE.json").read_text())
    words = sum(len(t.split()) for t in train_texts)
    fit_tables = []
    for name, by_model in rows.items():
        docs = texts[name]
        n_bytes = sum(len(d.encode("utf-8")) for d in docs)
        lines = [
            f"**{name}**: {len(docs)} documents, {n_bytes:,} bytes.\n",
            "| model | vocabulary | perplexity | perplexity / vocabulary | bits per byte |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for label, r in by_model.items():
            lines.append(
                f"| {label} | {r['vocab']} | {r['perplexity']:.1f} | "
                f"{r['perplexity'] / r['vocab']:.3f} | {r['bits_per_byte']:.2f} |"
            )
        fit_tables.append("\n".join(lines) + "\n")  # a blank line before the next table
    task_rows = "\n".join(
        f"| {r:.3f} | {cell(p)} | {cell(c)} |"
        for p, c, r in zip(prompts, completions, rewards, strict=True)
    )
    outside_rows = "\n".join(
        f"| {cell(p)} | {cell(c)} |" for p, c in zip(OUTSIDE, outside, strict=True)
    )
    card = f"""# gym-textgen default model

A small causal LM that writes everyday English, shipped inside `gym_textgen` as the `"default"`
model so that `TextGen-v0`, `make train` and the examples show real text on a CPU with no
network. It is distilled at the sequence level from SmolLM2-135M-Instruct: trained on text that
model wrote offline (`scripts/generate_corpus.py`), never on downloaded data.

| | |
| --- | --- |
| architecture | Llama (same code path as SmolLM2), {model.config.num_hidden_layers} layers, width {model.config.hidden_size}, {model.config.num_attention_heads} heads, tied embeddings |
| parameters | {n_params:,} |
| tokenizer | byte-level BPE, {len(tok)} tokens (`<|endoftext|>` = {tok.eos_token_id}, `<|pad|>` = {tok.pad_token_id}), trained on the corpus |
| files | {size_mb:.1f} MB (safetensors + tokenizer) |
| training | {training[0]} |
| data | `data/corpus/`: {len(train_texts):,} training texts ({words:,} words, {len(train_ids):,} tokens) written by {provenance["teacher"]} over seven registers (movie and product reviews of every sentiment, short stories, one-sentence summaries, dialogue, instructions and answers, everyday descriptions); licence: {provenance["licence"]}; every {HELDOUT_EVERY}th text held out; provenance in `data/corpus/PROVENANCE.json` |
| rebuild | `python scripts/build_default_model.py && python scripts/model_card.py` |

## How well it knows English

Perplexity is per token of each model's own vocabulary; bits per byte compare across
tokenizers. Each document is scored on its own from `<|endoftext|>` (`scripts/text_fit.py`).
The human-written text was written by hand for this repository and is never trained on.

{chr(10).join(fit_tables).rstrip()}

Issue 11's bar on the human-written text, perplexity <= 0.05 x vocabulary and <= 2.0 bits per
byte: **{"met" if met else "NOT met"}** ({human_fit["perplexity"]:.1f} = {human_fit["perplexity"] / len(tok):.3f} x {len(tok)}, {human_fit["bits_per_byte"]:.2f} bits per byte).

## Samples

Sampled continuations (temperature 1, no top-k/top-p, seed 0), 32 new tokens at most.

The default task's eval prompts, with the default task's reward (VADER sentiment in [0, 1];
0.5 is neutral). Mean: **{np.mean(rewards):.3f}**.

| reward | prompt | continuation |
| ---: | --- | --- |
{task_rows}

Prompts from registers the corpus does not hold:

| prompt | continuation |
| --- | --- |
{outside_rows}

## What it cannot do

It is a {n_params / 1e6:.1f}M-parameter model trained on about {len(train_ids) / 1e6:.1f}M tokens of one
model's output. It writes locally fluent English in the corpus' registers and holds a topic for a
sentence or two; it has no reliable facts (it invents names, places and numbers), cannot do
arithmetic or follow an instruction it is given, knows no code and no language but English (those
fall apart into byte pieces), and it repeats its teacher's habits and phrasings, including its
chat-model politeness. Use it to watch RL move a real language model on a laptop, not as a source
of text anyone should read for its content.
"""
    (a.folder / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
