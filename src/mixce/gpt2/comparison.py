r"""The comparison of training objectives beyond the paper: a table and a figure.

Every objective of the run (MLE, MixCE, TaiLr, loss truncation, unlikelihood, LFD, ...) is
shown at the hyper-parameter setting that dev MAUVE selected (``selection/settings.csv``),
scored on test exactly like Table 2 (perplexity, n-gram diversity, MAUVE, coherence of
unbiased samples, means over sampling seeds) plus the LFD paper's diversity metrics:
distinct-1..4, self-BLEU and seq-rep-4. The human row of each dataset is computed by the
same code. In the LaTeX table, per (dataset, model, metric), the objective whose value is
closest to the human value (at the displayed precision) is bold; perplexity has no human
value and is never bold. A missing value is ``--`` (NaN in the CSV), never made up.

The figure plots MAUVE against n-gram diversity on test for every objective and every
setting of its grid (mean over seeds, error bars one standard deviation), one panel per
(dataset, model), the human diversity as a vertical line and the selected setting of each
objective drawn larger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mixce.gpt2.tables import dataset_label, model_label
from mixce.latex import MISSING, Cell, bold, booktabs_table, num

OBJECTIVE_LABELS = {
    "mle": "MLE",
    "mixce": "MixCE",
    "tailr": "TaiLr",
    "loss_truncation": "Loss trunc.",
    "unlikelihood": "Unlikelihood",
    "truncated_ce": "Truncated CE",
    "lfd": "LFD",
    "human": "Human",
}

#: (CSV column, samples column, LaTeX header, format, compared with human).
COLUMNS: tuple[tuple[str, str, str, str, bool], ...] = (
    ("div", "diversity", "div", ".2f", True),
    ("mauve", "mauve", "mauve", ".2f", True),
    ("coh", "coherence", "coh", ".3f", True),
    ("distinct_1", "distinct_1", "d-1", ".2f", True),
    ("distinct_2", "distinct_2", "d-2", ".2f", True),
    ("distinct_3", "distinct_3", "d-3", ".2f", True),
    ("distinct_4", "distinct_4", "d-4", ".2f", True),
    ("self_bleu", "self_bleu", "self-BLEU", ".2f", True),
    ("seq_rep_4", "seq_rep_4", "rep-4", ".3f", True),
)
KEYS = ["dataset", "model", "objective", "setting", "variant"]


def objective_label(name: str) -> str:
    return OBJECTIVE_LABELS.get(name, name.replace("_", " ").title())


def _test_unbiased(samples: pd.DataFrame) -> pd.DataFrame:
    return samples[(samples["split"] == "test") & (samples["decoding"] == "unbiased")]


def _seed_mean(rows: pd.DataFrame, column: str) -> tuple[float, float]:
    values = pd.to_numeric(rows.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
    if values.empty:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan


def objectives_table(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    perplexity: pd.DataFrame,
    settings: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    objectives: Sequence[str],
) -> tuple[pd.DataFrame, str]:
    """(CSV frame, LaTeX) of every objective at its selected setting, with human rows."""
    test = _test_unbiased(samples)
    human_test = human[human["split"] == "test"]
    rows: list[dict] = []
    for dataset in datasets:
        h = human_test[human_test["dataset"] == dataset]
        row = {"dataset": dataset, "model": "human", "objective": "human", "setting": ""}
        row |= {"variant": "human", "ppl": math.nan, "n_seeds": len(h)}
        for name, column, *_ in COLUMNS:
            row[name], row[f"{name}_std"] = _seed_mean(h, column)
        rows.append(row)
        for model in models:
            for objective in objectives:
                chosen = settings[
                    (settings["dataset"] == dataset)
                    & (settings["model"] == model)
                    & (settings["objective"] == objective)
                ]
                variant = str(chosen["variant"].iloc[0]) if len(chosen) else ""
                setting = chosen["setting"].iloc[0] if len(chosen) else ""
                runs = test[
                    (test["dataset"] == dataset)
                    & (test["model"] == model)
                    & (test["variant"] == variant)
                ]
                ppl = perplexity[
                    (perplexity["dataset"] == dataset)
                    & (perplexity["model"] == model)
                    & (perplexity["variant"] == variant)
                ]
                row = {"dataset": dataset, "model": model, "objective": objective}
                row |= {"setting": "" if pd.isna(setting) else str(setting), "variant": variant}
                row["ppl"] = float(ppl["ppl"].iloc[0]) if len(ppl) else math.nan
                row["n_seeds"] = int(runs["seed"].nunique()) if len(runs) else 0
                for name, column, *_ in COLUMNS:
                    row[name], row[f"{name}_std"] = _seed_mean(runs, column)
                rows.append(row)
    value_cols = ["ppl"] + [c for name, *_ in COLUMNS for c in (name, f"{name}_std")]
    df = pd.DataFrame(rows, columns=[*KEYS, *value_cols, "n_seeds"])
    return df, _latex(df, datasets, models)


def _closest(values: Sequence[float], ref: float, spec: str) -> list[bool]:
    """Which displayed values are closest to the displayed human value (ties: all)."""
    if math.isnan(ref):
        return [False] * len(values)
    shown = [float(format(v, spec)) if not math.isnan(v) else math.nan for v in values]
    ref_shown = float(format(ref, spec))
    gaps = [abs(v - ref_shown) if not math.isnan(v) else math.inf for v in shown]
    best = min(gaps, default=math.inf)
    return [g == best and not math.isinf(g) for g in gaps]


def _latex(df: pd.DataFrame, datasets: Sequence[str], models: Sequence[str]) -> str:
    header = ["Dataset", "Model", "Objective", "ppl"] + [head for _, _, head, _, _ in COLUMNS]
    body: list[list] = []
    midrules: list[int] = []
    for dataset in datasets:
        block = df[df["dataset"] == dataset]
        human = block[block["objective"] == "human"]
        ref = {name: float(human[name].iloc[0]) if len(human) else math.nan for name, *_ in COLUMNS}
        first = True
        for model in ["human", *models]:
            group = block[block["model"] == model]
            if group.empty:
                continue
            marks = {
                name: _closest(list(group[name].astype(float)), ref[name], spec)
                if model != "human" and compare
                else [False] * len(group)
                for name, _, _, spec, compare in COLUMNS
            }
            for i, row in enumerate(group.itertuples(index=False)):
                label = objective_label(row.objective)
                if row.setting:
                    label += f" ({row.setting})"
                cells: list = [
                    dataset_label(dataset) if first else "",
                    "" if model == "human" else model_label(model),
                    label,
                    MISSING if math.isnan(row.ppl) else num(row.ppl, ".2f"),
                ]
                first = False
                for name, _, _, spec, _ in COLUMNS:
                    value = float(getattr(row, name))
                    cell: Cell | str = MISSING if math.isnan(value) else num(value, spec)
                    cells.append(bold(cell) if marks[name][i] else cell)
                body.append(cells)
            midrules.append(len(body) - 1)
    caption = (
        "Training objectives compared under one protocol: each at the setting selected by "
        "dev MAUVE, unbiased sampling on test (means over sampling seeds). Bold: closest to "
        "the human value."
    )
    return booktabs_table(
        [header],
        body,
        "lll" + "c" * (len(header) - 3),
        caption,
        "tab:objectives",
        midrules,
        size="small",
    )


def quality_diversity_frame(samples: pd.DataFrame, settings: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, objective, variant): test MAUVE and diversity means and
    standard deviations over seeds, and whether dev MAUVE selected the variant."""
    test = _test_unbiased(samples)
    test = test[test["objective"] != "base"]
    grouped = test.groupby(["dataset", "model", "objective", "variant", "setting"], dropna=False)
    stats = grouped.agg(
        mauve=("mauve", "mean"),
        mauve_std=("mauve", "std"),
        diversity=("diversity", "mean"),
        diversity_std=("diversity", "std"),
        n_seeds=("seed", "nunique"),
    ).reset_index()
    chosen = set(
        settings["variant"].astype(str) + "@" + settings["dataset"] + "@" + settings["model"]
    )
    stats["selected"] = [
        f"{r.variant}@{r.dataset}@{r.model}" in chosen for r in stats.itertuples(index=False)
    ]
    return stats


def quality_diversity_figure(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    settings: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    objectives: Sequence[str],
    stem: str | Path,
) -> pd.DataFrame:
    """MAUVE against diversity for every objective and setting; writes ``stem``.pdf/.png and
    returns the plotted frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = quality_diversity_frame(samples, settings)
    frame = frame[frame["objective"].isin(objectives)]
    palette = dict(zip(objectives, sns.color_palette("colorblind", len(objectives)), strict=False))
    markers = dict(zip(objectives, "osD^vP*Xhp", strict=False))
    panels = [(d, m) for d in datasets for m in models]
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.9)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.3 * cols, 2.7 * rows), squeeze=False, constrained_layout=True
    )
    for ax, (dataset, model) in zip(axes.flat, panels, strict=False):
        sub = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
        for objective in objectives:
            pts = sub[sub["objective"] == objective]
            if pts.empty:
                continue
            for selected in (False, True):
                part = pts[pts["selected"] == selected]
                if part.empty:
                    continue
                ax.errorbar(
                    part["diversity"],
                    part["mauve"],
                    xerr=np.nan_to_num(part["diversity_std"].to_numpy(float)),
                    yerr=np.nan_to_num(part["mauve_std"].to_numpy(float)),
                    fmt=markers[objective],
                    color=palette[objective],
                    markersize=7 if selected else 4,
                    markeredgecolor="black" if selected else palette[objective],
                    alpha=1.0 if selected else 0.6,
                    capsize=2,
                    linewidth=0.8,
                    label=objective_label(objective) if selected else None,
                )
        h = human[(human["dataset"] == dataset) & (human["split"] == "test")]
        if len(h):
            ax.axvline(float(h["diversity"].mean()), color="grey", linestyle="--", linewidth=1)
        ax.set_title(f"{dataset_label(dataset)}, {model_label(model)}")
        ax.set_xlabel("diversity (test)")
        ax.set_ylabel("MAUVE (test)")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for ext in ("pdf", "png"):
        fig.savefig(stem.with_suffix(f".{ext}"), dpi=200)
    plt.close(fig)
    return frame
