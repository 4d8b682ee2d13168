"""Which GPT-2 jobs a configuration asks for (pure functions of the config's ``gpt2`` section).

A finetuned model is named by its *variant*: the objective, its hyper-parameters (keys
without "_", sorted) and the number of training texts: ``mle_n50000``,
``mixce_eta0.10_n50000``, ``tailr_gamma0.50_wmin0.10_n50000``; ``base`` is the model before
finetuning (hub weights, or the scratch model after pretraining). Paths are
``<dataset>/<model>/<variant>``.

Jobs:

- finetune: every dataset x model x objective of ``finetune.objectives`` at every setting of
  its grid (MixCE: ``finetune.etas``; the others: every combination of
  ``finetune.grids.<objective>``; none: once) at ``finetune.train_size``; an objective whose
  grid names a ``reference`` (LFD's degenerative model) first gets that reference model
  trained, once per (dataset, model, train size), shared by every run that uses it; plus,
  for Table 5, the models of ``train_sizes.models`` at each of ``train_sizes.sizes`` with
  MLE and MixCE at the dataset's ``selected_eta``.
- sample: unbiased decoding of every finetuned variant (reference-only models excepted) on
  every split of ``sampling.splits``
  and every seed; the top-p grid for MLE and the selected MixCE of the main train size (on
  dev only when the grid has more than one value to choose from); for
  Figure 2, unbiased and greedy decoding of ``base`` on the test split (greedy once: it does
  not depend on the seed).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

BASE = "base"
# <objective>[_<key><value>...]_n<texts>: objective names are lowercase words joined by "_"
# (no digits), each hyper-parameter is its key without "_" followed by its value.
VARIANT_RE = re.compile(
    r"^(?P<objective>[a-z]+(?:_[a-z]+)*?)"
    r"(?P<hyper>(?:_[a-z]+-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)*)_n(?P<n>\d+)$"
)
HYPER_RE = re.compile(r"_(?P<key>[a-z]+)(?P<value>-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)")
DECODING_RE = re.compile(r"^(unbiased|greedy|top_p\d\.\d\d)$")
# MixCE's hyper-parameter grid is finetune.etas (the paper's grid); other objectives take
# theirs from finetune.grids.<objective>.
ETA_OBJECTIVES = ("mixce",)
# A grid entry under this key names the frozen reference model an objective trains through.
REFERENCE_KEY = "reference"


def eta_str(eta: float) -> str:
    """eta as it appears in variant names: two decimals (0.1 -> '0.10')."""
    return f"{float(eta):.2f}"


def value_str(value: float) -> str:
    """A hyper-parameter value in a variant name: two decimals when that is exact
    (0.1 -> '0.10'), integers of 10 and more without decimals, else Python's repr."""
    value = float(value)
    if value.is_integer() and abs(value) >= 10:
        return str(int(value))
    text = f"{value:.2f}"
    return text if float(text) == value else repr(value)


def hyper_items(hyper: Mapping[str, float] | None) -> tuple[tuple[str, float], ...]:
    """Hyper-parameters as sorted (key, value) pairs: the canonical, hashable form."""
    return tuple(sorted((str(k), float(v)) for k, v in (hyper or {}).items()))


def variant_name(
    objective: str,
    n_train: int,
    eta: float | None = None,
    hyper: Mapping[str, float] | None = None,
) -> str:
    """``mle_n50000``, ``mixce_eta0.10_n50000``, ``tailr_gamma0.50_wmin0.10_n50000``."""
    hyper = dict(hyper or {})
    if objective in ETA_OBJECTIVES:
        if eta is None:
            eta = hyper.get("eta")
        if eta is None:
            raise ValueError(f"objective {objective!r} needs an eta")
        hyper = {"eta": eta}
    elif eta is not None:
        raise ValueError(f"objective {objective!r} takes no eta")
    named = sorted((key.replace("_", ""), value) for key, value in hyper.items())
    parts = [objective, *(f"{key}{value_str(value)}" for key, value in named)]
    return "_".join([*parts, f"n{int(n_train)}"])


@dataclass(frozen=True)
class Variant:
    objective: str
    eta: float  # MixCE's eta; 1.0 for MLE; NaN for the other objectives
    n_train: int
    hyper: tuple[tuple[str, float], ...] = ()  # as named (keys without "_")


def parse_variant(name: str) -> Variant:
    """``mixce_eta0.10_n50000`` -> Variant('mixce', 0.1, 50000, (('eta', 0.1),))."""
    match = VARIANT_RE.match(name)
    if match is None:
        raise ValueError(
            f"bad model variant {name!r}: expected <objective>[_<key><value>...]_n<texts> "
            f"(e.g. mle_n50000, mixce_eta0.10_n50000, tailr_gamma0.50_wmin0.10_n50000)"
        )
    objective = match["objective"]
    hyper = tuple((m["key"], float(m["value"])) for m in HYPER_RE.finditer(match["hyper"]))
    keys = [key for key, _ in hyper]
    if len(set(keys)) != len(keys) or keys != sorted(keys):
        raise ValueError(f"bad model variant {name!r}: hyper-parameters repeated or unsorted")
    if objective in ETA_OBJECTIVES and keys != ["eta"]:
        raise ValueError(f"bad model variant {name!r}: {objective} takes exactly one eta")
    if objective == "mle" and hyper:
        raise ValueError(f"bad model variant {name!r}: mle takes no hyper-parameter")
    if objective in ETA_OBJECTIVES:
        eta = hyper[0][1]
    elif objective == "mle":
        eta = 1.0
    else:
        eta = math.nan
    return Variant(objective, eta, int(match["n"]), hyper)


def hyper_label(variant: str) -> str:
    """Hyper-parameters of a variant for tables: 'gamma=0.5, wmin=0.1' ('' for none)."""
    return ", ".join(f"{k}={v:g}" for k, v in parse_variant(variant).hyper)


def decoding_names(sampling: Mapping[str, Any]) -> list[str]:
    return ["unbiased", *(f"top_p{p:.2f}" for p in sampling["top_p"])]


@dataclass(frozen=True)
class FinetuneJob:
    """One finetuning run; named (and compared) by dataset, model and variant."""

    dataset: str
    model: str
    variant: str
    objective: str = field(default="", compare=False)
    hyper: tuple[tuple[str, float], ...] = field(default=(), compare=False)  # config keys
    reference: str | None = field(default=None, compare=False)  # variant it trains through
    sampled: bool = field(default=True, compare=False)  # False: only a reference model

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


def objective_grid(finetune: Mapping[str, Any], objective: str) -> list[dict[str, float]]:
    """Every hyper-parameter setting of ``objective`` in the run: MixCE over ``etas``,
    the others over every combination of ``grids.<objective>`` (none: one run)."""
    if objective in ETA_OBJECTIVES:
        return [{"eta": float(eta)} for eta in finetune["etas"]]
    grid = {
        key: values
        for key, values in finetune.get("grids", {}).get(objective, {}).items()
        if key != REFERENCE_KEY
    }
    keys = sorted(grid)
    return [
        dict(zip(keys, map(float, values), strict=True))
        for values in itertools.product(*(grid[key] for key in keys))
    ]


def reference_of(finetune: Mapping[str, Any], objective: str) -> dict[str, Any] | None:
    """``grids.<objective>.reference``: {objective, <its hyper-parameters>} or None."""
    reference = finetune.get("grids", {}).get(objective, {}).get(REFERENCE_KEY)
    return dict(reference) if reference is not None else None


def make_job(
    dataset: str,
    model: str,
    objective: str,
    n_train: int,
    hyper: Mapping[str, float],
    reference: str | None = None,
    sampled: bool = True,
) -> FinetuneJob:
    return FinetuneJob(
        dataset,
        model,
        variant_name(objective, n_train, hyper=hyper),
        objective,
        hyper_items(hyper),
        reference,
        sampled,
    )


def finetune_jobs(gpt2: Mapping[str, Any]) -> list[FinetuneJob]:
    """Every finetuning job, in a stable order, without duplicates; a reference model comes
    before the jobs that train through it and is shared by all of them."""
    jobs: dict[FinetuneJob, None] = {}
    finetune = gpt2["finetune"]
    n_main = int(finetune["train_size"])
    mains = set(finetune["objectives"])

    def add(dataset: str, model: str, objective: str, n: int, hyper: Mapping[str, float]):
        reference = reference_of(finetune, objective)
        ref_variant = None
        if reference is not None:
            ref_objective = reference.pop("objective")
            ref_job = make_job(
                dataset, model, ref_objective, n, reference, sampled=ref_objective in mains
            )
            ref_variant = ref_job.variant
            jobs.setdefault(ref_job, None)
        job = make_job(dataset, model, objective, n, hyper, ref_variant)
        jobs.setdefault(job, None)

    for dataset in gpt2["use_datasets"]:
        for model in gpt2["use_models"]:
            for objective in finetune["objectives"]:
                for hyper in objective_grid(finetune, objective):
                    add(dataset, model, objective, n_main, hyper)
            if model in gpt2["train_sizes"]["models"]:
                eta = selected_eta(gpt2, dataset, model)
                for n in gpt2["train_sizes"]["sizes"]:
                    add(dataset, model, "mle", n, {})
                    add(dataset, model, "mixce", n, {"eta": eta})
    return list(jobs)


def finetune_job(gpt2: Mapping[str, Any], dataset: str, model: str, variant: str) -> FinetuneJob:
    """The planned job of ``<dataset>/<model>/<variant>`` (KeyError naming it if none)."""
    for job in finetune_jobs(gpt2):
        if (job.dataset, job.model, job.variant) == (dataset, model, variant):
            return job
    raise KeyError(
        f"no finetuning job {dataset}/{model}/{variant} in this config: check "
        f"gpt2.use_datasets, gpt2.use_models, gpt2.finetune.objectives, etas and grids"
    )


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
        if job.sampled:
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


def sample_groups(gpt2: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(dataset, model, variant, split, decoding) of every sample job: one job samples every
    seed of its decoding (greedy: the first seed only), in :func:`sample_jobs`' order."""
    groups = ((j.dataset, j.model, j.variant, j.split, j.decoding) for j in sample_jobs(gpt2))
    return list(dict.fromkeys(groups))


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
    for role in ("mauve", "coherence"):
        spec = gpt2.get("metrics", {}).get(role, {}).get("featurizer", {})
        name = spec.get("model")
        key = ("gpt2", "metrics", role, "featurizer", "model")
        if name is not None and spec.get("kind") != "gpt2":
            yield (
                key,
                f"config key gpt2.metrics.{role}.featurizer.model = {name!r} is not allowed "
                f"with kind {spec.get('kind')!r}: only a gpt2 featurizer can be a run's model",
            )
        elif name is not None and name not in models:
            yield (
                key,
                f"config key gpt2.metrics.{role}.featurizer.model = {name!r} is not allowed: "
                f"must be one of gpt2.models: {', '.join(models)}",
            )
    yield from _objective_problems(gpt2.get("finetune", {}))
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


def _objective_problems(finetune: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], str]]:
    """A reference model's hyper-parameters must match its objective's grid keys, and a
    reference may not itself train through a reference."""
    grids = finetune.get("grids", {})
    for objective, grid in grids.items():
        reference = grid.get(REFERENCE_KEY) if isinstance(grid, Mapping) else None
        if not isinstance(reference, Mapping) or "objective" not in reference:
            continue
        key = ("gpt2", "finetune", "grids", objective, REFERENCE_KEY)
        ref_objective = reference["objective"]
        ref_grid = grids.get(ref_objective, {})
        if isinstance(ref_grid, Mapping) and REFERENCE_KEY in ref_grid:
            yield (
                key,
                f"config key gpt2.finetune.grids.{objective}.reference.objective = "
                f"{ref_objective!r} is not allowed: that objective trains through a reference "
                f"itself",
            )
            continue
        want = sorted(k for k in ref_grid if k != REFERENCE_KEY)
        have = sorted(k for k in reference if k != "objective")
        if want != have:
            yield (
                key,
                f"config key gpt2.finetune.grids.{objective}.reference must give one value for "
                f"each hyper-parameter of {ref_objective} ({', '.join(want) or 'none'}), "
                f"got {', '.join(have) or 'none'}",
            )
