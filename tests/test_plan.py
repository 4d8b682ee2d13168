"""Which GPT-2 jobs a configuration asks for (mixce.plan)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mixce.config import load_config
from mixce.plan import (
    BASE,
    Variant,
    finetune_jobs,
    parse_variant,
    sample_jobs,
    scratch_models,
    variant_name,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(REPO / "config.yaml")["gpt2"]


def test_variant_names_round_trip() -> None:
    assert variant_name("mle", 50000) == "mle_n50000"
    assert variant_name("mixce", 50000, 0.1) == "mixce_eta0.10_n50000"
    assert parse_variant("mixce_eta0.10_n50000") == Variant("mixce", 0.1, 50000)
    assert parse_variant("mle_n10000") == Variant("mle", 1.0, 10000)
    for bad in ("mixce_n50000", "mle_eta0.50_n10", "mixce_eta0.1", "MLE_n5", "base"):
        with pytest.raises(ValueError, match="bad model variant"):
            parse_variant(bad)
    with pytest.raises(ValueError, match="needs an eta"):
        variant_name("mixce", 10)


def test_paper_finetune_jobs(paper: dict) -> None:
    jobs = finetune_jobs(paper)
    per_model = Counter((j.dataset, j.model) for j in jobs)
    assert per_model[("wikitext", "small")] == 9 + 3 * 2  # grid at 50K + Table 5 sizes
    assert per_model[("webtext", "large")] == 9
    table5 = [j for j in jobs if not j.variant.endswith("_n50000")]
    assert {parse_variant(j.variant).n_train for j in table5} == {10000, 25000, 100000}
    assert {j.model for j in table5} == {"small"}
    # Table 5's MixCE uses the selected eta of each dataset (the paper's Table 12)
    etas = {(j.dataset, parse_variant(j.variant).eta) for j in table5 if "mixce" in j.variant}
    assert etas == {("wikitext", 0.1), ("webtext", 0.5), ("writingprompts", 0.5)}
    assert len(set(jobs)) == len(jobs)
    assert scratch_models(paper) == []


def test_paper_sample_jobs(paper: dict) -> None:
    jobs = sample_jobs(paper)
    assert len(set(jobs)) == len(jobs)
    greedy = [j for j in jobs if j.decoding == "greedy"]
    assert greedy and all(j.variant == BASE and j.seed == 0 and j.split == "test" for j in greedy)
    top_p = {(j.dataset, j.model, j.variant) for j in jobs if j.decoding.startswith("top_p")}
    assert ("webtext", "medium", "mixce_eta0.30_n50000") in top_p
    assert ("webtext", "medium", "mixce_eta0.50_n50000") not in top_p
    assert {j.decoding for j in jobs if j.decoding.startswith("top_p")} == {
        f"top_p{p:.2f}" for p in paper["sampling"]["top_p"]
    }
    unbiased = [j for j in jobs if j.decoding == "unbiased" and j.variant != BASE]
    assert len(unbiased) == len(finetune_jobs(paper)) * 2 * 3


def test_missing_selected_eta_is_named(paper: dict) -> None:
    broken = {**paper, "selected_eta": {"wikitext": {"small": 0.1}}}
    with pytest.raises(KeyError, match=r"gpt2\.selected_eta\.webtext\.small"):
        finetune_jobs(broken)
