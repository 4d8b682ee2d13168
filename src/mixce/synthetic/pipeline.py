"""The stages of the synthetic branch as pure functions (the workflow scripts only do IO).

target -> data -> train (every seed of one objective and eta) -> runs table. Random streams
are derived from the seed and the stage, ``default_rng([seed, 0])`` for the target and
``default_rng([seed, 1])`` for the data, so each stage can be rerun alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mixce.gpt2.protocol import points
from mixce.synthetic.data import Sequences, chain_matrix, sample_sequences
from mixce.synthetic.select import REQUIRED_COLUMNS, sort_runs
from mixce.synthetic.settings import FIXED_ETA, TrainConfig
from mixce.synthetic.target import check_target, random_target, real_text_target, uniform_start

logger = logging.getLogger(__name__)

#: Columns of runs.csv, one row per trained Q: what selection needs, then the run's record.
RUNS_COLUMNS = (*REQUIRED_COLUMNS, "dev_loss", "best_step", "steps", "seconds", "estimator")
#: TrainConfig fields of config key synthetic.train.<estimator> (the others keep their defaults)
_ESTIMATOR_FIELDS = {
    "exact": ("cpu_backend", "lr", "max_steps", "eval_every"),
    "gumbel": ("lr", "batch_size", "max_epochs", "tau"),
}


def eta_str(eta: float) -> str:
    """An eta in file names: shortest round-trip decimal, no exponent (1e-05 -> "0.00001")."""
    return np.format_float_positional(float(eta), unique=True, trim="0")


def objective_etas(objective: str, etas: Sequence[float]) -> list[float]:
    """The etas an objective is trained with: its fixed eta, or every eta of the grid."""
    return [FIXED_ETA[objective]] if objective in FIXED_ETA else [float(e) for e in etas]


def make_target(
    spec: Mapping[str, Any],
    vocab_size: int,
    seed: int,
    alpha: float,
    texts: Sequence[str] | None = None,
    zeroing: str = "clean",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Build and check a target P: its (V + 1) x V chain (rows of M, then pi) and a JSON-ready
    metadata record. ``spec`` is one entry of config ``synthetic.inits``; random inits draw with
    ``default_rng([seed, 0])`` from Dirichlet(``alpha``), zeroed as protocol point
    ``synthetic_zeroing`` says (``zeroing``); real_text inits count ``texts``.
    """
    meta: dict[str, Any] = {"init": dict(spec), "vocab_size": int(vocab_size), "seed": int(seed)}
    if spec["kind"] == "random":
        rng = np.random.default_rng([seed, 0])
        m = random_target(vocab_size, float(spec["zero_fraction"]), alpha, rng, zeroing)
        meta |= {"dirichlet_alpha": float(alpha), "zeroing": zeroing}
    else:  # real_text, the schema's other kind
        if texts is None:
            raise ValueError("a real_text init needs texts")
        m, vocab = real_text_target(texts, vocab_size)
        meta["real_text"] = {**vocab, "n_texts_given": len(texts)}
    pi = uniform_start(vocab_size)
    check_target(m, pi)
    zeros = (m[:-1, :-1] == 0).mean(axis=1)  # share of zeros among each row's non-EOS entries
    meta["row_sums_ok"] = bool(np.allclose(m[:-1].sum(axis=1), 1.0))
    meta |= {f"zero_fraction_{s}": float(getattr(zeros, s)()) for s in ("mean", "min", "max")}
    meta["zero_fraction_per_row"] = [float(z) for z in zeros]
    return chain_matrix(m, pi), meta


def _sequence_stats(seqs: Sequences) -> dict[str, Any]:
    lengths = np.diff(seqs.offsets)
    return {
        "n": len(seqs),
        "tokens": int(lengths.sum()),
        "mean_length": float(lengths.mean()) if len(seqs) else float("nan"),
        "max_length_seen": int(lengths.max()) if len(seqs) else 0,
        "share_forced_eos": float(seqs.forced.mean()) if len(seqs) else float("nan"),
    }


def make_data(
    chain: np.ndarray, n_train: int, n_dev: int, max_length: int, seed: int
) -> tuple[Sequences, Sequences, dict[str, Any]]:
    """Sample ``n_dev + n_train`` sequences from ``chain`` with ``default_rng([seed, 1])``.

    The first ``n_dev`` are the dev set and the rest the training set, as in the public
    reference code. Returns ``(train, dev, summary)``.
    """
    rng = np.random.default_rng([seed, 1])
    everything = sample_sequences(chain, n_train + n_dev, max_length, rng)
    dev = everything.subset(np.arange(n_dev))
    train = everything.subset(np.arange(n_dev, n_dev + n_train))
    summary = {
        "seed": int(seed),
        "vocab_size": int(chain.shape[1]),
        "max_length": int(max_length),
        "train": _sequence_stats(train),
        "dev": _sequence_stats(dev),
    }
    return train, dev, summary


def train_settings(config: Mapping[str, Any], objective: str) -> dict[str, Any]:
    """The TrainConfig fields one (objective, estimator) uses, from the workflow config.

    Only settings that change the result, so a changed gumbel setting does not rerun exact jobs
    (and ``js_samples`` reaches only JS); likewise the protocol points: ``synthetic_js_clamp``
    (as ``js_clamp``) for JS only, ``synthetic_forced_eos`` (as ``forced_eos``) for every
    objective with a data term, i.e. all but reverse KL, which never reads the data.
    """
    syn = config["synthetic"]
    train = syn["train"]
    estimator = train["estimator"]
    values: dict[str, Any] = {"estimator": estimator, "device": train.get("device", "cpu")}
    values |= {key: train[key] for key in ("dtype", "weight_decay", "log_eps", "patience")}
    values |= {key: syn["model"][key] for key in ("hidden_size", "dropout")}
    values["max_length"] = syn["data"]["max_length"]
    own = train[estimator]  # cpu_backend is optional, NumPy by default
    values |= {
        f: own.get(f, "numpy") if f == "cpu_backend" else own[f]
        for f in _ESTIMATOR_FIELDS[estimator]
    }
    if objective == "js":
        values["js_samples"] = train["js_samples"]
        values["js_clamp"] = points(config, "synthetic_js_clamp")["synthetic_js_clamp"]
    if objective != "reverse_kl":
        values["forced_eos"] = points(config, "synthetic_forced_eos")["synthetic_forced_eos"]
    return values


def train_config(settings: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from :func:`train_settings` output."""
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise ValueError(f"unknown train setting(s): {', '.join(unknown)}")
    return TrainConfig(**settings)


def train_seeds(
    runs: Iterable[tuple[int, np.ndarray, Sequences, Sequences]],
    objective: str,
    eta: float,
    cfg: TrainConfig,
    *,
    init: str,
    vocab_size: int,
    progress: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train one Q per ``(seed, chain, train, dev)`` of ``runs`` (consumed lazily): one result
    per seed and all log rows, each with ``init`` and ``vocab_size`` (log rows also ``objective``
    and ``eta``) added."""
    if cfg.uses_numpy():  # no torch import: a NumPy job starts 1.5-3 s sooner
        from mixce.synthetic.exact import train as train_q
    else:
        from mixce.synthetic.train import train_q

    results: list[dict[str, Any]] = []
    log_rows: list[dict[str, Any]] = []
    for seed, chain, train, dev in runs:
        if chain.shape[1] != vocab_size:
            raise ValueError(f"seed {seed}: chain has V = {chain.shape[1]}, expected {vocab_size}")
        result, rows = train_q(chain, train, dev, objective, eta, seed, cfg, progress)
        results.append({"init": init, "vocab_size": int(vocab_size), **result})
        keys = {"init": init, "vocab_size": int(vocab_size), "objective": objective, "eta": eta}
        log_rows.extend({**keys, **row} for row in rows)
        nan = float("nan")
        logger.info(
            "%s V=%d %s eta=%s seed=%d: avg_js=%.4g avg_0s=%.4g dev_loss=%.5g best_step=%s "
            "steps=%d (%.1f s)",
            *(init, vocab_size, objective, eta_str(eta), seed),
            *(result.get(k, nan) for k in ("avg_js", "avg_0s", "dev_loss")),
            *(result.get("best_step"), result.get("steps", 0), result.get("seconds", 0.0)),
        )
    return results, log_rows


def runs_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per trained Q with :data:`RUNS_COLUMNS`, sorted by init, V, objective, eta, seed;
    ValueError for no results, or a result that lacks a column."""
    records = [dict(r) for r in results]
    if not records:
        raise ValueError("no training results")
    for record in records:
        missing = [c for c in RUNS_COLUMNS if c not in record]
        if missing:
            raise ValueError(f"a training result lacks {', '.join(missing)}: {record}")
    df = pd.DataFrame(records, columns=list(RUNS_COLUMNS))
    return sort_runs(df.astype({"vocab_size": int, "seed": int, "eta": float}), ["eta", "seed"])
