"""Build the `"default"` model shipped in `gym_textgen/assets/default_model/`: tokenizer and LM.

Reproducible end to end on a CPU with no network, from the corpus in `data/corpus/`:

    python scripts/build_default_model.py                   # tokenizer + model: ~22 min, 2 cores
    python scripts/build_default_model.py --stage tokenizer # tokenizer only (seconds)
    python scripts/model_card.py                            # numbers and samples for MODEL_CARD.md

1. Corpus: `data/corpus/`, English written offline by SmolLM2-135M-Instruct over seven registers
   (`scripts/generate_corpus.py`; filtered and deduplicated on read). Every 50th text (by a hash of
   its words, so the split does not move when the corpus grows) is held out for the model card.
2. Tokenizer: byte-level BPE trained with `tokenizers` on the training texts; the vocabulary is
   the env's action space (<= 8192 keeps masks and the LM head cheap); `<|endoftext|>` ends a text,
   `<|pad|>` pads.
3. Model: a small Llama-architecture causal LM (the same architecture as SmolLM2, so one code path
   serves both) trained with plain PyTorch + transformers on packed blocks of whole texts separated
   by `<|endoftext|>`, AdamW with warm-up and cosine decay, seeded.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
OUT = ROOT / "gym_textgen" / "assets" / "default_model"
HELDOUT_EVERY = 50

from generate_corpus import CORPUS, read_corpus  # noqa: E402
from text_fit import HUMAN, fit, read_documents  # noqa: E402


@dataclass
class Args:
    vocab_size: int = 4096
    """BPE vocabulary: the env's action space; small keeps masks and logits cheap"""
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    block: int = 256
    """training context (bundled tasks' prompts run to about 170 tokens)"""
    batch: int = 16
    steps: int = 1000
    """about 4 passes over the 1.1M-token corpus (16 x 256 tokens a step)"""
    lr: float = 3e-3
    weight_decay: float = 0.1
    dropout: float = 0.1
    """attention dropout while training (the shipped model runs with none)"""
    seed: int = 0


def split_corpus(folder: Path = CORPUS) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: a text is held out when the hash of its text says so."""
    train, heldout = [], []
    for record in read_corpus(folder):
        text = record["text"]
        digest = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)
        (heldout if digest % HELDOUT_EVERY == 0 else train).append(text)
    return train, heldout


def build_tokenizer(texts: list[str], vocab_size: int):
    """Train a byte-level BPE tokenizer and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        pad_token="<|pad|>",
        model_max_length=256,
    )


def pack(tokenizer, texts: list[str], block: int):
    """One (N, block) tensor of the texts' tokens, each text followed by `<|endoftext|>`."""
    import torch

    ids: list[int] = []
    for enc in tokenizer(texts)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    n_blocks = len(ids) // block
    return torch.tensor(ids[: n_blocks * block]).view(n_blocks, block)


def heldout_loss(model, blocks) -> float:
    """Mean next-token loss (nats) over held-out blocks."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in blocks.split(64):
            loss = model(input_ids=batch, labels=batch).loss.item()
            total += loss * batch.shape[0]
            count += batch.shape[0]
    model.train(was_training)
    return total / max(count, 1)


def train_model(args: Args, tokenizer, train_texts: list[str], heldout_texts: list[str]):
    """Train the LM on packed blocks; returns (model, seconds, log lines)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    data = pack(tokenizer, train_texts, args.block)
    held = pack(tokenizer, heldout_texts, args.block)
    n_blocks = data.shape[0]
    log = [f"corpus: {data.numel():,} training tokens ({n_blocks:,} blocks of {args.block})"]
    print(log[-1], flush=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        attention_dropout=args.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    log.append(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    print(log[-1], flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    warmup = min(200, args.steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < warmup:
            return args.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    model.train()
    every = max(1, args.steps // 10)
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        batch = data[torch.randint(0, n_blocks, (args.batch,), generator=g)]  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % every == 0 or step == 0:
            line = (
                f"step {step + 1:5d}  train loss {loss.item():.3f}  "
                f"held-out loss {heldout_loss(model, held):.3f}  {time.time() - t0:5.0f}s"
            )
            log.append(line)
            print(line, flush=True)
    model.eval()
    model.config.attention_dropout = 0.0
    return model, time.time() - t0, log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["tokenizer", "all"], default="all")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--corpus", type=Path, default=CORPUS)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    for f in fields(Args):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    a = p.parse_args()
    args = Args(**{f.name: getattr(a, f.name) for f in fields(Args)})
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    train_texts, heldout_texts = split_corpus(a.corpus)
    print(f"texts: {len(train_texts):,} training, {len(heldout_texts):,} held out", flush=True)
    tokenizer = build_tokenizer(train_texts, args.vocab_size)
    a.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(a.out)
    print(f"tokenizer: {len(tokenizer)} tokens -> {a.out}")
    if a.stage == "tokenizer":
        return
    model, seconds, log = train_model(args, tokenizer, train_texts, heldout_texts)
    human = fit(model, tokenizer, read_documents(HUMAN))
    log.append(
        f"human-written held-out text: perplexity {human['perplexity']:.1f} "
        f"({human['perplexity'] / len(tokenizer):.3f} x vocabulary), "
        f"{human['bits_per_byte']:.3f} bits per byte"
    )
    print(log[-1])
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(a.out, safe_serialization=True)
    settings = " ".join(f"{k}={v}" for k, v in asdict(args).items())
    (a.out / "TRAINING.txt").write_text(
        f"{settings} train_texts={len(train_texts)} train_seconds={seconds:.0f}\n"
        + "\n".join(log)
        + "\n"
    )
    print(f"model -> {a.out} ({seconds:.0f}s)")


if __name__ == "__main__":
    main()
