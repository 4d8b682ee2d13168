"""GPT-2 paper tables (2, 3, 5, 8, 9, 10, 12), Figures 2 and 4 and the human-evaluation kit."""

from __future__ import annotations

import logging
import math
import re

import numpy as np
import pandas as pd
import pytest

from mixce.gpt2.figures import figure2, figure4, figure4_data
from mixce.gpt2.human_eval import (
    judgments_table,
    make_pairs,
    split_sentences,
    table4,
    unblind,
)
from mixce.gpt2.tables import (
    model_label,
    table2,
    table3,
    table5,
    table8,
    table9,
    table10,
    table12,
)
from mixce.io import write_table

DATASETS = ["wikitext", "webtext"]
MODELS = ["small", "medium"]
SEEDS = [0, 1]
DELTA = 0.01  # per-seed offsets -DELTA / +DELTA: mean = base, std (ddof=1) = DELTA * sqrt(2)
STD = DELTA * math.sqrt(2)
ETAS = [0.9, 0.5, 0.1, 0.0]
MAIN = 50000
SMALL_SIZES = [10000, 25000]
LENGTHS = [128, 512]
# Dev-selected eta (Table 12) and the config's eta (top-p, Table 5).
SELECTED = {
    ("wikitext", "small"): 0.1,
    ("wikitext", "medium"): 0.5,
    ("webtext", "small"): 0.5,
    ("webtext", "medium"): 0.1,
}
CONFIG = {**SELECTED, ("wikitext", "small"): 0.5}  # differs from the selection once

HUMAN = {"wikitext": (0.89, 1.0, 0.628, 124.5), "webtext": (0.84, 1.0, 0.633, 304.5)}
# Test-split unbiased values (div, mauve, coh, length) of MLE and of MixCE at its selected eta.
T2 = {
    ("wikitext", "small", "mle"): (0.91, 0.67, 0.556, 114.8),
    ("wikitext", "small", "mixce"): (0.88, 0.93, 0.567, 89.0),
    ("webtext", "small", "mle"): (0.86, 0.90, 0.600, 284.2),
    ("webtext", "small", "mixce"): (0.82, 0.92, 0.590, 298.9),  # div tie; MLE closer coh
    ("wikitext", "medium", "mle"): (0.90, 0.73, 0.573, 110.0),
    ("wikitext", "medium", "mixce"): (0.88, 0.95, 0.584, 95.0),
    ("webtext", "medium", "mle"): (0.87, 0.88, 0.560, 280.0),
    ("webtext", "medium", "mixce"): (0.83, 0.93, 0.585, 290.0),
}
DECOY = (0.5, 0.5, 0.5, 50.0)  # MixCE at a non-selected eta


def _ppl(ds: str, model: str, objective: str, eta: float, n: int) -> float:
    base = {"small": 26.0, "medium": 20.0}[model] + (1.0 if ds == "webtext" else 0.0)
    return base + (0.0 if objective == "mle" else 5.0 + eta) + (MAIN - n) / 10000


def _sample_rows(ds, model, objective, eta, n, split, decoding, top_p, values, mauve_len):
    rows = []
    variant = f"mle_n{n}" if objective == "mle" else f"mixce_eta{eta:.2f}_n{n}"
    for seed, sign in zip(SEEDS, (-1, 1), strict=True):
        div, mauve, coh, length = values
        row = {
            "dataset": ds,
            "model": model,
            "variant": variant,
            "objective": objective,
            "eta": eta,
            "n_train": n,
            "split": split,
            "decoding": decoding,
            "top_p": top_p,
            "seed": seed,
            "n": 100,
            "n_empty": seed,
            "diversity": div + sign * DELTA,
            "mauve": mauve + sign * DELTA,
            "coherence": coh + sign * DELTA,
            "length_words": length + sign * DELTA,
        }
        for L in LENGTHS:
            row[f"mauve_len{L}"] = mauve_len[L] + sign * DELTA
        rows.append(row)
    return rows


def _dev_mauve(ds: str, model: str, eta: float) -> dict[int, float]:
    """Dev MAUVE per length: best at the selected eta, MLE (eta 1) a bit worse."""
    best = SELECTED[(ds, model)]
    m512 = 0.9 - 0.3 * abs(eta - best)
    return {512: m512, 128: m512 - 0.05}


def make_samples() -> pd.DataFrame:
    rows = []
    for ds in DATASETS:
        for model in MODELS:
            for objective, etas in (("mle", [1.0]), ("mixce", ETAS)):
                for eta in etas:
                    test_values = T2[(ds, model, objective)]
                    if objective == "mixce" and eta != SELECTED[(ds, model)]:
                        test_values = DECOY
                    dev = _dev_mauve(ds, model, eta)
                    dev_values = (0.8, dev[512], 0.5, 100.0)
                    rows += _sample_rows(
                        ds, model, objective, eta, MAIN, "test", "unbiased", 1.0, test_values, dev
                    )
                    rows += _sample_rows(
                        ds, model, objective, eta, MAIN, "dev", "unbiased", 1.0, dev_values, dev
                    )
                # top-p rows: MLE and MixCE at the config eta, p in {0.90, 0.95}
                for objective in ("mle", "mixce"):
                    eta = 1.0 if objective == "mle" else CONFIG[(ds, model)]
                    for p in (0.90, 0.95):
                        best = _best_p(ds, model, objective)
                        vals = (0.85, 0.95, 0.6, 200.0) if p == best else DECOY
                        rows += _sample_rows(
                            ds, model, objective, eta, MAIN, "test", f"top_p{p:.2f}", p, vals, dev
                        )
            # Table 5 rows: small only, other sizes, MLE and MixCE at the config eta (+ decoy)
            if model == "small":
                for n in SMALL_SIZES:
                    k = SMALL_SIZES.index(n)
                    mle = (0.90 + 0.01 * k, 0.60 + 0.05 * k, 0.53 + 0.01 * k, 100.0)
                    mix = (0.88, 0.90 + 0.02 * k, 0.55 + 0.01 * k, 90.0)
                    dev = {128: 0.0, 512: 0.0}
                    rows += _sample_rows(
                        ds, model, "mle", 1.0, n, "test", "unbiased", 1.0, mle, dev
                    )
                    rows += _sample_rows(
                        ds,
                        model,
                        "mixce",
                        CONFIG[(ds, model)],
                        n,
                        "test",
                        "unbiased",
                        1.0,
                        mix,
                        dev,
                    )
                    if CONFIG[(ds, model)] != SELECTED[(ds, model)]:
                        rows += _sample_rows(
                            ds,
                            model,
                            "mixce",
                            SELECTED[(ds, model)],
                            n,
                            "test",
                            "unbiased",
                            1.0,
                            DECOY,
                            dev,
                        )
    # the base model (Figure 2 source): must be ignored by every table
    rows += _sample_rows(
        "wikitext", "small", "base", math.nan, math.nan, "test", "unbiased", 1.0, DECOY, dev
    )
    df = pd.DataFrame(rows)
    df.loc[df["objective"] == "base", "variant"] = "base"
    return df


def _best_p(ds: str, model: str, objective: str) -> float:
    return 0.90 if (objective == "mle") == (ds == "wikitext") else 0.95


def make_human() -> pd.DataFrame:
    rows = []
    for ds, (div, mauve, coh, length) in HUMAN.items():
        for split in ("dev", "test"):
            rows.append(
                {
                    "dataset": ds,
                    "split": split,
                    "n": 100,
                    "diversity": div,
                    "mauve": mauve,
                    "coherence": coh,
                    "length_words": length if split == "test" else 1.0,
                }
            )
    return pd.DataFrame(rows)


def make_perplexity() -> pd.DataFrame:
    rows = []
    for ds in DATASETS:
        for model in MODELS:
            sizes = [MAIN, *SMALL_SIZES] if model == "small" else [MAIN]
            for n in sizes:
                for objective, etas in (("mle", [1.0]), ("mixce", ETAS)):
                    for eta in etas:
                        rows.append(
                            {
                                "dataset": ds,
                                "model": model,
                                "variant": "v",
                                "objective": objective,
                                "eta": eta,
                                "n_train": n,
                                "ppl": _ppl(ds, model, objective, eta, n),
                                "nll": 3.0,
                                "tokens": 1000,
                            }
                        )
    return pd.DataFrame(rows)


def make_selection() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "dataset": ds,
                "model": m,
                "eta": SELECTED[(ds, m)],
                "dev_mauve_mean": 0.9,
                "dev_mauve_std": STD,
                "config_eta": CONFIG[(ds, m)],
            }
            for ds in DATASETS
            for m in MODELS
        ]
    )


def make_top_p() -> pd.DataFrame:
    rows = []
    for ds in DATASETS:
        for m in MODELS:
            for objective in ("mle", "mixce"):
                eta = CONFIG[(ds, m)]
                variant = f"mle_n{MAIN}" if objective == "mle" else f"mixce_eta{eta:.2f}_n{MAIN}"
                rows.append(
                    {
                        "dataset": ds,
                        "model": m,
                        "objective": objective,
                        "variant": variant,
                        "best_p": _best_p(ds, m, objective),
                        "dev_mauve_mean": 0.95,
                    }
                )
    return pd.DataFrame(rows)


SKIP = "skipped: only 4000 fragments of 200 tokens (need 10000)"
C_BASE = {"human": 0.96, "mle": 0.92, "mixce": 0.94}


def make_controlled() -> pd.DataFrame:
    rows = []

    def add(ds, model, objective, eta, L, value):
        variant = {"human": "human", "mle": f"mle_n{MAIN}"}.get(
            objective, f"mixce_eta{eta:.2f}_n{MAIN}"
        )
        for seed, sign in zip(SEEDS, (-1, 1), strict=True):
            skipped = ds == "wikitext" and L == 200
            rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    "variant": variant,
                    "objective": objective,
                    "eta": eta,
                    "seed": seed,
                    "length": L,
                    "c_mauve": math.nan if skipped else value + sign * DELTA,
                    "c_coherence": math.nan if skipped else value / 2 + sign * DELTA,
                    "n_fragments": 4000 if skipped else 10000,
                    "status": SKIP if skipped else "ok",
                }
            )

    for ds in DATASETS:
        for L in (100, 200):
            add(ds, "human", "human", math.nan, L, C_BASE["human"])
            for m in MODELS:
                add(ds, m, "mle", 1.0, L, C_BASE["mle"])
                add(ds, m, "mixce", SELECTED[(ds, m)], L, C_BASE["mixce"])
                add(ds, m, "mixce", 0.0, L, 0.1)  # a non-selected eta: ignored
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return {
        "samples": make_samples(),
        "human": make_human(),
        "perplexity": make_perplexity(),
        "selection": make_selection(),
        "top_p": make_top_p(),
        "controlled": make_controlled(),
    }


def _row(df: pd.DataFrame, **keys) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for k, v in keys.items():
        mask &= df[k] == v
    assert mask.sum() == 1, keys
    return df[mask].iloc[0]


def _tex_row(tex: str, start: str) -> list[str]:
    """Cells of the first body line of ``tex`` starting with ``start``."""
    for line in tex.splitlines():
        if line.lstrip().startswith(start):
            return [c.strip() for c in line.rstrip("\\ ").split("&")]
    raise AssertionError(f"no row starting with {start!r}")


# --------------------------------------------------------------------------- Table 2


def test_table2_rows_columns_means_stds(data):
    df, tex = table2(
        data["samples"],
        data["human"],
        data["perplexity"],
        data["selection"],
        datasets=DATASETS,
        models=MODELS,
        main_n_train=MAIN,
    )
    assert list(df["model"]) == ["human", "small", "small", "medium", "medium"]
    assert list(df["objective"]) == ["human", "mle", "mixce", "mle", "mixce"]
    per_ds = ["eta", "n_seeds", "ppl", "div", "div_std", "mauve", "mauve_std", "coh", "coh_std"]
    expected = ["model", "objective"]
    for ds in DATASETS:
        expected += [f"{ds}_{c}" for c in per_ds] + [f"{ds}_n_empty"]
    assert list(df.columns) == expected
    for (ds, model, objective), (div, mauve, coh, _) in T2.items():
        r = _row(df, model=model, objective=objective)
        assert r[f"{ds}_div"] == pytest.approx(div)
        assert r[f"{ds}_mauve"] == pytest.approx(mauve)
        assert r[f"{ds}_coh"] == pytest.approx(coh)
        assert r[f"{ds}_mauve_std"] == pytest.approx(STD)
        assert r[f"{ds}_n_seeds"] == 2
        assert r[f"{ds}_n_empty"] == pytest.approx(0.5)
        eta = 1.0 if objective == "mle" else SELECTED[(ds, model)]
        assert r[f"{ds}_eta"] == pytest.approx(eta)
        assert r[f"{ds}_ppl"] == pytest.approx(_ppl(ds, model, objective, eta, MAIN))
    human = _row(df, model="human")
    assert human["wikitext_coh"] == pytest.approx(0.628)
    assert math.isnan(human["wikitext_ppl"]) and math.isnan(human["wikitext_mauve_std"])
    # LaTeX: paper formats, human ppl "-", group label on the MLE row only
    assert "\\toprule" in tex and "\\bottomrule" in tex
    cells = _tex_row(tex, "Human")
    assert cells[2:6] == ["-", "0.89", "1.00", "0.628"]
    small_mle = _tex_row(tex, "Small & MLE")
    assert small_mle[2] == f"{_ppl('wikitext', 'small', 'mle', 1.0, MAIN):.2f}"


def test_table2_bold_closer_to_human(data):
    _, tex = table2(
        data["samples"],
        data["human"],
        data["perplexity"],
        data["selection"],
        datasets=DATASETS,
        models=MODELS,
        main_n_train=MAIN,
    )
    mle = _tex_row(tex, "Small & MLE")
    mix = _tex_row(tex, "& MixCE")  # the first MixCE row is Small's
    # wikitext: human div 0.89, MLE 0.91, MixCE 0.88 -> MixCE; mauve, coh -> MixCE
    assert mle[3:6] == ["0.91", "0.67", "0.556"]
    assert mix[3:6] == ["\\textbf{0.88}", "\\textbf{0.93}", "\\textbf{0.567}"]
    # ppl never bold
    assert "textbf" not in mle[2] + mix[2]
    # webtext: div 0.86 vs 0.82 around 0.84 -> tie, both bold; coh 0.600 vs 0.590 -> MLE
    assert mle[7] == "\\textbf{0.86}" and mix[7] == "\\textbf{0.82}"
    assert mle[9] == "\\textbf{0.600}" and mix[9] == "0.590"
    # human row never bold
    assert "textbf" not in " ".join(_tex_row(tex, "Human"))


def test_table2_missing_model_and_dataset_give_dashes(data, caplog):
    df, tex = table2(
        data["samples"],
        data["human"],
        data["perplexity"],
        data["selection"],
        datasets=[*DATASETS, "writingprompts"],
        models=[*MODELS, "large"],
        main_n_train=MAIN,
    )
    large = df[df["model"] == "large"]
    assert len(large) == 2
    value_cols = [c for c in df.columns if c.endswith(("_div", "_mauve", "_coh", "_ppl"))]
    assert large[value_cols].isna().all().all()
    assert df["writingprompts_mauve"].isna().all()
    cells = _tex_row(tex, "Large & MLE")
    assert set(cells[2:]) == {"--"}
    assert "WritingPrompts" in tex
    assert model_label("xl") == "Xl"


def test_table2_empty_input_header_only(data, caplog):
    with caplog.at_level(logging.WARNING):
        df, tex = table2(
            pd.DataFrame(),
            data["human"],
            data["perplexity"],
            data["selection"],
            datasets=DATASETS,
            models=MODELS,
            main_n_train=MAIN,
        )
    assert df.empty and "wikitext_mauve" in df.columns
    assert "WikiText" in tex and "Human" not in tex
    assert "samples input is empty" in caplog.text
    for build in (
        lambda: table8(None, data["selection"], datasets=DATASETS, models=MODELS),
        lambda: table12(pd.DataFrame(), datasets=DATASETS, models=MODELS),
        lambda: table5(  # no train size other than the main one
            data["samples"][data["samples"]["n_train"] == MAIN],
            data["human"],
            data["perplexity"][data["perplexity"]["n_train"] == MAIN],
            data["selection"],
            datasets=DATASETS,
            main_n_train=MAIN,
        ),
    ):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            df, tex = build()
        assert df.empty and "\\bottomrule" in tex and "WARNING" in caplog.text


def test_table2_bad_columns_raise(data):
    with pytest.raises(ValueError, match="samples is missing column"):
        table2(
            data["samples"].drop(columns=["mauve"]),
            data["human"],
            data["perplexity"],
            data["selection"],
            datasets=DATASETS,
            models=MODELS,
            main_n_train=MAIN,
        )


# --------------------------------------------------------------------------- Table 3


def test_table3_best_p(data):
    df, tex = table3(
        data["samples"],
        data["human"],
        data["top_p"],
        datasets=DATASETS,
        models=MODELS,
        main_n_train=MAIN,
    )
    assert list(df["objective"]) == ["human", "mle", "mixce", "mle", "mixce"]
    assert "wikitext_best_p" in df.columns and "wikitext_ppl" not in df.columns
    for ds in DATASETS:
        for m in MODELS:
            for objective in ("mle", "mixce"):
                r = _row(df, model=m, objective=objective)
                assert r[f"{ds}_best_p"] == pytest.approx(_best_p(ds, m, objective))
                assert r[f"{ds}_mauve"] == pytest.approx(0.95)  # the best p's rows, not decoys
                assert r[f"{ds}_coh_std"] == pytest.approx(STD)
                eta = 1.0 if objective == "mle" else CONFIG[(ds, m)]
                assert r[f"{ds}_eta"] == pytest.approx(eta)
    assert "best p" in tex
    assert _tex_row(tex, "Human")[2] == "-"
    assert _tex_row(tex, "Small & MLE")[2] == "0.90"


# --------------------------------------------------------------------------- Table 5


def test_table5_only_other_sizes_config_eta(data):
    df, tex = table5(
        data["samples"],
        data["human"],
        data["perplexity"],
        data["selection"],
        datasets=DATASETS,
        main_n_train=MAIN,
        model="small",
    )
    assert str(df["n_train"].dtype) == "Int64"
    sizes = df["n_train"].dropna().astype(int).tolist()
    assert sizes == [10000, 10000, 25000, 25000]
    assert MAIN not in sizes
    assert list(df["objective"]) == ["human", "mle", "mixce", "mle", "mixce"]
    r = _row(df, n_train=25000, objective="mixce")
    # wikitext uses the config eta 0.5 (the selection says 0.1: a decoy at 0.1 exists)
    assert r["wikitext_eta"] == pytest.approx(0.5)
    assert r["wikitext_mauve"] == pytest.approx(0.92)
    assert r["wikitext_ppl"] == pytest.approx(_ppl("wikitext", "small", "mixce", 0.5, 25000))
    assert r["webtext_mauve"] == pytest.approx(0.92)
    assert "10K" in tex and "25K" in tex and "50K" not in tex


# --------------------------------------------------------------------------- Tables 8 and 9


def test_table8_skipped_length(data):
    df, tex = table8(
        data["controlled"], data["selection"], datasets=DATASETS, models=MODELS, main_n_train=MAIN
    )
    assert list(df["objective"]) == ["human", "mle", "mixce", "mle", "mixce"]
    for ds in DATASETS:
        for L in (100, 200):
            assert f"{ds}_c_mauve_{L}" in df.columns and f"{ds}_c_mauve_{L}_note" in df.columns
    r = _row(df, model="small", objective="mixce")
    assert r["webtext_c_mauve_200"] == pytest.approx(C_BASE["mixce"])  # not the eta-0 decoy
    assert r["webtext_c_mauve_200_std"] == pytest.approx(STD)
    assert math.isnan(r["wikitext_c_mauve_200"])
    assert r["wikitext_c_mauve_200_note"] == SKIP
    assert _row(df, model="human")["wikitext_c_mauve_100"] == pytest.approx(0.96)
    cells = _tex_row(tex, "Small & MLE")
    assert cells[3] == "--"  # wikitext, L = 200
    assert "only 4000 fragments of 200 tokens" in tex
    assert "WikiText, L = 200" in tex
    assert "c-mauve$_{100}$" in tex
    # closer to human (0.96): MixCE 0.94 bold
    assert _tex_row(tex, "& MixCE")[2] == "\\textbf{0.94}"


def test_table9_coherence(data):
    df, tex = table9(data["controlled"], data["selection"], datasets=DATASETS, models=MODELS)
    r = _row(df, model="medium", objective="mle")
    assert r["webtext_c_coh_100"] == pytest.approx(C_BASE["mle"] / 2)
    assert "c-coh$_{200}$" in tex and "--" in tex
    assert f"{C_BASE['human'] / 2:.3f}" in tex


# --------------------------------------------------------------------------- Tables 10 and 12


def test_table10_lengths(data):
    df, tex = table10(
        data["samples"],
        data["human"],
        data["selection"],
        datasets=DATASETS,
        models=MODELS,
        main_n_train=MAIN,
    )
    assert list(df.columns[:2]) == ["model", "objective"]
    assert _row(df, model="human")["webtext_length"] == pytest.approx(304.5)
    r = _row(df, model="small", objective="mixce")
    assert r["wikitext_length"] == pytest.approx(89.0)
    assert r["wikitext_length_std"] == pytest.approx(STD)
    assert "avg. len" in tex and "89.0" in tex and "124.5" in tex


def test_table12_selected_eta(data):
    df, tex = table12(data["selection"], datasets=DATASETS, models=[*MODELS, "large"])
    assert list(df["model"]) == ["small", "medium", "large"]
    assert list(df.columns) == [
        "model",
        *[
            f"{ds}_{c}"
            for ds in DATASETS
            for c in ("eta", "dev_mauve_mean", "dev_mauve_std", "config_eta")
        ],
    ]
    for (ds, m), eta in SELECTED.items():
        assert _row(df, model=m)[f"{ds}_eta"] == pytest.approx(eta)
    assert _row(df, model="small")["wikitext_config_eta"] == pytest.approx(0.5)
    assert "0.1 (config 0.5)" in tex
    assert _tex_row(tex, "Large")[2:] == ["--", "--"]


def test_write_table(tmp_path, data):
    df, tex = table12(data["selection"], datasets=DATASETS, models=MODELS)
    write_table(df, tex, tmp_path / "out" / "table12")
    back = pd.read_csv(tmp_path / "out" / "table12.csv")
    assert list(back.columns) == list(df.columns) and len(back) == 2
    assert (tmp_path / "out" / "table12.tex").read_text() == tex
    # the HTML view (for the report) holds the same cells, formatted, in a page
    html = (tmp_path / "out" / "table12.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Table 12</title>" in html
    assert "<code>table12.csv</code>" in html
    rows = html_rows(html)
    assert rows[0] == list(df.columns) and len(rows) == len(df) + 1
    for got_row, (_, want_row) in zip(rows[1:], df.iterrows(), strict=True):
        for got, want in zip(got_row, want_row, strict=True):
            if isinstance(want, float) and math.isfinite(want):
                assert float(got) == pytest.approx(float(f"{want:.4g}"))
            elif isinstance(want, float):
                assert got == ""
            else:
                assert got == str(want)


def html_rows(html: str) -> list[list[str]]:
    """The header and body cells of the one table of an HTML page, as text."""
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.rows: list[list[str]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag, attrs) -> None:
            if tag == "tr":
                self.rows.append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.rows[-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Cells()
    parser.feed(html)
    return parser.rows


# --------------------------------------------------------------------------- figures


def test_figure4_data_and_files(tmp_path, data):
    points = figure4_data(data["samples"], LENGTHS)
    small = points[(points["dataset"] == "wikitext") & (points["model"] == "small")]
    assert sorted(small["eta"].unique()) == [*sorted(ETAS), 1.0]  # MLE at eta = 1
    at512 = small[small["length"] == 512].set_index("eta")
    assert at512["mauve_mean"].idxmax() == pytest.approx(SELECTED[("wikitext", "small")])
    assert at512["mauve_std"].iloc[0] == pytest.approx(STD)
    assert (small["n_seeds"] == 2).all()
    out = figure4(data["samples"], LENGTHS, DATASETS, [*MODELS, "large"], tmp_path / "fig4")
    assert len(out) == len(points)
    for ext in ("pdf", "png"):
        f = tmp_path / f"fig4.{ext}"
        assert f.exists() and f.stat().st_size > 10_000
    assert (tmp_path / "fig4.png").read_bytes()[:4] == b"\x89PNG"


def test_figure2_files(tmp_path):
    rng = np.random.default_rng(0)
    nll = {}
    for ds in DATASETS:
        for src, shift in (("human", 3.0), ("unbiased", 3.5), ("greedy", 1.0)):
            nll[(ds, src)] = (rng.normal(shift, 0.5, 300), rng.gamma(2.0, shift / 2, 5000))
    del nll[("webtext", "greedy")]  # a missing source is left out
    summary = figure2(nll, DATASETS, tmp_path / "fig2")
    assert len(summary) == 2 * 3 + 2 * 2
    assert set(summary["level"]) == {"sequence", "token"}
    for ext in ("pdf", "png"):
        assert (tmp_path / f"fig2.{ext}").stat().st_size > 10_000


# --------------------------------------------------------------------------- human evaluation


def _para(n_sentences: int, chars: int = 80, first: int = 0) -> str:
    """``n_sentences`` sentences of ``chars`` characters each, joined by spaces."""
    return " ".join(f"S{first + i:03d}" + "a" * (chars - 5) + "." for i in range(n_sentences))


def test_split_sentences_simple_rules():
    text = (
        'Mr. Smith went to Washington. He arrived at 5 p.m. on Monday! "Did he?" Yes. '
        "J. R. Tolkien wrote"
    )
    assert split_sentences(text) == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday!",
        '"Did he?"',
        "Yes.",
        "J. R. Tolkien wrote",
    ]
    assert split_sentences(_para(6)) == _para(6).split(" ")


def test_make_pairs_filters():
    prompt = _para(1, first=900) + " "
    cases = {  # name: (a continuation, b continuation, expected drop reason or "")
        "kept": (_para(5), _para(5, first=50), ""),
        "few": (_para(3), _para(5), "too_few_sentences"),
        "long": (_para(7, 300), _para(7, 300, first=50), "too_long"),
        "short": (_para(4, 60), _para(4, 60, first=50), "too_short"),
        "sent_diff": (_para(4, 95), _para(6, 80, first=50), "sentence_diff"),
        "char_diff": (_para(5, 80), _para(5, 125, first=50), "char_diff"),
        "cut": (_para(12), _para(7, first=50), ""),
        "empty": (_para(5), "", "empty"),
        "same": (_para(5), _para(5), "identical"),
    }
    names = list(cases)
    pairs, key, dropped = make_pairs(
        [cases[n][0] for n in names],
        [cases[n][1] for n in names],
        prompts=[prompt] * len(names),
        seed=1,
    )
    kept = sorted(names[i] for i in key["index"])
    assert kept == ["cut", "kept"]
    assert dropped["total"] == len(names) and dropped["kept"] == 2
    for reason in ("too_few_sentences", "too_long", "too_short", "sentence_diff", "char_diff"):
        assert dropped[reason] == 1, reason
    assert dropped["empty"] == 1 and dropped["identical"] == 1 and dropped["not_sampled"] == 0
    # the 12-sentence continuation (+ 1 prompt sentence) is cut to 8 sentences
    cut = key[key["index"] == names.index("cut")].iloc[0]
    assert cut["mle_sentences"] == 8 and cut["mixce_sentences"] == 8
    texts = unblind(pairs, key).set_index("index")
    cut_text = texts.loc[names.index("cut"), "mle_text"]
    assert len(split_sentences(cut_text)) == 8 and cut_text.startswith(prompt.strip())
    assert cut_text.endswith("S006" + "a" * 75 + ".")
    assert all(t.startswith(prompt) for t in pairs["text_1"])


def _many(n: int) -> tuple[list[str], list[str], list[str]]:
    prompts = [f"Prompt{i:04d} starts here. " for i in range(n)]
    a = [_para(6, first=100) + f" Mle{i:04d} ends." for i in range(n)]
    b = [_para(6, first=200) + f" Mix{i:04d} ends." for i in range(n)]
    return a, b, prompts


def test_make_pairs_blinding_and_key():
    a, b, prompts = _many(200)
    pairs, key, dropped = make_pairs(a, b, prompts=prompts, seed=7)
    assert dropped["kept"] == 200
    assert list(pairs.columns) == [
        "pair_id",
        "prompt",
        "text_1",
        "text_2",
        "better",
        "justification",
    ]
    assert (pairs["better"] == "").all()
    assert not any(re.search(r"mle|mixce|source|side", c, re.I) for c in pairs.columns)
    assert pairs["pair_id"].is_unique and set(pairs["pair_id"]) == set(key["pair_id"])
    # MLE shown second in exactly half of the pairs, and the order is shuffled
    assert (key["mle_side"] == 2).sum() == 100
    assert list(key["index"]) != sorted(key["index"])
    swapped = pairs["text_1"].str.contains("Mix")
    assert swapped.sum() == 100
    assert (swapped.to_numpy() == (key["mle_side"] == 2).to_numpy()).all()
    # un-blinding through the key recovers the sources
    back = unblind(pairs, key)
    for _, r in back.iterrows():
        i = int(r["index"])
        assert r["mle_text"] == prompts[i] + a[i]
        assert r["mixce_text"] == prompts[i] + b[i]
    # reproducible from the seed; another seed differs
    again = make_pairs(a, b, prompts=prompts, seed=7)
    pd.testing.assert_frame_equal(again.pairs, pairs)
    pd.testing.assert_frame_equal(again.key, key)
    other = make_pairs(a, b, prompts=prompts, seed=8)
    assert not other.key["mle_side"].equals(key["mle_side"])
    # a random subset of n_pairs
    sub = make_pairs(a, b, prompts=prompts, seed=7, n_pairs=105)
    assert len(sub.pairs) == 105 and sub.dropped["not_sampled"] == 95
    assert sub.pairs["pair_id"].iloc[0] == "pair0001"
    prefixed = make_pairs(a, b, prompts=prompts, seed=7, id_prefix="wikitext-")
    assert prefixed.key["pair_id"].iloc[0] == "wikitext-0001"
    with pytest.raises(ValueError, match="same length"):
        make_pairs(a, b[:-1], prompts=prompts, seed=0)


def _judgments(key: pd.DataFrame, p_mixce: float, p_tie: float, seed: int) -> pd.DataFrame:
    """Three annotators per pair; each picks MixCE / MLE / tie with the given chances."""
    rng = np.random.default_rng(seed)
    rows = []
    for _, k in key.iterrows():
        for annotator in ("w1", "w2", "w3"):
            u = rng.random()
            if u < p_tie:
                answer = "tie"
            elif u < p_tie + p_mixce * (1 - p_tie):
                answer = str(k["mixce_side"])
            else:
                answer = str(k["mle_side"])
            rows.append({"pair_id": k["pair_id"], "annotator": annotator, "better": answer})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def key() -> pd.DataFrame:
    a, b, prompts = _many(105)
    return make_pairs(a, b, prompts=prompts, seed=3).key


def test_judgments_mixce_preferred_is_significant(key):
    judg = _judgments(key, p_mixce=0.8, p_tie=0.1, seed=0)
    res = judgments_table(judg, key, n_bootstrap=5000, seed=0)
    r = res.iloc[0]
    assert r["question"] == "better" and r["n_pairs"] == 105 and r["n_judgments"] == 315
    assert r["mixce_wins"] + r["mle_wins"] + r["ties"] == 315
    assert r["mixce_wins"] > 2 * r["mle_wins"]
    assert r["mixce_share"] == pytest.approx(r["mixce_wins"] / 315)
    assert r["p_mixce_better"] < 0.05 and bool(r["significant"])
    assert r["p_mle_better"] > 0.5
    assert r["all_agree"] + r["partial_agree"] + r["no_agreement"] == pytest.approx(1.0)


def test_judgments_even_split_not_significant(key):
    rows = []
    for i, (_, k) in enumerate(key.iterrows()):  # alternate pairs: MixCE / MLE by all three
        side = k["mixce_side"] if i % 2 == 0 else k["mle_side"]
        rows += [{"pair_id": k["pair_id"], "better": str(side)} for _ in range(3)]
    rows.append({"pair_id": key["pair_id"].iloc[0], "better": "TIE "})
    res = judgments_table(pd.DataFrame(rows), key, n_bootstrap=5000, seed=0)
    r = res.iloc[0]
    assert abs(int(r["mixce_wins"]) - int(r["mle_wins"])) <= 3 and r["ties"] == 1
    assert r["p_mixce_better"] > 0.05 and not bool(r["significant"])
    assert r["p_mle_better"] > 0.05


def test_judgments_errors(key):
    good = _judgments(key, 0.5, 0.0, seed=1)
    bad = good.copy()
    bad.loc[3, "better"] = "3"
    with pytest.raises(ValueError, match="'better'.*not one of"):
        judgments_table(bad, key)
    unknown = good.copy()
    unknown.loc[0, "pair_id"] = "pair9999"
    with pytest.raises(ValueError, match="'pair_id'.*pair9999"):
        judgments_table(unknown, key)
    with pytest.raises(ValueError, match="missing column.*fluent"):
        judgments_table(good, key, questions=("better", "fluent"))


def test_judgments_agreement_and_table4(key):
    ids = list(key["pair_id"][:3])
    side = dict(zip(key["pair_id"], key["mixce_side"].astype(str), strict=True))
    other = {"1": "2", "2": "1"}
    answers = {
        ids[0]: [side[ids[0]]] * 3,  # all agree
        ids[1]: [side[ids[1]], side[ids[1]], "tie"],  # two agree
        ids[2]: [side[ids[2]], other[side[ids[2]]], "tie"],  # no agreement
    }
    judg = pd.DataFrame(
        [{"pair_id": p, "better": a} for p, answer in answers.items() for a in answer]
    )
    res = judgments_table(judg, key, n_bootstrap=200)
    r = res.iloc[0]
    assert (r["mixce_wins"], r["mle_wins"], r["ties"]) == (6, 1, 2)
    assert r["all_agree"] == pytest.approx(1 / 3)
    assert r["partial_agree"] == pytest.approx(1 / 3)
    assert r["no_agreement"] == pytest.approx(1 / 3)

    strong = judgments_table(_judgments(key, 0.8, 0.1, seed=0), key, n_bootstrap=2000)
    df, tex = table4({"wikitext": strong, "webtext": res.iloc[0:0]})
    assert list(df["dataset"]) == ["wikitext", "webtext"]
    assert f"{int(strong['mixce_wins'].iloc[0])}*" in tex
    assert _tex_row(tex, "WebText")[1:] == ["--", "--", "--"]
