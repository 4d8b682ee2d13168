r"""The comparison of training objectives beyond the paper: a table and a figure.

The table shows every objective of the run at the setting dev MAUVE selected
(``selection/settings.csv``), scored on test like Table 2 plus the LFD paper's diversity
metrics (distinct-1..4, self-BLEU, seq-rep-4), with a human row per dataset from the same
code; bold: per (dataset, model, metric) the objective closest to human at the displayed
precision (never perplexity).  The figure plots MAUVE against diversity for every setting of
every objective (means over seeds, +-1 std error bars), a panel per (dataset, model), the
human diversity as a vertical line and the selected settings drawn larger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mixce.plotting import save
from mixce.tables import closest, dataset_label, latex_table, model_label, num, objective_label

#: (CSV column, samples column, LaTeX header, format); each is compared with human.
COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("div", "diversity", "div", ".2f"),
    ("mauve", "mauve", "mauve", ".2f"),
    ("coh", "coherence", "coh", ".3f"),
    ("distinct_1", "distinct_1", "d-1", ".2f"),
    ("distinct_2", "distinct_2", "d-2", ".2f"),
    ("distinct_3", "distinct_3", "d-3", ".2f"),
    ("distinct_4", "distinct_4", "d-4", ".2f"),
    ("self_bleu", "self_bleu", "self-BLEU", ".2f"),
    ("seq_rep_4", "seq_rep_4", "rep-4", ".3f"),
)
KEYS = ["dataset", "model", "objective", "setting", "variant"]


def _test_unbiased(samples: pd.DataFrame) -> pd.DataFrame:
    return _where(samples, split="test", decoding="unbiased")


def _where(frame: pd.DataFrame, **values: object) -> pd.DataFrame:
    return frame[np.logical_and.reduce([frame[k] == v for k, v in values.items()])]


def _seed_means(rows: pd.DataFrame) -> dict[str, float]:
    """Mean and std over ``rows`` (one per seed) of each of :data:`COLUMNS`."""
    out = {}
    for name, column, *_ in COLUMNS:
        values = pd.to_numeric(rows.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
        out[name] = float(values.mean()) if len(values) else math.nan
        out[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return out


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
        rows.append(row | _seed_means(h))
        for model in models:
            for objective in objectives:
                chosen = _where(settings, dataset=dataset, model=model, objective=objective)
                variant = str(chosen["variant"].iloc[0]) if len(chosen) else ""
                setting = chosen["setting"].iloc[0] if len(chosen) else ""
                runs = _where(test, dataset=dataset, model=model, variant=variant)
                ppl = _where(perplexity, dataset=dataset, model=model, variant=variant)
                row = {"dataset": dataset, "model": model, "objective": objective}
                row |= {"setting": "" if pd.isna(setting) else str(setting), "variant": variant}
                row["ppl"] = float(ppl["ppl"].iloc[0]) if len(ppl) else math.nan
                row["n_seeds"] = int(runs["seed"].nunique()) if len(runs) else 0
                rows.append(row | _seed_means(runs))
    value_cols = ["ppl"] + [c for name, *_ in COLUMNS for c in (name, f"{name}_std")]
    df = pd.DataFrame(rows, columns=[*KEYS, *value_cols, "n_seeds"])
    # LaTeX: per dataset the human row, then each model's objectives; bold: closest to human
    shown, bold, midrules = [], [], []
    for dataset in datasets:
        block = df[df["dataset"] == dataset]
        human = block[block["objective"] == "human"]
        named = False  # the dataset is named on its first row
        for model in ["human", *models]:
            group = block[block["model"] == model]
            if group.empty:
                continue
            marks = [
                closest(
                    list(group[name].astype(float)),
                    float(human[name].iloc[0]) if len(human) else math.nan,
                    spec,
                )
                if model != "human"
                else [False] * len(group)
                for name, _, _, spec in COLUMNS
            ]
            for i, row in enumerate(group.itertuples(index=False)):
                label = objective_label(row.objective)
                if row.setting:
                    label += f" ({row.setting})"
                shown.append(
                    [
                        "" if named else dataset_label(dataset),
                        "" if model == "human" else model_label(model),
                        label,
                        num(row.ppl, ".2f"),
                        *[num(float(getattr(row, name)), spec) for name, _, _, spec in COLUMNS],
                    ]
                )
                bold.append([False] * 4 + [m[i] for m in marks])
                named = True
            midrules.append(len(shown) - 1)
    header = ["Dataset", "Model", "Objective", "ppl"] + [head for _, _, head, _ in COLUMNS]
    caption = (
        "Training objectives compared under one protocol: each at the setting selected by "
        "dev MAUVE, unbiased sampling on test (means over sampling seeds). Bold: closest to "
        "the human value."
    )
    table = pd.DataFrame(shown, columns=header)
    bold_cells = np.array(bold, dtype=bool).reshape(len(shown), len(header))
    return df, latex_table(
        table, caption, "tab:objectives", labels=3, bold=bold_cells, midrules=midrules, size="small"
    )


def quality_diversity_figure(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    settings: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    objectives: Sequence[str],
    stem: str | Path,
) -> pd.DataFrame:
    """MAUVE against diversity for every objective and setting (test MAUVE and diversity means
    and standard deviations over seeds, ``selected``: dev MAUVE chose the variant); writes
    ``stem``.pdf/.png and returns the plotted frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    test = _test_unbiased(samples)
    test = test[test["objective"] != "base"]
    grouped = test.groupby(["dataset", "model", "objective", "variant", "setting"], dropna=False)
    frame = grouped.agg(
        mauve=("mauve", "mean"),
        mauve_std=("mauve", "std"),
        diversity=("diversity", "mean"),
        diversity_std=("diversity", "std"),
        n_seeds=("seed", "nunique"),
    ).reset_index()
    chosen = set(
        settings["variant"].astype(str) + "@" + settings["dataset"] + "@" + settings["model"]
    )
    frame["selected"] = [
        f"{r.variant}@{r.dataset}@{r.model}" in chosen for r in frame.itertuples(index=False)
    ]
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
    legend: dict = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(legend.values(), legend, loc="outside lower center", ncols=min(len(legend), 4))
    save(fig, stem)
    plt.close(fig)
    return frame
