"""Draw monthly cost against monthly volume for each option, break-evens marked.

The only module in the planner that writes a file. matplotlib is imported
inside the function with the non-interactive Agg backend so importing the
planner never opens a display or slows the CLI down.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybridgate.extras import require
from hybridgate.planner.tco import (
    ApiOption,
    SelfHostOption,
    TcoReport,
    Workload,
    cost_curve,
)


def volume_range(w: Workload, report: TcoReport) -> tuple[float, float]:
    """From well below to well above both the workload and every break-even point."""
    points = [w.requests_per_month] + [
        v for b in report.break_evens for v in (b.first_volume, b.always_volume) if v
    ]
    points = [p for p in points if p > 0] or [1000.0]
    lo, hi = min(points) / 20, max(points) * 20
    return max(lo, 1.0), max(hi, lo * 10)


def plot_tco(
    path: str | Path,
    w: Workload,
    apis: Sequence[ApiOption],
    self_hosts: Sequence[SelfHostOption],
    report: TcoReport,
    *,
    points: int = 400,
) -> Path:
    matplotlib = require("matplotlib", "plots")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = volume_range(w, report)
    vols = np.geomspace(lo, hi, points)
    extra = sorted({v for b in report.break_evens for v in (b.first_volume, b.always_volume) if v})
    vols = np.unique(np.concatenate([vols, np.array([*extra, w.requests_per_month])]))
    curves = cost_curve(w, apis, self_hosts, list(vols))

    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, ys) in enumerate(curves.items()):
        color = colors[i % len(colors)]
        if any(a.name == name for a in apis):
            ax.plot(vols, ys, "-", color=color, label=name, linewidth=1.8)
        else:
            ax.step(vols, ys, "--", where="post", color=color, label=name, linewidth=1.8)
    legend_lines: list[str] = []
    for b in report.break_evens:
        if b.first_volume is None:
            continue
        api = next(a for a in apis if a.name == b.api)
        y = b.first_volume * api.cost_per_request(w)
        label = str(len(legend_lines) + 1)
        ax.plot([b.first_volume], [y], "o", color="black", markersize=6, zorder=5)
        ax.annotate(
            label,
            (b.first_volume, y),
            textcoords="offset points",
            xytext=(-4, 6),
            fontsize=8,
            fontweight="bold",
        )
        line = f"{label}: {b.self_host} = {b.api} at {b.first_volume:,.0f}"
        if b.always_volume is not None and b.always_volume > b.first_volume * 1.0001:
            ya = b.always_volume * api.cost_per_request(w)
            ax.plot([b.always_volume], [ya], "o", mfc="none", color="black", markersize=7)
            line += f" (cheaper at every volume above {b.always_volume:,.0f})"
        legend_lines.append(line)
    if legend_lines:
        ax.text(
            0.99,
            0.02,
            "break-even, requests/month\n" + "\n".join(legend_lines),
            transform=ax.transAxes,
            fontsize=7,
            ha="right",
            va="bottom",
            multialignment="left",
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "edgecolor": "grey"},
        )
    ax.axvline(w.requests_per_month, color="grey", linestyle=":", linewidth=1)
    ax.text(
        w.requests_per_month,
        ax.get_ylim()[1],
        " workload",
        color="grey",
        fontsize=8,
        va="top",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(
        f"requests per month ({w.input_tokens:g} in + {w.output_tokens:g} out tokens each)"
    )
    ax.set_ylabel("USD per month")
    ax.set_title(
        "Monthly cost by volume: APIs (solid), self-hosting (dashed)\n"
        "● first break-even   ○ cheaper at every volume above",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
