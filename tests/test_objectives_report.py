"""The comparison of objectives beyond the paper (mixce.gpt2.comparison)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mixce.gpt2.comparison import COLUMNS, objectives_table, quality_diversity_figure
from mixce.gpt2.metrics.scoring import variant_columns

METRICS = [column for _, column, *_ in COLUMNS]
VARIANTS = {
    "mle": ["mle_n100"],
    "mixce": ["mixce_eta0.10_n100", "mixce_eta0.50_n100"],
    "tailr": ["tailr_gamma0.50_wmin0.10_n100"],
    "lfd": ["lfd_mleweight0.00_n100"],
}


def sample_frame() -> pd.DataFrame:
    rows = []
    for i, variant in enumerate(v for vs in VARIANTS.values() for v in vs):
        for split in ("dev", "test"):
            for seed in (0, 1, 2):
                row = {"dataset": "d", "model": "m", "variant": variant}
                row |= variant_columns(variant)
                row |= {"split": split, "decoding": "unbiased", "top_p": 1.0, "seed": seed}
                # metric value = variant index / 10 + seed / 100 (test), dev: +0.5
                base = i / 10 + seed / 100 + (0.5 if split == "dev" else 0.0)
                row |= {column: base for column in METRICS}
                rows.append(row)
    return pd.DataFrame(rows)


def test_objectives_table_uses_the_selected_setting_on_test(tmp_path) -> None:
    samples = sample_frame()
    human = pd.DataFrame(
        [{"dataset": "d", "split": "test", **{c: 0.31 for c in METRICS}}]
        + [{"dataset": "d", "split": "dev", **{c: 0.9 for c in METRICS}}]
    )
    ppl = pd.DataFrame(
        [
            {"dataset": "d", "model": "m", "variant": v, "ppl": 10.0 + i}
            for i, v in enumerate(v for vs in VARIANTS.values() for v in vs)
        ]
    )
    settings = pd.DataFrame(
        [
            {"dataset": "d", "model": "m", "objective": o, "variant": v[-1]}
            | {"setting": variant_columns(v[-1])["setting"]}
            for o, v in VARIANTS.items()
            if o != "lfd"  # no selection: its cells stay missing
        ]
    )
    df, tex = objectives_table(samples, human, ppl, settings, ["d"], ["m"], list(VARIANTS))
    assert list(df["objective"]) == ["human", "mle", "mixce", "tailr", "lfd"]
    row = df.set_index("objective")
    # MixCE at its selected setting (eta 0.5 = variant index 2): test values 0.2 + seed/100
    assert row.loc["mixce", "setting"] == "eta=0.5"
    assert row.loc["mixce", "mauve"] == pytest.approx(0.21)
    assert row.loc["mixce", "mauve_std"] == pytest.approx(0.01)
    assert row.loc["mixce", "ppl"] == 12.0 and row.loc["mixce", "n_seeds"] == 3
    assert row.loc["tailr", "distinct_4"] == pytest.approx(0.31)  # index 3
    assert row.loc["human", "self_bleu"] == pytest.approx(0.31) and math.isnan(
        row.loc["human", "ppl"]
    )
    assert math.isnan(row.loc["lfd", "mauve"]) and row.loc["lfd", "n_seeds"] == 0
    # LaTeX: TaiLr equals the human value -> bold; LFD's cells are missing
    assert r"\textbf{0.31}" in tex and "LFD" in tex and "--" in tex
    assert "TaiLr (gamma=0.5, wmin=0.1)" in tex

    frame = quality_diversity_figure(
        samples, human, settings, ["d"], ["m"], list(VARIANTS), tmp_path / "qd"
    )
    assert (tmp_path / "qd.pdf").stat().st_size > 0 and (tmp_path / "qd.png").stat().st_size > 0
    assert len(frame) == 5  # every setting of every objective
    assert set(frame.loc[frame["selected"], "variant"]) == set(settings["variant"])
