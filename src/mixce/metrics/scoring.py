"""What the metric rules compute for one text set, the same way for human and model texts.

A *record* is one text cut as the paper does: ``prompt_ids`` (the first ``prompt_tokens``
GPT-2 tokens of a human text) and ``cont_ids`` (the continuation: the model's generated
tokens, or for a human text the tokens that follow its prompt, cut to ``max_new_tokens``).
Human and model records therefore look alike, and the human reference row of every table is
computed by the same functions:

- diversity: mean n-gram diversity of the continuations' GPT-2 tokens (n = 1..4);
- the LFD paper's diversity metrics, on the same GPT-2 tokens: corpus distinct-1..4
  (``distinct_1`` .. ``distinct_4``), ``self_bleu`` (BLEU-4 of each continuation against the
  others, on a seeded subset of ``self_bleu_max_texts`` continuations) and ``seq_rep_4``
  (mean over continuations of 1 - unique/total 4-grams);
- length: mean whitespace words of the decoded continuations;
- coherence: mean cosine between the embeddings of the decoded prompt and continuation;
- MAUVE features: prompt + the first L tokens of the continuation, for each length cut L
  (GPT-2 featurizers take the token ids directly; text featurizers the decoded text).

Empty continuations (the model wrote EOS first) are counted (``n_empty``) and left out of
MAUVE, diversity, length and coherence, never silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixce.metrics.coherence import coherence
from mixce.metrics.diversity import (
    distinct_n,
    mean_seq_rep_n,
    ngram_diversity,
    self_bleu,
    word_length,
)
from mixce.metrics.features import make_featurizer
from mixce.metrics.mauve_score import mauve_from_features

Record = dict[str, list[int]]


def human_records(
    texts: Sequence[str], tokenizer: Any, prompt_tokens: int, max_new_tokens: int
) -> list[Record]:
    """Human texts cut like the samples: prompt = first tokens, continuation = the next ones.

    Texts with no token after the prompt are skipped (they cannot be continued).
    """
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [
        {"prompt_ids": ids[:prompt_tokens], "cont_ids": ids[prompt_tokens:][:max_new_tokens]}
        for ids in encoded
        if len(ids) > prompt_tokens
    ]


def sample_records(path: str) -> list[Record]:
    """Records of a sample file written by :func:`mixce.sample.write_samples`."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                records.append({"prompt_ids": row["prompt_ids"], "cont_ids": row["token_ids"]})
    return records


def build_featurizer(
    spec: Mapping[str, Any], local_dir: str | None, batch_size: int, device: str
) -> Any:
    """The featurizer of a config spec; hub models are read from their local copy.

    ``sentence`` is always the bundled all-MiniLM-L6-v2: a ``name`` inherited from a merged
    config (config.yaml's gpt2-large under an override's ``kind: sentence``) is ignored.
    """
    options = dict(spec)
    if options["kind"] == "sentence":
        options.pop("name", None)
    if options["kind"] in ("gpt2", "simcse"):
        if local_dir is None:
            raise ValueError(f"featurizer {options} needs its fetched model directory")
        options["name"] = local_dir
        if options["kind"] == "gpt2":
            options["tokenizer"] = local_dir
    return make_featurizer({**options, "batch_size": batch_size, "device": device})


def featurize(featurizer: Any, records: Sequence[Record], tokenizer: Any, length: int) -> Any:
    """Features of prompt + the first ``length`` continuation tokens of each record."""
    ids = [r["prompt_ids"] + r["cont_ids"][:length] for r in records]
    if getattr(featurizer, "kind", None) == "gpt2":
        return featurizer.featurize_ids(ids)
    return featurizer.featurize(tokenizer.batch_decode(ids))


# Scores of text_scores besides n and n_empty, in order (the columns of the collected tables).
TEXT_SCORES = (
    "diversity",
    "distinct_1",
    "distinct_2",
    "distinct_3",
    "distinct_4",
    "self_bleu",
    "seq_rep_4",
    "length_words",
    "coherence",
)


def text_scores(
    records: Sequence[Record],
    tokenizer: Any,
    coherence_featurizer: Any,
    self_bleu_max_texts: int | None = 500,
    self_bleu_seed: int = 0,
) -> dict:
    """n, n_empty and :data:`TEXT_SCORES` of a set of records (non-empty continuations).

    Self-BLEU compares every continuation with every other one, so it is computed on a
    random subset of ``self_bleu_max_texts`` continuations (seeded by ``self_bleu_seed``;
    all of them when None or fewer).
    """
    kept = [r for r in records if r["cont_ids"]]
    out: dict[str, Any] = {"n": len(records), "n_empty": len(records) - len(kept)}
    if not kept:
        return {**out, **dict.fromkeys(TEXT_SCORES, math.nan)}
    tokens = [r["cont_ids"] for r in kept]
    diversities = [ngram_diversity(t) for t in tokens]
    continuations = tokenizer.batch_decode([r["cont_ids"] for r in kept])
    prompts = tokenizer.batch_decode([r["prompt_ids"] for r in kept])
    cosine = coherence(
        coherence_featurizer.featurize(prompts), coherence_featurizer.featurize(continuations)
    )
    return {
        **out,
        "diversity": float(np.nanmean(diversities)),
        **{f"distinct_{n}": distinct_n(tokens, n) for n in (1, 2, 3, 4)},
        "self_bleu": self_bleu(tokens, max_texts=self_bleu_max_texts, seed=self_bleu_seed),
        "seq_rep_4": mean_seq_rep_n(tokens, 4),
        "length_words": float(np.mean([word_length(t) for t in continuations])),
        "coherence": float(np.mean(cosine)),
    }


def mauve_scores(
    human: Mapping[int, np.ndarray], model: Mapping[int, np.ndarray], seed: int
) -> dict[str, float]:
    """``{"mauve_len<L>": MAUVE(human features at L, model features at L)}`` for each L."""
    return {
        f"mauve_len{length}": float(mauve_from_features(human[length], feats, seed=seed)["mauve"])
        for length, feats in model.items()
    }


# --------------------------------------------------------------------------- tidy tables


def variant_columns(variant: str) -> dict[str, Any]:
    """objective, eta, setting (its hyper-parameters, e.g. ``gamma=0.5, wmin=0.1``) and
    n_train of a variant name (``base``: objective base, NaNs)."""
    from mixce.plan import BASE, hyper_label, parse_variant

    if variant == BASE:
        return {"objective": BASE, "eta": math.nan, "setting": "", "n_train": math.nan}
    parsed = parse_variant(variant)
    return {
        "objective": parsed.objective,
        "eta": parsed.eta,
        "setting": hyper_label(variant),
        "n_train": parsed.n_train,
    }


def decoding_top_p(decoding: str) -> float:
    """top-p of a decoding name: 1.0 for unbiased sampling, NaN for greedy."""
    if decoding == "unbiased":
        return 1.0
    if decoding == "greedy":
        return math.nan
    return float(decoding.removeprefix("top_p"))


def sample_rows(paths: Sequence[str], lengths: Sequence[int]) -> list[dict[str, Any]]:
    """One row per score file ``<dataset>/<model>/<variant>/<split>/<decoding>/seed<s>.json``."""
    rows = []
    for path in paths:
        parts = str(path).split("/")
        dataset, model, variant, split, decoding, seed_file = parts[-6:]
        with open(path, encoding="utf-8") as handle:
            scores = json.load(handle)
        row = {
            "dataset": dataset,
            "model": model,
            "variant": variant,
            **variant_columns(variant),
            "split": split,
            "decoding": decoding,
            "top_p": decoding_top_p(decoding),
            "seed": int(seed_file.removeprefix("seed").removesuffix(".json")),
        }
        base = ("n", "n_empty", "diversity", "mauve", "coherence", "length_words")
        for key in (*base, *(k for k in TEXT_SCORES if k not in base)):
            row[key] = scores.get(key, math.nan)
        for length in lengths:
            row[f"mauve_len{length}"] = scores.get(f"mauve_len{length}", math.nan)
        rows.append(row)
    return rows
