"""Figures 2 and 4 of the paper (the GPT-2 track), drawn and written (``<out_stem>.pdf`` and
``.png``) as :mod:`mixce.plotting` says."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from mixce.gpt2.tables import SAMPLES_COLUMNS
from mixce.plotting import MARKERS, RC, no_data, panels, save
from mixce.tables import dataset_label, model_label

log = logging.getLogger(__name__)

_TOL = 1e-6

#: Sources of Figure 2, in drawing order, with their legend labels.
FIGURE2_SOURCES = {"human": "human", "unbiased": "unbiased sample", "greedy": "greedy"}


# --------------------------------------------------------------------------- Figure 4


def figure4_data(samples: pd.DataFrame, lengths: Sequence[int]) -> pd.DataFrame:
    """Figure 4's points: dev MAUVE (unbiased) of MLE (at eta = 1) and MixCE trained on the
    train size with the most rows, per dataset, model, eta and length cut; mean and std
    (``ddof=1``) over seeds, a seed's rows averaged first.  A length without its
    ``mauve_len{L}`` column has no rows (a logged warning)."""
    columns = ["dataset", "model", "eta", "length", "mauve_mean", "mauve_std", "n_seeds"]
    if samples is None or samples.empty:
        log.warning("Figure 4: the samples input is empty")
        return pd.DataFrame(columns=columns)
    missing = [c for c in SAMPLES_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"samples is missing column(s): {', '.join(missing)}")
    dev = samples[
        (samples["split"].astype(str) == "dev")
        & (samples["decoding"].astype(str) == "unbiased")
        & samples["objective"].astype(str).isin(["mle", "mixce"])
    ].copy()
    sizes = pd.to_numeric(dev["n_train"], errors="coerce")
    if sizes.notna().any():
        n_train = int(sizes.value_counts().idxmax())
        if sizes.nunique() > 1:
            log.info("Figure 4: using the models trained on %d texts", n_train)
        dev = dev[np.isclose(sizes.to_numpy(dtype=float), float(n_train), rtol=0, atol=_TOL)]
    dev["eta"] = np.where(
        dev["objective"].astype(str) == "mle", 1.0, pd.to_numeric(dev["eta"], errors="coerce")
    )
    dev = dev[np.isfinite(dev["eta"].to_numpy(dtype=float))]
    records = []
    for L in lengths:
        col = f"mauve_len{int(L)}"
        if col not in dev.columns:
            log.warning("Figure 4: samples has no column %s; length %d left out", col, int(L))
            continue
        d = dev[["dataset", "model", "eta", "seed", col]].copy()
        d[col] = pd.to_numeric(d[col], errors="coerce")
        d["eta"] = d["eta"].round(6)
        per_seed = d.groupby(["dataset", "model", "eta", "seed"], as_index=False)[col].mean()
        per_seed = per_seed.dropna(subset=[col])
        for (ds, m, eta), g in per_seed.groupby(["dataset", "model", "eta"]):
            vals = g[col].to_numpy(dtype=float)
            std = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            records.append((ds, m, float(eta), int(L), float(vals.mean()), std, len(vals)))
    out = pd.DataFrame(records, columns=columns)
    out = out.sort_values(["dataset", "model", "length", "eta"], kind="stable")
    return out.reset_index(drop=True)


def figure4(
    samples: pd.DataFrame,
    lengths: Sequence[int],
    datasets: Sequence[str],
    models: Sequence[str],
    out_stem: str | Path,
) -> pd.DataFrame:
    """Figure 4: dev MAUVE against eta, a row of panels per dataset, a column per model, a
    line per length cut with +-1 std error bars; returns :func:`figure4_data`."""
    data = figure4_data(samples, lengths)
    lengths = [int(L) for L in lengths]
    palette = sns.color_palette("colorblind", n_colors=max(len(lengths), 1))
    style = {
        L: {"color": palette[i], "marker": MARKERS[i % len(MARKERS)]} for i, L in enumerate(lengths)
    }
    nrows, ncols = max(len(datasets), 1), max(len(models), 1)
    with mpl.rc_context(RC):
        fig, axes = panels(nrows, ncols, (3.3, 2.3), 0.4)
        for r, ds in enumerate(datasets):
            for c, m in enumerate(models):
                ax = axes[r, c]
                ax.set_title(f"{dataset_label(ds)}, {model_label(m)}")
                panel = data[(data["dataset"] == ds) & (data["model"] == m)]
                if panel.empty:
                    no_data(ax)
                for L in lengths:
                    d = panel[panel["length"] == L].sort_values("eta")
                    if d.empty:
                        continue
                    ax.errorbar(
                        d["eta"],
                        d["mauve_mean"],
                        yerr=np.nan_to_num(d["mauve_std"].to_numpy(dtype=float), nan=0.0),
                        **style[L],
                        capsize=2,
                        elinewidth=0.8,
                    )
                ax.set_xlim(-0.05, 1.05)
                ax.set_ylim(0.0, 1.05)
                ax.set_xticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
                ax.grid(True, linewidth=0.4, alpha=0.4)
                if r == nrows - 1:
                    ax.set_xlabel(r"mixing ratio $\eta$ (1 = MLE)")
                if c == 0:
                    ax.set_ylabel("dev MAUVE")
        handles = [Line2D([], [], **style[L], label=f"{L}") for L in lengths]
        if handles:
            fig.legend(
                handles=handles,
                loc="outside lower center",
                ncol=len(handles),
                frameon=False,
                title="max generation length (tokens)",
                title_fontsize=8,
            )
        save(fig, out_stem)
    return data


# --------------------------------------------------------------------------- Figure 2


def figure2(
    nll: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    datasets: Sequence[str],
    out_stem: str | Path,
) -> pd.DataFrame:
    """Figure 2: density histograms of sequence- and token-level NLL, a column per dataset.
    ``nll``: ``(dataset, source)`` -> (per text mean token NLL, token NLLs) under the
    pretrained model (missing or empty: left out).  A panel's 50 bins span its finite data.
    Returns n, mean, median and std of what is drawn per dataset, source and level."""
    levels = (("sequence", "sequence-level NLL (mean per text)"), ("token", "token-level NLL"))
    colors = dict(zip(FIGURE2_SOURCES, sns.color_palette("colorblind", n_colors=3), strict=True))
    records = []
    ncols = max(len(datasets), 1)
    with mpl.rc_context(RC):
        fig, axes = panels(2, ncols, (3.3, 2.2), 0.4)
        for c, ds in enumerate(datasets):
            for r, (level, xlabel) in enumerate(levels):
                ax = axes[r, c]
                values = {}
                for src in FIGURE2_SOURCES:
                    arrays = nll.get((ds, src))
                    if arrays is None:
                        continue
                    v = np.asarray(arrays[r], dtype=float).ravel()
                    v = v[np.isfinite(v)]
                    if v.size:
                        values[src] = v
                        std = float(v.std(ddof=1)) if v.size > 1 else math.nan
                        stats = (int(v.size), float(v.mean()), float(np.median(v)), std)
                        records.append((ds, src, level, *stats))
                if r == 0:
                    ax.set_title(dataset_label(ds))
                if not values:
                    no_data(ax)
                else:
                    lo = min(float(v.min()) for v in values.values())
                    hi = max(float(v.max()) for v in values.values())
                    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 51)
                    for src, v in values.items():
                        ax.hist(
                            v,
                            bins=edges,
                            density=True,
                            histtype="stepfilled",
                            alpha=0.35,
                            color=colors[src],
                            edgecolor=colors[src],
                            linewidth=1.0,
                        )
                ax.set_xlabel(xlabel)
                if c == 0:
                    ax.set_ylabel("density")
                ax.grid(True, linewidth=0.4, alpha=0.4)
        handles = [
            Line2D([], [], color=colors[s], linewidth=4, alpha=0.6, label=label)
            for s, label in FIGURE2_SOURCES.items()
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
        save(fig, out_stem)
    return pd.DataFrame(
        records, columns=["dataset", "source", "level", "n", "mean", "median", "std"]
    )
