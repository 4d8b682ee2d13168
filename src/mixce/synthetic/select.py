"""Model selection for the synthetic experiments (paper section 4.1, Table 11).

The paper trains every objective that has a mixing ratio (Mix KLs, JS, MixCE*,
MixCE) for each eta of a grid and reports, per (target init, vocabulary size,
objective), the eta whose 5-seed average ``avg. js`` is lowest.  Forward KL
(recorded with eta = 1.0) and reverse KL (eta = 0.0) have a single eta, so the
same procedure simply returns it.

Input is the tidy ``runs.csv`` written by the workflow (one row per trained
model); only the columns in :data:`REQUIRED_COLUMNS` are used.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: Objectives in the order the paper lists them (Tables 1, 6, 7, 11).
OBJECTIVE_ORDER: tuple[str, ...] = (
    "forward_kl",
    "reverse_kl",
    "mix_kl",
    "js",
    "mixce_star",
    "mixce",
)

#: The eta a single-eta objective is by definition: forward KL is the mixture at eta = 1,
#: reverse KL at eta = 0. They have no eta grid.
FIXED_ETA: dict[str, float] = {"forward_kl": 1.0, "reverse_kl": 0.0}
NO_ETA_OBJECTIVES: frozenset[str] = frozenset(FIXED_ETA)

#: Columns of ``runs.csv`` that selection needs.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "init",
    "vocab_size",
    "objective",
    "eta",
    "seed",
    "avg_js",
    "avg_0s",
)

_KEYS = ["init", "vocab_size", "objective"]
_METRICS = ("avg_js", "avg_0s")

SELECTED_COLUMNS: tuple[str, ...] = (
    "init",
    "vocab_size",
    "objective",
    "best_eta",
    "n_seeds",
    "avg_js_mean",
    "avg_js_sd",
    "avg_js_ci95",
    "avg_0s_mean",
    "avg_0s_sd",
    "avg_0s_ci95",
)

CURVE_COLUMNS: tuple[str, ...] = (
    "init",
    "vocab_size",
    "objective",
    "eta",
    "n_seeds",
    "avg_js_mean",
    "avg_js_sd",
)


def objective_rank(objective: str) -> tuple[int, str]:
    """Sort key putting objectives in the paper's order, unknown ones last (by name)."""
    try:
        return (OBJECTIVE_ORDER.index(objective), objective)
    except ValueError:
        return (len(OBJECTIVE_ORDER), objective)


def ci95(values: np.ndarray | pd.Series) -> float:
    """Half-width of the 95% t confidence interval of the mean of ``values``.

    ``t_{0.975, n-1} * sd / sqrt(n)`` with the sample standard deviation
    (ddof = 1); NaN values are ignored, and the result is NaN when fewer than
    two values remain.
    """
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    n = arr.size
    if n < 2:
        return math.nan
    from scipy import stats  # here, not at the top: training jobs import this module

    sd = float(np.std(arr, ddof=1))
    return float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


def _validate(runs: pd.DataFrame) -> pd.DataFrame:
    """Check columns and key values; return a typed copy of the needed columns."""
    if not isinstance(runs, pd.DataFrame):
        raise TypeError(f"runs must be a pandas DataFrame, got {type(runs).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs is missing required column(s): {', '.join(missing)}")
    if runs.empty:
        raise ValueError("runs is empty: no trained models to select from")
    df = runs.loc[:, list(REQUIRED_COLUMNS)].copy()
    key_cols = ["init", "vocab_size", "objective", "eta", "seed"]
    null_keys = [c for c in key_cols if df[c].isna().any()]
    if null_keys:
        raise ValueError(f"runs has missing values in key column(s): {', '.join(null_keys)}")
    df["init"] = df["init"].astype(str)
    df["objective"] = df["objective"].astype(str)
    df["vocab_size"] = df["vocab_size"].astype(int)
    df["eta"] = df["eta"].astype(float)
    for metric in _METRICS:
        df[metric] = pd.to_numeric(df[metric], errors="raise").astype(float)
    dup = df.duplicated(subset=key_cols, keep=False)
    if dup.any():
        first = df.loc[dup, key_cols].iloc[0].to_dict()
        raise ValueError(
            f"runs has {int(dup.sum())} duplicated (init, vocab_size, objective, eta, seed) "
            f"rows, e.g. {first}"
        )
    return df


def _sorted(df: pd.DataFrame, extra: list[str] | None = None) -> pd.DataFrame:
    """Sort rows by init, vocab size, paper objective order, then ``extra`` columns."""
    extra = extra or []
    rank = df["objective"].map(lambda o: objective_rank(o)[0])
    out = (
        df.assign(_rank=rank)
        .sort_values(["init", "vocab_size", "_rank", "objective", *extra], kind="mergesort")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )
    return out


def _summary(values: pd.Series) -> tuple[float, float, float]:
    """Mean, sample sd and 95% CI half-width of ``values`` (NaNs ignored)."""
    arr = values.to_numpy(dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(arr.mean())
    sd = float(arr.std(ddof=1)) if arr.size >= 2 else math.nan
    return (mean, sd, ci95(arr))


def select_best_eta(runs: pd.DataFrame) -> pd.DataFrame:
    """Pick, per (init, vocab_size, objective), the eta with the lowest mean avg. js.

    For each (init, vocab_size, objective, eta) the avg. js of the seeds is
    averaged (NaN runs are skipped); the eta with the lowest mean wins, ties
    going to the larger eta.  An eta whose runs are all NaN is never selected
    unless every eta is (then the row has NaN statistics).  Forward and reverse
    KL have a single eta and so are passed through.

    Args:
        runs: the tidy ``runs.csv`` table; needs :data:`REQUIRED_COLUMNS`.

    Returns:
        One row per (init, vocab_size, objective) with columns
        :data:`SELECTED_COLUMNS`: ``best_eta``; ``n_seeds`` (runs at that eta);
        and for avg_js and avg_0s the mean, sample sd (ddof = 1) and the 95%
        CI half-width ``t_{0.975,n-1} * sd / sqrt(n)`` (NaN when n < 2), all
        over the seeds of the selected eta.  Rows are sorted by init, vocab
        size and the paper's objective order.

    Raises:
        ValueError: a required column is missing (named in the message), runs
            is empty, a key column has missing values, or a
            (init, vocab_size, objective, eta, seed) row is duplicated.
    """
    df = _validate(runs)
    means = df.groupby([*_KEYS, "eta"], sort=True)["avg_js"].mean().reset_index()
    # Lowest mean first; NaN means last; among equal means the larger eta first.
    means = means.assign(_nan=means["avg_js"].isna()).sort_values(
        [*_KEYS, "_nan", "avg_js", "eta"],
        ascending=[True, True, True, True, True, False],
        kind="mergesort",
    )
    best = means.groupby(_KEYS, sort=True).head(1)[[*_KEYS, "eta"]]

    rows = []
    chosen = df.merge(best, on=[*_KEYS, "eta"], how="inner")
    for (init, vocab_size, objective, eta), group in chosen.groupby([*_KEYS, "eta"], sort=True):
        row: dict[str, object] = {
            "init": init,
            "vocab_size": int(vocab_size),
            "objective": objective,
            "best_eta": float(eta),
            "n_seeds": int(len(group)),
        }
        for metric in _METRICS:
            mean, sd, ci = _summary(group[metric])
            row[f"{metric}_mean"] = mean
            row[f"{metric}_sd"] = sd
            row[f"{metric}_ci95"] = ci
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(SELECTED_COLUMNS))
    out["vocab_size"] = out["vocab_size"].astype(int)
    out["n_seeds"] = out["n_seeds"].astype(int)
    return _sorted(out)


def eta_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd of avg. js over seeds for every (init, vocab_size, objective, eta).

    Feeds the eta-sensitivity figure.  Forward KL (eta = 1.0) and reverse KL
    (eta = 0.0) are included as single points.

    Args:
        runs: the tidy ``runs.csv`` table; needs :data:`REQUIRED_COLUMNS`.

    Returns:
        Columns :data:`CURVE_COLUMNS` (``n_seeds`` counts the runs, the sd is
        the sample sd with ddof = 1 and NaN for a single run), sorted by init,
        vocab size, the paper's objective order and ascending eta.

    Raises:
        ValueError: as :func:`select_best_eta`.
    """
    df = _validate(runs)
    grouped = df.groupby([*_KEYS, "eta"], sort=True)["avg_js"]
    out = pd.DataFrame(
        {
            "n_seeds": grouped.size(),
            "avg_js_mean": grouped.mean(),
            "avg_js_sd": grouped.std(ddof=1),
        }
    ).reset_index()
    out = out[list(CURVE_COLUMNS)]
    out["vocab_size"] = out["vocab_size"].astype(int)
    out["n_seeds"] = out["n_seeds"].astype(int)
    return _sorted(out, extra=["eta"])
