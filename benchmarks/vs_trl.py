"""Learning speed against TRL on the same CPU, same model, prompts and reward, in one run.

Two setups (`--setup`):

* `synthetic`: a random-init Llama (2 layers, width 128) over a 512-word vocabulary, prompts of
  16 random words, 32 new tokens, reward = share of generated ids in the lowest eighth of the
  vocabulary (no EOS stop on either side);
* `smollm2`: SmolLM2-135M-Instruct continuing movie-review openings (24 new tokens, EOS ends a
  completion), reward = VADER sentiment in [0, 1].

Methods: TRL's GRPO and RLOO trainers against our REINFORCE-RLOO (`ours-reinforce`; with GRPO's
std scaling, `ours-grpo`) and PPO through the env (`ours-ppo`: 4 epochs of 4 minibatches a
rollout; `ours-ppo1`: one update a rollout), each for the same wall-clock budget per learning
rate of one grid. Both sides get 8 prompts x 4
completions per update and start from the same initial weights. Every scored completion is
recorded with its time on both sides (the reward function is wrapped), so the curves are the
same statistic: the mean of the last 64 rewards. After training, the KL of each final policy to
the initial model is measured the same way for all (nats per completion, 64 sampled prompts).

    pip install -e ".[compare]"
    python benchmarks/vs_trl.py --setup synthetic --seconds 60
    python benchmarks/vs_trl.py --setup synthetic --seconds 20 --repeats 3
    python benchmarks/vs_trl.py --setup smollm2 --seconds 600 --lrs 1e-5,5e-5
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from _common import markdown_table

LEVELS = (0.7, 0.8, 0.9)
WINDOW = 64  # rewards per point of a curve
PROMPTS_PER_UPDATE, GROUP = 8, 4  # 32 completions per update on both sides


@dataclass
class Recorder:
    """Every scored completion's reward and time (seconds since training started)."""

    start: float = field(default_factory=time.perf_counter)
    times: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    tokens: int = 0

    def add(self, rewards: list[float], tokens: int) -> None:
        now = time.perf_counter() - self.start
        self.times += [now] * len(rewards)
        self.rewards += [float(r) for r in rewards]
        self.tokens += tokens

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(self.rewards)
        if len(r) < WINDOW:
            return np.asarray([]), np.asarray([])
        mean = np.convolve(r, np.ones(WINDOW) / WINDOW, mode="valid")
        return np.asarray(self.times[WINDOW - 1 :]), mean

    def time_to(self, level: float) -> float | None:
        t, m = self.curve()
        hit = np.flatnonzero(m >= level)
        return float(t[hit[0]]) if hit.size else None

    def at(self, seconds: float) -> float | None:
        t, m = self.curve()
        before = np.flatnonzero(t <= seconds)
        return float(m[before[-1]]) if before.size else None


@dataclass
class Setup:
    name: str
    make_model: Callable[[], Any]  # the same initial weights at every call
    tokenizer: Any
    prompts: list[str]
    new_tokens: int
    reward: Callable[[str, list[int]], float]  # (completion text, completion ids) -> reward
    stop_on_eos: bool
    lrs: tuple[float, ...]


def synthetic_setup() -> Setup:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(512)]
    vocab = {w: i for i, w in enumerate(words)} | {"<eos>": 512, "<pad>": 513}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>")
    rng = random.Random(0)
    prompts = [" ".join(rng.choice(words) for _ in range(16)) for _ in range(512)]
    config = LlamaConfig(
        vocab_size=514,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        eos_token_id=512,
        pad_token_id=513,
    )

    def make_model():
        with th.random.fork_rng(devices=[]):
            th.manual_seed(0)
            return LlamaForCausalLM(config).eval()

    def reward(text: str, ids: list[int]) -> float:
        return float(np.mean(np.asarray(ids) < 64)) if len(ids) else 0.0

    return Setup("synthetic", make_model, tok, prompts, 32, reward, False, (1e-3, 3e-3))


def smollm2_setup() -> Setup:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from gym_textgen.models import load_model, load_tokenizer
    from gym_textgen.tasks import make_task

    tok = load_tokenizer("smollm2-135m")
    initial = load_model("smollm2-135m")
    vader = SentimentIntensityAnalyzer()

    def reward(text: str, ids: list[int]) -> float:
        return (vader.polarity_scores(text)["compound"] + 1.0) / 2.0

    prompts = list(make_task("movie_sentiment").prompts)
    return Setup(
        "smollm2", lambda: copy.deepcopy(initial), tok, prompts, 24, reward, True, (1e-5, 5e-5)
    )


# -- TRL ----------------------------------------------------------------------------------------
def run_trl(
    setup: Setup, method: str, lr: float, seconds: float, seed: int = 0
) -> tuple[Recorder, Any]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    recorder = Recorder()

    def reward_func(prompts, completions, completion_ids, **kwargs):
        rewards = [
            setup.reward(c, list(i)) for c, i in zip(completions, completion_ids, strict=True)
        ]
        recorder.add(rewards, sum(len(i) for i in completion_ids))
        return rewards

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            recorder.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - recorder.start > seconds:
                control.should_training_stop = True

    config_class, trainer_class = {
        "grpo": (GRPOConfig, GRPOTrainer),
        "rloo": (RLOOConfig, RLOOTrainer),
    }[method]
    generation_kwargs = {} if setup.stop_on_eos else {"min_new_tokens": setup.new_tokens}
    args = config_class(
        output_dir="/tmp/vs_trl",
        learning_rate=lr,
        per_device_train_batch_size=PROMPTS_PER_UPDATE * GROUP,
        num_generations=GROUP,
        max_completion_length=setup.new_tokens,
        beta=0.0,
        max_steps=100_000,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        # TRL's defaults are for GPUs: bf16 autocast and gradient checkpointing both slow a CPU
        # run down (measured: 1 s per synthetic step with them); float32 as on our side
        bf16=False,
        gradient_checkpointing=False,
        seed=seed,
        temperature=1.0,
        generation_kwargs=generation_kwargs,
        disable_tqdm=True,
    )
    dataset = Dataset.from_dict({"prompt": setup.prompts})
    trainer = trainer_class(
        model=setup.make_model(),
        reward_funcs=reward_func,
        args=args,
        train_dataset=dataset,
        processing_class=setup.tokenizer,
        callbacks=[Budget()],
    )
    trainer.train()
    return recorder, trainer.model


# -- ours ---------------------------------------------------------------------------------------
def run_ours(
    setup: Setup, method: str, lr: float, seconds: float, seed: int = 0
) -> tuple[Recorder, Any]:
    from stable_baselines3.common.callbacks import BaseCallback

    import agents
    from gym_textgen.scorers import Scorer
    from gym_textgen.tasks import Task

    recorder = Recorder()

    class Recorded(Scorer):
        name = "reward"
        uses_token_ids = True

        def score(self, prompts, completions, references=None, *, completion_ids=None):
            rewards = [
                setup.reward(c, list(i)) for c, i in zip(completions, completion_ids, strict=True)
            ]
            recorder.add(rewards, sum(len(i) for i in completion_ids))
            return np.asarray(rewards)

    class Budget(BaseCallback):
        def _on_training_start(self):
            recorder.start = time.perf_counter()

        def _on_step(self):
            return time.perf_counter() - recorder.start <= seconds

    n_envs = PROMPTS_PER_UPDATE * GROUP
    env = agents.make_vec_env(
        "TextGen-v0",
        n_envs=n_envs,
        group_size=1 if method.startswith("ppo") else GROUP,
        seed=seed,
        task=Task(name=setup.name, prompts=tuple(setup.prompts)),
        tokenizer=setup.tokenizer,
        scorer=Recorded(),
        max_prompt_tokens=64,
        max_new_tokens=setup.new_tokens,
        stop_on_eos=setup.stop_on_eos,
    )
    # the value head learns 100x faster than the LM (see agents.policies, value_lr_scale)
    policy_kwargs = {"model": setup.make_model(), "value_lr_scale": 100.0}
    if method in ("reinforce", "grpo"):  # RLOO; "grpo": scaled by the group's std
        model = agents.make_algo(
            "reinforce",
            env,
            policy_kwargs,
            learning_rate=lr,
            baseline="rloo",
            scale_by_std=method == "grpo",
            seed=seed,
        )
    else:  # PPO: one rollout of 32 episodes' worth of steps, 4 epochs of 4 minibatches
        # ("ppo1": one epoch of one minibatch, a single update per batch as REINFORCE does)
        minibatches, epochs = (1, 1) if method == "ppo1" else (4, 4)
        model = agents.make_algo(
            "ppo",
            env,
            policy_kwargs,
            learning_rate=lr,
            n_steps=setup.new_tokens,
            batch_size=n_envs * setup.new_tokens // minibatches,
            n_epochs=epochs,
            gamma=1.0,
            seed=seed,
        )
    model.learn(10**9, callback=Budget())
    return recorder, model.policy.lm


# -- the KL of a final policy to the initial model ---------------------------------------------
@th.no_grad()
def kl_to_initial(setup: Setup, trained: Any, n: int = 64) -> float:
    """Mean over n sampled completions of sum_t log pi(a_t) - log pi_0(a_t) (nats)."""
    initial = setup.make_model()
    tok = setup.tokenizer
    th.manual_seed(1)
    total = 0.0
    for prompt in setup.prompts[:n]:
        ids = th.tensor([tok.encode(prompt)])
        kwargs = {} if setup.stop_on_eos else {"min_new_tokens": setup.new_tokens}
        out = trained.generate(
            ids,
            do_sample=True,
            max_new_tokens=setup.new_tokens,
            pad_token_id=tok.pad_token_id,
            top_k=0,
            **kwargs,
        )
        new = out[:, ids.shape[1] :]
        logits_t = trained(out).logits[:, ids.shape[1] - 1 : -1].log_softmax(-1)
        logits_0 = initial(out).logits[:, ids.shape[1] - 1 : -1].log_softmax(-1)
        picked = new[..., None]
        total += float((logits_t.gather(-1, picked) - logits_0.gather(-1, picked)).sum())
    return total / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", choices=["synthetic", "smollm2"], default="synthetic")
    p.add_argument("--seconds", type=float, default=60, help="wall-clock budget per run")
    p.add_argument("--lrs", help="comma-separated learning rates (default: the setup's grid)")
    p.add_argument(
        "--methods",
        default="trl-grpo,trl-rloo,ours-reinforce,ours-grpo,ours-ppo",
        help="comma-separated",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of every method and rate, with seeds 0..N-1, interleaved so that the "
        "machine's drift falls on all alike; the summary gives medians",
    )
    a = p.parse_args()
    if a.repeats < 1:
        p.error(f"--repeats must be >= 1, got {a.repeats}")
    warnings.filterwarnings("ignore")
    setup = synthetic_setup() if a.setup == "synthetic" else smollm2_setup()
    lrs = [float(x) for x in a.lrs.split(",")] if a.lrs else list(setup.lrs)
    times = [a.seconds * f for f in (0.2, 0.4, 0.6, 1.0)]
    rows, results = [], {}
    for seed in range(a.repeats):
        for method in a.methods.split(","):
            side, algo = method.split("-", 1)
            for lr in lrs:
                runner = run_trl if side == "trl" else run_ours
                recorder, trained = runner(setup, algo, lr, a.seconds, seed)
                elapsed = recorder.times[-1] if recorder.times else float("nan")
                kl = kl_to_initial(setup, trained.eval())
                hit = [recorder.time_to(level) for level in LEVELS]
                at = [recorder.at(t) for t in times]
                start = float(np.mean(recorder.rewards[:WINDOW])) if recorder.rewards else math.nan
                results.setdefault((method, lr), []).append(hit)
                rows.append(
                    [
                        method,
                        f"{lr:g}",
                        str(seed),
                        f"{recorder.tokens / elapsed:.0f}",
                        f"{start:.2f}",
                        *[f"{x:.2f}" if x is not None else "-" for x in at],
                        *[f"{x:.0f} s" if x is not None else "-" for x in hit],
                        f"{kl:.2f}",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "method",
        "lr",
        "seed",
        "tokens/s",
        "reward at start",
        *[f"at {t:.0f} s" for t in times],
        *[f"time to {lv}" for lv in LEVELS],
        "KL to initial (nats)",
    ]
    print()
    print(f"setup: {setup.name}, {a.seconds:.0f} s per run, mean of the last {WINDOW} rewards")
    print(markdown_table(header, rows))
    if a.repeats > 1:
        print()
        print(f"median over {a.repeats} seeds (a run that never reached a level counts as never)")
        summary = []
        for (method, lr), hits in results.items():
            medians = []
            for i in range(len(LEVELS)):
                values = [h[i] if h[i] is not None else math.inf for h in hits]
                m = float(np.median(values))
                medians.append("-" if math.isinf(m) else f"{m:.0f} s")
            summary.append([method, f"{lr:g}", *medians])
        print(markdown_table(["method", "lr", *[f"time to {lv}" for lv in LEVELS]], summary))


if __name__ == "__main__":
    main()
