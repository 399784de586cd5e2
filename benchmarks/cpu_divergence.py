"""Where held-out scores diverge across CPUs before any training (issue 39): the untrained default
model's held-out episodes, sampled under this CPU's own kernels and under its AVX2 kernels (an
AVX2-only CPU, emulated: `ATEN_CPU_CAPABILITY=avx2`, `MKL_ENABLE_INSTRUCTIONS=AVX2`,
`ONEDNN_MAX_CPU_ISA=AVX2`), with three samplers:

- `float32`: the inverse-CDF sampler as it was (probabilities and their cumulative sum in float32),
  over the float32 policy;
- `float64`: `agents.distributions.sample_categorical` (the same logits, summed in float64);
- `float64 model`: what `agents.evaluation.sample_episodes` does on a CPU (`exact`): the float64
  sampler over a float64 copy of the policy (logits in float64 too).

    python -u benchmarks/cpu_divergence.py                # 3 tasks x 10 seeds x 32 episodes
    python -u benchmarks/cpu_divergence.py --seeds 2 --tasks target_tokens   # a smoke run

Prints, per sampler, how many episodes' completions and how many cells' mean rewards (the
"before" score of a bench cell) differ between the two instruction sets. Each side runs in its
own process with one thread, as a Ray worker of `textgen bench --ray` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

AVX2 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
SAMPLERS = ("float32", "float64", "float64 model")


def float32_sampler(log_probs):
    """The sampler before issue 39: inverse CDF in the logits' dtype (float32)."""
    import torch as th

    cdf = log_probs.exp().cumsum(dim=-1)
    total = cdf[:, -1:]
    u = (1.0 - th.rand(total.shape, device=cdf.device, dtype=cdf.dtype)) * total
    return th.searchsorted(cdf, u).squeeze(1).clamp_max(cdf.shape[1] - 1)


def sample_all(tasks: list[str], seeds: int, episodes: int) -> dict[str, list]:
    """{sampler: [[task, seed, mean reward, [completion, ...]], ...]} for this process's CPU."""
    import torch as th

    import agents
    import agents.distributions as dist
    from agents.evaluation import mean_reward, sample_episodes

    th.set_num_threads(1)
    out: dict[str, list] = {}
    for sampler in SAMPLERS:
        rows = []
        for task in tasks:
            env = agents.make_vec_env("TextGen-v0", n_envs=1, task=task)
            model = agents.make_algo("ppo", env, {"model": "default"}, seed=0)
            exact = sampler == "float64 model"
            real = dist.sample_categorical
            dist.sample_categorical = float32_sampler if sampler == "float32" else real
            try:
                for seed in range(seeds):
                    samples = sample_episodes(model, "TextGen-v0", {"task": task}, n=episodes,
                                              seed=seed, exact=exact)  # fmt: skip
                    rows.append([task, seed, mean_reward(samples), [s.completion for s in samples]])
            finally:
                dist.sample_categorical = real
            env.close()
        out[sampler] = rows
    return out


def sampler_cost(repeats: int = 50) -> list[tuple[str, float, float]]:
    """Seconds per call of the float32 and the float64 sampler on a rollout step's logits: 8
    rows of the default model's 4,096 ids and 32 rows of SmolLM2's 49,152 (interleaved, best
    of `repeats`: the two share this machine's noise)."""
    import time

    import torch as th

    from agents.distributions import sample_categorical

    rows = []
    for name, shape in (("default (8 x 4,096)", (8, 4096)), ("SmolLM2 (32 x 49,152)", (32, 49152))):
        log_probs = th.log_softmax(th.randn(*shape), -1)
        best = {float32_sampler: float("inf"), sample_categorical: float("inf")}
        for _ in range(repeats):
            for sampler in best:
                t0 = time.perf_counter()
                sampler(log_probs)
                best[sampler] = min(best[sampler], time.perf_counter() - t0)
        rows.append((name, best[float32_sampler], best[sample_categorical]))
    return rows


def evaluation_cost(model_name: str = "default", episodes: int = 32, repeats: int = 3) -> tuple:
    """Seconds to sample `episodes` held-out episodes of movie_sentiment with the policy in
    float32 and in float64 (`sample_episodes(exact=...)`), best of `repeats`, interleaved."""
    import time

    import agents
    from agents.evaluation import sample_episodes

    kwargs = {"task": "movie_sentiment"}
    if model_name not in ("default", "random-tiny"):
        kwargs["tokenizer"] = model_name
    env = agents.make_vec_env("TextGen-v0", n_envs=1, **kwargs)
    model = agents.make_algo("ppo", env, {"model": model_name}, seed=0)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for exact in best:
            t0 = time.perf_counter()
            sample_episodes(model, "TextGen-v0", kwargs, n=episodes, seed=0, exact=exact)
            best[exact] = min(best[exact], time.perf_counter() - t0)
    env.close()
    return best[False], best[True]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="target_tokens,movie_sentiment,dialogue")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # write this CPU's samples to a file
    args = p.parse_args()
    tasks = args.tasks.split(",")
    if args.worker:
        Path(args.worker).write_text(json.dumps(sample_all(tasks, args.seeds, args.episodes)))
        return
    folder = Path(tempfile.mkdtemp(prefix="cpu-divergence-"))
    procs = {}
    for name, extra in (("native", {}), ("avx2", AVX2)):
        env = {**os.environ, **extra, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, __file__, "--worker", str(folder / f"{name}.json"),
               "--tasks", args.tasks, "--seeds", str(args.seeds), "--episodes", str(args.episodes)]  # fmt: skip
        procs[name] = subprocess.Popen(cmd, env=env)
    for name, proc in procs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {name} worker failed (exit {proc.returncode})")
    native, avx2 = (json.loads((folder / f"{n}.json").read_text()) for n in ("native", "avx2"))
    import torch as th

    print(f"{th.__version__}; {len(tasks)} tasks x {args.seeds} seeds x {args.episodes} episodes "
          f"of the untrained default model, this CPU's kernels vs its AVX2 kernels\n")  # fmt: skip
    print("| sampler | episodes whose completion differs | cells whose mean reward differs | "
          "of which with the same completions (the scorer's floats) |")  # fmt: skip
    print("| --- | --- | --- | --- |")
    for sampler in SAMPLERS:
        pairs = list(zip(native[sampler], avx2[sampler], strict=True))
        episodes = sum(x != y for a, b in pairs for x, y in zip(a[3], b[3], strict=True))
        total = sum(len(a[3]) for a, _ in pairs)
        cells = [f"{a[0]}@{a[1]}" for a, b in pairs if a[2] != b[2]]
        scorer = sum(a[2] != b[2] and a[3] == b[3] for a, b in pairs)
        shown = f" ({', '.join(cells[:6])}{' ...' if len(cells) > 6 else ''})" if cells else ""
        print(f"| {sampler} | {episodes} of {total} | {len(cells)} of {len(pairs)}{shown} | "
              f"{scorer} |")  # fmt: skip
    print("\n| logits | float32 sampler | float64 sampler | float64 / float32 |")
    print("| --- | --- | --- | --- |")
    for name, f32, f64 in sampler_cost():
        print(f"| {name} | {f32 * 1e3:.2f} ms | {f64 * 1e3:.2f} ms | {f64 / f32:.2f} |")
    f32, f64 = evaluation_cost(episodes=args.episodes)
    print(f"\nsample_episodes, {args.episodes} episodes of the default model: float32 {f32:.2f} s, "
          f"float64 (exact, the default on a CPU) {f64:.2f} s, ratio {f64 / f32:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
