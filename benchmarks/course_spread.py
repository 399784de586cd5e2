"""The course's default runs over seeds: each lesson's numbers (what its `main` returns) for
seeds 0, 1, 2 and the seconds each run took (issue 28's teacher's notes; not CI).

Lessons 8 and 10 run several seeds inside one run (their spread is in their own output), so
they run once. Each run's printed output goes to OUT/lesson_NN_seedS.log.

    python -u benchmarks/course_spread.py --out /tmp/course_spread          # ~50 minutes
    python -u benchmarks/course_spread.py --lessons 01,02 --seeds 0,1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import time
from pathlib import Path

import numpy as np

COURSE = Path(__file__).resolve().parents[1] / "examples" / "course"
ONCE = ("08", "10")  # lessons whose one run covers several seeds


def flat(value, prefix: str = "") -> dict[str, float]:
    """{"a/b": 0.5} from {"a": {"b": 0.5}}; numbers only."""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}{k}/"))
        return out
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        return {prefix.rstrip("/"): float(value)}
    return {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lessons", default="", help="comma-separated numbers (default: all)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--out", default="course_spread")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.lessons.split(",") if args.lessons else None
    seeds = [int(s) for s in args.seeds.split(",")]
    for script in sorted(COURSE.glob("lesson_*.py")):
        number = script.stem.split("_")[1]
        if wanted and number not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(script.stem, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows: dict[str, list[float]] = {}
        seconds = []
        for seed in seeds[:1] if number in ONCE else seeds:
            changes = {"plot": str(out / f"lesson_{number}_seed{seed}.png")}
            names = {f.name for f in dataclasses.fields(module.Args)}
            if "seed" in names:
                changes["seed"] = seed
            if "out" in names:
                changes["out"] = str(out / f"lesson_{number}_grid")
            log = out / f"lesson_{number}_seed{seed}.log"
            start = time.perf_counter()
            with log.open("w") as f, contextlib.redirect_stdout(f):
                result = module.main(module.Args(**changes))
            seconds.append(time.perf_counter() - start)
            for key, value in flat(result).items():
                rows.setdefault(key, []).append(value)
            print(f"lesson {number} seed {seed}: {seconds[-1]:.0f} s", flush=True)
        print(f"\n### lesson {number}: {np.mean(seconds):.0f} s a run "
              f"({', '.join(f'{s:.0f}' for s in seconds)})\n")  # fmt: skip
        print("| value | mean | per seed |\n| --- | ---: | --- |")
        for key, values in rows.items():
            print(f"| {key} | {np.mean(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
        print(flush=True)


if __name__ == "__main__":
    main()
