"""The mutation score per module from `mutmut results --all true` on stdin (`make mutate`).

A mutant counts as caught when a test failed on it (killed) or it made the tests hang (timeout:
an episode that never ends, say); the score is caught / all. Prints one row per module, then
the survivors, and exits 1 when a module scores below the bar (85%).

    mutmut results --all true | python scripts/mutation_score.py
"""

from __future__ import annotations

import re
import sys
from collections import Counter

BAR = 0.85


def main() -> int:
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    survivors = []
    for line in sys.stdin:
        found = re.match(r"\s*([\w.]+)\.x\S*?__mutmut_\d+: (\w+)", line)
        if not found:
            continue
        module, status = found.groups()
        total[module] += 1
        if status in ("killed", "timeout"):
            caught[module] += 1
        else:
            survivors.append(line.strip())
    if not total:
        print("no mutants in the input: run `mutmut run` first", file=sys.stderr)
        return 1
    print("| module | mutants | caught | score |\n| --- | ---: | ---: | ---: |")
    for module in sorted(total):
        print(
            f"| {module} | {total[module]} | {caught[module]} | {caught[module] / total[module]:.1%} |"
        )
    if survivors:
        print("\nsurvivors (`mutmut show NAME` prints each):\n  " + "\n  ".join(survivors))
    return 0 if all(caught[m] / total[m] >= BAR for m in total) else 1


if __name__ == "__main__":
    sys.exit(main())
