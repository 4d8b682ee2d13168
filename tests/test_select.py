"""Model selection by dev MAUVE (mixce.gpt2.select)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mixce.gpt2.select import select_eta, select_settings, select_top_p


def rows(dataset, model, objective, eta, decoding, top_p, split, mauves, n_train=100):
    variant = f"mixce_eta{eta:.2f}_n{n_train}" if objective == "mixce" else f"mle_n{n_train}"
    return [
        {
            "dataset": dataset,
            "model": model,
            "variant": variant,
            "objective": objective,
            "eta": eta,
            "n_train": n_train,
            "split": split,
            "decoding": decoding,
            "top_p": top_p,
            "seed": seed,
            "mauve": mauve,
        }
        for seed, mauve in enumerate(mauves)
    ]


def test_select_eta_takes_the_best_mean_dev_mauve_ties_to_larger_eta() -> None:
    data = (
        rows("d", "m", "mixce", 0.1, "unbiased", 1.0, "dev", [0.80, 0.90])
        + rows("d", "m", "mixce", 0.5, "unbiased", 1.0, "dev", [0.85, 0.85])
        + rows("d", "m", "mixce", 0.9, "unbiased", 1.0, "dev", [0.70, 0.70])
        + rows("d", "m", "mixce", 0.9, "unbiased", 1.0, "test", [0.99, 0.99])  # test: ignored
        + rows("d", "m", "mle", 1.0, "unbiased", 1.0, "dev", [0.99, 0.99])  # MLE: no candidate
        + rows("d", "m", "mixce", 0.9, "unbiased", 1.0, "dev", [0.99], n_train=10)  # other size
    )
    table = select_eta(pd.DataFrame(data), 100, ["d"], ["m"], {"d": {"m": 0.1}})
    assert table.loc[0, "eta"] == 0.5  # 0.85 mean ties with 0.1's; the larger eta wins
    assert table.loc[0, "dev_mauve_mean"] == pytest.approx(0.85)
    assert table.loc[0, "config_eta"] == 0.1 and table.loc[0, "n_seeds"] == 2
    with pytest.raises(ValueError, match="no unbiased dev samples of MixCE for dataset 'x'"):
        select_eta(pd.DataFrame(data), 100, ["x"], ["m"], {})


def test_select_top_p_per_objective() -> None:
    data = (
        rows("d", "m", "mle", 1.0, "top_p0.90", 0.90, "dev", [0.5, 0.6])
        + rows("d", "m", "mle", 1.0, "top_p0.95", 0.95, "dev", [0.7, 0.7])
        + rows("d", "m", "mixce", 0.1, "top_p0.90", 0.90, "dev", [0.9, 0.9])
        + rows("d", "m", "mixce", 0.1, "top_p0.95", 0.95, "dev", [0.8, 0.8])
    )
    table = select_top_p(pd.DataFrame(data), 100).set_index("objective")
    assert table.loc["mle", "best_p"] == 0.95 and table.loc["mixce", "best_p"] == 0.90


def test_one_value_grid_needs_no_dev_files() -> None:
    data = rows("d", "m", "mle", 1.0, "top_p0.95", 0.95, "test", [0.5]) + rows(
        "d", "m", "mixce", 0.1, "top_p0.95", 0.95, "test", [0.6]
    )
    table = select_top_p(pd.DataFrame(data), 100)
    assert table["best_p"].tolist() == [0.95, 0.95]
    assert all(math.isnan(x) for x in table["dev_mauve_mean"])


def generic_rows(variant: str, split: str, mauves, dataset="d", model="m", n_train=100):
    from mixce.gpt2.metrics.scoring import variant_columns

    name = f"{variant}_n{n_train}"
    return [
        {
            "dataset": dataset,
            "model": model,
            "variant": name,
            **variant_columns(name),
            "split": split,
            "decoding": "unbiased",
            "top_p": 1.0,
            "seed": seed,
            "mauve": mauve,
        }
        for seed, mauve in enumerate(mauves)
    ]


def test_select_settings_per_objective() -> None:
    data = (
        generic_rows("mle", "dev", [0.6, 0.6])
        + generic_rows("mixce_eta0.10", "dev", [0.7, 0.9])
        + generic_rows("mixce_eta0.50", "dev", [0.75, 0.75])
        + generic_rows("tailr_gamma0.50_wmin0.10", "dev", [0.5, 0.7])
        + generic_rows("tailr_gamma1.00_wmin0.10", "dev", [0.6, 0.6])  # tie: name order
        + generic_rows("tailr_gamma1.00_wmin0.10", "test", [0.99, 0.99])  # test: ignored
        + generic_rows("lfd_mleweight0.00", "dev", [0.4])
        + generic_rows("lfd_mleweight0.50", "dev", [0.9], n_train=10)  # other size: ignored
    )
    table = select_settings(
        pd.DataFrame(data), 100, ["d"], ["m"], ["mle", "mixce", "tailr", "lfd"]
    ).set_index("objective")
    assert table.loc["mle", "variant"] == "mle_n100" and table.loc["mle", "setting"] == ""
    assert table.loc["mixce", "variant"] == "mixce_eta0.10_n100"
    assert table.loc["mixce", "dev_mauve_mean"] == pytest.approx(0.8)
    assert table.loc["mixce", "n_settings"] == 2
    assert table.loc["tailr", "variant"] == "tailr_gamma0.50_wmin0.10_n100"
    assert table.loc["tailr", "setting"] == "gamma=0.5, wmin=0.1"
    assert table.loc["lfd", "n_seeds"] == 1 and math.isnan(table.loc["lfd", "dev_mauve_std"])
    with pytest.raises(ValueError, match="no unbiased dev samples of unlikelihood"):
        select_settings(pd.DataFrame(data), 100, ["d"], ["m"], ["unlikelihood"])
