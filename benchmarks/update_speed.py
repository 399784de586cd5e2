"""Update speed: one PPO update epoch against one forward+backward over the rollout's sequences.

After a rollout (8 envs x 64 steps, 32-token episodes), we time:

* PPO `train()` with `n_epochs=1` (every minibatch of 128 transitions: evaluate_actions,
  the clipped loss, backward, optimizer step), with the fast policy and with the naive one;
* the reference: one forward and backward over every episode segment of the same rollout as
  full sequences, all at once, scoring every step's action and value (the least work that
  yields the same gradients).

Target: fast epoch / reference <= 1.5.

    python benchmarks/update_speed.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch as th
from _common import best_of, collect, markdown_table, models_to_run, ppo_model

import gym_textgen  # noqa: F401
from agents.buffers import episode_segments


def time_epoch(name: str, fast: bool, repeats: int, n_steps: int = 64) -> float:
    model = ppo_model(name, 8, 32, n_steps, fast, n_epochs=1, batch_size=128)
    times = []
    for _ in range(repeats + 1):
        collect(model)
        t0 = time.perf_counter()
        model.train()
        times.append(time.perf_counter() - t0)
    return min(times[1:])  # the first one warms up


def time_reference(name: str, repeats: int, n_steps: int = 64) -> float:
    model = ppo_model(name, 8, 32, n_steps, True, n_epochs=1, batch_size=128)
    collect(model)
    buf = model.rollout_buffer
    ids = buf.swap_and_flatten(buf.observations["input_ids"])  # env-major, as episode_segments
    mask = buf.swap_and_flatten(buf.observations["attention_mask"])
    actions = buf.swap_and_flatten(buf.actions)[:, 0]
    segments = episode_segments(buf.episode_starts)
    last = np.array([s[-1] for s in segments])
    seqs = th.as_tensor(ids[last])  # (G, L) each segment's longest observation
    # the text of segment g at step k ends at position lengths[k] - 1; its action is the next id
    pos = [th.as_tensor(mask[s].sum(1) - 1) for s in segments]
    acts = [th.as_tensor(actions[s]).long() for s in segments]
    policy = model.policy
    trunk = policy.features_extractor.trunk
    t = int(mask[last].sum(1).max())

    def run() -> None:
        hidden = trunk(input_ids=seqs[:, :t], use_cache=False).last_hidden_state  # (G, t, H)
        loss = 0.0
        for g in range(len(segments)):
            h = hidden[g, pos[g]]  # (steps, H)
            logp = th.log_softmax(policy.action_net(h), -1).gather(1, acts[g][:, None])
            loss = loss + logp.sum() + policy.value_net(h).sum()
        policy.optimizer.zero_grad()
        loss.backward()

    return best_of(run, repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="default model only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--n-steps", type=int, default=64, help="rollout steps per env (a smoke run: 16)"
    )
    a = p.parse_args()
    rows = []
    for name in models_to_run(a.quick):
        reps = a.repeats if name == "default" else 1
        ref = time_reference(name, reps, a.n_steps)
        fast = time_epoch(name, True, reps, a.n_steps)
        naive = time_epoch(name, False, reps, a.n_steps) if name == "default" else None
        rows.append(
            [
                name,
                f"{ref:.3f}",
                f"{fast:.3f}",
                f"{naive:.3f}" if naive else "-",
                f"**{fast / ref:.2f}**",
                f"{naive / ref:.2f}" if naive else "-",
            ]
        )
        print(
            f"{name}: reference {ref:.3f}s, fast epoch {fast:.3f}s, naive epoch {naive or 0:.3f}s",
            flush=True,
        )
    print()
    print(
        markdown_table(
            [
                "model",
                "fwd+bwd over sequences (s)",
                "PPO epoch fast (s)",
                "PPO epoch naive (s)",
                "fast / reference",
                "naive / reference",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
