"""Eta-sensitivity figure of the synthetic experiments, drawn and written as
:mod:`mixce.plotting` says."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from mixce.plotting import MARKERS, RC, panels, save
from mixce.synthetic.select import CURVE_COLUMNS, NO_ETA_OBJECTIVES, objective_rank
from mixce.synthetic.tables import init_label
from mixce.tables import objective_label

#: Reference objectives drawn as horizontal lines, with their line styles.
_REFERENCE_STYLES: dict[str, str] = {"forward_kl": "--", "reverse_kl": "-."}
_REFERENCE_COLOR = "0.35"


def plot_eta_curves(
    curve: pd.DataFrame,
    out_stem: Path,
    *,
    inits: Sequence[str] | None = None,
    init_labels: Mapping[str, str] | None = None,
) -> None:
    """Mean avg. js (log y) against eta (``eta_curve``'s output), a row of panels per init
    (``inits``, default sorted), a column per vocab size; a line with +-1 sd error bars per
    objective with an eta grid (a lower bar is cut at the panel bottom), forward and reverse
    KL as labelled horizontal lines.  The grid's etas sit at evenly spaced x positions: the
    paper's grid (0.01 ... 0.99) is neither linear nor logarithmic.  ValueError: ``curve``
    is empty or lacks a column."""
    missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
    if missing:
        raise ValueError(f"curve is missing column(s): {', '.join(missing)}")
    if curve.empty:
        raise ValueError("curve is empty: nothing to plot")
    out_stem = Path(out_stem)
    init_labels = dict(init_labels or {})
    row_inits = list(inits) if inits is not None else sorted(curve["init"].astype(str).unique())
    vocabs = sorted(int(v) for v in curve["vocab_size"].unique())
    grid_objs = sorted(
        {str(o) for o in curve["objective"] if o not in NO_ETA_OBJECTIVES}, key=objective_rank
    )
    ref_objs = [o for o in _REFERENCE_STYLES if o in set(curve["objective"])]
    etas = sorted(float(e) for e in curve.loc[curve["objective"].isin(grid_objs), "eta"].unique())
    xpos = {e: i for i, e in enumerate(etas)}
    palette = sns.color_palette("colorblind", n_colors=max(len(grid_objs), 1))
    style = {
        o: {"color": palette[i], "marker": MARKERS[i % len(MARKERS)]}
        for i, o in enumerate(grid_objs)
    }
    # Small horizontal dodge (0.3 wide in all) so that overlapping error bars stay visible.
    dodge = {
        o: (i - (len(grid_objs) - 1) / 2) * (0.3 / max(len(grid_objs), 1))
        for i, o in enumerate(grid_objs)
    }

    nrows, ncols = len(row_inits), len(vocabs)
    with mpl.rc_context(RC):
        fig, axes = panels(nrows, ncols, (3.3, 2.4), 0.6)
        for r, init in enumerate(row_inits):
            label = init_labels.get(init) or init_label(init)
            for c, vocab in enumerate(vocabs):
                ax = axes[r, c]
                panel = curve[(curve["init"].astype(str) == init) & (curve["vocab_size"] == vocab)]
                ax.set_title(f"{label}, V = {vocab}")
                _draw_panel(ax, panel, ref_objs, xpos, style, dodge)
                ax.set_xticks(range(len(etas)), [f"{e:g}" for e in etas])
                if len(etas):
                    ax.set_xlim(-0.5, len(etas) - 0.5)
                ax.grid(True, which="major", axis="both", linewidth=0.4, alpha=0.4)
                if r == nrows - 1:
                    ax.set_xlabel(r"$\eta$")
                if c == 0:
                    ax.set_ylabel("avg. js (mean over seeds)")

        handles = [Line2D([], [], **style[o], label=objective_label(o)) for o in grid_objs]
        for o in ref_objs:
            label = f"{objective_label(o)} ($\\eta$ = {'1' if o == 'forward_kl' else '0'})"
            line = Line2D(
                [], [], color=_REFERENCE_COLOR, linestyle=_REFERENCE_STYLES[o], label=label
            )
            handles.append(line)
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(handles), 6),
            frameon=False,
        )
        save(fig, out_stem)


def _draw_panel(
    ax: Axes,
    panel: pd.DataFrame,
    ref_objs: Sequence[str],
    xpos: Mapping[float, int],
    style: Mapping[str, dict],
    dodge: Mapping[str, float],
) -> None:
    """Draw one (init, vocab) panel on ``ax`` (log y); ``style``: each grid objective's."""
    means = panel["avg_js_mean"].to_numpy(dtype=float)
    sds = np.nan_to_num(panel["avg_js_sd"].to_numpy(dtype=float), nan=0.0)
    positive = means[np.isfinite(means) & (means > 0)]
    if positive.size == 0:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
        return
    lows = means - sds
    lo_candidates = np.concatenate([positive, lows[np.isfinite(lows) & (lows > 0)]])
    ymin = float(lo_candidates.min()) / 1.6
    ymax = float(np.nanmax(means + sds)) * 1.6
    if not math.isfinite(ymax) or ymax <= ymin:
        ymax = ymin * 10

    for obj in style:
        d = panel[panel["objective"] == obj].sort_values("eta")
        d = d[np.isfinite(d["avg_js_mean"]) & (d["avg_js_mean"] > 0)]
        if d.empty:
            continue
        x = np.array([xpos[float(e)] for e in d["eta"]], dtype=float) + dodge[obj]
        y = d["avg_js_mean"].to_numpy(dtype=float)
        sd = np.nan_to_num(d["avg_js_sd"].to_numpy(dtype=float), nan=0.0)
        lower = np.minimum(sd, y - ymin)  # cut at the panel bottom on a log axis
        ax.errorbar(
            x,
            y,
            yerr=np.vstack([lower, sd]),
            **style[obj],
            capsize=2,
            elinewidth=0.8,
            label=objective_label(obj),
        )
    for obj in ref_objs:
        d = panel[panel["objective"] == obj]
        vals = d["avg_js_mean"].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size == 0:
            continue
        ax.axhline(
            float(vals.mean()),
            color=_REFERENCE_COLOR,
            linestyle=_REFERENCE_STYLES[obj],
            linewidth=1.0,
            label=objective_label(obj),
        )
    ax.set_yscale("log")
    ax.set_ylim(ymin, ymax)
