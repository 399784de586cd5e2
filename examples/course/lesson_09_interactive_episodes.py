"""Lesson 9 - interactive episodes: a calculator tool answers inside the episode; its tokens are
state, never actions.

Learning goal: the token-level MDP stays the same when another party speaks. The policy writes
a turn token by token; when the turn ends (here at `</calc>`) the tool's reply is appended to the
state within the same step, and the policy writes on. So the state grows by more than one token
on some steps, the actions are only the policy's own tokens (the observation's `policy_mask`),
and a policy-gradient loss sums log pi over those tokens alone: the tool's `<result>916</result>`
is not something the policy chose, and putting it in the loss would train the LM to imitate the
tool instead of calling it. The reward here comes once, at the end (right answer: 1); a task may
also pay each turn (the party's reply carries a reward).

This lesson (1) plays one episode by hand and prints how the state grows, (2) computes the
episode's policy-gradient loss over the policy's tokens and shows what the inserted tokens would
add, (3) trains SmolLM2-135M (LoRA, REINFORCE with a leave-one-out baseline) to use the tool and
prints whole episodes before and after. What to observe: before training the model sometimes
calls the tool and then ignores the answer; after, it calls it on every question and copies the
result (2 turns). `lesson_09.png`: accuracy and turns before and after.

    python examples/course/lesson_09_interactive_episodes.py        # about 5 minutes on 2 cores
    textgen train --algo reinforce --baseline rloo --env-id TextGen-v0 --task calculator ...
"""

from dataclasses import dataclass

import numpy as np
import torch as th

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import sample_episodes


@dataclass
class Args:
    task: str = "calculator"
    """calculator (with the tool), calculator_no_tool, guess_number or token_code"""
    model: str = "smollm2-135m"
    timesteps: int = 3072
    """environment steps of training (the policy's tokens; the tool's are free)"""
    n_envs: int = 16
    group_size: int = 4
    """episodes of one question per leave-one-out group"""
    lora_r: int = 16
    """LoRA rank on the top 10 blocks (0: train every weight)"""
    learning_rate: float = 1e-3
    episodes: int = 32
    """held-out questions scored before and after"""
    seed: int = 0
    plot: str = "lesson_09.png"


def env_kwargs(args: Args) -> dict:
    kwargs = {"task": args.task}
    if args.model != "default":
        kwargs["tokenizer"] = args.model  # the env tokenizes as the policy's model does
    return kwargs


def by_hand(model, args: Args) -> dict[str, float]:
    """One held-out episode step by step: what each action appends, and the loss over it."""
    env = agents.make_vec_env("TextGen-v0", n_envs=1, seed=args.seed, env_kwargs={
        **env_kwargs(args), "split": "eval"})  # fmt: skip
    tok = env.get_attr("core")[0].tokenizer
    obs = env.reset()
    length = int(obs["attention_mask"][0].sum())
    print(f"prompt ({length} tokens): {tok.decode(obs['input_ids'][0][:length])!r}")
    rewards, stepped, final = [], [], None
    while True:
        action, _ = model.predict(obs, deterministic=False)
        with th.no_grad():  # log pi(action | state) as the step saw it, to check the loss below
            dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
            stepped.append(float(dist.log_prob(th.as_tensor(action))[0]))
        obs, reward, done, infos = env.step(action)
        rewards.append(float(reward[0]))
        if done[0]:
            final = infos[0]["terminal_observation"]
            break
        grown = int(obs["attention_mask"][0].sum()) - length
        if grown > 1:  # the turn ended: the reply came in the same step
            new = obs["input_ids"][0][length + 1 : length + grown]
            print(f"  action {tok.decode([int(action[0])])!r} ended a turn; the state also grew "
                  f"by the reply {tok.decode(new)!r} ({grown - 1} tokens, not actions)")  # fmt: skip
        length += grown
    print(f"transcript: {infos[0].get('transcript', '')!r}")
    print(f"rewards per step: {np.round(rewards, 2).tolist()} (paid once, at the end)")

    # The loss. log pi of every token after the prompt under the policy: each position's
    # distribution from the state just before it (the final state, cut there).
    ids = np.asarray(final["input_ids"])
    text = np.asarray(final["attention_mask"])
    if "policy_mask" in final:  # an interactive task marks the policy's own tokens
        mine = np.asarray(final["policy_mask"])
    else:  # a single-turn task (calculator_no_tool): every token after the prompt is an action
        mine = np.zeros_like(text)
        mine[int(text.sum()) - len(rewards) : int(text.sum())] = 1
    prompt = int(np.argmax(mine)) if mine.any() else int(text.sum())
    positions = list(range(prompt, int(text.sum())))
    states = {k: np.repeat(np.asarray(v)[None], len(positions), 0) for k, v in final.items()}
    for row, p in enumerate(positions):
        for key in ("attention_mask", "policy_mask"):
            if key in states:
                states[key][row, p:] = 0
    with th.no_grad():
        obs_t, _ = model.policy.obs_to_tensor(states)
        log_pi = model.policy.get_distribution(obs_t).log_prob(th.as_tensor(ids[positions]))
    log_pi = log_pi.double().numpy()
    ours = mine[positions].astype(bool)
    print(f"{ours.sum()} actions (policy_mask 1), {(~ours).sum()} inserted tokens after the prompt")
    print("  token            who     log pi")
    for p, lp, own in list(zip(positions, log_pi, ours, strict=True))[:40]:
        print(f"  {tok.decode([int(ids[p])])!r:16} {'policy' if own else 'tool':7} {lp:8.3f}")
    advantage = sum(rewards) - 0.5  # against a baseline of 0.5, say
    print(f"REINFORCE loss, the policy's tokens: -(R - b) * sum log pi = "
          f"{-advantage * log_pi[ours].sum():.3f}")  # fmt: skip
    print(f"with the tool's tokens too (wrong): {-advantage * log_pi.sum():.3f}; their log pi "
          f"sum to {log_pi[~ours].sum():.3f}, a gradient that would teach the LM to write the "
          "tool's answers itself")  # fmt: skip
    gap = float(np.abs(log_pi[ours] - np.asarray(stepped)).max())
    print(f"log pi of the actions, from the cut states against as each step saw them: "
          f"largest difference {gap:.1e}")  # fmt: skip
    return {"steps": len(stepped), "actions": int(ours.sum()), "inserted": int((~ours).sum()),
            "gap": gap}  # fmt: skip


def score(model, args: Args) -> tuple[float, float, list]:
    samples = sample_episodes(model, "TextGen-v0", env_kwargs(args), n=args.episodes,
                              seed=args.seed)  # fmt: skip
    return (float(np.mean([s.reward for s in samples])),
            float(np.mean([s.turns for s in samples])), samples)  # fmt: skip


def main(args: Args) -> dict[str, float]:
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, group_size=args.group_size,
                              seed=args.seed, env_kwargs=env_kwargs(args))  # fmt: skip
    policy = {"model": args.model}
    if args.lora_r:
        policy["lora"] = {"r": args.lora_r, "lora_alpha": 2 * args.lora_r,
                          "layers_to_transform": list(range(-10, 0))}  # fmt: skip
    model = agents.make_algo("reinforce", env, policy, baseline="rloo",
                             learning_rate=args.learning_rate, seed=args.seed)  # fmt: skip
    print("1-2. One episode by hand, untrained:")
    hand = by_hand(model, args)

    print("\n3. Training: held-out questions before and after")
    before, turns_before, samples_before = score(model, args)
    model.learn(args.timesteps)
    after, turns_after, samples_after = score(model, args)
    for title, samples in (("before", samples_before), ("after", samples_after)):
        print(f"  {title}:")
        for s in samples[:3]:
            print(f"    [{s.reward:.2f}] {s.prompt}«{s.completion}»")
    print(f"held-out reward {before:.3f} -> {after:.3f}; policy turns {turns_before:.2f} -> "
          f"{turns_after:.2f} ({args.episodes} held-out questions, seed {args.seed})")  # fmt: skip

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3), dpi=100)
    left.bar(["before", "after"], [before, after], color=["C7", "C0"])
    left.set_ylim(0, 1)
    left.set_title("held-out reward (calculator: accuracy)")
    right.bar(["before", "after"], [turns_before, turns_after], color=["C7", "C0"])
    right.set_title("the policy's turns per episode")
    fig.suptitle(f"Lesson 9: {args.task}, {args.timesteps} steps")
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")
    return {"before": before, "after": after, "turns_before": turns_before,
            "turns_after": turns_after, **hand}  # fmt: skip


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
