"""Build the `"default"` model shipped in `gym_textgen/assets/default_model/`: corpus, tokenizer, LM.

Reproducible end to end on a CPU with no network:

    python scripts/build_default_model.py            # corpus + tokenizer + model (~10 min, 2 cores)
    python scripts/build_default_model.py --stage tokenizer   # tokenizer only (seconds)
    python scripts/model_card.py                     # numbers and samples for MODEL_CARD.md

1. Corpus: `scripts/review_corpus.py` writes short movie reviews (positive, negative and mixed in
   equal parts) from phrase lists written for this repository, seeded.
2. Tokenizer: byte-level BPE trained with `tokenizers` (vocabulary <= 4096 keeps the action space
   small); `<|endoftext|>` ends a text, `<|pad|>` pads.
3. Model: a small Llama-architecture causal LM (the same architecture as SmolLM2, so one code path
   serves both) trained with plain PyTorch + transformers on packed 128-token blocks.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
OUT = ROOT / "gym_textgen" / "assets" / "default_model"

from review_corpus import corpus  # noqa: E402


@dataclass
class Args:
    n_train: int = 60_000
    """reviews in the training corpus (about 45 tokens each)"""
    n_heldout: int = 2_000
    """held-out reviews, drawn with another seed, for perplexity in the model card"""
    vocab_size: int = 2048
    """BPE vocabulary: the env's action space; small keeps masks and logits cheap"""
    hidden: int = 256
    """width: about 3.4M parameters in all with 4 layers"""
    layers: int = 4
    heads: int = 4
    block: int = 128
    """training context; the env uses at most 64 tokens by default"""
    batch: int = 32
    steps: int = 1200
    lr: float = 3e-3
    seed: int = 0


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


def train_model(args: Args, tokenizer, texts: list[str]):
    """Train the LM on packed blocks of reviews separated by EOS; returns the model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(args.seed)
    ids: list[int] = []
    for enc in tokenizer(texts)["input_ids"]:
        ids.extend(enc + [tokenizer.eos_token_id])
    data = torch.tensor(ids)
    n_blocks = len(data) // args.block
    data = data[: n_blocks * args.block].view(n_blocks, args.block)  # (N, T)
    print(f"corpus: {len(ids):,} tokens, {n_blocks:,} blocks of {args.block}")

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 8 // 3 // 16 * 16,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        attention_dropout=0.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = 100

    def lr_at(step: int) -> float:  # linear warmup, cosine decay to 10%
        if step < warmup:
            return args.lr * (step + 1) / warmup
        t = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    model.train()
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        batch = data[torch.randint(0, n_blocks, (args.batch,), generator=g)]  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - t0:6.0f}s", flush=True)
    model.eval()
    return model, time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stage", choices=["tokenizer", "all"], default="all")
    p.add_argument("--steps", type=int, default=Args.steps)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    args = Args(steps=a.steps)
    texts = corpus(args.n_train, seed=args.seed)
    tokenizer = build_tokenizer(texts, args.vocab_size)
    a.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(a.out)
    print(f"tokenizer: {len(tokenizer)} tokens -> {a.out}")
    if a.stage == "tokenizer":
        return
    model, seconds = train_model(args, tokenizer, texts)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(a.out, safe_serialization=True)
    (a.out / "TRAINING.txt").write_text(
        f"steps={args.steps} batch={args.batch} block={args.block} lr={args.lr} "
        f"seed={args.seed} n_train={args.n_train} train_seconds={seconds:.0f}\n"
    )
    print(f"model -> {a.out} ({seconds:.0f}s)")


if __name__ == "__main__":
    main()
