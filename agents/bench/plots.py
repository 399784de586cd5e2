"""The bench's figures: learning curves per task and rliable's performance profiles."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.stats import _rliable


def plot_curves(results: list[dict[str, Any]], tasks: list[str], path: Path) -> None:
    """One panel per task: each algorithm's mean curve over seeds, band = lowest..highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.callbacks import atomic_write_bytes

    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), dpi=100, squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for algo in dict.fromkeys(r["algo"] for r in results):
            cells = [r for r in results if r["task"] == task and r["algo"] == algo]
            curves = [np.asarray(r["curve"], dtype=np.float64) for r in cells if r["curve"]]
            if not curves:
                if cells and algo == "random":  # the untrained baseline: its held-out reward
                    ax.axhline(
                        np.mean([r["after"] for r in cells]),
                        ls="--",
                        lw=1,
                        label="random (held-out)",
                        color="gray",
                    )
                continue
            end = min(c[-1, 0] for c in curves)
            grid = np.linspace(max(c[0, 0] for c in curves), end, 50)
            ys = np.array([np.interp(grid, c[:, 0], c[:, 1]) for c in curves])
            (line,) = ax.plot(grid, ys.mean(0), label=algo)
            ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("reward")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    if handles:
        axes[0][-1].legend(handles, labels, loc="best", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plot_profiles(matrices: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Performance profiles (rliable) of the normalised scores, written to `path` (png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from rliable import plot_utils

    from agents.callbacks import atomic_write_bytes

    rly, _ = _rliable()
    top = max(1.0, max(float(m.max()) for m in matrices.values()))
    taus = np.linspace(min(0.0, min(float(m.min()) for m in matrices.values())), top, 81)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.random.seed(0)  # create_performance_profile bootstraps from numpy's global state
        profiles, cis = rly.create_performance_profile(matrices, taus, reps=200)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        palette = plt.get_cmap("tab10").colors
        colors = {a: palette[k % len(palette)] for k, a in enumerate(matrices)}
        plot_utils.plot_performance_profiles(
            profiles, taus, performance_profile_cis=cis, ax=ax, colors=colors,
            xlabel=r"normalised score $\tau$", ylabel=r"fraction of runs with score > $\tau$",
        )  # fmt: skip
        lines = [Line2D([0], [0], color=colors[a], lw=2) for a in matrices]
        ax.legend(lines, list(matrices), loc="upper right", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
