"""Which GPT-2 jobs a configuration asks for (mixce.gpt2.plan)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from mixce.config import load_config
from mixce.gpt2.plan import (
    BASE,
    Variant,
    finetune_job,
    finetune_jobs,
    hyper_label,
    objective_grid,
    parse_variant,
    sample_groups,
    sample_jobs,
    scratch_models,
    variant_name,
    variant_value,
)
from mixce.io import path_list, seed_of_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_config(REPO / "config.yaml")["gpt2"]


def test_variant_names_round_trip() -> None:
    assert variant_name("mle", 50000) == "mle_n50000"
    assert variant_name("mixce", 50000, 0.1) == "mixce_eta0.10_n50000"
    assert variant_name("mixce", 50000, hyper={"eta": 0.1}) == "mixce_eta0.10_n50000"
    assert parse_variant("mixce_eta0.10_n50000") == Variant("mixce", 0.1, 50000, (("eta", 0.1),))
    assert parse_variant("mle_n10000") == Variant("mle", 1.0, 10000)
    for bad in (
        "mixce_n50000",
        "mle_eta0.50_n10",
        "mixce_eta0.1",
        "MLE_n5",
        "base",
        "tailr_wmin0.10_gamma0.50_n5",  # unsorted
        "tailr_gamma0.50_gamma0.60_n5",  # repeated
    ):
        with pytest.raises(ValueError, match="bad model variant"):
            parse_variant(bad)
    with pytest.raises(ValueError, match="needs an eta"):
        variant_name("mixce", 10)
    with pytest.raises(ValueError, match="takes no eta"):
        variant_name("tailr", 10, 0.5)


def test_variant_values() -> None:
    """Two decimals when exact, whole numbers from 10 on, else repr (the synthetic track's
    file names write 0.1 as '0.1')."""
    cases = {0.1: "0.10", 1: "1.00", 0: "0.00", -0.3: "-0.30", 10: "10", 512.0: "512"}
    cases |= {12.5: "12.50", 0.125: "0.125", 1e-5: "1e-05"}
    assert {value: variant_value(value) for value in cases} == cases


@pytest.mark.parametrize(
    ("objective", "hyper", "name"),
    [
        ("tailr", {"w_min": 0.1, "gamma": 0.5}, "tailr_gamma0.50_wmin0.10_n200"),
        ("loss_truncation", {"c": 0.4, "buffer": 512}, "loss_truncation_buffer512_c0.40_n200"),
        ("unlikelihood", {"alpha": 1e-5}, "unlikelihood_alpha1e-05_n200"),
        ("truncated_ce", {"keep": 0.125}, "truncated_ce_keep0.125_n200"),
        ("lfd", {"mle_weight": 0}, "lfd_mleweight0.00_n200"),
    ],
)
def test_generic_variant_names(objective: str, hyper: dict, name: str) -> None:
    assert variant_name(objective, 200, hyper=hyper) == name
    parsed = parse_variant(name)
    assert parsed.objective == objective and parsed.n_train == 200
    named = {k.replace("_", ""): float(v) for k, v in hyper.items()}
    assert dict(parsed.hyper) == named
    assert hyper_label(name) == ", ".join(f"{k}={v:g}" for k, v in sorted(named.items()))
    assert math.isnan(parsed.eta)


def test_objective_grids_and_shared_reference(paper: dict) -> None:
    ft = paper["finetune"]
    assert objective_grid(ft, "mixce") == [{"eta": e} for e in ft["etas"]]
    assert objective_grid(ft, "mle") == [{}]
    assert objective_grid(ft, "tailr") == [
        {"gamma": g, "w_min": 0.1} for g in ft["grids"]["tailr"]["gamma"]
    ]
    config = {
        **paper,
        "finetune": {
            **ft,
            "objectives": ["mle", "tailr", "lfd"],
            "grids": {**ft["grids"], "lfd": {**ft["grids"]["lfd"], "mle_weight": [0.0, 0.5]}},
        },
    }
    jobs = finetune_jobs(config)
    small = [j for j in jobs if (j.dataset, j.model) == ("wikitext", "small")]
    lfd = [j for j in small if j.objective == "lfd"]
    reference = [j for j in small if j.objective == "truncated_ce"]
    # one degenerative model, trained before and shared by both LFD runs, never sampled
    assert [j.variant for j in reference] == ["truncated_ce_keep0.50_n50000"]
    assert not reference[0].sampled and reference[0].hyper == (("keep", 0.5),)
    assert [j.reference for j in lfd] == [reference[0].variant] * 2
    assert small.index(reference[0]) < min(small.index(j) for j in lfd)
    assert {j.variant for j in lfd} == {"lfd_mleweight0.00_n50000", "lfd_mleweight0.50_n50000"}
    assert len([j for j in small if j.objective == "tailr"]) == 3
    sampled = {(j.dataset, j.model, j.variant) for j in sample_jobs(config)}
    assert ("wikitext", "small", "truncated_ce_keep0.50_n50000") not in sampled
    assert ("wikitext", "small", "lfd_mleweight0.50_n50000") in sampled
    job = finetune_job(config, "wikitext", "small", "lfd_mleweight0.50_n50000")
    assert job.hyper == (("mle_weight", 0.5),) and job.reference == reference[0].variant
    with pytest.raises(KeyError, match="no finetuning job wikitext/small/lfd_mleweight0.70"):
        finetune_job(config, "wikitext", "small", "lfd_mleweight0.70_n50000")


def test_reference_in_objectives_is_sampled(paper: dict) -> None:
    ft = paper["finetune"]
    config = {**paper, "finetune": {**ft, "objectives": ["truncated_ce", "lfd"]}}
    jobs = [j for j in finetune_jobs(config) if j.objective == "truncated_ce"]
    assert jobs and all(j.sampled for j in jobs)


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


def test_sample_groups_are_the_jobs_without_their_seeds(paper: dict) -> None:
    """One sample job per (dataset, model, variant, split, decoding) covers every seed of
    sample_jobs (greedy: its one file); the order is sample_jobs' order."""
    groups, jobs = sample_groups(paper), sample_jobs(paper)
    assert len(set(groups)) == len(groups)
    seeds = Counter((j.dataset, j.model, j.variant, j.split, j.decoding) for j in jobs)
    assert list(seeds) == groups
    n_seeds = len(paper["sampling"]["seeds"])
    assert all(n == (1 if g[4] == "greedy" else n_seeds) for g, n in seeds.items())
    assert len(groups) == 495 + 9  # rules sample and sample_greedy in test_workflow.py


def test_path_list_one_or_several() -> None:
    assert path_list("a/seed0.json") == ["a/seed0.json"]
    assert path_list(Path("a/seed0.json")) == ["a/seed0.json"]
    assert path_list(["a/seed0.json", Path("a/seed1.json")]) == ["a/seed0.json", "a/seed1.json"]


def test_seed_of_path() -> None:
    assert seed_of_path("results/x/samples/a/test/unbiased/seed12.jsonl") == 12
    assert seed_of_path(Path("seed0.json")) == 0
    for bad in ("samples.jsonl", "seedx.json", "seed.json", "12.json"):
        with pytest.raises(ValueError, match="seed<N>"):
            seed_of_path(bad)


def test_missing_selected_eta_is_named(paper: dict) -> None:
    broken = {**paper, "selected_eta": {"wikitext": {"small": 0.1}}}
    with pytest.raises(KeyError, match=r"gpt2\.selected_eta\.webtext\.small"):
        finetune_jobs(broken)
