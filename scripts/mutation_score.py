"""The mutation score per module from `mutmut results --all true` on stdin (`make mutate`).

The score is the share of mutants that a test failed on (killed). Mutants that made the tests
hang past mutmut's timeout (an episode that never ends, say, or a slow test on a busy machine)
are counted in their own column, not as killed: a timeout proves less than a failing assertion.
Prints one row per module, then the survivors and the timeouts, and exits 1 when a module's
killed share is below the bar (85%).

    mutmut results --all true | python scripts/mutation_score.py
"""

from __future__ import annotations

import re
import sys
from collections import Counter

BAR = 0.85


def main() -> int:
    counts: dict[str, Counter[str]] = {}
    others: list[str] = []
    for line in sys.stdin:
        found = re.match(r"\s*([\w.]+)\.x\S*?__mutmut_\d+: (\w+)", line)
        if not found:
            continue
        module, status = found.groups()
        counts.setdefault(module, Counter())[status] += 1
        if status != "killed":
            others.append(line.strip())
    if not counts:
        print("no mutants in the input: run `mutmut run` first", file=sys.stderr)
        return 1
    print("| module | mutants | killed | timeouts | survived | killed share |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for module, c in sorted(counts.items()):
        total = sum(c.values())
        print(f"| {module} | {total} | {c['killed']} | {c['timeout']} | "
              f"{total - c['killed'] - c['timeout']} | {c['killed'] / total:.1%} |")  # fmt: skip
    if others:
        print("\nnot killed (`mutmut show NAME` prints each):\n  " + "\n  ".join(others))
    return 0 if all(c["killed"] / sum(c.values()) >= BAR for c in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
