"""Tables 1, 6, 7 and 11 of the paper from :func:`mixce.synthetic.select.select_best_eta`.

Every builder returns ``(df, tex)``: a wide DataFrame for the CSV (numbers unformatted, the
config's objective names, ``gold`` for the Gold row) and the LaTeX table (numbers and
objective names as in the paper).  A cell without a run stays missing: NaN / ``--``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from mixce.synthetic.select import NO_ETA_OBJECTIVES, SELECTED_COLUMNS, objective_rank
from mixce.tables import header, latex_table, num, objective_label, sci

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


def init_label(name: str, spec: Mapping[str, object] | None = None) -> str:
    """An init's label: ``{kind: random, zero_fraction: 0.5}``: ``"Random (50%)"``;
    ``{kind: real_text}``: ``"Real text"`` (the paper's "WebText"; the embedded default
    corpus is another real-text corpus); else :data:`DEFAULT_INIT_LABELS`, else the name."""
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


def _subset(selected: pd.DataFrame, inits: Sequence[str]) -> pd.DataFrame:
    """Rows of ``selected`` for ``inits``; raises if there are none."""
    missing = [c for c in SELECTED_COLUMNS if c not in selected.columns]
    if missing:
        raise ValueError(f"selected is missing column(s): {', '.join(missing)}")
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


def _row_keys(sub: pd.DataFrame) -> list[tuple[int, str]]:
    """(vocab_size, objective) pairs present in ``sub``, vocab ascending, paper order."""
    pairs = {(int(v), str(o)) for v, o in zip(sub["vocab_size"], sub["objective"], strict=True)}
    return sorted(pairs, key=lambda p: (p[0], objective_rank(p[1])))


def _records(
    sub: pd.DataFrame, keys: Sequence[tuple[int, str]], inits: Sequence[str], fields: dict
) -> list[dict[str, object]]:
    """Per (vocab_size, objective) of ``keys`` the ``<init>_<name>`` value of ``fields``
    (name: column of ``sub``) per init; NaN where the init has no run."""
    cells = {
        (str(r["init"]), int(r["vocab_size"]), str(r["objective"])): r for _, r in sub.iterrows()
    }
    records = []
    for vocab, objective in keys:
        rec: dict[str, object] = {"vocab_size": vocab, "objective": objective}
        for init in inits:
            r = cells.get((init, vocab, objective))
            for name, column in fields.items():
                rec[f"{init}_{name}"] = math.nan if r is None else float(r[column])
        records.append(rec)
    return records


def _vocab_cells(vocabs: Sequence[int]) -> tuple[list[str], list[int]]:
    """The vocab size on the first row of each group (blank below it), and the rows after
    which a group ends (a midrule goes there)."""
    first = [i == 0 or vocabs[i - 1] != v for i, v in enumerate(vocabs)]
    return [str(v) if f else "" for v, f in zip(vocabs, first, strict=True)], [
        i - 1 for i, f in enumerate(first) if f and i
    ]


def table_main(
    selected: pd.DataFrame,
    inits: list[str],
    init_labels: dict[str, str] | None = None,
    *,
    label: str = "tab:synthetic",
) -> tuple[pd.DataFrame, str]:
    """Tables 1 and 6: avg. js and avg. 0s (means over the seeds of the best eta) per init.
    Rows: Gold (all 0.0), then per vocab size (ascending) the objectives present, in the
    paper's order.  df: ``vocab_size`` (Int64, NA on Gold), ``objective``, ``<init>_avg_js``,
    ``<init>_avg_0s``.  ValueError: no row for ``inits``, or a missing column."""
    sub = _subset(selected, inits)
    labels = _labels(inits, init_labels)
    keys = _row_keys(sub)
    value_cols = [f"{i}_{m}" for i in inits for m in ("avg_js", "avg_0s")]
    records = [{"vocab_size": pd.NA, "objective": GOLD, **dict.fromkeys(value_cols, 0.0)}]
    records += _records(sub, keys, inits, {"avg_js": "avg_js_mean", "avg_0s": "avg_0s_mean"})
    df = pd.DataFrame(records, columns=["vocab_size", "objective", *value_cols])
    df["vocab_size"] = df["vocab_size"].astype("Int64")
    df[value_cols] = df[value_cols].astype(float)

    vcells, ends = _vocab_cells([v for v, _ in keys])
    shown = [["Gold", "", *["0.0"] * len(value_cols)]] + [
        [vcell, objective_label(str(rec["objective"])), *[sci(rec[c]) for c in value_cols]]
        for rec, vcell in zip(records[1:], vcells, strict=True)
    ]
    columns = header([labels[i] for i in inits], ["avg. js", "avg. 0s"], ["Vocab", "Objective"])
    midrules = [0, *[i + 1 for i in ends]] if keys else []
    return df, latex_table(
        pd.DataFrame(shown, columns=columns), _TABLE_MAIN_CAPTION, label, midrules=midrules
    )


def table_ci(
    selected: pd.DataFrame,
    init: str,
    vocab_size: int,
    objectives: Sequence[str],
    init_labels: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, str]:
    r"""Table 7: "mean $\pm$ci95" of avg. js and avg. 0s for one init and vocab size, a row
    per objective in order.  df: vocab_size, objective, best_eta, n_seeds, avg_js_mean,
    avg_js_ci95, avg_0s_mean, avg_0s_ci95; tex cells like ``7.94e-2 $\pm$2.15e-4``."""
    if not objectives:
        raise ValueError("objectives is empty")
    sub = _subset(selected, [init])
    lab = _labels([init], init_labels)[init]
    cells = {(int(r["vocab_size"]), str(r["objective"])): r for _, r in sub.iterrows()}
    values = ["best_eta", "n_seeds", "avg_js_mean", "avg_js_ci95", "avg_0s_mean", "avg_0s_ci95"]
    records = []
    for objective in objectives:
        r = cells.get((int(vocab_size), objective))
        rec: dict[str, object] = {"vocab_size": int(vocab_size), "objective": objective}
        records.append(rec | {c: math.nan if r is None else r[c] for c in values})
    df = pd.DataFrame(records, columns=["vocab_size", "objective", *values])
    df["n_seeds"] = df["n_seeds"].astype("Int64")
    floats = [c for c in values if c != "n_seeds"]
    df[floats] = df[floats].astype(float)

    shown = [
        [
            str(vocab_size) if i == 0 else "",
            objective_label(rec.objective),
            rf"{sci(rec.avg_js_mean)} $\pm${sci(rec.avg_js_ci95)}",
            rf"{sci(rec.avg_0s_mean)} $\pm${sci(rec.avg_0s_ci95)}",
        ]
        for i, rec in enumerate(df.itertuples(index=False))
    ]
    caption = (
        f"Synthetic experimental results with 95% confidence intervals ({lab}, "
        f"vocabulary size {vocab_size}): mean over seeds and the half-width of the "
        "t-based 95% confidence interval."
    )
    columns = header([lab], ["avg. js", "avg. 0s"], ["Vocab", "Objective"])
    return df, latex_table(pd.DataFrame(shown, columns=columns), caption, "tab:synthetic-ci")


def table_best_eta(
    selected: pd.DataFrame,
    inits: list[str],
    init_labels: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Table 11: the selected eta per vocab size and eta-grid objective (forward and reverse
    KL have no grid and are left out), per init.  df columns: vocab_size, objective,
    ``<init>_best_eta`` (NaN where there is no run); tex shows etas like ``0.99``."""
    sub = _subset(selected, inits)
    labels = _labels(inits, init_labels)
    grid = sub[~sub["objective"].isin(NO_ETA_OBJECTIVES)]
    if grid.empty:
        raise ValueError(f"no objective with an eta grid for inits {list(inits)}")
    keys = _row_keys(grid)
    value_cols = [f"{i}_best_eta" for i in inits]
    records = _records(sub, keys, inits, {"best_eta": "best_eta"})
    df = pd.DataFrame(records, columns=["vocab_size", "objective", *value_cols])
    df[value_cols] = df[value_cols].astype(float)

    vcells, ends = _vocab_cells([v for v, _ in keys])
    shown = [
        [vcell, objective_label(rec.objective), *[num(getattr(rec, c), "g") for c in value_cols]]
        for rec, vcell in zip(df.itertuples(index=False), vcells, strict=True)
    ]
    columns = header([labels[i] for i in inits], [r"best $\eta$"], ["Vocab", "Objective"])
    caption = (
        "The selected best eta of the synthetic experiments reported in the main synthetic "
        "tables. The model selection is based on avg. js."
    )
    table = pd.DataFrame(shown, columns=columns)
    return df, latex_table(table, caption, "tab:synthetic-best-eta", midrules=ends)
