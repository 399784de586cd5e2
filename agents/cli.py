"""`textgen`: train, evaluate and sample transformer policies on TextGen environments.

    textgen train --algo ppo --timesteps 2048 --out runs/smoke     # or: --config run.yaml
    textgen train --resume runs/smoke --timesteps 4096             # continue from the checkpoint
    textgen eval runs/smoke                                        # mean reward on eval prompts
    textgen generate runs/smoke --prompt "The acting was"

The settings live in `agents.config` (`TrainConfig`), the work in `agents.training`; this module
only parses the command line. Errors that gym-textgen raises on purpose (bad settings, a failing
scorer, an unusable run folder) print one line and exit with status 2; `--debug` shows their
traceback. Anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from agents.config import TrainConfig, load_config
from agents.dataclass_cli import ArgumentParser, add_dataclass_flags, json_value
from gym_textgen.errors import TextGenError, TextGenValueError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gym-textgen")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expects an integer >= 1, got {value}")
    return value


def parser() -> ArgumentParser:
    """The `textgen` command line."""
    p = ArgumentParser(prog="textgen", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"textgen (gym-textgen) {_version()}")
    debug = ArgumentParser(add_help=False)  # accepted before or after the command
    debug.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks of expected errors too",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors too")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", parents=[debug], help="train a policy (a new run, or --resume one)")
    t.add_argument("--config", type=Path, help="a YAML file with TrainConfig keys")
    t.add_argument(
        "--resume",
        type=Path,
        help="a run folder to continue from its last checkpoint (only --timesteps, "
        "--checkpoint-every, --device and --progress-bar may change)",
    )
    add_dataclass_flags(t, TrainConfig)
    e = sub.add_parser(
        "eval",
        parents=[debug],
        help="mean reward of a run's policy (or of a model name, untrained) on held-out prompts",
    )
    e.add_argument(
        "run", help="a run folder, or a model name/folder to evaluate untrained (the baseline)"
    )
    e.add_argument("--episodes", type=positive_int)
    e.add_argument("--env-id", help="for a model name: the env (default TextGen-v0)")
    e.add_argument("--env-kwargs", type=json_value, help="for a model name: JSON env arguments")
    e.add_argument("--json", type=Path, help="also write the figures and samples here")
    e.add_argument(
        "--split",
        choices=["train", "validation", "test", "eval"],
        default="test",
        help="the prompts to score: the held-out test ones (eval: the same), the held-out "
        "validation ones (for choosing settings), or the training ones",
    )
    e.add_argument("--seed", type=int, default=0)
    g = sub.add_parser("generate", parents=[debug], help="complete prompts with a run's policy")
    g.add_argument("run", type=Path)
    g.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    g.add_argument("-n", type=positive_int, default=1, help="samples per prompt")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--greedy", action="store_true", help="argmax instead of sampling")
    b = sub.add_parser(
        "bench",
        parents=[debug],
        help="algorithms x tasks x seeds: results.csv/json/md and curves.png (resumable)",
    )
    b.add_argument(
        "action",
        nargs="?",
        choices=["run", "compare"],
        default="run",
        help="run (the default) a grid, or compare RUN_DIR's algorithms with published results",
    )
    b.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="compare: a grid's folder")
    b.add_argument(
        "--suite",
        metavar="NAME",
        help="run a versioned suite's protocol (agents/suites/NAME.yml: v1): its tasks, budgets, "
        "model, envs, evaluation and seeds; --algos, --tasks (a subset), --seeds, --quick, "
        "--hyperparams, --out and --ray may be given with it",
    )
    b.add_argument(
        "--against",
        metavar="RESULTS",
        help="compare: a published suite (suite-v1: results/suite-v1/) or another grid's folder "
        "(./suite-v1 for a folder of that name)",
    )
    b.add_argument(
        "--algos",
        type=comma_list,
        help="comma-separated, from: " + ", ".join(bench_algos()) + ", or your own by import "
        "path (module:Name, file.py:Name): an SB3 algorithm class or a training function",
    )
    b.add_argument("--tasks", type=comma_list, help="comma-separated task names or files")
    b.add_argument("--seeds", type=positive_int, help="seeds 0..N-1 per algorithm and task")
    b.add_argument("--timesteps", type=positive_int, help="environment steps per cell")
    b.add_argument("--model", help="policy LM (default: the shipped default model)")
    b.add_argument("--n-envs", type=positive_int)
    b.add_argument("--eval-episodes", type=positive_int)
    b.add_argument(
        "--eval-split",
        choices=["test", "validation"],
        help="the held-out prompts every cell is scored on (default test; validation for a "
        "tuning grid, which must never see the test prompts)",
    )
    b.add_argument(
        "--learning-rate", type=float, help="every cell's (default: each algorithm's own)"
    )
    b.add_argument(
        "--hyperparams",
        metavar="FOLDER",
        help="a folder of <algo>.yml files (rl-zoo3's layout: default, then per-task entries) "
        "read before the shipped ones in agents/hyperparams/",
    )
    b.add_argument(
        "--out",
        help="the grid's folder (default: bench; with --suite: bench-VERSION, bench-VERSION-quick "
        "with --quick); compare: the folder for compare.md (default: RUN_DIR/compare)",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="a small grid that checks the pipeline: random, ppo and reinforce-rloo on "
        "target_tokens and movie_sentiment, 2 seeds at 2,048 steps (under 2 minutes on 2 cores); "
        "with --suite, the suite's quick protocol (v1: its 6 algorithms x 6 tasks x 1 seed at "
        "1/8 of each budget and 8 episodes: 36 cells, about 2 minutes)",
    )
    b.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run cells as Ray tasks: a new local Ray, or the cluster at ADDRESS",
    )
    return p


def split_commas(text: str) -> list[str]:
    """Split on commas, except inside the brackets and quotes of an item's `?key=value` part, so
    a task string's settings keep theirs: `"reasoning_gym:basic_arithmetic?operators=('+','-'),
    copy"` -> 2 items (an apostrophe in a file name before any `?` is just a character)."""
    items, depth, quote, query, start = [], 0, "", False, 0
    for i, ch in enumerate(text):
        if not query:
            query = ch == "?"
            if ch == ",":
                items.append(text[start:i])
                start = i + 1
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start, query = i + 1, False
    if quote or depth:  # unbalanced: the brackets cannot be settings, so split plainly
        return [t.strip() for t in text.split(",") if t.strip()]
    return [t.strip() for t in [*items, text[start:]] if t.strip()]


def comma_list(text: str) -> list[str]:
    items = split_commas(text)
    if not items:
        raise argparse.ArgumentTypeError(f"expects a comma-separated list, got {text!r}")
    return items


def bench_algos() -> list[str]:
    from agents.bench import bench_names

    return bench_names()


def run_command(args) -> None:
    from agents import commands, training

    if args.command == "train":
        overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
        if args.resume is not None:
            if args.config is not None:
                raise commands.RunError("--resume takes the run's own config; drop --config")
            cfg = training.resume_config(args.resume, overrides)
        else:
            cfg = load_config(args.config, **overrides)
        training.train(cfg, resume=args.resume)
    elif args.command == "eval":
        commands.evaluate_run(
            args.run,
            args.episodes,
            args.split,
            args.seed,
            env_id=args.env_id,
            env_kwargs=args.env_kwargs,
            json_path=args.json,
        )
    elif args.command == "generate":
        commands.generate(args.run, args.prompt, args.n, args.seed, args.greedy)
    elif args.command == "bench":
        bench(args)


def bench(args: argparse.Namespace) -> None:
    """`textgen bench`: run a grid (a suite's protocol with --suite), or compare one."""
    from agents.bench import QUICK, BenchConfig, run_bench

    if args.action == "compare":
        from agents.bench import compare

        if not args.run_dir or not args.against:
            raise TextGenValueError(
                "Expects `textgen bench compare RUN_DIR --against suite-v1` (a grid's folder and "
                f"the published results), got RUN_DIR={args.run_dir!r}, --against={args.against!r}"
            )
        unused = [f"--{n.replace('_', '-')}" for n in ("suite", "algos", "tasks", "seeds",
                  "timesteps", "model", "n_envs", "eval_episodes", "eval_split", "learning_rate",
                  "hyperparams", "ray") if getattr(args, n) is not None] + (
                  ["--quick"] if args.quick else [])  # fmt: skip
        if unused:
            raise TextGenValueError(
                f"textgen bench compare reads finished grids; it takes no {unused} (only RUN_DIR, "
                "--against and --out, the folder for compare.md: default RUN_DIR/compare)"
            )
        print(compare(args.run_dir, args.against, args.out).read_text())
        return
    if args.run_dir is not None or args.against is not None:
        raise TextGenValueError(
            "RUN_DIR and --against belong to `textgen bench compare`; got them for a run"
        )
    given = {name: getattr(args, name) for name in ("algos", "tasks", "seeds", "timesteps",
             "model", "n_envs", "eval_episodes", "eval_split", "learning_rate", "hyperparams",
             "out") if getattr(args, name) is not None}  # fmt: skip
    if args.suite is not None:
        from agents.bench import load_suite

        fixed = sorted(set(given) & {"timesteps", "model", "n_envs", "eval_episodes",
                                     "learning_rate"})  # fmt: skip
        if fixed:
            raise TextGenValueError(
                f"--suite {args.suite} fixes the protocol; drop {['--' + f.replace('_', '-') for f in fixed]} "
                "(tune an algorithm through --hyperparams, which the grid records)"
            )
        suite = load_suite(args.suite)
        given.setdefault("out", f"bench-{suite.version}" + ("-quick" if args.quick else ""))
        cfg = suite.bench_config(quick=args.quick, **given)
    else:
        cfg = BenchConfig(**{**(dict(QUICK) if args.quick else {}), **given})
    run_bench(cfg, ray_address=args.ray or None, use_ray=args.ray is not None)


def compare_parser() -> ArgumentParser:
    """`textgen bench compare`'s own command line, for its --help (the bench parser reads it)."""
    p = ArgumentParser(
        prog="textgen bench compare",
        description="Place RUN_DIR's algorithms beside published results of the same suite: "
        "normalised IQM, optimality gap and mean with 95% CIs, P(X > Y), performance profiles "
        "(RUN_DIR/compare/compare.md and profiles.png).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished grid's folder (--suite)")
    p.add_argument(
        "--against",
        metavar="RESULTS",
        required=True,
        help="a published suite (suite-v1: results/suite-v1/ of a source checkout) or another "
        "grid's folder (./suite-v1 for a folder of that name)",
    )
    p.add_argument("--out", help="the folder for compare.md (default: RUN_DIR/compare)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of expected errors too")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    words = [a for a in argv if a != "--debug"]
    if words[:2] == ["bench", "compare"] and {"-h", "--help"} & set(words[2:]):
        compare_parser().print_help()
        return 0
    args = parser().parse_args(argv)
    try:
        run_command(args)
    except TextGenError as e:
        if args.debug:
            raise
        print(f"textgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
