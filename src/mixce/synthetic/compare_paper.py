"""Our synthetic results next to the paper's Tables 1 and 6 (docs/REPRODUCTION.md).

Usage: python -m mixce.synthetic.compare_paper SELECTED_CSV [PAPER_CSV] > out.md
       python -m mixce.synthetic.compare_paper --summary LABEL=SELECTED_CSV ... > summary.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from mixce.tables import objective_label, sci

PAPER_CSV = Path(__file__).resolve().parents[3] / "docs" / "paper_synthetic.csv"


def side_by_side(selected: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per (init, V, objective) present in both: paper and our avg.js / avg.0s."""
    ours = selected.rename(columns={"avg_js_mean": "avg_js", "avg_0s_mean": "avg_0s"})
    keys = ["init", "vocab_size", "objective"]
    both = paper.merge(
        ours[[*keys, "avg_js", "avg_0s", "best_eta"]], on=keys, suffixes=("_paper", "_ours")
    )
    return both.sort_values(keys, kind="stable").reset_index(drop=True)


def _better(by: pd.DataFrame, a: str, b: str, col: str) -> bool | None:
    """Whether objective a has avg.js <= objective b's (None when either is missing)."""
    if a in by.index and b in by.index:
        return bool(by.loc[a, col] <= by.loc[b, col])
    return None


def agreement(both: pd.DataFrame) -> pd.DataFrame:
    """Per (init, V): rank correlation of the objectives by avg.js, and the paper's claims."""
    rows = []
    for (init, v), g in both.groupby(["init", "vocab_size"], sort=True):
        by = g.set_index("objective")
        rho = spearmanr(by["avg_js_paper"], by["avg_js_ours"]).statistic if len(g) > 2 else np.nan

        rows.append(
            {
                "init": init,
                "vocab_size": v,
                "spearman_js": rho,
                "best_paper": by["avg_js_paper"].idxmin(),
                "best_ours": by["avg_js_ours"].idxmin(),
                "mixce<=mle_paper": _better(by, "mixce", "forward_kl", "avg_js_paper"),
                "mixce<=mle_ours": _better(by, "mixce", "forward_kl", "avg_js_ours"),
                "mixkl<=mle_paper": _better(by, "mix_kl", "forward_kl", "avg_js_paper"),
                "mixkl<=mle_ours": _better(by, "mix_kl", "forward_kl", "avg_js_ours"),
            }
        )
    return pd.DataFrame(rows)


def markdown(both: pd.DataFrame, agree: pd.DataFrame) -> str:
    """Markdown tables: the agreement summary, then every cell."""
    out = [
        "| init | V | Spearman (avg.js order of objectives) | best: paper | best: ours | "
        "MixCE <= MLE: paper / ours | Mix KLs <= MLE: paper / ours |",
        "|---|---|---|---|---|---|---|",
    ]
    yn = {True: "yes", False: "no", None: "-"}
    for r in agree.itertuples(index=False):  # fields 5 to 8: the claims, paper / ours
        out.append(
            f"| {r.init} | {r.vocab_size} | {r.spearman_js:.2f} | "
            f"{objective_label(r.best_paper)} | {objective_label(r.best_ours)} | "
            f"{yn[r[5]]} / {yn[r[6]]} | {yn[r[7]]} / {yn[r[8]]} |"
        )
    out += [
        "",
        "| init | V | objective | avg.js paper | avg.js ours | ours/paper | "
        "avg.0s paper | avg.0s ours | our best eta |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in both.itertuples(index=False):
        out.append(
            f"| {r.init} | {r.vocab_size} | {objective_label(r.objective)} | "
            f"{sci(r.avg_js_paper)} | {sci(r.avg_js_ours)} | "
            f"{r.avg_js_ours / r.avg_js_paper:.2f} | {sci(r.avg_0s_paper)} | "
            f"{sci(r.avg_0s_ours)} | {r.best_eta:g} |"
        )
    return "\n".join(out) + "\n"


def summary(both: pd.DataFrame, agree: pd.DataFrame) -> dict[str, float]:
    """How close one run is to the paper: cells within 2x / 3x of the paper's avg.js, the
    median ratio ours / paper (all cells and per objective), how many (init, V) have the
    paper's best objective, and the mean Spearman correlation of the objectives' order."""
    ratio = both["avg_js_ours"] / both["avg_js_paper"]
    out = {
        "cells": len(both),
        "within_2x": int(((ratio >= 0.5) & (ratio <= 2)).sum()),
        "within_3x": int(((ratio >= 1 / 3) & (ratio <= 3)).sum()),
        "median_ratio": float(ratio.median()),
        "same_best": int((agree["best_paper"] == agree["best_ours"]).sum()),
        "groups": len(agree),
        "mean_spearman": float(agree["spearman_js"].mean()),
    }
    for objective, part in ratio.groupby(both["objective"]):
        out[f"median_ratio_{objective}"] = float(part.median())
    return out


def summary_markdown(runs: dict[str, pd.DataFrame], paper: pd.DataFrame) -> str:
    """One row per run: :func:`summary` against the paper, then the median ratio per objective."""
    stats = {}
    for label, selected in runs.items():
        both = side_by_side(selected, paper)
        stats[label] = summary(both, agreement(both))
    objectives = sorted(
        {k.removeprefix("median_ratio_") for s in stats.values() for k in s if "_ratio_" in k}
    )
    out = [
        "| run | cells | within 2x | within 3x | median ours/paper | same best objective "
        "| mean Spearman |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, s in stats.items():
        out.append(
            f"| {label} | {s['cells']} | {s['within_2x']} | {s['within_3x']} | "
            f"{s['median_ratio']:.2f} | {s['same_best']} of {s['groups']} | "
            f"{s['mean_spearman']:.2f} |"
        )
    out += ["", "| run | " + " | ".join(objective_label(o) for o in objectives) + " |"]
    out += ["|---|" + "---|" * len(objectives)]
    for label, s in stats.items():
        cells = [f"{s.get(f'median_ratio_{o}', np.nan):.2f}" for o in objectives]
        out.append(f"| {label} (median ours/paper) | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--summary":
        runs = {label: pd.read_csv(path) for label, _, path in (a.partition("=") for a in argv[1:])}
        sys.stdout.write(summary_markdown(runs, pd.read_csv(PAPER_CSV, comment="#")))
        return
    selected = pd.read_csv(argv[0])
    paper = pd.read_csv(argv[1] if len(argv) > 1 else PAPER_CSV, comment="#")
    both = side_by_side(selected, paper)
    sys.stdout.write(markdown(both, agreement(both)))


if __name__ == "__main__":
    main(sys.argv[1:])
