"""Model selection, paper tables (1/6, 7, 11) and the eta figure of the synthetic runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mixce.io import write_table
from mixce.synthetic.figure import plot_eta_curves
from mixce.synthetic.select import eta_curve, select_best_eta
from mixce.synthetic.tables import (
    init_label,
    table_best_eta,
    table_ci,
    table_main,
)
from mixce.tables import closest, escape, header, latex_table, objective_label, sci

INITS = ["random50", "realtext"]
VOCABS = [20, 50]
OBJECTIVES = ["forward_kl", "reverse_kl", "mix_kl", "js", "mixce_star", "mixce"]
GRID = [0.9, 0.1]
SEEDS = [7, 42, 777]
SEED_SCALE = [0.9, 1.0, 1.1]  # per-seed multiplier: the mean over seeds is the base

# Expected best eta per (init, vocab, objective with a grid); the other eta is worse.
BEST = {
    ("random50", 20, "mix_kl"): 0.9,
    ("random50", 20, "js"): 0.9,  # a tie: both etas have equal values -> the larger
    ("random50", 20, "mixce_star"): 0.1,
    ("random50", 20, "mixce"): 0.1,
    ("random50", 50, "mix_kl"): 0.1,
    ("random50", 50, "js"): 0.9,
    ("random50", 50, "mixce_star"): 0.9,
    ("random50", 50, "mixce"): 0.1,
    ("realtext", 20, "mix_kl"): 0.9,
    ("realtext", 20, "js"): 0.1,
    ("realtext", 20, "mixce_star"): 0.9,
    ("realtext", 20, "mixce"): 0.9,
    ("realtext", 50, "mix_kl"): 0.1,
    ("realtext", 50, "js"): 0.1,
    ("realtext", 50, "mixce_star"): 0.9,
    ("realtext", 50, "mixce"): 0.1,
}
TIE = ("random50", 20, "js")
# The run we leave out: no reverse KL for realtext at V = 50.
MISSING = ("realtext", 50, "reverse_kl")


def _base(init: str, vocab: int, objective: str) -> float:
    """Mean avg. js of the best eta (distinct per cell)."""
    if (init, vocab, objective) == ("random50", 20, "forward_kl"):
        return 7.40e-4
    k = OBJECTIVES.index(objective) + 1
    return (1e-3 if vocab == 20 else 1e-2) * k * (1.0 if init == "random50" else 1.5)


def make_runs() -> pd.DataFrame:
    rows = []
    for init in INITS:
        for vocab in VOCABS:
            for obj in OBJECTIVES:
                if (init, vocab, obj) == MISSING:
                    continue
                if obj == "forward_kl":
                    etas = [1.0]
                elif obj == "reverse_kl":
                    etas = [0.0]
                else:
                    etas = GRID
                for eta in etas:
                    best = BEST.get((init, vocab, obj), eta) == eta
                    worse = 1.0 if (best or (init, vocab, obj) == TIE) else 3.0
                    for seed, scale in zip(SEEDS, SEED_SCALE, strict=True):
                        js = _base(init, vocab, obj) * worse * scale
                        rows.append(
                            {
                                "init": init,
                                "vocab_size": vocab,
                                "objective": obj,
                                "eta": eta,
                                "seed": seed,
                                "avg_js": js,
                                "avg_0s": js / 10 + 1e-6 * seed,
                                "dev_loss": 1.0,
                                "best_step": 100,
                                "steps": 200,
                                "seconds": 1.5,
                                "estimator": "exact",
                            }
                        )
    # Shuffle so that nothing depends on the input order.
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return make_runs()


@pytest.fixture(scope="module")
def selected(runs: pd.DataFrame) -> pd.DataFrame:
    return select_best_eta(runs)


LABELS = {"random50": "Random (50%)", "realtext": "Real text"}


# --------------------------------------------------------------------------- selection


def test_best_eta(selected: pd.DataFrame) -> None:
    assert list(selected.columns) == [
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
    ]
    assert len(selected) == len(INITS) * len(VOCABS) * len(OBJECTIVES) - 1
    got = {
        (r.init, r.vocab_size, r.objective): r.best_eta for r in selected.itertuples(index=False)
    }
    for key, eta in BEST.items():
        assert got[key] == eta, key
    for init in INITS:
        for vocab in VOCABS:
            assert got[(init, vocab, "forward_kl")] == 1.0
            if (init, vocab, "reverse_kl") != MISSING:
                assert got[(init, vocab, "reverse_kl")] == 0.0
    assert MISSING not in got
    assert (selected["n_seeds"] == len(SEEDS)).all()
    # Rows are sorted: init, vocab, paper objective order.
    expected_order = [
        (i, v, o) for i in INITS for v in VOCABS for o in OBJECTIVES if (i, v, o) != MISSING
    ]
    assert list(zip(selected.init, selected.vocab_size, selected.objective, strict=True)) == (
        expected_order
    )


def test_ci95_matches_t_formula(runs: pd.DataFrame, selected: pd.DataFrame) -> None:
    for init, vocab, obj in [("random50", 50, "mixce"), ("realtext", 20, "forward_kl")]:
        row = selected[
            (selected.init == init) & (selected.vocab_size == vocab) & (selected.objective == obj)
        ].iloc[0]
        chosen = runs[
            (runs.init == init)
            & (runs.vocab_size == vocab)
            & (runs.objective == obj)
            & (runs.eta == row.best_eta)
        ]
        for metric in ("avg_js", "avg_0s"):
            x = chosen[metric].to_numpy()
            lo, hi = stats.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=stats.sem(x))
            assert row[f"{metric}_mean"] == pytest.approx(x.mean(), rel=1e-12)
            assert row[f"{metric}_sd"] == pytest.approx(np.std(x, ddof=1), rel=1e-12)
            assert row[f"{metric}_ci95"] == pytest.approx((hi - lo) / 2, rel=1e-9)


def test_ci95_nan_for_single_seed(runs: pd.DataFrame) -> None:
    one = select_best_eta(runs[runs.seed == SEEDS[0]])
    assert (one["n_seeds"] == 1).all()
    assert one["avg_js_ci95"].isna().all() and one["avg_js_sd"].isna().all()


def test_select_raises_on_missing_column_or_empty(runs: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="avg_js"):
        select_best_eta(runs.drop(columns=["avg_js"]))
    with pytest.raises(ValueError, match="eta"):
        eta_curve(runs.drop(columns=["eta"]))
    with pytest.raises(ValueError, match="empty"):
        select_best_eta(runs.iloc[0:0])
    with pytest.raises(ValueError, match="duplicated"):
        select_best_eta(pd.concat([runs, runs.iloc[:1]]))


def test_eta_curve(runs: pd.DataFrame) -> None:
    curve = eta_curve(runs)
    assert list(curve.columns) == [
        "init",
        "vocab_size",
        "objective",
        "eta",
        "n_seeds",
        "avg_js_mean",
        "avg_js_sd",
    ]
    # 4 grid objectives x 2 etas + forward + reverse, per (init, vocab), less the missing one.
    assert len(curve) == len(INITS) * len(VOCABS) * (4 * 2 + 2) - 1
    r = curve[(curve.init == "random50") & (curve.vocab_size == 20) & (curve.objective == "mixce")]
    assert list(r.eta) == [0.1, 0.9]
    assert r.avg_js_mean.iloc[0] == pytest.approx(_base("random50", 20, "mixce"))
    assert r.avg_js_mean.iloc[1] == pytest.approx(3 * _base("random50", 20, "mixce"))


# --------------------------------------------------------------------------- LaTeX helpers


def test_sci_and_escape() -> None:
    assert sci(7.4e-4) == "7.40e-4"
    assert sci(0.136) == "1.36e-1"
    assert sci(9.996e-4) == "1.00e-3"
    assert sci(0.0) == "0.0"
    assert sci(math.nan) == "--"
    assert sci(None) == "--"
    assert sci(np.float64(2.5e-6)) == "2.50e-6"
    assert sci(1234.0) == "1.23e3"
    assert escape("Random (50%) a_b & $x^2$ #1 {y} ~") == (
        r"Random (50\%) a\_b \& $x^2$ \#1 \{y\} \textasciitilde{}"
    )


def test_latex_table_groups_bold_midrules() -> None:
    cells = pd.DataFrame(
        [["r%", "0.93", r"$\pm$"], ["s", "1", None], ["t", "2", "3"]],
        columns=header(["A_1"], ["p", "q"], ["x"]),
    )
    bold = np.array([[False, True, False], [False] * 3, [False] * 3])
    tex = latex_table(cells, "Cap 50% $p$", "tab:t", labels=1, bold=bold, midrules=[0, 2])
    assert r"\begin{tabular}{lcc}" in tex and tex.count(r"\begin{tabular}") == 1
    assert r" & \multicolumn{2}{c}{A\_1} \\" in tex
    assert r"\cmidrule(lr){2-3}" in tex
    lines = tex.splitlines()
    assert lines.index(r"\toprule") < lines.index(r"\bottomrule")
    row = lines.index(r"r\% & \textbf{0.93} & $\pm$ \\")
    assert lines[row + 1] == r"\midrule" and lines[row + 2] == r"s & 1 & -- \\"
    assert tex.count(r"\midrule") == 2  # after the header and after row 0; not after the last
    assert lines[-3:] == [r"\caption{Cap 50\% $p$}", r"\label{tab:t}", r"\end{table}"]
    assert tex.count("{") == tex.count("}")


def test_closest_and_objective_label() -> None:
    assert closest([0.86, 0.82], 0.84, ".2f") == [True, True]  # a displayed tie
    assert closest([0.600, 0.590], 0.633, ".3f") == [True, False]
    assert closest([0.5, math.nan], 0.4, ".2f") == [True, False]
    assert closest([0.5, 0.6], math.nan, ".2f") == [False, False]
    assert objective_label("mix_kl") == "Mix KLs" and objective_label("mle") == "MLE"
    assert objective_label("new_thing") == "New Thing"


def test_init_label() -> None:
    assert init_label("random50", {"kind": "random", "zero_fraction": 0.5}) == "Random (50%)"
    assert init_label("x", {"kind": "random", "zero_fraction": 0.1}) == "Random (10%)"
    assert init_label("foo", {"kind": "real_text"}) == "Real text"
    assert init_label("random90", {}) == "Random (90%)"
    assert init_label("realtext") == "Real text"
    assert init_label("other") == "other"


# --------------------------------------------------------------------------- tables


def test_table_main(selected: pd.DataFrame, tmp_path) -> None:
    df, tex = table_main(selected, INITS, LABELS)
    write_table(df, tex, tmp_path / "table1")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["table1.csv", "table1.html", "table1.tex"]
    assert (tmp_path / "table1.csv").stat().st_mode & 0o777 == 0o644
    csv = pd.read_csv(tmp_path / "table1.csv")
    assert list(csv.columns) == [
        "vocab_size",
        "objective",
        "random50_avg_js",
        "random50_avg_0s",
        "realtext_avg_js",
        "realtext_avg_0s",
    ]
    assert list(csv.objective) == ["gold", *OBJECTIVES, *OBJECTIVES]
    assert math.isnan(csv.vocab_size.iloc[0])
    assert list(csv.vocab_size.iloc[1:]) == [20] * 6 + [50] * 6
    assert (csv.iloc[0, 2:] == 0.0).all()
    # Values are the 5-seed (here 3-seed) means of the best eta.
    r = csv[(csv.vocab_size == 50) & (csv.objective == "mixce")].iloc[0]
    assert r.realtext_avg_js == pytest.approx(_base("realtext", 50, "mixce"))
    # The missing run is NaN, not invented, and "--" in the tex.
    miss = csv[(csv.vocab_size == 50) & (csv.objective == "reverse_kl")].iloc[0]
    assert math.isnan(miss.realtext_avg_js) and math.isnan(miss.realtext_avg_0s)
    assert not math.isnan(miss.random50_avg_js)

    text = (tmp_path / "table1.tex").read_text()
    assert text == tex
    assert r"\multicolumn{2}{c}{Random (50\%)} & \multicolumn{2}{c}{Real text} \\" in tex
    assert r"Vocab & Objective & avg. js & avg. 0s & avg. js & avg. 0s \\" in tex
    assert r"Gold &  & 0.0 & 0.0 & 0.0 & 0.0 \\" in tex
    assert r"20 & For. KL & 7.40e-4 & " in tex
    assert " & Rev. KL & " + sci(miss.random50_avg_js) + " & " in tex
    rev50 = [ln for ln in tex.splitlines() if " & Rev. KL & " in ln][1]
    assert rev50.endswith(r"& -- & -- \\")
    lines = tex.splitlines()
    rows = lines[
        lines.index(r"Gold &  & 0.0 & 0.0 & 0.0 & 0.0 \\") + 1 : lines.index(r"\bottomrule")
    ]
    rows = [ln for ln in rows if ln != r"\midrule"]
    assert [ln.split(" & ")[0] for ln in rows] == ["20"] + [""] * 5 + ["50"] + [""] * 5
    body = [ln.split(" & ")[1] for ln in rows]
    assert body == ["For. KL", "Rev. KL", "Mix KLs", "JS", "MixCE*", "MixCE"] * 2
    # Midrules: after the header, after Gold and between the vocab groups.
    assert tex.count(r"\midrule") == 3
    assert r"\begin{tabular}{llcccc}" in tex


def test_table_main_skips_absent_objectives(selected: pd.DataFrame) -> None:
    df, _ = table_main(selected[selected.objective != "js"], INITS, LABELS)
    assert "js" not in set(df.objective)
    assert len(df) == 1 + 2 * 5


def test_table_ci(selected: pd.DataFrame) -> None:
    objs = ["forward_kl", "mixce_star", "mixce"]
    df, tex = table_ci(selected, "realtext", 50, objs, LABELS)
    assert list(df.objective) == objs
    row = selected[
        (selected.init == "realtext")
        & (selected.vocab_size == 50)
        & (selected.objective == "mixce")
    ].iloc[0]
    line = rf" & MixCE & {sci(row.avg_js_mean)} $\pm${sci(row.avg_js_ci95)} & "
    assert line in tex
    assert df.avg_js_ci95.iloc[2] == row.avg_js_ci95
    assert r"\multicolumn{2}{c}{Real text}" in tex
    assert tex.splitlines()[tex.splitlines().index(r"\midrule") + 1].startswith("50 & For. KL & ")


def test_table_best_eta(selected: pd.DataFrame) -> None:
    df, tex = table_best_eta(selected, INITS, LABELS)
    assert list(df.columns) == ["vocab_size", "objective", "random50_best_eta", "realtext_best_eta"]
    grid = ["mix_kl", "js", "mixce_star", "mixce"]
    assert list(df.objective) == grid * 2
    assert list(df.vocab_size) == [20] * 4 + [50] * 4
    for r in df.itertuples(index=False):
        assert r.random50_best_eta == BEST[("random50", r.vocab_size, r.objective)]
        assert r.realtext_best_eta == BEST[("realtext", r.vocab_size, r.objective)]
    assert r"Vocab & Objective & best $\eta$ & best $\eta$ \\" in tex
    assert r"20 & Mix KLs & 0.9 & 0.9 \\" in tex
    assert r" & MixCE* & 0.1 & 0.9 \\" in tex


# --------------------------------------------------------------------------- figure


def test_plot_eta_curves(runs: pd.DataFrame, tmp_path) -> None:
    curve = eta_curve(runs)
    plot_eta_curves(curve, tmp_path / "fig_eta")
    png = (tmp_path / "fig_eta.png").read_bytes()
    pdf = (tmp_path / "fig_eta.pdf").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert pdf.startswith(b"%PDF-") and len(pdf) > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # Deterministic output.
    plot_eta_curves(curve, tmp_path / "again")
    assert (tmp_path / "again.pdf").read_bytes() == pdf
    assert (tmp_path / "again.png").read_bytes() == png
