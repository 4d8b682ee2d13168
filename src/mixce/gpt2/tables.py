r"""Tables 2, 3, 5, 8, 9, 10 and 12 of the paper (the GPT-2 track) from tidy DataFrames.

Every builder returns ``(df, tex)``: a wide DataFrame for the CSV (numbers unformatted, a
missing cell is NaN) and the booktabs LaTeX table (numbers as in the paper, a missing cell is
``--``).  Nothing is invented: a cell without data stays missing, and an entirely empty input
gives the header with no data rows (and a logged warning).

Inputs are the workflow's tidy CSVs, each with at least the columns of its ``*_COLUMNS``
below: ``samples`` (one row per scored sample file; objective ``mle``, ``mixce`` or
``base``; decoding ``unbiased``, ``greedy``, ``top_p0.95``, ...; ``mauve_len{L}`` per
generation-length cut), ``human``, ``perplexity``, ``controlled`` (status ``ok`` or
``skipped: <reason>``; the human rows have model and objective ``human``), ``selection``
(the eta selected by dev MAUVE, and ``config_eta``, the config's, used for top-p sampling
and Table 5) and ``top_p`` (the best p and its variant).

Conventions: "mean" is the mean over sampling seeds and "std" the sample standard deviation
over seeds (``ddof=1``; NaN with a single seed).  Etas, train sizes and top-p values are
matched with a tolerance of 1e-6.  Bold marks, per (dataset, model, metric), the value of MLE
or MixCE that is closer to the human value, compared at the displayed precision (so a
displayed tie bolds both); perplexity has no human value and is never bold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mixce.gpt2.plan import parse_variant
from mixce.tables import (
    MISSING,
    closest,
    dataset_label,
    header,
    latex_table,
    model_label,
    num,
    objective_label,
)

log = logging.getLogger(__name__)

#: Shown instead of a value that cannot exist (human perplexity, human best p).
NOT_APPLICABLE = "-"
_TOL = 1e-6

#: (CSV short name, input column, LaTeX header, format) of the main metrics.
_METRICS = (
    ("div", "diversity", "div", ".2f"),
    ("mauve", "mauve", "mauve", ".2f"),
    ("coh", "coherence", "coh", ".3f"),
)

SAMPLES_COLUMNS = tuple(
    "dataset model variant objective eta n_train split decoding top_p seed n_empty diversity "
    "mauve coherence length_words".split()
)
HUMAN_COLUMNS = ("dataset", "split", "diversity", "mauve", "coherence", "length_words")
PERPLEXITY_COLUMNS = ("dataset", "model", "objective", "eta", "n_train", "ppl")
CONTROLLED_COLUMNS = tuple(
    "dataset model objective eta seed length c_mauve c_coherence status".split()
)
SELECTION_COLUMNS = ("dataset", "model", "eta")
TOP_P_COLUMNS = ("dataset", "model", "objective", "variant", "best_p")
_HUMAN = {"model": "human", "objective": "human"}  # the keys of a human row
#: Fragment lengths of Tables 8 and 9 used when the input has none (the paper's).
CONTROLLED_LENGTHS = (100, 200, 300)


# --------------------------------------------------------------------------- input handling


def _frame(df: pd.DataFrame | None, required: Sequence[str], name: str) -> pd.DataFrame:
    """``df`` checked for ``required`` columns (ValueError names the missing); None/empty: empty."""
    if df is None or df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in required})
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{name} is missing column(s): {', '.join(missing)}")
    return df


def _close(series: pd.Series, value: float | None) -> pd.Series:
    """Boolean mask: ``series`` (numeric) equals ``value`` within the tolerance (NaN: False)."""
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    target = math.nan if value is None else float(value)  # NaN is close to nothing
    return pd.Series(np.isclose(values, target, rtol=0.0, atol=_TOL), index=series.index)


def _is(series: pd.Series, value: str) -> pd.Series:
    return series.astype(str) == str(value)


def _float(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _seed_stats(rows: pd.DataFrame, column: str, what: str) -> tuple[float, float, int]:
    """(mean, std, n_seeds) of ``column`` over seeds; rows of one seed are averaged first."""
    if rows.empty or column not in rows.columns:
        return math.nan, math.nan, 0
    if "variant" in rows.columns and rows["variant"].nunique() > 1:
        log.warning(
            "%s: rows of several variants match (%s); averaging them",
            what,
            ", ".join(sorted(rows["variant"].astype(str).unique())),
        )
    values = pd.to_numeric(rows[column], errors="coerce")
    per_seed = values.groupby(rows["seed"].to_numpy(), dropna=False).mean().dropna()
    n = len(per_seed)  # none: the mean is NaN
    std = float(per_seed.std(ddof=1)) if n > 1 else math.nan
    return float(per_seed.mean()), std, n


def _selection_lookup(selection: pd.DataFrame) -> dict[tuple[str, str], pd.Series]:
    return {(str(r["dataset"]), str(r["model"])): r for _, r in selection.iterrows()}


def _selected_eta(sel: Mapping[tuple[str, str], pd.Series], dataset: str, model: str) -> float:
    return _float(sel.get((dataset, model), {}).get("eta", math.nan))


def _config_eta(sel: Mapping[tuple[str, str], pd.Series], dataset: str, model: str) -> float:
    """The config's eta (Table 5 / top-p); the selected eta where the config's is missing."""
    eta = _float(sel.get((dataset, model), {}).get("config_eta", math.nan))
    return _selected_eta(sel, dataset, model) if math.isnan(eta) else eta


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Col:
    """One LaTeX value column per dataset: CSV short name, header and number format."""

    short: str
    header: str
    spec: str
    compare: bool = True  # bold the value of MLE or MixCE closer to human
    human: str | None = None  # shown on the human row instead of its value


def _frame_from_rows(
    rows: Sequence[dict], key_cols: Sequence[str], value_cols: Sequence[str]
) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=[*key_cols, *value_cols])
    for c in value_cols:
        if not c.endswith("_note"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def _pair_table(
    table: str,
    empty: str | None,
    human_row: Callable[[], dict],
    groups: Sequence[tuple[object, str, str]],
    fill: Callable[[dict, str], None],
    *,
    datasets: Sequence[str],
    value_cols: Sequence[str],
    cols: Sequence[_Col],
    caption: str | Callable[[], str],
    label: str,
    key: str = "model",
) -> tuple[pd.DataFrame, str]:
    """Rows Human, then per group (key value, label, model) -- a model size or a train size --
    MLE and MixCE, ``fill(row, dataset)`` setting a row's values; with ``empty`` (why there
    is nothing to show) only the header and a logged warning.  Bold as the module docstring
    says, per group and compared column (none when one of the three values is missing)."""
    rows = []
    if empty:
        log.warning("%s: %s; writing the header with no data rows", table, empty)
    else:
        rows = [human_row()]
        for g, _, m in groups:
            for objective in ("mle", "mixce"):
                row = {"model": m, key: g, "objective": objective}
                for d in datasets:
                    fill(row, d)
                rows.append(row)
    key_cols = ["model", "objective"] if key == "model" else ["model", key, "objective"]
    df = _frame_from_rows(rows, key_cols, value_cols)
    if key == "n_train":
        df["n_train"] = pd.to_numeric(df["n_train"], errors="coerce").round().astype("Int64")
    shown = [
        [
            *(["Human", ""] if i == 0 else [groups[(i - 1) // 2][1] if i % 2 else ""]),
            *([] if i == 0 else [objective_label(row["objective"])]),
            *[
                c.human if i == 0 and c.human else num(row[f"{d}_{c.short}"], c.spec)
                for d in datasets
                for c in cols
            ],
        ]
        for i, row in enumerate(df.to_dict("records"))
    ]
    bold = np.zeros((len(df), 2 + len(datasets) * len(cols)), dtype=bool)
    for mle in range(1, len(df), 2):
        for j, (d, c) in enumerate((d, c) for d in datasets for c in cols):
            values = df.loc[[mle, mle + 1], f"{d}_{c.short}"].tolist()
            if c.compare and not any(math.isnan(v) for v in values):
                bold[[mle, mle + 1], 2 + j] = closest(values, df.at[0, f"{d}_{c.short}"], c.spec)
    columns = header(
        [dataset_label(d) for d in datasets],
        [c.header for c in cols],
        ["Model Size" if key == "model" else "Data Size", "Objective"],
    )
    table_ = pd.DataFrame(shown, columns=columns)
    caption = caption if isinstance(caption, str) else caption()
    return df, latex_table(table_, caption, label, bold=bold, midrules=range(0, len(df), 2))


# --------------------------------------------------------------------------- main-metric tables


def _metric_value_cols(datasets: Sequence[str], first: str) -> list[str]:
    stats = [f"{short}{std}" for short, *_ in _METRICS for std in ("", "_std")]
    return [f"{d}_{c}" for d in datasets for c in ("eta", "n_seeds", first, *stats, "n_empty")]


def _main_cols(first: _Col) -> list[_Col]:
    return [first, *[_Col(short, header, spec) for short, _, header, spec in _METRICS]]


def _human_row(
    human: pd.DataFrame, datasets: Sequence[str], keys: dict, metrics: Sequence = _METRICS
) -> dict:
    """Test-split human means of ``metrics`` (every other value column stays NaN)."""
    row = dict(keys)
    test = human[_is(human["split"], "test")]
    for d in datasets:
        h = test[_is(test["dataset"], d)]
        for short, column, *_ in metrics:
            row[f"{d}_{short}"] = (
                float(pd.to_numeric(h[column], errors="coerce").mean()) if len(h) else math.nan
            )
    return row


def _fill_metrics(row: dict, d: str, rows: pd.DataFrame, what: str) -> None:
    """Seed means/stds of the main metrics of ``rows`` into ``row`` for dataset ``d``."""
    n_seeds = 0
    for short, column, *_ in _METRICS:
        row[f"{d}_{short}"], row[f"{d}_{short}_std"], n = _seed_stats(rows, column, what)
        n_seeds = max(n_seeds, n)
    row[f"{d}_n_seeds"] = float(n_seeds) if n_seeds else math.nan
    row[f"{d}_n_empty"] = _seed_stats(rows, "n_empty", what)[0]
    etas = pd.to_numeric(rows["eta"], errors="coerce").dropna().unique() if len(rows) else []
    row[f"{d}_eta"] = float(etas[0]) if len(etas) == 1 else math.nan


def _run_rows(
    frame: pd.DataFrame, d: str, model: str, objective: str, eta: float, n_train: int
) -> pd.DataFrame:
    """The rows of one trained model (MLE at any eta)."""
    rows = frame[
        _is(frame["dataset"], d)
        & _is(frame["model"], model)
        & _is(frame["objective"], objective)
        & _close(frame["n_train"], n_train)
    ]
    return rows if objective == "mle" else rows[_close(rows["eta"], eta)]


def _ppl(perplexity: pd.DataFrame, d: str, model: str, objective: str, eta: float, n_train: int):
    values = pd.to_numeric(
        _run_rows(perplexity, d, model, objective, eta, n_train)["ppl"], errors="coerce"
    ).dropna()
    if len(values) > 1:
        log.warning("perplexity: %d rows for %s/%s/%s; averaging", len(values), d, model, objective)
    return float(values.mean()) if len(values) else math.nan


def _test_unbiased(samples: pd.DataFrame) -> pd.DataFrame:
    return samples[_is(samples["split"], "test") & _is(samples["decoding"], "unbiased")]


def _variant_n_train(variant: object) -> float:
    try:
        return float(parse_variant(str(variant)).n_train)
    except ValueError:
        return math.nan


def _at_train_size(df: pd.DataFrame, n_train: int) -> pd.Series:
    """Rows of human texts or of models trained on ``n_train`` texts, by the ``n_train``
    column where there is one, else by the train size in the variant name."""
    human = _is(df["objective"], "human")
    if "n_train" in df.columns:
        return human | _close(df["n_train"], n_train)
    if "variant" in df.columns:
        return human | _close(df["variant"].map(_variant_n_train), n_train)
    return pd.Series(True, index=df.index)


_TABLE2_CAPTION = (
    "Unbiased sampling results of models finetuned by MLE or MixCE on the test sets. For all "
    "metrics, the closer to the human scores the better. Bold numbers are the ones closer to "
    "human scores in each setting. Each number is the mean over the sampling seeds; MixCE "
    "uses the eta selected by dev MAUVE; -- marks a missing run."
)


def table2(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    perplexity: pd.DataFrame,
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
    main_n_train: int,
) -> tuple[pd.DataFrame, str]:
    """Table 2: unbiased sampling on test; rows Human, then per model MLE and MixCE (at the
    eta of ``selection``), trained on ``main_n_train`` texts.  Per dataset ppl, div, mauve,
    coh; df: ``model`` and ``objective`` (``human`` on the human row), per dataset
    ``<d>_eta``, ``_n_seeds``, ``_ppl``, ``_div``, ``_div_std``, ``_mauve``, ``_mauve_std``,
    ``_coh``, ``_coh_std``, ``_n_empty`` (mean over seeds of the empty texts)."""
    groups = [(m, model_label(m), m) for m in models]
    return _main_table(
        "Table 2",
        samples,
        human,
        perplexity,
        selection,
        groups,
        lambda _: main_n_train,
        _selected_eta,
        datasets=datasets,
        caption=_TABLE2_CAPTION,
        label="tab:gpt2-unbiased",
    )


def _main_table(
    table: str,
    samples: pd.DataFrame,
    human: pd.DataFrame,
    perplexity: pd.DataFrame,
    selection: pd.DataFrame,
    groups: Sequence[tuple[object, str, str]],
    n_train_of: Callable[[dict], int],
    eta_of: Callable[[Mapping, str, str], float],
    *,
    datasets: Sequence[str],
    caption: str,
    label: str,
    key: str = "model",
) -> tuple[pd.DataFrame, str]:
    """Tables 2 and 5: MLE and MixCE rows per model size or per train size."""
    samples = _frame(samples, SAMPLES_COLUMNS, "samples")
    test = _test_unbiased(samples)
    human = _frame(human, HUMAN_COLUMNS, "human")
    perplexity = _frame(perplexity, PERPLEXITY_COLUMNS, "perplexity")
    sel = _selection_lookup(_frame(selection, SELECTION_COLUMNS, "selection"))
    empty = "the samples input is empty" if samples.empty else None
    if not empty and not groups:
        empty = f"no {key} rows"
    human_keys = {"model": "human", key: "human" if key == "model" else math.nan}

    def fill(row: dict, d: str) -> None:
        m, objective, n_train = row["model"], row["objective"], n_train_of(row)
        eta = 1.0 if objective == "mle" else eta_of(sel, d, m)
        s = _run_rows(test, d, m, objective, eta, n_train)
        _fill_metrics(row, d, s, f"{table} {d}/{m}/{objective}/n{n_train}")
        row[f"{d}_eta"] = eta
        row[f"{d}_ppl"] = _ppl(perplexity, d, m, objective, eta, n_train)

    return _pair_table(
        table,
        empty,
        lambda: _human_row(human, datasets, {**human_keys, "objective": "human"}),
        groups,
        fill,
        datasets=datasets,
        value_cols=_metric_value_cols(datasets, "ppl"),
        cols=_main_cols(_Col("ppl", "ppl", ".2f", compare=False, human=NOT_APPLICABLE)),
        caption=caption,
        label=label,
        key=key,
    )


_TABLE5_CAPTION = (
    "Unbiased sampling results of GPT-2 {model} models finetuned by MLE or MixCE with "
    "different training data sizes. All metrics are the closer to the human scores the better. "
    "Bold numbers are the ones closer to human scores in each setting. MixCE uses the eta of "
    "the config; each number is the mean over the sampling seeds; -- marks a missing run."
)


def table5(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    perplexity: pd.DataFrame,
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    main_n_train: int,
    model: str = "small",
) -> tuple[pd.DataFrame, str]:
    """Table 5: Table 2 for ``model`` at each other train size in ``samples`` or
    ``perplexity`` (ascending), MixCE at the ``config_eta``; df adds ``n_train``."""
    sizes: set[int] = set()
    for frame in (
        _frame(samples, SAMPLES_COLUMNS, "samples"),
        _frame(perplexity, PERPLEXITY_COLUMNS, "perplexity"),
    ):
        mine = frame[_is(frame["model"], model) & frame["objective"].isin(["mle", "mixce"])]
        for n in pd.to_numeric(mine["n_train"], errors="coerce").dropna().unique():
            if not math.isclose(float(n), float(main_n_train), abs_tol=_TOL):
                sizes.add(int(round(float(n))))
    # labels: 50000 -> 50K; sizes that are not whole thousands written out
    groups = [
        (n, f"{n // 1000}K" if n % 1000 == 0 and n > 0 else str(n), model) for n in sorted(sizes)
    ]
    caption = _TABLE5_CAPTION.format(model=model_label(model).lower())
    return _main_table(
        "Table 5",
        samples,
        human,
        perplexity,
        selection,
        groups,
        lambda row: row["n_train"],
        _config_eta,
        datasets=datasets,
        caption=caption,
        label="tab:gpt2-train-sizes",
        key="n_train",
    )


_TABLE3_CAPTION = (
    "Top-p sampling results of the same models as the unbiased-sampling table, each objective "
    "at its best p (selected by dev MAUVE). Since changing the decoding method does not affect "
    "perplexity, the selected best p is reported instead. MixCE uses the eta of the config; "
    "each number is the mean over the sampling seeds; -- marks a missing run."
)


def table3(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    top_p: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
    main_n_train: int,
) -> tuple[pd.DataFrame, str]:
    """Table 3: top-p sampling on test, each (dataset, model, objective) at the variant and
    best p of ``top_p`` (at ``main_n_train``); df as Table 2, ``<d>_best_p`` for ppl."""
    samples = _frame(samples, SAMPLES_COLUMNS, "samples")
    human = _frame(human, HUMAN_COLUMNS, "human")
    top_p = _frame(top_p, TOP_P_COLUMNS, "top_p")
    best = {
        (str(r["dataset"]), str(r["model"]), str(r["objective"])): r for _, r in top_p.iterrows()
    }
    decoding = samples["decoding"].astype(str)
    test = samples[_is(samples["split"], "test") & decoding.str.startswith("top_p")]

    def fill(row: dict, d: str) -> None:
        m, objective = row["model"], row["objective"]
        b = best.get((d, m, objective), {})
        p = _float(b.get("best_p", math.nan))  # NaN (no selection) matches no row
        s = test[
            _is(test["dataset"], d)
            & _is(test["model"], m)
            & _is(test["variant"], str(b.get("variant")))
            & _close(test["top_p"], p)
            & _close(test["n_train"], main_n_train)
        ]
        _fill_metrics(row, d, s, f"Table 3 {d}/{m}/{objective}/p{p}")
        row[f"{d}_best_p"] = p

    return _pair_table(
        "Table 3",
        "the samples input is empty" if samples.empty else None,
        lambda: _human_row(human, datasets, _HUMAN),
        [(m, model_label(m), m) for m in models],
        fill,
        datasets=datasets,
        value_cols=_metric_value_cols(datasets, "best_p"),
        cols=_main_cols(_Col("best_p", "best p", ".2f", compare=False, human=NOT_APPLICABLE)),
        caption=_TABLE3_CAPTION,
        label="tab:gpt2-top-p",
    )


_TABLE10_CAPTION = (
    "Unbiased sampling text lengths (test set) of models finetuned by MLE or MixCE. Length is "
    "computed by splitting text by whitespace; each number is the mean over the sampling seeds; "
    "-- marks a missing run."
)


def table10(
    samples: pd.DataFrame,
    human: pd.DataFrame,
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
    main_n_train: int,
) -> tuple[pd.DataFrame, str]:
    """Table 10: mean length in whitespace words, rows as Table 2; df: ``model``,
    ``objective``, per dataset ``<d>_eta``, ``_n_seeds``, ``_length``, ``_length_std``."""
    samples = _frame(samples, SAMPLES_COLUMNS, "samples")
    human = _frame(human, HUMAN_COLUMNS, "human")
    sel = _selection_lookup(_frame(selection, SELECTION_COLUMNS, "selection"))

    def fill(row: dict, d: str) -> None:
        m, objective = row["model"], row["objective"]
        eta = 1.0 if objective == "mle" else _selected_eta(sel, d, m)
        s = _run_rows(_test_unbiased(samples), d, m, objective, eta, main_n_train)
        mean, std, n = _seed_stats(s, "length_words", f"Table 10 {d}/{m}/{objective}")
        row[f"{d}_eta"] = eta
        row[f"{d}_n_seeds"] = float(n) if n else math.nan
        row[f"{d}_length"] = mean
        row[f"{d}_length_std"] = std

    fields = ("eta", "n_seeds", "length", "length_std")
    return _pair_table(
        "Table 10",
        "the samples input is empty" if samples.empty else None,
        lambda: _human_row(human, datasets, _HUMAN, [("length", "length_words")]),
        [(m, model_label(m), m) for m in models],
        fill,
        datasets=datasets,
        value_cols=[f"{d}_{c}" for d in datasets for c in fields],
        cols=[_Col("length", "avg. len", ".1f", compare=False)],
        caption=_TABLE10_CAPTION,
        label="tab:gpt2-length",
    )


# --------------------------------------------------------------------------- controlled tables

_TABLE8_CAPTION = (
    "Controlled mauve results (c-mauve_L: MAUVE between random L-token fragments of human "
    "and model texts). Unbiased sampling, the same generations as the unbiased-sampling "
    "table. Human scores are not 1 because sampling the fragments twice gives two "
    "different sets. Bold: closer to the human score. Each number is the mean over the "
    "sampling seeds."
)
_TABLE9_CAPTION = (
    "Controlled coherence results (c-coh_L: coherence of random L-token fragments, the "
    "first 50 tokens as the prompt). Unbiased sampling, the same generations as the "
    "unbiased-sampling table. Bold: closer to the human score. Each number is the mean "
    "over the sampling seeds."
)
#: (metric column, CSV short name, LaTeX header, format, caption, label) of Tables 8 and 9.
_CONTROLLED = {
    "Table 8": ("c_mauve", "c_mauve", "c-mauve", ".2f", _TABLE8_CAPTION, "tab:gpt2-c-mauve"),
    "Table 9": ("c_coherence", "c_coh", "c-coh", ".3f", _TABLE9_CAPTION, "tab:gpt2-c-coh"),
}


def _controlled_table(
    table: str,
    controlled: pd.DataFrame,
    selection: pd.DataFrame,
    datasets: Sequence[str],
    models: Sequence[str],
    lengths: Sequence[int] | None,
    main_n_train: int | None,
) -> tuple[pd.DataFrame, str]:
    metric, short, head, spec, caption, label = _CONTROLLED[table]
    controlled = _frame(controlled, CONTROLLED_COLUMNS, "controlled")
    if main_n_train is not None and not controlled.empty:
        controlled = controlled[_at_train_size(controlled, main_n_train)]
    sel = _selection_lookup(_frame(selection, SELECTION_COLUMNS, "selection"))
    if lengths is None:
        found = pd.to_numeric(controlled["length"], errors="coerce").dropna().unique()
        lengths = sorted(int(round(float(x))) for x in found) or list(CONTROLLED_LENGTHS)
    lengths = [int(L) for L in lengths]
    notes: dict[tuple[str, int], set[str]] = {}

    def fill(row: dict, d: str) -> None:
        m, objective = row["model"], row["objective"]
        sub = controlled[_is(controlled["dataset"], d) & _is(controlled["objective"], objective)]
        if objective != "human":  # the reference rows are the human ones of any model
            sub = sub[_is(sub["model"], m)]
        if objective == "mixce":
            sub = sub[_close(sub["eta"], _selected_eta(sel, d, m))]
        for L in lengths:
            cell = sub[_close(sub["length"], L)]
            status = cell["status"].astype(str).str.strip()
            ok = cell[status.str.lower() == "ok"]
            skipped = sorted(set(status[status.str.lower() != "ok"]))
            mean, std, n = _seed_stats(ok, metric, f"{table} {m}/{objective} {d} L={L}")
            note = "; ".join(skipped)
            if skipped and n:
                note = f"{len(cell) - len(ok)} of {len(cell)} runs {note}"
            notes.setdefault((d, L), set()).update(skipped)
            row[f"{d}_{short}_{L}"] = mean
            row[f"{d}_{short}_{L}_std"] = std
            row[f"{d}_{short}_{L}_note"] = note

    def human_row() -> dict:
        row = dict(_HUMAN)
        for d in datasets:
            fill(row, d)
        return row

    def full_caption() -> str:
        parts = [
            f"{dataset_label(d)}, L = {L}: {'; '.join(sorted(reasons))}"
            for (d, L), reasons in sorted(notes.items())
            if reasons
        ]
        return f"{caption} Skipped ({MISSING}): {' | '.join(parts)}." if parts else caption

    return _pair_table(
        table,
        "the controlled input is empty" if controlled.empty else None,
        human_row,
        [(m, model_label(m), m) for m in models],
        fill,
        datasets=datasets,
        value_cols=[
            f"{d}_{short}_{L}{suffix}"
            for d in datasets
            for L in lengths
            for suffix in ("", "_std", "_note")
        ],
        cols=[_Col(f"{short}_{L}", rf"{head}$_{{{L}}}$", spec) for L in lengths],
        caption=full_caption,
        label=label,
    )


def table8(
    controlled: pd.DataFrame,
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
    lengths: Sequence[int] | None = None,
    main_n_train: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """Table 8: controlled MAUVE (c-mauve_L), rows as Table 2 (MixCE at the selected eta), a
    column per dataset and L (``lengths``; default every L in ``controlled``, else
    :data:`CONTROLLED_LENGTHS`).  Means over the seeds with status ``ok``; a cell whose runs
    were all skipped is ``--``, its reason listed in the caption.  ``main_n_train`` leaves
    out other train sizes (``n_train`` column, else the variant name).  df: ``model``,
    ``objective``, per dataset and L ``<d>_c_mauve_<L>``, ``_std`` and ``_note`` (the skip
    reason; empty when every run is ok or there is none)."""
    return _controlled_table(
        "Table 8", controlled, selection, datasets, models, lengths, main_n_train
    )


def table9(
    controlled: pd.DataFrame,
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
    lengths: Sequence[int] | None = None,
    main_n_train: int | None = None,
) -> tuple[pd.DataFrame, str]:
    """Table 9: controlled coherence (c-coh_L); layout and rules as :func:`table8`, df
    columns ``<d>_c_coh_<L>``, ``<d>_c_coh_<L>_std`` and ``<d>_c_coh_<L>_note``."""
    return _controlled_table(
        "Table 9", controlled, selection, datasets, models, lengths, main_n_train
    )


# --------------------------------------------------------------------------- Table 12

_TABLE12_CAPTION = (
    "The selected best eta of the GPT-2 experiments (MixCE of the unbiased-sampling table), "
    "selected by MAUVE (max length) of unbiased samples on the dev set."
)


def table12(
    selection: pd.DataFrame,
    *,
    datasets: Sequence[str],
    models: Sequence[str],
) -> tuple[pd.DataFrame, str]:
    """Table 12: the selected eta per model size and dataset, the config's in parentheses
    where it differs (``0.1 (config 0.5)``); df: ``model``, per dataset ``<d>_eta``,
    ``_dev_mauve_mean``, ``_dev_mauve_std``, ``_config_eta``."""
    selection = _frame(selection, SELECTION_COLUMNS, "selection")
    caption, label = _TABLE12_CAPTION, "tab:gpt2-best-eta"
    fields = ("eta", "dev_mauve_mean", "dev_mauve_std", "config_eta")
    value_cols = [f"{d}_{c}" for d in datasets for c in fields]
    columns = header(
        [dataset_label(d) for d in datasets], [r"best $\eta$"], ["Model Size", "Objective"]
    )
    if selection.empty:
        log.warning("Table 12: the selection input is empty; writing the header with no data rows")
        models = []
    sel = _selection_lookup(selection)
    rows, shown, differs = [], [], False
    for m in models:
        row: dict = {"model": m}
        cells = [model_label(m), "MixCE"]
        for d in datasets:
            r = sel.get((d, m), {})
            row |= {f"{d}_{c}": _float(r.get(c, math.nan)) for c in fields}
            eta, cfg = row[f"{d}_eta"], row[f"{d}_config_eta"]
            text = num(eta, "g")
            if not math.isnan(eta) and not math.isnan(cfg) and not math.isclose(eta, cfg):
                text = f"{text} (config {cfg:g})"
                differs = True
            cells.append(text)
        rows.append(row)
        shown.append(cells)
    if differs:
        caption = (
            f"{caption} In parentheses: the eta of the config, used for top-p sampling and the "
            "train-size table, where it differs from the selection."
        )
    df = _frame_from_rows(rows, ["model"], value_cols)
    return df, latex_table(pd.DataFrame(shown, columns=columns), caption, label)
