"""Model selection of the GPT-2 track (paper section 4.2): by MAUVE on the dev set, the mean
over sampling seeds, at the main train size."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

ETA_COLUMNS = "dataset model eta dev_mauve_mean dev_mauve_std n_seeds config_eta".split()
TOP_P_COLUMNS = ["dataset", "model", "objective", "variant", "best_p", "dev_mauve_mean"]
SETTING_COLUMNS = ["dataset", "model", "objective", "variant", "setting"]
SETTING_COLUMNS += "dev_mauve_mean dev_mauve_std n_seeds n_settings".split()


def _dev(samples: pd.DataFrame, n_train: int) -> pd.DataFrame:
    return samples[(samples["split"] == "dev") & (samples["n_train"] == n_train)]


def _best(runs: pd.DataFrame, by: str, larger_first: bool, what: str) -> tuple[Any, dict]:
    """The candidate ``by`` with the best mean MAUVE over ``runs`` (ties: the larger ``by``
    first, else the smaller), its mean/std/seed-count columns and the number of candidates."""
    if runs.empty:
        raise ValueError(f"no unbiased dev samples of {what}")
    stats = runs.groupby(by)["mauve"].agg(["mean", "std", "count"]).reset_index()
    stats["key"] = stats["mean"].round(12)  # float noise is no preference
    best = stats.sort_values(["key", by], ascending=[False, not larger_first]).iloc[0]
    return best[by], {
        "dev_mauve_mean": float(best["mean"]),
        "dev_mauve_std": float(best["std"]) if best["count"] > 1 else math.nan,
        "n_seeds": int(best["count"]),
        "n_settings": len(stats),
    }


def select_eta(
    samples: pd.DataFrame,
    n_train: int,
    datasets: Sequence[str],
    models: Sequence[str],
    config_eta: Mapping[str, Mapping[str, float]],
) -> pd.DataFrame:
    """Best MixCE eta per (dataset, model) by dev MAUVE of unbiased samples (Table 12); ties go
    to the larger eta (closer to MLE). MLE is no candidate: the paper searches MixCE's grid.
    The config's ``selected_eta`` (used by top-p sampling and Table 5) is shown beside it."""
    dev = _dev(samples, n_train)
    dev = dev[(dev["objective"] == "mixce") & (dev["decoding"] == "unbiased")]
    rows: list[dict[str, Any]] = []
    for dataset, model in itertools.product(datasets, models):
        runs = dev[(dev["dataset"] == dataset) & (dev["model"] == model)]
        what = f"MixCE for dataset {dataset!r}, model {model!r}"
        eta, stats = _best(runs, "eta", larger_first=True, what=what)
        config = float(config_eta.get(dataset, {}).get(model, math.nan))
        rows.append(
            {"dataset": dataset, "model": model, "eta": float(eta), **stats, "config_eta": config}
        )
    return pd.DataFrame(rows, columns=ETA_COLUMNS)


def select_top_p(samples: pd.DataFrame, n_train: int) -> pd.DataFrame:
    """Best top-p per (dataset, model, objective, variant) by dev MAUVE among the top-p files
    that exist (Table 3). A one-value grid has no dev files (nothing to choose): its test
    files give the rows, dev_mauve_mean NaN."""
    top = samples[samples["decoding"].str.startswith("top_p") & (samples["n_train"] == n_train)]
    if top["top_p"].nunique() == 1:
        keys = ["dataset", "model", "objective", "variant", "top_p"]
        only = top[keys].drop_duplicates().rename(columns={"top_p": "best_p"})
        return only.assign(dev_mauve_mean=math.nan)[TOP_P_COLUMNS].reset_index(drop=True)
    dev = _dev(samples, n_train)
    dev = dev[dev["decoding"].str.startswith("top_p")]
    rows = []
    for keys, runs in dev.groupby(["dataset", "model", "objective", "variant"], sort=True):
        stats = runs.groupby("top_p")["mauve"].mean().reset_index()
        stats = stats.sort_values(["mauve", "top_p"], ascending=[False, False])
        best = [float(stats.iloc[0]["top_p"]), float(stats.iloc[0]["mauve"])]
        rows.append(dict(zip(TOP_P_COLUMNS, [*keys, *best], strict=True)))
    return pd.DataFrame(rows, columns=TOP_P_COLUMNS)


def select_settings(
    samples: pd.DataFrame,
    n_train: int,
    datasets: Sequence[str],
    models: Sequence[str],
    objectives: Sequence[str],
) -> pd.DataFrame:
    """Best variant (hyper-parameter setting) per (dataset, model, objective) by dev MAUVE of
    unbiased samples, for the comparison of objectives beyond the paper; ties go to the first
    variant in name order."""
    dev = _dev(samples, n_train)
    dev = dev[dev["decoding"] == "unbiased"]
    rows: list[dict[str, Any]] = []
    for dataset, model, objective in itertools.product(datasets, models, objectives):
        runs = dev[(dev["dataset"] == dataset) & (dev["model"] == model)]
        runs = runs[runs["objective"] == objective]
        what = f"{objective} for dataset {dataset!r}, model {model!r}"
        variant, stats = _best(runs, "variant", larger_first=False, what=what)
        setting = runs.loc[runs["variant"] == variant, "setting"].iloc[0]
        setting = "" if pd.isna(setting) else str(setting)
        keys = {"dataset": dataset, "model": model, "objective": objective}
        rows.append(keys | {"variant": variant, "setting": setting, **stats})
    return pd.DataFrame(rows, columns=SETTING_COLUMNS)
