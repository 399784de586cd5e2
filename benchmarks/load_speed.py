"""Model load time: `load_model` against reading the same safetensors weights (same run).

The default model ships as safetensors; SmolLM2-135M is converted once from its GGUF and then
loads from a safetensors cache. Either way `load_model` should cost little more than reading the
weights: the ratio printed is load_model time / raw `safetensors.torch.load_file` time.

    python benchmarks/load_speed.py            # + SmolLM2-135M when installed
    python benchmarks/load_speed.py --quick    # the default model only
"""

from __future__ import annotations

import argparse

from _common import best_of, markdown_table, models_to_run
from safetensors.torch import load_file

from gym_textgen.models import load_model, resolve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the default model only")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    rows = []
    for name in models_to_run(a.quick):
        load_model(name)  # converts (once) and warms the imports
        files = sorted(resolve(name).glob("*.safetensors"))
        raw = best_of(lambda files=files: [load_file(f) for f in files], a.repeats)
        load = best_of(lambda name=name: load_model(name), a.repeats)
        rows.append([name, f"{load * 1000:.0f} ms", f"{raw * 1000:.0f} ms", f"{load / raw:.2f}"])
    print(markdown_table(["model", "load_model", "read weights", "load / read"], rows))


if __name__ == "__main__":
    main()
