"""Multi-turn rollout speed: SB3 `collect_rollouts` on an interactive env against HF `generate()`
writing the same turns with the same insertions (issue 25's target: fast / generate >= 0.8).

Episodes of `--turns` turns of exactly `--turn-tokens` tokens; after each turn but the last the
other party inserts the same reply (`--reply-words` words). The SB3 side is the real thing: a
PPO rollout through the batched env (the party's calls, tokenizing and buffering included),
with the fast policy (the KV cache absorbs each reply in one forward) and the naive one (a full
forward per step). The reference calls `generate()` once per turn on the whole batch, passing
its KV cache from one call to the next, so each call prefills only the reply it has not seen:
the prefill of every insertion is counted on both sides. Both report the policy's new tokens
per second.

    python benchmarks/interactive_speed.py            # default model, batch 8
    python benchmarks/interactive_speed.py --batch 16 --turns 4
"""

from __future__ import annotations

import argparse

import torch as th
from _common import best_of, collect, markdown_table
from stable_baselines3 import PPO
from transformers import DynamicCache

import agents
from gym_textgen.interactive import Interaction, Reply
from gym_textgen.models import load_model, load_tokenizer
from gym_textgen.tasks import Task


def task(reply: str, turns: int, turn_tokens: int) -> Task:
    talk = Interaction(lambda ex: Reply(reply), max_turns=turns, max_turn_tokens=turn_tokens,
                       max_reply_tokens=64, turn_ends=(), reply_template=" {reply}\n")  # fmt: skip
    return Task(name="fixed_replies", prompts=("I watched this movie last night and",),
                scorer="none", interaction=talk)  # fmt: skip


def sb3_steps_per_second(args: argparse.Namespace, reply: str, fast: bool) -> float:
    env = agents.make_vec_env("TextGen-v0", n_envs=args.batch, stop_on_eos=False,
                              task=task(reply, args.turns, args.turn_tokens))  # fmt: skip
    n_steps = args.episodes * args.turns * args.turn_tokens  # whole episodes per slot
    model = agents.make_algo(PPO, env, {"model": "default", "kv_cache": fast,
                                        "group_sequences": fast},
                             n_steps=n_steps, seed=0, device="cpu")  # fmt: skip
    return n_steps * args.batch / best_of(lambda: collect(model), args.repeats)


def generate_tokens_per_second(args: argparse.Namespace, reply: str) -> float:
    lm, tok = load_model("default"), load_tokenizer("default")
    prompt = tok.encode("I watched this movie last night and")
    inserted = tok.encode(f" {reply}\n", add_special_tokens=False)

    def episode() -> None:
        ids = th.tensor([prompt] * args.batch)
        cache = DynamicCache()
        with th.no_grad():
            for turn in range(args.turns):
                ids = lm.generate(
                    input_ids=ids, attention_mask=th.ones_like(ids), cache=cache,
                    do_sample=True, top_k=0, max_new_tokens=args.turn_tokens,
                    min_new_tokens=args.turn_tokens, pad_token_id=tok.pad_token_id,
                )  # fmt: skip
                if turn < args.turns - 1:
                    ids = th.cat([ids, th.tensor([inserted] * args.batch)], dim=1)

    def run() -> None:
        for _ in range(args.episodes):
            episode()

    new_tokens = args.episodes * args.batch * args.turns * args.turn_tokens
    return new_tokens / best_of(run, args.repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--turn-tokens", type=int, default=16)
    p.add_argument("--reply-words", type=int, default=12)
    p.add_argument("--episodes", type=int, default=3, help="episodes per slot per measurement")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    reply = " ".join(["tell me more about the film"] * 4).split()[: args.reply_words]
    reply = " ".join(reply)
    gen = generate_tokens_per_second(args, reply)
    fast = sb3_steps_per_second(args, reply, fast=True)
    naive = sb3_steps_per_second(args, reply, fast=False)
    print(markdown_table(
        ["batch", "turns x tokens", "reply tokens", "generate() tok/s", "SB3 fast steps/s",
         "SB3 naive steps/s", "fast / generate", "naive / generate"],
        [[args.batch, f"{args.turns} x {args.turn_tokens}",
          len(load_tokenizer("default").encode(f" {reply}\n", add_special_tokens=False)),
          f"{gen:,.0f}", f"{fast:,.0f}", f"{naive:,.0f}", f"**{fast / gen:.2f}**",
          f"{naive / gen:.2f}"]],
    ))  # fmt: skip


if __name__ == "__main__":
    main()
