"""Model selection for the synthetic experiments (paper section 4.1, Table 11).

The paper trains every objective that has a mixing ratio (Mix KLs, JS, MixCE*, MixCE) for each
eta of a grid and reports, per (target init, vocabulary size, objective), the eta whose 5-seed
average ``avg. js`` is lowest. Forward KL (eta = 1.0) and reverse KL (eta = 0.0) have a single
eta, which the same procedure returns. Input is the tidy ``runs.csv`` (one row per trained model).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mixce.synthetic.settings import FIXED_ETA, OBJECTIVES

NO_ETA_OBJECTIVES: frozenset[str] = frozenset(FIXED_ETA)
#: Columns of ``runs.csv`` that selection needs.
REQUIRED_COLUMNS = ("init", "vocab_size", "objective", "eta", "seed", "avg_js", "avg_0s")
_KEYS = ["init", "vocab_size", "objective"]
_METRICS = ("avg_js", "avg_0s")
SELECTED_COLUMNS: tuple[str, ...] = (
    *_KEYS,
    "best_eta",
    "n_seeds",
    *(f"{m}_{s}" for m in _METRICS for s in ("mean", "sd", "ci95")),
)
CURVE_COLUMNS: tuple[str, ...] = (*_KEYS, "eta", "n_seeds", "avg_js_mean", "avg_js_sd")


def objective_rank(objective: str) -> tuple[int, str]:
    """Sort key putting objectives in the paper's order, unknown ones last (by name)."""
    known = objective in OBJECTIVES
    return (OBJECTIVES.index(objective) if known else len(OBJECTIVES), objective)


def _summary(values: pd.Series) -> tuple[float, float, float]:
    """Mean, sample sd (ddof = 1) and half-width of the 95% t confidence interval of the mean,
    ``t_{0.975, n-1} * sd / sqrt(n)``, NaNs ignored (sd and CI are NaN for fewer than 2)."""
    arr = values.to_numpy(dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size < 2:
        return (float(arr.mean()) if arr.size else math.nan, math.nan, math.nan)
    from scipy import stats  # here, not at the top: training jobs import this module

    sd = float(arr.std(ddof=1))
    return float(arr.mean()), sd, float(stats.t.ppf(0.975, arr.size - 1) * sd / math.sqrt(arr.size))


def _validate(runs: pd.DataFrame) -> pd.DataFrame:
    """Check columns and key values; return a typed copy of the needed columns."""
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs is missing required column(s): {', '.join(missing)}")
    if runs.empty:
        raise ValueError("runs is empty: no trained models to select from")
    df = runs.loc[:, list(REQUIRED_COLUMNS)].copy()
    key_cols = [*_KEYS, "eta", "seed"]
    null_keys = [c for c in key_cols if df[c].isna().any()]
    if null_keys:
        raise ValueError(f"runs has missing values in key column(s): {', '.join(null_keys)}")
    types = {"init": str, "objective": str, "vocab_size": int, "eta": float}
    df = df.astype(types | dict.fromkeys(_METRICS, float))
    dup = df.duplicated(subset=key_cols, keep=False)
    if dup.any():
        first = df.loc[dup, key_cols].iloc[0].to_dict()
        raise ValueError(
            f"runs has {int(dup.sum())} duplicated (init, vocab_size, objective, eta, seed) "
            f"rows, e.g. {first}"
        )
    return df


def sort_runs(df: pd.DataFrame, then: list[str]) -> pd.DataFrame:
    """Rows sorted by init, vocab size, the paper's objective order, then ``then`` (stable)."""
    rank = df["objective"].map(lambda o: objective_rank(o)[0])
    keys = ["init", "vocab_size", "_rank", *then]
    out = df.assign(_rank=rank).sort_values(keys, kind="mergesort")
    return out.drop(columns="_rank").reset_index(drop=True)


def select_best_eta(runs: pd.DataFrame) -> pd.DataFrame:
    """Pick, per (init, vocab_size, objective), the eta with the lowest mean avg. js.

    The seeds' avg. js is averaged per eta (NaN runs skipped); the lowest mean wins, ties going
    to the larger eta; an eta whose runs are all NaN wins only if every eta is (NaN statistics).
    Returns one row per (init, vocab_size, objective), columns :data:`SELECTED_COLUMNS`:
    ``n_seeds`` (runs at the best eta) and for avg_js and avg_0s the mean, sd and 95% CI
    half-width over those seeds (:func:`_summary`), sorted by init, V and the paper's order.
    ValueError for a missing column (named), no rows, missing keys or a duplicated run.
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
        row = [init, int(vocab_size), objective, float(eta), int(len(group))]
        rows.append(row + [x for metric in _METRICS for x in _summary(group[metric])])
    out = pd.DataFrame(rows, columns=list(SELECTED_COLUMNS))
    out = out.astype({"vocab_size": int, "n_seeds": int})
    return sort_runs(out, ["objective"])


def eta_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd (ddof = 1, NaN for one run) of avg. js over seeds for every (init,
    vocab_size, objective, eta), for the eta-sensitivity figure (forward and reverse KL as
    single points); columns :data:`CURVE_COLUMNS`, sorted as :func:`select_best_eta` then by
    eta. Raises ValueError as :func:`select_best_eta`.
    """
    grouped = _validate(runs).groupby([*_KEYS, "eta"], sort=True)["avg_js"]
    stats = {"n_seeds": grouped.size(), "avg_js_mean": grouped.mean()}
    out = pd.DataFrame({**stats, "avg_js_sd": grouped.std(ddof=1)}).reset_index()
    out = out[list(CURVE_COLUMNS)].astype({"vocab_size": int, "n_seeds": int})
    return sort_runs(out, ["objective", "eta"])
