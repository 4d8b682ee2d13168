"""bench/compare_backends.py: per-cell ratio, z and selected-eta agreement of two runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from layout import load_bench

from mixce.synthetic.select import SELECTED_COLUMNS


def _bench():
    return load_bench("compare_backends")


def _selected(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=list(SELECTED_COLUMNS[:7]),  # init .. avg_js_sd
    )


def test_ratio_z_and_eta_per_cell():
    bench = _bench()
    a = _selected([("r", 20, "mixce", 0.5, 5, 0.10, 0.01), ("r", 20, "js", 0.1, 5, 0.20, 0.02)])
    b = _selected([("r", 20, "mixce", 0.5, 5, 0.11, 0.01), ("r", 20, "js", 0.9, 4, 0.30, 0.02)])
    cells = bench.compare(a, b).set_index("objective")
    assert cells.loc["mixce", "ratio"] == pytest.approx(1.1)
    assert cells.loc["mixce", "z"] == pytest.approx(0.01 / math.sqrt(2 * 0.01**2 / 5))
    assert cells.loc["js", "z"] == pytest.approx(0.1 / math.sqrt(0.02**2 / 5 + 0.02**2 / 4))
    assert bool(cells.loc["mixce", "same_eta"]) and not bool(cells.loc["js", "same_eta"])
    s = bench.summary(cells.reset_index())
    assert (s["cells"], s["within_2_se"], s["within_3_se"], s["same_eta"]) == (2, 1, 1, 1)


def test_runs_without_a_common_cell_are_an_error():
    bench = _bench()
    a = _selected([("r", 20, "mixce", 0.5, 5, 0.1, 0.01)])
    b = _selected([("r", 50, "mixce", 0.5, 5, 0.1, 0.01)])
    with pytest.raises(ValueError, match="share no"):
        bench.compare(a, b)
