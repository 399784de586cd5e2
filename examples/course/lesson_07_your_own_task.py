"""Lesson 7 - your own task: prompts from a file and a reward in 20 lines.

Learning goal: an RL task for a language model is two things you can write yourself - the
prompts (here `examples/data/describe_things.jsonl`: one JSON object a line, `prompt`, an
optional `reference`, and `"split": "eval"` for held-out prompts) and a reward: any Python
function of (prompt, completion[, reference]) returning a float. Everything else - the
environment, the batched policy, PPO - is unchanged. The same file trains from the shell with
`textgen train --task examples/data/describe_things.jsonl --env-kwargs
'{"scorer": "my_module:describe_reward"}'` (a scorer by import path).

The reward below asks for a sentence that is *about* the thing named in the prompt (the
reference word appears) and *finished* (it ends with . ! or ? after a few words): two checks a
teacher would make, each worth half. What to observe: the before/after samples and the reward
curve in `lesson_07.png`; which half of the reward does the policy learn first, and why?
(Hint: count how often each half is already met before training.)

    python examples/course/lesson_07_your_own_task.py          # under a minute on 2 cores
"""

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import agents
from agents.dataclass_cli import parse_dataclass_args
from agents.evaluation import mean_reward, sample_episodes
from gym_textgen.tasks import load_task

#: this file (a notebook has no __file__: there, the script it was made from)
HERE = Path(globals().get("__file__") or Path(agents.__file__).parents[1] / "examples" / "course"
            / "lesson_07_your_own_task.py").resolve()  # fmt: skip
DATA = HERE.parents[1] / "data" / "describe_things.jsonl"


# --- the reward: 20 lines a student can change --------------------------------------------------
def on_topic(completion: str, reference: str) -> bool:
    """The reference word, or it with an "s" (dogs), is one of the completion's words."""
    words = re.findall(r"[a-z]+", completion.lower())
    return reference in words or reference + "s" in words


def finished(completion: str) -> bool:
    """At least four words, and a sentence end (. ! or ?) somewhere in the completion."""
    return len(completion.split()) >= 4 and re.search(r"[.!?](\s|$)", completion) is not None


def describe_reward(prompt: str, completion: str, reference: str) -> float:
    """Half for staying on topic, half for finishing a sentence."""
    return 0.5 * on_topic(completion, reference) + 0.5 * finished(completion)


# -------------------------------------------------------------------------------------------------


@dataclass
class Args:
    timesteps: int = 8192
    """environment steps of training"""
    n_envs: int = 8
    max_new_tokens: int = 20
    learning_rate: float = 1e-4
    eval_episodes: int = 22
    """held-out prompts scored before and after (the file marks 11; each is drawn twice)"""
    seed: int = 0
    plot: str = "lesson_07.png"


def parts(samples, references: dict[str, str]) -> tuple[float, float]:
    """The share of samples meeting each half of the reward."""
    n = max(len(samples), 1)
    topic = sum(on_topic(s.completion, references[s.prompt]) for s in samples) / n
    done = sum(finished(s.completion) for s in samples) / n
    return topic, done


def main(args: Args) -> dict[str, float]:
    from agents.callbacks import MetricsCallback, plot_curve

    task = load_task(DATA, scorer=describe_reward)
    print(
        f"task {task.name!r}: {len(task.prompts)} training prompts, {len(task.eval_prompts)} held out"
    )
    env_kwargs = {"task": task, "max_new_tokens": args.max_new_tokens}
    env = agents.make_vec_env("TextGen-v0", n_envs=args.n_envs, **env_kwargs)
    model = agents.make_algo(
        "ppo", env, {"model": "default"}, n_steps=32, batch_size=128, n_epochs=4,
        learning_rate=args.learning_rate, gamma=1.0, seed=args.seed,
    )  # fmt: skip
    evaluate = lambda: sample_episodes(  # noqa: E731
        model, "TextGen-v0", env_kwargs, n=args.eval_episodes, seed=args.seed
    )
    before = evaluate()
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.csv"
        model.learn(args.timesteps, callback=MetricsCallback(metrics))
        plot_curve(metrics, Path(args.plot), title="Lesson 7: describe_reward")
    after = evaluate()
    for name, samples in (("before", before), ("after", after)):
        topic, done = parts(
            samples, dict(zip(task.eval_prompts, task.eval_references, strict=True))
        )
        print(
            f"{name}: mean reward {mean_reward(samples):.3f} (on topic {topic:.0%}, finished {done:.0%})"
        )
        for s in samples[:3]:
            print(f"  [{s.reward:.2f}] {s.prompt} «{s.completion}»")
    print(f"plot: {args.plot}")
    return {"before": mean_reward(before), "after": mean_reward(after)}


if __name__ == "__main__":
    args = parse_dataclass_args(Args, description=__doc__.splitlines()[0])
    main(args)

# + active="ipynb"
# from IPython.display import Image  # the notebook shows the lesson's figure
#
# Image(args.plot)
