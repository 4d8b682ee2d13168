"""Tables 1, 6, 7 and 11 of the paper from the synthetic-experiment selection.

Every builder takes the output of
:func:`mixce.synthetic.select.select_best_eta` and returns ``(df, tex)``: a
tidy-wide DataFrame for the CSV (numbers unformatted, a missing cell is NaN)
and the LaTeX table (numbers as in the paper, a missing cell is ``--``).
Nothing is invented: a cell without a run stays missing.

In the CSVs the ``objective`` column holds the config names (``forward_kl``,
..., ``gold`` for the Gold row); the LaTeX uses the paper's display names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from mixce.latex import Cell, CellLike, booktabs_table, num, raw, sci
from mixce.synthetic.select import NO_ETA_OBJECTIVES, SELECTED_COLUMNS, objective_rank

#: Display names of the objectives, as in the paper's tables.
OBJECTIVE_LABELS: dict[str, str] = {
    "forward_kl": "For. KL",
    "reverse_kl": "Rev. KL",
    "mix_kl": "Mix KLs",
    "js": "JS",
    "mixce_star": "MixCE*",
    "mixce": "MixCE",
}

#: Labels of the inits of the shipped configs, used when no spec is given.
DEFAULT_INIT_LABELS: dict[str, str] = {
    "random10": "Random (10%)",
    "random50": "Random (50%)",
    "random90": "Random (90%)",
    "realtext": "Real text",
}

GOLD = "gold"
_TABLE_MAIN_CAPTION = (
    "Synthetic experimental results. Random (N%) randomly initializes M and sets N% of "
    "the probabilities to 0; Real text initializes M by the bigram occurrence in real "
    "text. Gold refers to the results when M' = M. Each number is the average over seeds "
    "of the model with the best eta (selected by avg. js); -- marks a missing run."
)


def objective_label(objective: str) -> str:
    """Paper display name of an objective (the name itself if unknown)."""
    return OBJECTIVE_LABELS.get(objective, objective)


def init_label(name: str, spec: Mapping[str, object] | None = None) -> str:
    """Display label of a target init.

    ``{kind: random, zero_fraction: 0.5}`` gives ``"Random (50%)"`` and
    ``{kind: real_text}`` gives ``"Real text"`` (the paper's "WebText"; the
    embedded default corpus is another real-text corpus).  Without a usable
    spec the label comes from :data:`DEFAULT_INIT_LABELS`, else the name.
    """
    spec = spec or {}
    kind = spec.get("kind")
    if kind == "random" and spec.get("zero_fraction") is not None:
        pct = 100.0 * float(spec["zero_fraction"])  # type: ignore[arg-type]
        return f"Random ({pct:.6g}%)"
    if kind == "real_text":
        return "Real text"
    if kind == "random":
        return "Random"
    return DEFAULT_INIT_LABELS.get(name, name)


def _labels(inits: Sequence[str], init_labels: Mapping[str, str] | None) -> dict[str, str]:
    init_labels = init_labels or {}
    return {i: init_labels.get(i) or init_label(i) for i in inits}


def _check_selected(selected: pd.DataFrame) -> None:
    missing = [c for c in SELECTED_COLUMNS if c not in selected.columns]
    if missing:
        raise ValueError(f"selected is missing column(s): {', '.join(missing)}")


def _subset(selected: pd.DataFrame, inits: Sequence[str]) -> pd.DataFrame:
    """Rows of ``selected`` for ``inits``; raises if there are none."""
    _check_selected(selected)
    if not inits:
        raise ValueError("inits is empty")
    if len(set(inits)) != len(inits):
        raise ValueError(f"inits has duplicates: {list(inits)}")
    sub = selected[selected["init"].isin(list(inits))]
    if sub.empty:
        raise ValueError(f"no selected results for inits {list(inits)}")
    dup = sub.duplicated(["init", "vocab_size", "objective"], keep=False)
    if dup.any():
        raise ValueError("selected has duplicated (init, vocab_size, objective) rows")
    return sub


def _row_keys(sub: pd.DataFrame, objectives: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(vocab_size, objective) pairs present in ``sub``, vocab ascending, paper order."""
    if objectives is not None:
        sub = sub[sub["objective"].isin(list(objectives))]
    pairs = {(int(v), str(o)) for v, o in zip(sub["vocab_size"], sub["objective"], strict=True)}
    return sorted(pairs, key=lambda p: (p[0], objective_rank(p[1])))


def _lookup(sub: pd.DataFrame) -> dict[tuple[str, int, str], pd.Series]:
    return {
        (str(r["init"]), int(r["vocab_size"]), str(r["objective"])): r for _, r in sub.iterrows()
    }


def _group_midrules(vocabs: Sequence[int], offset: int) -> list[int]:
    """Body indices after which a vocab group ends (a midrule goes there)."""
    rules = []
    for i in range(len(vocabs) - 1):
        if vocabs[i] != vocabs[i + 1]:
            rules.append(offset + i)
    return rules


def _vocab_cells(vocabs: Sequence[int]) -> list[str]:
    """The vocab size on the first row of each group, blank below it."""
    return [str(v) if i == 0 or vocabs[i - 1] != v else "" for i, v in enumerate(vocabs)]


def table_main(
    selected: pd.DataFrame,
    inits: list[str],
    init_labels: dict[str, str] | None = None,
    *,
    caption: str = _TABLE_MAIN_CAPTION,
    label: str = "tab:synthetic",
) -> tuple[pd.DataFrame, str]:
    """Tables 1 and 6: avg. js and avg. 0s per vocab size and objective, per init.

    Rows: a first Gold row (0.0 everywhere), then vocab sizes ascending and,
    within each, the objectives in the paper's order (objectives absent from
    the data for all of ``inits`` at that vocab size are skipped).  Columns:
    for each init, avg. js and avg. 0s (means over the seeds of the best eta).

    Args:
        selected: output of ``select_best_eta``.
        inits: the inits to show, in column order.
        init_labels: display label per init (default: :func:`init_label`).
        caption: LaTeX caption (escaped).
        label: LaTeX label.

    Returns:
        ``(df, tex)``; df columns are ``vocab_size`` (nullable Int64, NA on the
        Gold row), ``objective`` and ``<init>_avg_js``, ``<init>_avg_0s`` for
        each init; a cell without a run is NaN in df and ``--`` in tex.

    Raises:
        ValueError: no rows of ``selected`` belong to ``inits`` or a column is missing.
    """
    sub = _subset(selected, inits)
    labels = _labels(inits, init_labels)
    cells = _lookup(sub)
    keys = _row_keys(sub)

    records: list[dict[str, object]] = []
    gold: dict[str, object] = {"vocab_size": pd.NA, "objective": GOLD}
    for init in inits:
        gold[f"{init}_avg_js"] = 0.0
        gold[f"{init}_avg_0s"] = 0.0
    records.append(gold)
    for vocab, objective in keys:
        rec: dict[str, object] = {"vocab_size": vocab, "objective": objective}
        for init in inits:
            r = cells.get((init, vocab, objective))
            rec[f"{init}_avg_js"] = math.nan if r is None else float(r["avg_js_mean"])
            rec[f"{init}_avg_0s"] = math.nan if r is None else float(r["avg_0s_mean"])
        records.append(rec)
    value_cols = [f"{i}_{m}" for i in inits for m in ("avg_js", "avg_0s")]
    df = pd.DataFrame(records, columns=["vocab_size", "objective", *value_cols])
    df["vocab_size"] = df["vocab_size"].astype("Int64")
    df[value_cols] = df[value_cols].astype(float)

    header: list[list[CellLike]] = [
        ["", "", *[Cell(labels[i], colspan=2) for i in inits]],
        ["Vocab", "Objective", *["avg. js", "avg. 0s"] * len(inits)],
    ]
    body: list[list[CellLike]] = [["Gold", "", *["0.0"] * len(value_cols)]]
    vocabs = [v for v, _ in keys]
    for rec, vcell in zip(records[1:], _vocab_cells(vocabs), strict=True):
        values = [sci(rec[c]) for c in value_cols]  # type: ignore[arg-type]
        body.append([vcell, objective_label(str(rec["objective"])), *values])
    midrules = [0, *_group_midrules(vocabs, offset=1)] if keys else []
    tex = booktabs_table(
        header, body, "ll" + "cc" * len(inits), caption, label, midrules_after=midrules
    )
    return df, tex


def _pm(mean: float, ci: float) -> Cell:
    return raw(rf"{sci(mean)} $\pm${sci(ci)}")


def table_ci(
    selected: pd.DataFrame,
    init: str,
    vocab_size: int,
    objectives: Sequence[str],
    init_labels: dict[str, str] | None = None,
    *,
    caption: str | None = None,
    label: str = "tab:synthetic-ci",
) -> tuple[pd.DataFrame, str]:
    """Table 7: "mean ±ci95" of avg. js and avg. 0s for one init and vocab size.

    Args:
        selected: output of ``select_best_eta``.
        init: the init shown.
        vocab_size: the vocabulary size shown.
        objectives: the objectives, in row order (a missing one gives NaN / ``--``).
        init_labels: display label per init (default: :func:`init_label`).
        caption: LaTeX caption (escaped); a default is written when None.
        label: LaTeX label.

    Returns:
        ``(df, tex)``; df columns: vocab_size, objective, best_eta, n_seeds,
        avg_js_mean, avg_js_ci95, avg_0s_mean, avg_0s_ci95.  The tex cells
        read like ``7.94e-2 $\\pm$2.15e-4``.
    """
    if not objectives:
        raise ValueError("objectives is empty")
    sub = _subset(selected, [init])
    lab = _labels([init], init_labels)[init]
    cells = _lookup(sub)
    cols = [
        "vocab_size",
        "objective",
        "best_eta",
        "n_seeds",
        "avg_js_mean",
        "avg_js_ci95",
        "avg_0s_mean",
        "avg_0s_ci95",
    ]
    records = []
    for objective in objectives:
        r = cells.get((init, int(vocab_size), objective))
        rec: dict[str, object] = {"vocab_size": int(vocab_size), "objective": objective}
        for c in cols[2:]:
            rec[c] = math.nan if r is None else r[c]
        records.append(rec)
    df = pd.DataFrame(records, columns=cols)
    df["n_seeds"] = df["n_seeds"].astype("Int64")
    for c in ("best_eta", "avg_js_mean", "avg_js_ci95", "avg_0s_mean", "avg_0s_ci95"):
        df[c] = df[c].astype(float)

    header: list[list[CellLike]] = [
        ["", "", Cell(lab, colspan=2)],
        ["Vocab", "Objective", "avg. js", "avg. 0s"],
    ]
    body: list[list[CellLike]] = []
    for i, rec in enumerate(df.itertuples(index=False)):
        body.append(
            [
                str(vocab_size) if i == 0 else "",
                objective_label(rec.objective),
                _pm(rec.avg_js_mean, rec.avg_js_ci95),
                _pm(rec.avg_0s_mean, rec.avg_0s_ci95),
            ]
        )
    if caption is None:
        caption = (
            f"Synthetic experimental results with 95% confidence intervals ({lab}, "
            f"vocabulary size {vocab_size}): mean over seeds and the half-width of the "
            "t-based 95% confidence interval."
        )
    tex = booktabs_table(header, body, "llcc", caption, label)
    return df, tex


def table_best_eta(
    selected: pd.DataFrame,
    inits: list[str],
    init_labels: dict[str, str] | None = None,
    *,
    caption: str = (
        "The selected best eta of the synthetic experiments reported in the main "
        "synthetic tables. The model selection is based on avg. js."
    ),
    label: str = "tab:synthetic-best-eta",
) -> tuple[pd.DataFrame, str]:
    """Table 11: the selected eta per vocab size and eta-grid objective, per init.

    Forward and reverse KL (no eta grid) are left out.

    Args:
        selected: output of ``select_best_eta``.
        inits: the inits to show, in column order.
        init_labels: display label per init (default: :func:`init_label`).
        caption: LaTeX caption (escaped).
        label: LaTeX label.

    Returns:
        ``(df, tex)``; df columns: vocab_size, objective, ``<init>_best_eta``
        per init (NaN where there is no run); tex shows etas like ``0.99``.
    """
    sub = _subset(selected, inits)
    labels = _labels(inits, init_labels)
    cells = _lookup(sub)
    grid = sub[~sub["objective"].isin(NO_ETA_OBJECTIVES)]
    if grid.empty:
        raise ValueError(f"no objective with an eta grid for inits {list(inits)}")
    keys = _row_keys(grid)
    value_cols = [f"{i}_best_eta" for i in inits]
    records = []
    for vocab, objective in keys:
        rec: dict[str, object] = {"vocab_size": vocab, "objective": objective}
        for init, col in zip(inits, value_cols, strict=True):
            r = cells.get((init, vocab, objective))
            rec[col] = math.nan if r is None else float(r["best_eta"])
        records.append(rec)
    df = pd.DataFrame(records, columns=["vocab_size", "objective", *value_cols])
    df[value_cols] = df[value_cols].astype(float)

    header: list[list[CellLike]] = [
        ["", "", *[labels[i] for i in inits]],
        ["Vocab", "Objective", *[raw(r"best $\eta$") for _ in inits]],
    ]
    vocabs = [v for v, _ in keys]
    body: list[list[CellLike]] = []
    for rec, vcell in zip(df.itertuples(index=False), _vocab_cells(vocabs), strict=True):
        values = [num(getattr(rec, c), "g") for c in value_cols]
        body.append([vcell, objective_label(rec.objective), *values])
    tex = booktabs_table(
        header,
        body,
        "ll" + "c" * len(inits),
        caption,
        label,
        midrules_after=_group_midrules(vocabs, offset=0),
    )
    return df, tex
