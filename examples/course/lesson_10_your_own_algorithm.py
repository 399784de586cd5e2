"""Lesson 10 - your own algorithm in a fair comparison: suite v1, the published baselines, and
what three seeds may claim.

Learning goal: a new algorithm is "better" only under a protocol fixed before it ran (the same
tasks, budgets, held-out prompts and evaluation as the baselines) and only as far as the seeds
allow. This lesson writes a policy-gradient variant from scratch (REINFORCE with a leave-one-out
baseline, ~40 lines, no stable-baselines3), runs it through suite v1's protocol with
`textgen bench`'s machinery, and reads `textgen bench compare` against the published baselines
(results/suite-v1/: 5 tuned algorithms and random, 10 seeds each): the normalised IQM with its
95% CI, and the probability of improvement P(X > Y) over each baseline.

What to observe: the output's notes first (the quick protocol trains for 1/8 of the budget, so
`compare` says it ranks nothing); the width of your IQM interval with 3 seeds against the
published ones with 10; which P(X > Y) intervals hold 0.5. `lesson_10.png`: per task, your
seeds' normalised scores beside the published mean of each baseline.

    python examples/course/lesson_10_your_own_algorithm.py        # about 3 minutes on 2 cores
    # the same from the shell, then the full protocol (10 seeds, ~20 CPU-minutes an algorithm):
    textgen bench --suite v1 --quick --seeds 3 \
        --algos examples/course/lesson_10_your_own_algorithm.py:rloo_from_scratch
    textgen bench compare bench-v1-quick --against suite-v1
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch as th

import agents
from agents.dataclass_cli import parse_dataclass_args
from gym_textgen.models import load_model

#: this file (a notebook has no __file__: there, the script it was made from)
HERE = Path(globals().get("__file__") or Path(agents.__file__).parents[1] / "examples" / "course"
            / "lesson_10_your_own_algorithm.py").resolve()  # fmt: skip


# -- the algorithm: what you would write --------------------------------------------------------
class Policy:
    """The LM as a policy with SB3's `predict`, which is all the bench needs to score it."""

    def __init__(self, lm: th.nn.Module, n_actions: int) -> None:
        self.lm, self.n = lm, n_actions

    def dist(self, obs: dict) -> th.distributions.Categorical:
        mask = th.as_tensor(obs["attention_mask"]).long()  # right-padded: 1s are the text
        width, last = int(mask.sum(1).max()), mask.sum(1) - 1
        hidden = self.lm.base_model(input_ids=th.as_tensor(obs["input_ids"])[:, :width],
                                    attention_mask=mask[:, :width]).last_hidden_state  # fmt: skip
        # the vocabulary's logits at each row's last token only (most of a forward otherwise)
        logits = self.lm.get_output_embeddings()(hidden[th.arange(len(mask)), last])
        return th.distributions.Categorical(logits=logits[:, : self.n])

    def predict(self, obs: dict, deterministic: bool = False, **_: object):
        with th.no_grad():
            dist = self.dist(obs)
        return (dist.probs.argmax(-1) if deterministic else dist.sample()).numpy(), None


def rloo_from_scratch(make_env, timesteps: int, seed: int, model: str = "default",
                      learning_rate: float = 1e-3, group: int = 4) -> Policy:  # fmt: skip
    """Each prompt played by `group` episodes side by side (one batched forward a token); an
    episode's advantage is its return minus the mean return of the group's others (no critic,
    no bias); one Adam step per group."""
    if group < 2:
        raise ValueError(f"Expects group >= 2 (a leave-one-out baseline), got {group}")
    th.manual_seed(seed)
    envs = [make_env() for _ in range(group)]  # gymnasium.Envs of the cell's task
    policy = Policy(load_model(model), envs[0].action_space.n)
    optimizer = th.optim.Adam(policy.lm.parameters(), lr=learning_rate)
    steps, seeds = 0, [seed + k for k in range(group)]  # seeded once, at the first reset
    while steps < timesteps:
        obs, info = envs[0].reset(seed=seeds[0])
        same = {"prompt_index": info["prompt_index"]}  # the others replay this prompt
        obs = [obs] + [
            e.reset(seed=s, options=same)[0] for e, s in zip(envs[1:], seeds[1:], strict=True)
        ]
        seeds = [None] * group
        log_probs, returns, live = [[] for _ in envs], [0.0] * group, list(range(group))
        while live:
            dist = policy.dist({k: np.stack([obs[i][k] for i in live]) for k in obs[0]})
            actions = dist.sample()
            for j, (i, lp) in enumerate(zip(live, dist.log_prob(actions), strict=True)):
                obs[i], reward, terminated, truncated, _ = envs[i].step(int(actions[j]))
                log_probs[i].append(lp)
                returns[i] += reward
                steps += 1
                if terminated or truncated:
                    live = [k for k in live if k != i]
        r = th.tensor(returns, dtype=th.float32)
        advantages = r - (r.sum() - r) / (group - 1)  # leave one out
        loss = -(advantages * th.stack([th.stack(lp).sum() for lp in log_probs])).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for env in envs:
        env.close()
    return policy


# -- the protocol: what the benchmark fixes ----------------------------------------------------
@dataclass
class Args:
    seeds: int = 3
    full: bool = False
    """suite v1's own budgets and 32 episodes (about 2 CPU-minutes a seed for the library's
    RLOO; more for this loop) instead of --quick's 1/8"""
    tasks: str = ""
    """comma-separated subset of suite v1's tasks (default: all six)"""
    timesteps: int = 0
    """0: the suite's budgets; else every cell's budget (a smoke run, not the protocol)"""
    against: str = "suite-v1"
    """published results (results/suite-v1/ in a source checkout) or another grid's folder"""
    out: str = "lesson_10_bench"
    """the grid's folder: rerunning skips the finished cells; after editing the algorithm the
    grid refuses to mix its new code with the old cells: delete the folder or name another"""
    plot: str = "lesson_10.png"


def main(args: Args) -> dict[str, float]:
    from agents.bench import (
        aggregates,
        compare,
        improvement,
        load_suite,
        published,
        read_grid,
        run_bench,
        score_matrices,
        suite_of,
    )

    suite = load_suite("v1")
    me = f"{HERE}:rloo_from_scratch"  # --algos takes path.py:function
    cfg = suite.bench_config(algos=[me], tasks=args.tasks.split(",") if args.tasks else None,
                             seeds=args.seeds, quick=not args.full, out=args.out)  # fmt: skip
    if args.timesteps:
        cfg = dataclasses.replace(cfg, timesteps=args.timesteps,
                                  budgets={t: args.timesteps for t in cfg.budgets},
                                  suite={**cfg.suite, "protocol": "smoke"})  # fmt: skip
    print(f"budgets (env steps): {cfg.budgets}; {cfg.eval_episodes} held-out episodes a cell")
    run_bench(cfg)  # every cell: train, then score held-out prompts before and after

    # 1. What `textgen bench compare` writes: the notes, the aggregates, P(X > Y).
    report = compare(args.out, args.against)
    print("\n" + report.read_text())

    # 2. The same numbers by hand, from the two grids' files (agents.bench's functions).
    grid, mine = read_grid(args.out)
    _, theirs = read_grid(published(args.against))
    record = suite_of(grid, args.out)
    tasks = [t for t in record["normalise"] if any(r["task"] == t for r in mine)]
    own, _ = score_matrices(mine, record, tasks)
    base, _ = score_matrices(theirs, record, tasks)
    ((label, m),) = own.items()  # your algorithm's (seeds x tasks) normalised scores
    iqm, lo, hi = aggregates({label: m})[label]["iqm"]  # one seed: no interval (NaN bounds)
    print(f"your normalised IQM {iqm:.3f} [{lo:.3f}, {hi:.3f}] over {m.shape[0]} seeds; "
          f"interval width {hi - lo:.3f}")  # fmt: skip
    probs = improvement({(label, b): (m, base[b]) for b in base})
    for (_, b), (p, plo, phi) in probs.items():
        verdict = "no claim either way" if not plo > 0.5 and not phi < 0.5 else (
            "better" if plo > 0.5 else "worse")  # fmt: skip
        print(f"  P(yours > {b}) = {p:.3f} [{plo:.3f}, {phi:.3f}]: {verdict}")
    if record["protocol"] != "full":
        print(f"The {record['protocol']} protocol trained for a fraction of the baselines' "
              "budgets: whatever the intervals say, it checks the pipeline and ranks nothing.")  # fmt: skip

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8), dpi=100)
    short = [t.split(":")[-1] for t in tasks]
    for j, (b, mb) in enumerate(base.items()):
        ax.scatter(np.arange(len(tasks)) + 0.08 * (j - len(base) / 2), mb.mean(axis=0), marker="_",
                   s=150, color=f"C{j}", label=f"{b} (published mean)")  # fmt: skip
    for s in range(m.shape[0]):
        ax.scatter(np.arange(len(tasks)) + 0.3, m[s], color="k", s=16,
                   label="yours (each seed)" if s == 0 else None)  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(len(tasks)), short, fontsize=8)
    ax.set_ylabel("normalised score (0 random, 1 reference)")
    ax.set_title(f"Lesson 10: your algorithm against suite v1 ({record['protocol']} protocol)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}; compare.md and profiles.png: {report.parent}/")
    return {"iqm": iqm, "lo": lo, "hi": hi, **{b: p for (_, b), (p, _, _) in probs.items()}}


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
