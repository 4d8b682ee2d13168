"""Which GPT-2 jobs a configuration asks for (pure functions of the config's ``gpt2`` section).

A finetuned model's *variant* names objective, hyper-parameters (keys without "_", sorted)
and training texts (``mixce_eta0.10_n50000``, ``tailr_gamma0.50_wmin0.10_n50000``); ``base``
is the model before finetuning (hub weights, or the scratch model after pretraining). Paths
are ``<dataset>/<model>/<variant>``.

- finetune: every dataset x model x objective of ``finetune.objectives`` at each setting of
  its grid (MixCE: ``finetune.etas``; others: every combination of ``finetune.grids.<obj>``;
  none: once) at ``finetune.train_size``. A grid's ``reference`` (LFD's degenerative model)
  is trained first, once per (dataset, model, train size), shared by all that use it.
  Table 5: ``train_sizes.models`` at each of ``train_sizes.sizes``, MLE and MixCE at
  ``selected_eta``.
- sample: unbiased decoding of every finetuned variant (reference-only models excepted) on
  every split and seed; the top-p grid for MLE and the selected MixCE at the main train size
  (on dev only when the grid has more than one value to choose from); Figure 2: unbiased and
  greedy decoding of ``base`` on the test split (greedy once: it does not depend on the seed).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BASE = "base"
# <objective>[_<key><value>...]_n<texts>: objective names are lowercase words joined by "_"
# (no digits), each hyper-parameter is its key without "_" followed by its value.
_NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
VARIANT_RE = re.compile(
    rf"^(?P<objective>[a-z]+(?:_[a-z]+)*?)(?P<hyper>(?:_[a-z]+{_NUMBER})*)_n(?P<n>\d+)$"
)
HYPER_RE = re.compile(rf"_(?P<key>[a-z]+)(?P<value>{_NUMBER})")
# MixCE's hyper-parameter grid is finetune.etas (the paper's grid); other objectives take
# theirs from finetune.grids.<objective>.
ETA_OBJECTIVES = ("mixce",)
# A grid entry under this key names the frozen reference model an objective trains through.
REFERENCE_KEY = "reference"


def variant_value(value: float) -> str:
    """A hyper-parameter value in a variant name: two decimals when that is exact
    (0.1 -> '0.10'), integers of 10 and more without decimals, else Python's repr."""
    value = float(value)
    if value.is_integer() and abs(value) >= 10:
        return str(int(value))
    text = f"{value:.2f}"
    return text if float(text) == value else repr(value)


def variant_name(
    objective: str,
    n_train: int,
    eta: float | None = None,
    hyper: Mapping[str, float] | None = None,
) -> str:
    """``mle_n50000``, ``mixce_eta0.10_n50000``, ``tailr_gamma0.50_wmin0.10_n50000``."""
    hyper = dict(hyper or {})
    if objective in ETA_OBJECTIVES:
        eta = hyper.get("eta") if eta is None else eta
        if eta is None:
            raise ValueError(f"objective {objective!r} needs an eta")
        hyper = {"eta": eta}
    elif eta is not None:
        raise ValueError(f"objective {objective!r} takes no eta")
    named = sorted((key.replace("_", ""), value) for key, value in hyper.items())
    parts = [objective, *(f"{key}{variant_value(value)}" for key, value in named)]
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
    if keys != sorted(set(keys)):
        raise ValueError(f"bad model variant {name!r}: hyper-parameters repeated or unsorted")
    if objective in ETA_OBJECTIVES and keys != ["eta"]:
        raise ValueError(f"bad model variant {name!r}: {objective} takes exactly one eta")
    if objective == "mle" and hyper:
        raise ValueError(f"bad model variant {name!r}: mle takes no hyper-parameter")
    default = 1.0 if objective == "mle" else math.nan
    eta = hyper[0][1] if objective in ETA_OBJECTIVES else default
    return Variant(objective, eta, int(match["n"]), hyper)


def hyper_label(variant: str) -> str:
    """Hyper-parameters of a variant for tables: 'gamma=0.5, wmin=0.1' ('' for none)."""
    return ", ".join(f"{k}={v:g}" for k, v in parse_variant(variant).hyper)


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


def model_train_settings(
    gpt2: Mapping[str, Any], model: str, job: FinetuneJob | None = None
) -> dict[str, Any]:
    """The mixce.gpt2.train.TrainSettings fields the config ``gpt2`` sets, in field order, for
    ``model``'s finetuning ``job`` (None: its MLE pretraining): the rules' params.settings.
    Here, not in train.py, so that parsing the rules does not import torch (3.7 s a parse, paid
    by every Slurm job)."""
    stage = gpt2["finetune"] if job else gpt2["pretrain"]
    return {
        "objective": job.objective if job else "mle",
        "hyper": dict(job.hyper) if job else {},
        **{key: stage[key] for key in ("lr", "weight_decay", "warmup_steps", "grad_clip")},
        "epochs": stage["epochs"],
        "max_steps": None if job else stage["max_steps"],
        "batch_size": stage["batch_size"],
        "micro_batch_size": gpt2["models"][model]["micro_batch_size"],
        "max_length": stage["max_length"],
        "seed": stage["seed"],
        "eval_every": gpt2["finetune"]["eval_every"] if job else 0,
        "dev_batch_size": gpt2["finetune"]["dev_batch_size"],
    }


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
        parts = (self.dataset, self.model, self.variant, self.split, self.decoding)
        return "/".join(parts) + f"/seed{self.seed}"


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
    grid = finetune.get("grids", {}).get(objective, {})
    keys = sorted(key for key in grid if key != REFERENCE_KEY)
    return [
        dict(zip(keys, map(float, values), strict=True))
        for values in itertools.product(*(grid[key] for key in keys))
    ]


def finetune_jobs(gpt2: Mapping[str, Any]) -> list[FinetuneJob]:
    """Every finetuning job, in a stable order, without duplicates; a reference model comes
    before the jobs that train through it and is shared by all of them."""
    jobs: dict[FinetuneJob, None] = {}  # ordered, first of each (dataset, model, variant) kept
    finetune = gpt2["finetune"]

    def add(dataset: str, model: str, objective: str, n: int, hyper: Mapping[str, float]):
        reference = dict(finetune.get("grids", {}).get(objective, {}).get(REFERENCE_KEY) or {})
        ref_variant = None
        if reference:
            ref = reference.pop("objective")
            ref_variant = variant_name(ref, n, hyper=reference)
            sampled = ref in finetune["objectives"]
            job = FinetuneJob(dataset, model, ref_variant, ref, _items(reference), sampled=sampled)
            jobs.setdefault(job)
        variant = variant_name(objective, n, hyper=hyper)
        jobs.setdefault(FinetuneJob(dataset, model, variant, objective, _items(hyper), ref_variant))

    for dataset in gpt2["use_datasets"]:
        for model in gpt2["use_models"]:
            for objective in finetune["objectives"]:
                for hyper in objective_grid(finetune, objective):
                    add(dataset, model, objective, int(finetune["train_size"]), hyper)
            if model in gpt2["train_sizes"]["models"]:
                eta = selected_eta(gpt2, dataset, model)
                for n in gpt2["train_sizes"]["sizes"]:
                    add(dataset, model, "mle", n, {})
                    add(dataset, model, "mixce", n, {"eta": eta})
    return list(jobs)


def _items(hyper: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((str(k), float(v)) for k, v in hyper.items()))


def finetune_job(gpt2: Mapping[str, Any], dataset: str, model: str, variant: str) -> FinetuneJob:
    """The planned job of ``<dataset>/<model>/<variant>`` (KeyError naming it if none)."""
    jobs, wanted = finetune_jobs(gpt2), FinetuneJob(dataset, model, variant)  # compared by name
    if wanted in jobs:
        return jobs[jobs.index(wanted)]
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
    top_p = [f"top_p{p:.2f}" for p in sampling["top_p"]]
    # dev files serve only to choose p: a one-value grid needs none
    top_p_splits = splits if len(top_p) > 1 else [s for s in splits if s != "dev"]
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
