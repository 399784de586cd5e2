"""Do a simulated user's replies cost more than the policy's own tokens of the same length?

    python benchmarks/user_speed.py [--model default] [--batch 8] [--tokens 24] [--repeats 5]

Times `LMUser.generate` for a batch of exchanges' inputs (exactly `--tokens` tokens per row:
`stops=False`) against Hugging Face `generate()` of the
same number of new tokens from the same inputs with the same model and batch (sampling, KV
cache; the reference the policy's own rollout is measured against in rollout_speed.py), best of
`--repeats`, in one run. Prints the ratio generate / user: >= 1 means a user's token costs no
more than the policy's. A second row does the same for `film_request`'s user (a plain transcript
with a worked exchange, `chat=False`), whose persona and opening are prefilled once per instance
(`prefix_cache`, warm) while generate() prefills each whole text.
"""

from __future__ import annotations

import argparse

import torch as th
from _common import best_of, markdown_table

from gym_textgen.interactive import Exchange, LMUser
from gym_textgen.tasks.interactive import FILM_PERSONA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    th.manual_seed(0)

    rows = []
    for persona, chat in (("You want a {genre} film.", None), (FILM_PERSONA, False)):
        user = LMUser(args.model, persona=persona, max_reply_tokens=args.tokens, chat=chat)
        rows.append(measure(user, args))
    print(markdown_table(
        ["model", "user", "batch x tokens", "generate() tok/s", "LMUser tok/s", "generate / user"],
        rows,
    ))  # fmt: skip


def measure(user: LMUser, args: argparse.Namespace) -> list[str]:
    """One row: the user's reply tokens per second against generate()'s, same inputs."""
    user._load()
    exchanges = [
        Exchange("Can you recommend a film?", {"genre": g}, ("What kind of film?",), seed=i)
        for i, g in zip(
            range(args.batch), ["comedy", "horror", "western", "romance"] * 8, strict=False
        )
    ]
    texts = [user.text_of(ex) for ex in exchanges]
    plain = not user.templated()  # a plain transcript: its prefixes are kept
    prefixes = [user.prefix_of(ex) for ex in exchanges] if plain else None
    tok, lm = user._tok, user._lm
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def reference() -> None:
        with th.no_grad():
            lm.generate(**enc, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                        do_sample=True, pad_token_id=tok.pad_token_id)  # fmt: skip

    seeds = list(range(args.batch))
    # stops=False: every row writes all --tokens tokens, as generate() does with min_new_tokens
    # (best of --repeats: the first call fills the prefix cache, as a training run's first does)
    user_time = best_of(
        lambda: user.generate(texts, seeds, stops=False, prefixes=prefixes), args.repeats
    )
    ref_time = best_of(reference, args.repeats)
    n = args.batch * args.tokens
    what = "plain transcript, prefix kept" if plain else "chat template"
    return [args.model, what, f"{args.batch} x {args.tokens}", f"{n / ref_time:,.0f}",
            f"{n / user_time:,.0f}", f"**{ref_time / user_time:.2f}**"]  # fmt: skip


if __name__ == "__main__":
    main()
