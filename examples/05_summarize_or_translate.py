"""A metric-rewarded task: PPO on `summarize` (ROUGE-L) or `translate` (chrF to French).

Prints the task's metric on held-out items before and after training, with samples next to
their references.

    python examples/05_summarize_or_translate.py --task summarize --timesteps 4096
    python examples/05_summarize_or_translate.py --task translate --model smollm2-135m
"""

from dataclasses import dataclass

from stable_baselines3 import PPO

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes
from gym_textgen.tasks import make_task


@dataclass
class Args:
    task: str = "summarize"
    """summarize (reward: ROUGE-L) or translate (reward: chrF)"""
    model: str = "default"
    """policy LM: default, smollm2-135m (the instruct model gets its chat format), a folder"""
    timesteps: int = 4096
    """total environment steps"""
    n_envs: int = 8
    max_new_tokens: int = 24
    learning_rate: float = 1e-4
    eval_episodes: int = 12
    """held-out items scored before and after"""
    seed: int = 0


def main(args: Args) -> tuple[float, float]:
    if args.task not in ("summarize", "translate"):
        raise SystemExit(f"--task: expects summarize or translate, got {args.task!r}")
    task = make_task(args.task)
    env_kwargs = {"task": args.task, "max_new_tokens": args.max_new_tokens}
    if args.model not in ("default", "random-tiny"):
        env_kwargs["tokenizer"] = args.model
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, **env_kwargs)
    model = agents.make_algo(
        PPO, env, {"model": args.model}, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, gamma=1.0, seed=args.seed,
    )  # fmt: skip
    evaluate = lambda: sample_episodes(  # noqa: E731
        model, "TextGen-v0", env_kwargs, n=args.eval_episodes, split="test", seed=args.seed
    )
    before = evaluate()
    model.learn(args.timesteps, progress_bar=False)
    after = evaluate()
    references = dict(zip(task.eval_prompts, task.eval_references, strict=True))
    for s in after[:3]:
        print(f"[{s.reward:.2f}] {s.prompt[-80:]}«{s.completion}»")
        print(f"       reference: {references.get(s.prompt, '?')}")
    metric = {"summarize": "ROUGE-L", "translate": "chrF"}[args.task]
    print(f"mean {metric}: before {mean_reward(before):.3f}, after {mean_reward(after):.3f}")
    return mean_reward(before), mean_reward(after)


if __name__ == "__main__":
    main(parse_dataclass_args(Args, description=__doc__.splitlines()[0]))
