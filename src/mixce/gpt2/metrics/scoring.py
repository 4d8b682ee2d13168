"""What the metric rules compute for one text set, the same way for human and model texts.

A *record* is one text cut as the paper does: ``prompt_ids`` (the first ``prompt_tokens``
GPT-2 tokens of a human text) and ``cont_ids`` (the model's tokens, or the human tokens after
the prompt, cut to ``max_new_tokens``). A human record also holds ``whole_ids`` (the released
code's human text, its first ``max_length - 1`` tokens); a sample record may hold ``index``
(its human text's position) and, for the released coherence split, ``human_ids``.

Protocol points (docs/PROTOCOL.md; ``official`` decodes as the released code did,
:func:`released_decode`): ``diversity`` (:func:`diversity_tokens`), ``text_length``
(:func:`length_texts`), ``length_cuts`` and ``newlines`` (:func:`mauve_inputs`,
:func:`coherence_texts`) and ``coherence_split`` (:func:`coherence_texts`).

Beyond the paper, every setting: the LFD paper's distinct-1..4, ``self_bleu`` (seeded subset)
and ``seq_rep_4`` on the non-empty continuations. Empty continuations (EOS first) are counted
(``n_empty``); clean leaves them out of MAUVE, diversity, length and coherence, official keeps
them (the released code scores the whole text, prompt included).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mixce.gpt2.metrics.coherence import coherence
from mixce.gpt2.metrics.diversity import (
    distinct_n,
    diversity_score,
    mean_seq_rep_n,
    self_bleu,
    word_length,
)
from mixce.gpt2.metrics.features import make_featurizer
from mixce.gpt2.metrics.fragments import clean_up_spaces
from mixce.gpt2.metrics.mauve_score import mauve_from_features
from mixce.gpt2.protocol import Setting

Record = dict[str, Any]
log = logging.getLogger(__name__)

# Scores of text_scores besides n and n_empty, in order (the columns of the collected tables).
TEXT_SCORES = (
    "diversity", "distinct_1", "distinct_2", "distinct_3", "distinct_4",
    "self_bleu", "seq_rep_4", "length_words", "coherence",
)  # fmt: skip


def _check(name: str, setting: str) -> None:
    if setting not in ("official", "clean"):
        raise ValueError(f"{name}: setting must be official or clean, got {setting!r}")


def human_records(
    texts: Sequence[str],
    tokenizer: Any,
    prompt_tokens: int,
    max_new_tokens: int,
    whole_tokens: int | None = None,
) -> list[Record]:
    """Human texts cut like the samples; texts with no token after the prompt are skipped.
    ``whole_tokens``: also keep ``whole_ids``, the first ``whole_tokens`` tokens (released:
    finetuning ``max_length`` - 1, the EOS slot left out)."""
    records: list[Record] = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        if len(ids) > prompt_tokens:
            cont = ids[prompt_tokens:][:max_new_tokens]
            record = {"prompt_ids": ids[:prompt_tokens], "cont_ids": cont}
            if whole_tokens is not None:
                record["whole_ids"] = ids[:whole_tokens]
            records.append(record)
    return records


def sample_records(path: str) -> list[Record]:
    """Records of a sample file written by :func:`mixce.gpt2.sample.write_samples`."""
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [
        {"prompt_ids": row["prompt_ids"], "cont_ids": row["token_ids"]}
        | ({"index": int(row["index"])} if "index" in row else {})
        for row in rows
    ]


def attach_human_ids(
    records: Sequence[Record], texts: Sequence[str], tokenizer: Any, whole_tokens: int
) -> None:
    """Give each sample record ``human_ids``, the first ``whole_tokens`` tokens of
    ``texts[record["index"]]`` (the released coherence split)."""
    indices = sorted({int(r["index"]) for r in records})
    encoded = encode(tokenizer, [texts[i] for i in indices])
    by_index = {i: ids[:whole_tokens] for i, ids in zip(indices, encoded, strict=True)}
    for record in records:
        record["human_ids"] = by_index[int(record["index"])]


def whole_ids(record: Record) -> list[int]:
    """The whole text's tokens: a human record's ``whole_ids``, else prompt + continuation."""
    return list(record.get("whole_ids", [*record["prompt_ids"], *record["cont_ids"]]))


def released_decode(tokenizer: Any, ids: Sequence[Sequence[int]]) -> list[str]:
    """Texts as the released code decoded them: special tokens skipped, then transformers 4's
    clean-up of tokenization spaces (:func:`.fragments.clean_up_spaces`)."""
    texts = tokenizer.batch_decode(
        [list(x) for x in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    return [clean_up_spaces(t) for t in texts]


def flatten_newlines(text: str) -> str:
    """Every ``\\n`` and ``\\r`` made a space, the ends stripped: the released code writes
    each text on one line this way and reads it back with ``strip()``."""
    return text.replace("\n", " ").replace("\r", " ").strip()


def encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """GPT-2 token ids of each text, no special tokens added."""
    if not texts:
        return []
    return [list(x) for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def diversity_tokens(
    records: Sequence[Record], tokenizer: Any, setting: Setting
) -> list[list[int]]:
    """Tokens diversity is computed on: clean, the non-empty continuations; official, every
    whole text (:func:`whole_ids`) decoded as released (line breaks kept), tokenized again."""
    if setting == "clean":
        return [list(r["cont_ids"]) for r in records if r["cont_ids"]]
    return encode(tokenizer, released_decode(tokenizer, [whole_ids(r) for r in records]))


def length_texts(records: Sequence[Record], tokenizer: Any, setting: Setting) -> list[str]:
    """Texts whose words Table 10 counts: clean, the decoded non-empty continuations;
    official, every whole text decoded as released."""
    if setting == "clean":
        return tokenizer.batch_decode([r["cont_ids"] for r in records if r["cont_ids"]])
    return released_decode(tokenizer, [whole_ids(r) for r in records])


def mauve_inputs(
    records: Sequence[Record],
    tokenizer: Any,
    length: int,
    *,
    length_cuts: Setting,
    newlines: Setting,
) -> list[list[int]]:
    """Token ids the MAUVE featurizer sees at cut ``length``. length_cuts clean: prompt + the
    first ``length`` continuation tokens of each non-empty continuation; official: every
    whole text cut to its first ``length`` tokens (as ``mauve.compute_mauve(max_text_length)``
    cuts the text it tokenizes: after the newlines step). newlines official: decoded as
    released, :func:`flatten_newlines`, tokenized again. Empty texts are dropped (as mauve)."""
    _check("length_cuts", length_cuts)
    _check("newlines", newlines)
    if length_cuts == "clean":
        ids = [[*r["prompt_ids"], *r["cont_ids"][:length]] for r in records if r["cont_ids"]]
    else:
        ids = [whole_ids(r) for r in records]
    if newlines == "official":
        ids = encode(tokenizer, [flatten_newlines(t) for t in released_decode(tokenizer, ids)])
    if length_cuts == "official":
        ids = [x[:length] for x in ids]
    return [x for x in ids if x]


def common_prefix_split(human_text: str, model_text: str) -> tuple[str, str]:
    """The released coherence split (``compute_coherence``): both texts stripped and split on
    single spaces; the prompt is the model's words up to the first one that differs from the
    human's, the continuation the rest (each joined with single spaces)."""
    human_words = human_text.strip().split(" ")
    model_words = model_text.strip().split(" ")
    common = 0
    for human_word, model_word in zip(human_words, model_words, strict=False):
        if human_word != model_word:
            break
        common += 1
    return " ".join(model_words[:common]), " ".join(model_words[common:])


def coherence_texts(
    records: Sequence[Record],
    tokenizer: Any,
    newlines: Setting,
    coherence_split: Setting = "clean",
) -> tuple[list[str], list[str]]:
    """(prompts, continuations) that coherence embeds. newlines clean: decoded, line breaks
    kept; official: decoded as released, :func:`flatten_newlines`. coherence_split clean:
    prompt and continuation tokens of each non-empty continuation; official: every record,
    one with ``human_ids`` (a sample) by :func:`common_prefix_split`, one without (a human
    text: the released code has no human coherence) at its prompt tokens."""

    def decode(ids: Sequence[Sequence[int]]) -> list[str]:
        if newlines == "clean":
            return tokenizer.batch_decode(ids)
        return [flatten_newlines(t) for t in released_decode(tokenizer, ids)]

    if coherence_split == "clean":
        kept = [r for r in records if r["cont_ids"]]
        return decode([r["prompt_ids"] for r in kept]), decode([r["cont_ids"] for r in kept])
    paired = [r for r in records if "human_ids" in r]
    humans = decode([r["human_ids"] for r in paired])
    models = decode([whole_ids(r) for r in paired])
    splits = [common_prefix_split(h, m) for h, m in zip(humans, models, strict=True)]
    alone = [r for r in records if "human_ids" not in r]
    prompts = [p for p, _ in splits] + decode([r["prompt_ids"] for r in alone])
    rests = [whole_ids(r)[len(r["prompt_ids"]) :] for r in alone]
    return prompts, [c for _, c in splits] + decode(rests)


def build_featurizer(
    spec: Mapping[str, Any],
    local_dir: str | None,
    batch_size: int,
    device: str,
    tokenizer_dir: str | None = None,
) -> Any:
    """The featurizer of a config spec, hub models read from their local copy. ``sentence``
    is always the bundled all-MiniLM-L6-v2 (a ``name`` inherited from a merged config is
    ignored). A ``gpt2`` spec with ``model`` (a gpt2.models key) is that model's base model in
    ``local_dir``, read with the run's GPT-2 tokenizer in ``tokenizer_dir``."""
    options = dict(spec)
    own_model = options.pop("model", None)
    if options["kind"] == "sentence":
        options.pop("name", None)
    if options["kind"] in ("gpt2", "simcse"):
        if local_dir is None:
            raise ValueError(f"featurizer {spec} needs its model directory")
        options["name"] = local_dir
        if options["kind"] == "gpt2":
            if own_model is not None and tokenizer_dir is None:
                raise ValueError(f"featurizer {spec} needs the run's tokenizer directory")
            options["tokenizer"] = tokenizer_dir if own_model is not None else local_dir
    return make_featurizer({**options, "batch_size": batch_size, "device": device})


def rule_setup(smk: Any) -> tuple[Any, Any, Any]:
    """(tokenizer, mauve featurizer, coherence featurizer) of a metric rule's job: its device
    (``gpt2.metrics.device``; fails here if CUDA is unusable), threads, ``featurizers`` and
    ``batch_size`` params, and the local model copies and tokenizer among its inputs."""
    import torch

    from mixce.device import job_device
    from mixce.gpt2.tokenizer import load_tokenizer

    device = str(job_device(smk, "gpt2.metrics.device"))
    torch.set_num_threads(max(1, smk.threads))
    p, inputs = smk.params, smk.input
    featurizers = [
        build_featurizer(
            p.featurizers[role], getattr(inputs, role, None), p.batch_size, device, inputs.tokenizer
        )
        for role in ("mauve", "coherence")
    ]
    return load_tokenizer(inputs.tokenizer), *featurizers


def featurize(
    featurizer: Any,
    records: Sequence[Record],
    tokenizer: Any,
    length: int,
    *,
    length_cuts: Setting = "clean",
    newlines: Setting = "clean",
) -> Any:
    """MAUVE features at cut ``length`` of the texts :func:`mauve_inputs` chooses; None when
    no text is left. GPT-2 featurizers take the ids, text featurizers their decoded text."""
    ids = mauve_inputs(records, tokenizer, length, length_cuts=length_cuts, newlines=newlines)
    if not ids:
        return None
    if getattr(featurizer, "kind", None) == "gpt2":
        return featurizer.featurize_ids(ids)
    return featurizer.featurize(tokenizer.batch_decode(ids))


def text_scores(
    records: Sequence[Record],
    tokenizer: Any,
    coherence_featurizer: Any,
    self_bleu_max_texts: int | None = 500,
    self_bleu_seed: int = 0,
    *,
    diversity: Setting = "clean",
    text_length: Setting = "clean",
    newlines: Setting = "clean",
    coherence_split: Setting = "clean",
) -> dict:
    """n, n_empty and :data:`TEXT_SCORES` of a set of records under the protocol points'
    settings; the LFD metrics use the non-empty continuations in every setting, self-BLEU a
    random subset of ``self_bleu_max_texts`` (all when None). Nothing to average: nan."""
    kept = [r["cont_ids"] for r in records if r["cont_ids"]]
    out: dict[str, Any] = {"n": len(records), "n_empty": len(records) - len(kept)}
    scores: dict[str, Any] = dict.fromkeys(TEXT_SCORES, math.nan)
    if kept:
        scores.update({f"distinct_{n}": distinct_n(kept, n) for n in (1, 2, 3, 4)})
        scores["self_bleu"] = self_bleu(kept, max_texts=self_bleu_max_texts, seed=self_bleu_seed)
        scores["seq_rep_4"] = mean_seq_rep_n(kept, 4)
    tokens = diversity_tokens(records, tokenizer, diversity)
    scores["diversity"] = diversity_score(tokens, diversity)
    lengths = [word_length(t) for t in length_texts(records, tokenizer, text_length)]
    if lengths:
        scores["length_words"] = float(np.mean(lengths))
    prompts, continuations = coherence_texts(records, tokenizer, newlines, coherence_split)
    if prompts:
        embed = coherence_featurizer.featurize
        scores["coherence"] = float(np.mean(coherence(embed(prompts), embed(continuations))))
    return {**out, **scores}


def rule_scores(
    params: Any, records: Sequence[Record], tokenizer: Any, mauve_f: Any, coh_f: Any
) -> tuple[dict[str, Any], dict[int, Any]]:
    """(:func:`text_scores`, {L: MAUVE features or None}) of a metric rule's records, with its
    ``self_bleu``, ``lengths`` and ``protocol`` params (rules score_human and score_samples)."""
    points = params.protocol
    scores = text_scores(
        records,
        tokenizer,
        coh_f,
        self_bleu_max_texts=params.self_bleu["max_texts"],
        self_bleu_seed=params.self_bleu["seed"],
        **{p: points[p] for p in ("diversity", "text_length", "newlines", "coherence_split")},
    )
    cuts = {"length_cuts": points["length_cuts"], "newlines": points["newlines"]}
    features = {L: featurize(mauve_f, records, tokenizer, L, **cuts) for L in params.lengths}
    return scores, features


def mauve_scores(
    human: Mapping[int, np.ndarray], model: Mapping[int, np.ndarray | None], seed: int
) -> dict[str, float]:
    """``{"mauve_len<L>": MAUVE(human features at L, model features at L)}`` for each L (nan
    where the model has no features: no text left to featurize at that cut)."""
    scores = {}
    for length, feats in model.items():
        if feats is None:
            log.warning("no text to featurize at cut %d: no MAUVE", length)
            scores[f"mauve_len{length}"] = math.nan
        else:
            mauve = mauve_from_features(human[length], feats, seed=seed)["mauve"]
            scores[f"mauve_len{length}"] = float(mauve)
    return scores


def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint sorted halves of ``range(n)`` (``n // 2`` each, the odd one left out),
    drawn by ``numpy.random.default_rng(seed).permutation``."""
    if n < 2:
        raise ValueError(f"need at least 2 texts to split into halves, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return np.sort(order[:half]), np.sort(order[half : 2 * half])


def human_ceiling(features: np.ndarray, seeds: Sequence[int], mauve_seed: int) -> dict[str, Any]:
    """MAUVE between two disjoint halves of the human texts, one random split per seed: the
    ceiling of a model's MAUVE on half as many texts. ``mauve_halves`` (mean),
    ``mauve_halves_std`` (ddof 1; nan for one seed) and ``n_half`` (texts per half)."""
    features = np.asarray(features)
    values = [
        mauve_from_features(features[first], features[second], seed=mauve_seed)["mauve"]
        for first, second in (split_halves(len(features), int(seed)) for seed in seeds)
    ]
    return {
        "mauve_halves": float(np.mean(values)),
        "mauve_halves_std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
        "n_half": len(features) // 2,
    }


def variant_columns(variant: str) -> dict[str, Any]:
    """objective, eta, setting (its hyper-parameters, e.g. ``gamma=0.5, wmin=0.1``) and
    n_train of a variant name (``base``: objective base, NaNs)."""
    from mixce.gpt2.plan import BASE, hyper_label, parse_variant

    if variant == BASE:
        return {"objective": BASE, "eta": math.nan, "setting": "", "n_train": math.nan}
    p = parse_variant(variant)
    return dict(objective=p.objective, eta=p.eta, setting=hyper_label(variant), n_train=p.n_train)


def sample_rows(paths: Sequence[str], lengths: Sequence[int]) -> list[dict[str, Any]]:
    """One row per score file ``<dataset>/<model>/<variant>/<split>/<decoding>/seed<s>.json``;
    top_p is 1.0 for unbiased sampling, NaN for greedy."""
    base = ("n", "n_empty", "diversity", "mauve", "coherence", "length_words")
    keys = [*base, *(k for k in TEXT_SCORES if k not in base), *(f"mauve_len{L}" for L in lengths)]
    top_p = {"unbiased": 1.0, "greedy": math.nan}
    rows = []
    for path in paths:
        dataset, model, variant, split, decoding, seed_file = str(path).split("/")[-6:]
        with open(path, encoding="utf-8") as handle:
            scores = json.load(handle)
        rows.append(
            {"dataset": dataset, "model": model, "variant": variant, **variant_columns(variant)}
            | {"split": split, "decoding": decoding}
            | {"top_p": top_p.get(decoding) or float(decoding.removeprefix("top_p"))}
            | {"seed": int(seed_file.removeprefix("seed").removesuffix(".json"))}
            | {key: scores.get(key, math.nan) for key in keys}
        )
    return rows
