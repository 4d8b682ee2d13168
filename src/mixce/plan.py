"""Which GPT-2 jobs a configuration asks for (pure functions of the config's ``gpt2`` section).

A finetuned model is named by its *variant*: ``mle_n50000`` or ``mixce_eta0.10_n50000``
(objective, eta for objectives that have one, number of training texts); ``base`` is the
model before finetuning (hub weights, or the scratch model after pretraining). Paths are
``<dataset>/<model>/<variant>``.

Jobs:

- finetune: every dataset x model x objective of ``finetune.objectives`` (MixCE at every
  eta of ``finetune.etas``, the others once) at ``finetune.train_size``; plus, for
  Table 5, the models of ``train_sizes.models`` at each of ``train_sizes.sizes`` with MLE
  and MixCE at the dataset's ``selected_eta``.
- sample: unbiased decoding of every finetuned variant on every split of ``sampling.splits``
  and every seed; the top-p grid for MLE and the selected MixCE of the main train size (on
  dev only when the grid has more than one value to choose from); for
  Figure 2, unbiased and greedy decoding of ``base`` on the test split (greedy once: it does
  not depend on the seed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

BASE = "base"
VARIANT_RE = re.compile(r"^(?P<objective>[a-z][a-z0-9]*)(_eta(?P<eta>\d\.\d+))?_n(?P<n>\d+)$")
DECODING_RE = re.compile(r"^(unbiased|greedy|top_p\d\.\d\d)$")
# Objectives whose token loss takes eta (the others are run once per train size).
ETA_OBJECTIVES = ("mixce",)


def eta_str(eta: float) -> str:
    """eta as it appears in variant names: two decimals (0.1 -> '0.10')."""
    return f"{float(eta):.2f}"


def variant_name(objective: str, n_train: int, eta: float | None = None) -> str:
    if objective in ETA_OBJECTIVES:
        if eta is None:
            raise ValueError(f"objective {objective!r} needs an eta")
        return f"{objective}_eta{eta_str(eta)}_n{int(n_train)}"
    return f"{objective}_n{int(n_train)}"


@dataclass(frozen=True)
class Variant:
    objective: str
    eta: float
    n_train: int


def parse_variant(name: str) -> Variant:
    """``mixce_eta0.10_n50000`` -> Variant('mixce', 0.1, 50000); MLE's eta is 1.0."""
    match = VARIANT_RE.match(name)
    if match is None:
        raise ValueError(
            f"bad model variant {name!r}: expected <objective>_n<texts> or "
            f"<objective>_eta<eta>_n<texts> (e.g. mle_n50000, mixce_eta0.10_n50000)"
        )
    eta = match["eta"]
    objective = match["objective"]
    if (eta is None) == (objective in ETA_OBJECTIVES):
        raise ValueError(f"bad model variant {name!r}: eta given for {objective} or missing")
    return Variant(objective, float(eta) if eta is not None else 1.0, int(match["n"]))


def decoding_names(sampling: Mapping[str, Any]) -> list[str]:
    return ["unbiased", *(f"top_p{p:.2f}" for p in sampling["top_p"])]


@dataclass(frozen=True)
class FinetuneJob:
    dataset: str
    model: str
    variant: str

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.model}/{self.variant}"


@dataclass(frozen=True)
class SampleJob:
    dataset: str
    model: str
    variant: str
    split: str
    decoding: str
    seed: int

    @property
    def path(self) -> str:
        return (
            f"{self.dataset}/{self.model}/{self.variant}/{self.split}/{self.decoding}/"
            f"seed{self.seed}"
        )


def selected_eta(gpt2: Mapping[str, Any], dataset: str, model: str) -> float:
    """The MixCE eta that Table 5 and the top-p grid use for (dataset, model)."""
    try:
        return float(gpt2["selected_eta"][dataset][model])
    except KeyError:
        raise KeyError(
            f"config key gpt2.selected_eta.{dataset}.{model} is missing: Table 5 and top-p "
            f"sampling need the MixCE eta of dataset {dataset!r} and model {model!r}"
        ) from None


def finetune_jobs(gpt2: Mapping[str, Any]) -> list[FinetuneJob]:
    """Every finetuning job, in a stable order, without duplicates."""
    jobs: dict[FinetuneJob, None] = {}
    n_main = int(gpt2["finetune"]["train_size"])
    for dataset in gpt2["use_datasets"]:
        for model in gpt2["use_models"]:
            for objective in gpt2["finetune"]["objectives"]:
                if objective not in ETA_OBJECTIVES:
                    jobs[FinetuneJob(dataset, model, variant_name(objective, n_main))] = None
                    continue
                for eta in gpt2["finetune"]["etas"]:
                    variant = variant_name(objective, n_main, eta)
                    jobs[FinetuneJob(dataset, model, variant)] = None
            if model in gpt2["train_sizes"]["models"]:
                eta = selected_eta(gpt2, dataset, model)
                for n in gpt2["train_sizes"]["sizes"]:
                    jobs[FinetuneJob(dataset, model, variant_name("mle", n))] = None
                    jobs[FinetuneJob(dataset, model, variant_name("mixce", n, eta))] = None
    return list(jobs)


def sample_jobs(gpt2: Mapping[str, Any]) -> list[SampleJob]:
    """Every sampling job, in a stable order, without duplicates."""
    sampling = gpt2["sampling"]
    seeds = [int(s) for s in sampling["seeds"]]
    splits = list(sampling["splits"])
    n_main = int(gpt2["finetune"]["train_size"])
    jobs: dict[SampleJob, None] = {}

    def add(dataset: str, model: str, variant: str, decodings: list[str], splits_: list[str]):
        for split in splits_:
            for decoding in decodings:
                for seed in seeds[:1] if decoding == "greedy" else seeds:
                    jobs[SampleJob(dataset, model, variant, split, decoding, seed)] = None

    for job in finetune_jobs(gpt2):
        add(job.dataset, job.model, job.variant, ["unbiased"], splits)
    for dataset in gpt2["use_datasets"]:
        for model in gpt2["use_models"]:
            eta = selected_eta(gpt2, dataset, model)
            top_p = decoding_names(sampling)[1:]
            # dev files serve only to choose p: a one-value grid needs none
            top_p_splits = splits if len(top_p) > 1 else [s for s in splits if s != "dev"]
            for variant in (variant_name("mle", n_main), variant_name("mixce", n_main, eta)):
                add(dataset, model, variant, top_p, top_p_splits)
            add(dataset, model, BASE, ["unbiased", "greedy"], ["test"])
    return list(jobs)


def scratch_models(gpt2: Mapping[str, Any]) -> list[str]:
    """Models of this run that are pretrained inside the DAG."""
    return [m for m in gpt2["use_models"] if gpt2["models"][m]["source"] == "scratch"]


def iter_problems(gpt2: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Cross-key problems of the gpt2 section: (config key parts, message)."""
    datasets = gpt2.get("datasets", {})
    models = gpt2.get("models", {})
    for key, catalogue in (("use_datasets", datasets), ("use_models", models)):
        for i, name in enumerate(gpt2.get(key, [])):
            if name not in catalogue:
                yield (
                    ("gpt2", key, i),
                    f"config key gpt2.{key}[{i}] = {name!r} is not allowed: must be one of "
                    f"gpt2.{'datasets' if key == 'use_datasets' else 'models'}: "
                    f"{', '.join(catalogue)}",
                )
    for i, name in enumerate(gpt2.get("pretrain", {}).get("datasets", [])):
        if name not in datasets:
            yield (
                ("gpt2", "pretrain", "datasets", i),
                f"config key gpt2.pretrain.datasets[{i}] = {name!r} is not allowed: must be "
                f"one of gpt2.datasets: {', '.join(datasets)}",
            )
    for i, name in enumerate(gpt2.get("train_sizes", {}).get("models", [])):
        if name not in gpt2.get("use_models", []):
            yield (
                ("gpt2", "train_sizes", "models", i),
                f"config key gpt2.train_sizes.models[{i}] = {name!r} is not allowed: must be "
                f"one of gpt2.use_models: {', '.join(gpt2.get('use_models', []))}",
            )
    for parts in (("figures", "figure2_model"), ("human_eval", "model")):
        name = gpt2.get(parts[0], {}).get(parts[1])
        if name is not None and name not in gpt2.get("use_models", []):
            yield (
                ("gpt2", *parts),
                f"config key gpt2.{'.'.join(parts)} = {name!r} is not allowed: must be one of "
                f"gpt2.use_models: {', '.join(gpt2.get('use_models', []))}",
            )
    selected = gpt2.get("selected_eta", {})
    for dataset in gpt2.get("use_datasets", []):
        for model in gpt2.get("use_models", []):
            if model not in selected.get(dataset, {}):
                yield (
                    ("gpt2", "selected_eta", dataset),
                    f"config key gpt2.selected_eta.{dataset}.{model} is missing: every dataset "
                    f"and model of the run needs the MixCE eta used by Table 5 and top-p",
                )
    max_positions = [
        (name, spec["n_positions"])
        for name, spec in models.items()
        if name in gpt2.get("use_models", []) and "n_positions" in spec
    ]
    max_length = gpt2.get("finetune", {}).get("max_length")
    new_tokens = gpt2.get("sampling", {}).get("max_new_tokens")
    prompt = gpt2.get("sampling", {}).get("prompt_tokens")
    for name, n_positions in max_positions:
        if isinstance(max_length, int) and max_length > n_positions:
            yield (
                ("gpt2", "finetune", "max_length"),
                f"config key gpt2.finetune.max_length = {max_length} is not allowed: model "
                f"{name!r} has n_positions {n_positions}",
            )
        if isinstance(new_tokens, int) and isinstance(prompt, int):
            if new_tokens + prompt > n_positions:
                yield (
                    ("gpt2", "sampling", "max_new_tokens"),
                    f"config key gpt2.sampling.max_new_tokens = {new_tokens} is not allowed: "
                    f"prompt_tokens + max_new_tokens must fit model {name!r}'s n_positions "
                    f"{n_positions}",
                )
