"""What a cell ran on, recorded in its result: bitwise equality of a cell's numbers holds on one CPU
and software stack only (float32 kernels differ between instruction sets), so a reproduction on
another machine is judged statistically (`benchmarks/suite_reproduce.py --task`), and a reader
of the results can see which machines made them.

>>> facts = machine()
>>> sorted(facts) == sorted(["cpu", "isa", "cpu_flags", "torch", "threads", "blas", "python",
...                          "numpy", "platform", "gpu", "kernel_env"])
True
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

#: the CPU features whose kernels change float results (vector widths, fused multiply-add)
FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx_vnni",
         "amx_tile", "amx_bf16", "asimd", "sve")  # fmt: skip
#: environment variables that choose among those kernels
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # fmt: skip


def _cpuinfo() -> tuple[str, list[str]]:
    """The CPU's model name and its flags among `FLAGS` (Linux: /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return name, []
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    if found:
        name = found.group(1).strip()
    for line in re.findall(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)[:1]:
        flags = set(line.split())
    return name, [f for f in FLAGS if f in flags]


def machine() -> dict[str, Any]:
    """The facts of this machine that a cell's float results depend on."""
    import numpy as np
    import torch as th

    cpu, flags = _cpuinfo()
    blas = re.search(r"BLAS_INFO=(\w+)", th.__config__.show())
    return {
        "cpu": cpu,
        "isa": th.backends.cpu.get_cpu_capability(),
        "cpu_flags": flags,
        "torch": th.__version__,
        "threads": th.get_num_threads(),
        "blas": blas.group(1) if blas else "unknown",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "gpu": th.cuda.get_device_name(0) if th.cuda.is_available() else None,
        "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
    }


def describe(facts: dict[str, Any]) -> str:
    """One line for a table: `Intel Xeon ... (AVX512), torch 2.13.0+cpu, 1 thread, mkl`."""
    threads = f"{facts['threads']} thread{'s' if facts['threads'] != 1 else ''}"
    kernels = ", ".join(
        f"{k}={v}" for k, v in facts.get("kernel_env", {}).items() if "THREADS" not in k
    )
    return (f"{facts['cpu']} ({facts['isa']}), torch {facts['torch']}, {threads}, {facts['blas']}"
            + (f", {kernels}" if kernels else ""))  # fmt: skip
