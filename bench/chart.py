"""Draw ``latest.png`` from ``latest.json``: ``python chart.py RESULTS.json OUT.png``.

Needs only matplotlib; ``run.py`` runs it from ``bench/.venvs/chart`` (any interpreter will do,
as it only reads the JSON). Rows: req/s, server CPU µs per request (both per thread/worker
count, log scale, medians), then memory at 8 threads/workers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.axes import Axes


def _bars(
    ax: Axes, rows: list[dict[str, Any]], scenarios: list[str], colors: dict[str, str], metric: str, title: str
) -> None:
    width = 0.8 / max(len(colors), 1)
    for i, (server, color) in enumerate(colors.items()):
        values = {r["scenario"]: r[metric] for r in rows if r["server"] == server}
        xs = [j + (i - (len(colors) - 1) / 2) * width for j in range(len(scenarios))]
        ax.bar(xs, [values.get(s) or 0 for s in scenarios], width, label=server, color=color)
    ax.set_xticks(range(len(scenarios)), scenarios, rotation=20)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)


def draw(data: dict[str, Any], out: Path) -> None:
    """Render the figure for one results document."""
    summary = data["summary"]
    scenarios = list(dict.fromkeys(r["scenario"] for r in summary))
    palette = plt.get_cmap("tab10").colors
    colors = {name: palette[i % len(palette)] for i, name in enumerate(dict.fromkeys(r["server"] for r in summary))}
    counts = sorted({r["workers"] for r in summary})
    columns = max(len(counts), 1)
    fig = plt.figure(figsize=(5.5 * columns, 11.5), layout="constrained")
    grid = fig.add_gridspec(3, columns)
    for col, n in enumerate(counts):
        rows = [r for r in summary if r["workers"] == n]
        _bars(fig.add_subplot(grid[0, col]), rows, scenarios, colors, "requests_per_s",
              f"req/s, {n} thread(s)/worker(s) — higher is better")  # fmt: skip
        _bars(fig.add_subplot(grid[1, col]), rows, scenarios, colors, "cpu_us_per_request",
              f"server CPU µs/request, {n} thread(s)/worker(s) — lower is better")  # fmt: skip
    memory = [m for m in data["memory"] if m["rss_mb"] is not None]
    if memory:
        ax = fig.add_subplot(grid[2, :])
        xs = range(len(memory))
        shades = [colors.get(m["server"], "gray") for m in memory]
        ax.bar([x - 0.2 for x in xs], [m["rss_mb"] for m in memory], 0.4, color=shades, label="RSS (sum)")
        ax.bar([x + 0.2 for x in xs], [m["pss_mb"] or 0 for m in memory], 0.4, color=shades, alpha=0.5,
               hatch="//", label="PSS")  # fmt: skip
        ax.set_xticks(xs, [m["server"] for m in memory])
        ax.set_ylabel("MB")
        ax.set_title(f"memory with {memory[0]['workers']} threads/workers: RSS (solid), PSS (hatched)", fontsize=10)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(colors))
    machine = data["machine"]
    fig.suptitle(
        f"ftserver benchmark {data['generated']}: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{data['settings']['reps']} rep(s), medians\n{machine.get('python_ft', '')}",
        fontsize=9,
    )
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
