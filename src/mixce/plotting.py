"""What the paper's figures share: a paper-column style (panels about 3.3 in wide), figures
drawn on the Agg canvas directly (no pyplot state: headless, and the caller's matplotlib
backend is untouched), and reproducible ``<stem>.pdf`` and ``<stem>.png`` written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mixce.io import atomic_output

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 8,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "svg.hashsalt": "mixce",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def panels(
    nrows: int, ncols: int, panel_size: tuple[float, float], legend_height: float
) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows`` x ``ncols`` panels (axes as a 2-D array) and room for a legend."""
    fig = Figure(
        figsize=(panel_size[0] * ncols, panel_size[1] * nrows + legend_height),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig: Figure, stem: str | Path) -> None:
    """``stem``.pdf (no creation date, so reruns give the same bytes) and ``stem``.png."""
    stem = Path(stem)
    with atomic_output(stem.with_name(stem.name + ".pdf"), "wb") as handle:
        fig.savefig(handle, format="pdf", metadata={"CreationDate": None})
    with atomic_output(stem.with_name(stem.name + ".png"), "wb") as handle:
        fig.savefig(handle, format="png", dpi=200)


def no_data(ax: Axes, text: str = "no data") -> None:
    """Say so in an empty panel."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
