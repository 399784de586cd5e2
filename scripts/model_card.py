"""Measure the default model and write `gym_textgen/assets/default_model/MODEL_CARD.md`.

    python scripts/model_card.py            # about a minute on 2 cores

Held-out perplexity of the trained model, of a unigram model (add-one smoothed counts of the
training tokens) and of a random-init model with the same architecture, all on the same held-out
tokens; ten sampled continuations of default prompts and their mean default-task reward.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_default_model import OUT, Args  # noqa: E402
from review_corpus import corpus  # noqa: E402


def token_stream(tokenizer, texts: list[str]) -> list[int]:
    ids: list[int] = []
    for enc in tokenizer(texts)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    return ids


@torch.no_grad()
def lm_perplexity(model, ids: list[int], block: int = 128) -> float:
    data = torch.tensor(ids[: len(ids) // block * block]).view(-1, block)  # (N, T)
    total, count = 0.0, 0
    for batch in data.split(64):
        loss = model(input_ids=batch, labels=batch).loss  # mean over (T-1) predictions per row
        total += loss.item() * batch.numel() - loss.item() * batch.shape[0]
        count += batch.numel() - batch.shape[0]
    return math.exp(total / count)


def unigram_perplexity(train_ids: list[int], test_ids: list[int], vocab: int) -> float:
    counts = np.bincount(train_ids, minlength=vocab).astype(np.float64) + 1.0  # add-one smoothing
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[np.asarray(test_ids)].mean()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, default=OUT)
    a = p.parse_args()
    import gymnasium as gym
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import gym_textgen  # noqa: F401

    args = Args()
    tok = AutoTokenizer.from_pretrained(a.folder)
    model = AutoModelForCausalLM.from_pretrained(a.folder).eval()
    torch.manual_seed(0)
    random_model = AutoModelForCausalLM.from_config(model.config).eval()
    train_ids = token_stream(tok, corpus(args.n_train, seed=args.seed))
    test_ids = token_stream(tok, corpus(args.n_heldout, seed=args.seed + 1))
    ppl = lm_perplexity(model, test_ids)
    uni = unigram_perplexity(train_ids, test_ids, len(tok))
    rnd = lm_perplexity(random_model, test_ids)

    env = gym.make("TextGen-v0").unwrapped
    prompts = env.core.task.eval_prompts[:10]
    torch.manual_seed(0)
    samples, rewards = [], []
    for prompt in prompts:
        ids = torch.tensor([tok.encode(prompt)])
        out = model.generate(
            ids,
            do_sample=True,
            top_k=0,
            top_p=1.0,
            max_new_tokens=32,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        completion = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        reward = float(env.core.scorer([prompt], [completion])[0])
        samples.append((prompt, completion, reward))
        rewards.append(reward)
    n_params = sum(p.numel() for p in model.parameters())
    size_mb = sum(f.stat().st_size for f in a.folder.iterdir() if f.is_file()) / 1e6
    training = (
        (a.folder / "TRAINING.txt").read_text().strip()
        if (a.folder / "TRAINING.txt").exists()
        else "?"
    )
    rows = "\n".join(f"| {r:.3f} | {p} | {c.replace('|', '/')} |" for p, c, r in samples)
    card = f"""# gym-textgen default model

A tiny causal LM that writes short movie reviews, shipped inside `gym_textgen` as the `"default"`
model so that `TextGen-v0` and `make train` show real text on a CPU with no network.

| | |
| --- | --- |
| architecture | Llama (same code path as SmolLM2), {model.config.num_hidden_layers} layers, width {model.config.hidden_size}, {model.config.num_attention_heads} heads, tied embeddings |
| parameters | {n_params:,} |
| tokenizer | byte-level BPE, {len(tok)} tokens (`<|endoftext|>` = {tok.eos_token_id}, `<|pad|>` = {tok.pad_token_id}) |
| files | {size_mb:.1f} MB (safetensors + tokenizer) |
| training | {training} |
| data | {args.n_train:,} reviews from `scripts/review_corpus.py`: phrase lists written for this repository (MIT licence), positive, negative and mixed in equal parts, seeded |
| rebuild | `python scripts/build_default_model.py && python scripts/model_card.py` |

## Held-out perplexity

{args.n_heldout:,} held-out reviews (another seed), {len(test_ids):,} tokens, same tokens for every row.

| model | perplexity | ratio to unigram |
| --- | ---: | ---: |
| this model | {ppl:.2f} | {ppl / uni:.3f} |
| unigram (add-one) | {uni:.2f} | 1.000 |
| random init, same architecture | {rnd:.2f} | {rnd / uni:.3f} |

Quality bar: perplexity <= 0.25x the unigram's ({"met" if ppl <= 0.25 * uni else "NOT met"}).

## Samples

Ten sampled continuations (temperature 1, no top-k/top-p, seed 0) of the default task's eval
prompts, scored with the default task's reward (VADER sentiment in [0, 1]).
Mean reward: **{np.mean(rewards):.3f}** (0.5 is neutral; the middle leaves RL room to move).

| reward | prompt | continuation |
| ---: | --- | --- |
{rows}

## Limits

The corpus is template-generated: the model knows a few hundred words and the shapes of short
opinions about films, nothing else. Prompts outside that domain fall back to byte tokens.
"""
    (a.folder / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
