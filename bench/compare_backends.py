"""Compare two synthetic runs cell by cell (e.g. the NumPy and the torch backend).

Reads the ``selected.csv`` of each run (one row per init, V and objective: best eta, mean,
sd over seeds) and reports, per cell, the ratio of the avg.js means, their difference in
standard errors (sqrt(sd_a^2 / n_a + sd_b^2 / n_b)) and whether the selected eta is the same.

Usage:
  python bench/compare_backends.py A/selected.csv B/selected.csv [--labels torch numpy]
      [--out docs/reproduction/backends.md]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["init", "vocab_size", "objective"]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of both runs: means, ratio b / a, z of the difference, same eta."""
    m = a.merge(b, on=KEYS, suffixes=("_a", "_b"), validate="one_to_one")
    if m.empty:
        raise ValueError("the two runs share no (init, vocab_size, objective) cell")
    se = np.sqrt(m["avg_js_sd_a"] ** 2 / m["n_seeds_a"] + m["avg_js_sd_b"] ** 2 / m["n_seeds_b"])
    return pd.DataFrame(
        {
            **{k: m[k] for k in KEYS},
            "eta_a": m["best_eta_a"],
            "eta_b": m["best_eta_b"],
            "avg_js_a": m["avg_js_mean_a"],
            "avg_js_b": m["avg_js_mean_b"],
            "ratio": m["avg_js_mean_b"] / m["avg_js_mean_a"],
            "z": (m["avg_js_mean_b"] - m["avg_js_mean_a"]) / se,
            "same_eta": m["best_eta_a"] == m["best_eta_b"],
        }
    )


def summary(cells: pd.DataFrame) -> dict:
    """Counts and quantiles over the cells."""
    q = cells["ratio"].quantile([0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "cells": len(cells),
        "within_2_se": int((cells["z"].abs() < 2).sum()),
        "within_3_se": int((cells["z"].abs() < 3).sum()),
        "same_eta": int(cells["same_eta"].sum()),
        "ratio_quantiles": {f"{k:.2f}": round(float(v), 3) for k, v in q.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--labels", nargs=2, default=["a", "b"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cells = compare(pd.read_csv(args.a), pd.read_csv(args.b))
    s = summary(cells)
    la, lb = args.labels
    lines = [
        f"# {lb} against {la}: avg.js of the selected eta, per cell",
        "",
        f"From `python bench/compare_backends.py {args.a} {args.b} --labels {la} {lb}`.",
        "",
        f"- cells: {s['cells']}; within 2 standard errors: {s['within_2_se']}; within 3: "
        f"{s['within_3_se']}; same selected eta: {s['same_eta']}",
        f"- {lb} / {la}, quantiles 10/25/50/75/90%: "
        + ", ".join(str(v) for v in s["ratio_quantiles"].values()),
        "",
        f"| init | V | objective | eta {la} | eta {lb} | {la} | {lb} | ratio | z |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cells.itertuples():
        lines.append(
            f"| {r.init} | {r.vocab_size} | {r.objective} | {r.eta_a:g} | {r.eta_b:g} | "
            f"{r.avg_js_a:.3e} | {r.avg_js_b:.3e} | {r.ratio:.2f} | {r.z:+.1f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print("\n".join(lines[:6]))


if __name__ == "__main__":
    main()
