"""Every reasoning-gym dataset as a small task, graded on malformed answers: nothing escapes.

For each dataset reasoning-gym registers (`reasoning_gym.factory.DATASETS`), builds
`reasoning_gym:<dataset>?n_train=..&n_eval=..` with the dataset's default settings, checks that
its held-out questions are distinct and unseen in training and that the task's name rebuilds it,
then scores malformed answers ("", "tw", "???", "1 2 3", a very long string, "None", unicode,
bare JSON values) against its first entries through `gym_textgen.scorers.score_batch`, the env's
path. An exception escaping the scorer is a failure (exit status 1); an answer the library's
grader raises on is counted in the scorer's `grader_errors` and scores 0. Datasets that cannot
be made with their default settings (offline, or needing settings: `composite`) are listed, not
failures. Prints a markdown table: "grader errors" counts the malformed answers the grader
raised on (and names them), "mean malformed" is their mean score, "own answer" the mean score of
the entries' own answers through the scorer (below 1 where the answer spans lines, since the
scorer grades the completion's first line, or where an entry has no single answer). A fast
subset runs in tests/test_reasoning_gym.py.

    python benchmarks/reasoning_gym_sweep.py                        # every dataset (~1 min)
    python benchmarks/reasoning_gym_sweep.py --datasets boxnet,gcd  # a few
"""

from __future__ import annotations

import argparse
import contextlib
import io
import signal
import sys
import time
import warnings

import reasoning_gym

from gym_textgen import make_task
from gym_textgen.errors import TextGenValueError
from gym_textgen.scorers import make_scorer, score_batch

MALFORMED = [
    "",
    "tw",
    "???",
    "1 2 3",
    "the answer is " * 400,  # a very long string
    "None",
    "ünï©ødé ✓ 数字 🙂",
    "1",
    "[1]",
    '{"a": 1}',
    "{}",
    "null",
    "1e999",
    "1/0",
    "[[",
    "0" * 500,
]


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout


def sweep_one(dataset: str, n_train: int, n_eval: int, entries: int) -> dict[str, str]:
    """One table row; raises only when the scorer lets an exception escape."""
    row = {"dataset": dataset}
    start = time.perf_counter()
    spec = f"reasoning_gym:{dataset}?n_train={n_train}&n_eval={n_eval}"
    quiet = io.StringIO()  # a few generators print (bf, ...)
    try:
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = make_task(spec)
            rebuilt = make_task(task.name) == task
    except (TextGenValueError, Timeout) as e:
        row.update(created=f"no: {type(e).__name__}: {str(e)[:90]}", time=_since(start))
        return row
    except Exception as e:  # a dataset that needs the network or data it cannot find
        row.update(created=f"no ({type(e).__name__}: {str(e)[:90]})", time=_since(start))
        return row
    train, held = set(task.prompts), task.eval_prompts
    assert len(set(held)) == len(held) == n_eval and not train & set(held), dataset
    row["created"] = "yes"
    row["rebuilds"] = "yes" if rebuilt else "NO (not deterministic)"
    scorer = make_scorer(task.scorer)
    refs = list(task.references[:entries])
    completions = [m for _ in refs for m in MALFORMED]
    references = [r for r in refs for _ in MALFORMED]
    with contextlib.redirect_stdout(quiet), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rewards, _ = score_batch(
            scorer, [task.prompts[0]] * len(completions), completions, references
        )
        own, _ = score_batch(
            scorer, task.prompts[: len(refs)], [r["answer"] or "" for r in refs], refs
        )
    assert ((rewards >= 0) & (rewards <= 1)).all(), dataset
    errors = scorer.grader_errors[dataset]
    warned = sum(dataset in str(w.message) for w in caught)
    assert warned == (errors > 0), (dataset, errors, warned)  # warned once when any
    row["graded"] = str(len(completions))
    row["grader errors"] = f"{errors}" + (f" ({_raisers(scorer, dataset, refs)})" if errors else "")
    row["mean malformed"] = f"{rewards.mean():.3f}"
    row["own answer"] = f"{own.mean():.2f}"
    row["time"] = _since(start)
    return row


def _raisers(scorer, dataset: str, refs: list) -> str:
    """Which malformed answers the library's grader raises on, and what it raises."""
    grade = reasoning_gym.get_score_answer_fn(dataset)
    kinds: dict[str, list[str]] = {}
    for answer in MALFORMED:
        for entry in refs:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    grade(answer, entry)
            except Exception as e:
                shown = answer if len(answer) < 12 else answer[:8] + "..."
                kinds.setdefault(type(e).__name__, [])
                if repr(shown) not in kinds[type(e).__name__]:
                    kinds[type(e).__name__].append(repr(shown))
    return "; ".join(f"{k} on {', '.join(v)}" for k, v in kinds.items())


def _since(start: float) -> str:
    return f"{time.perf_counter() - start:.3f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="", help="comma-separated names (default: all)")
    parser.add_argument("--n-train", type=int, default=4)
    parser.add_argument("--n-eval", type=int, default=2)
    parser.add_argument("--entries", type=int, default=2, help="entries graded per dataset")
    parser.add_argument("--timeout", type=int, default=120, help="seconds per dataset")
    args = parser.parse_args()
    names = args.datasets.split(",") if args.datasets else sorted(reasoning_gym.factory.DATASETS)
    version = getattr(reasoning_gym, "__version__", "?")
    print(f"reasoning-gym (reports __version__ {version}): {len(names)} datasets")
    print(f"malformed answers: {len(MALFORMED)} per entry, {args.entries} entries per dataset\n")
    signal.signal(signal.SIGALRM, _alarm)
    rows, escaped = [], []
    total = time.perf_counter()
    for name in names:
        signal.alarm(args.timeout)
        try:
            rows.append(sweep_one(name, args.n_train, args.n_eval, args.entries))
        except Timeout:
            rows.append({"dataset": name, "created": f"timeout after {args.timeout} s"})
        except Exception as e:  # escaped the scorer, or a held-out/warning check failed
            escaped.append(name)
            rows.append({"dataset": name, "created": "yes", "grader errors": f"ESCAPED {e!r:.120}"})
        finally:
            signal.alarm(0)
    columns = ["dataset", "created", "rebuilds", "graded", "grader errors", "mean malformed"]
    columns += ["own answer", "time"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(c, "") for c in columns) + " |")
    not_made = [r["dataset"] for r in rows if r.get("created") != "yes"]
    raising = [r["dataset"] for r in rows if r.get("grader errors", "0")[0] not in "0E"]
    print(f"\n{len(rows) - len(not_made)} of {len(rows)} datasets made; not made: {not_made}")
    print(f"graders that raise on malformed answers (counted, scored 0): {raising}")
    print(f"exceptions that escaped the scorer: {escaped or 'none'}")
    print(f"total {time.perf_counter() - total:.1f} s")
    return 1 if escaped else 0


if __name__ == "__main__":
    sys.exit(main())
