"""Rules controlled_human / controlled: controlled MAUVE and coherence (paper appendix F.4).

n random L-token fragments are drawn from the texts (prompt + continuation for model texts,
the whole text for human ones), for each L. c-mauve_L is MAUVE between the human fragments
and the model's; c-coherence_L the cosine between a fragment's prompt and the rest. The human
reference is scored by the same code (its c-mauve compares two independent human draws, so it
is not 1, as in the paper). An L whose fragments run out is skipped and the reason recorded.

The ``controlled_fragments`` protocol point (docs/PROTOCOL.md, mixce.gpt2.metrics.fragments) picks
the draw: ``clean`` cuts L GPT-2 tokens (prompt: ``prompt_tokens`` tokens), a text at a time
with replacement, from whole human texts; ``official`` cuts int(L / 1.35) whitespace words
(prompt: int(prompt_tokens / 1.35) words) at (text, start) positions drawn without
replacement, from the decoded texts with human texts cut to their first max_length - 1 tokens,
as the authors' released code does. ``coherence_split`` official truncates the coherence
encoder's input at L word pieces for c-coherence_L, as the released code does.
"""

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mixce.device import job_device
from mixce.gpt2.metrics.coherence import coherence
from mixce.gpt2.metrics.features import max_len_set_to
from mixce.gpt2.metrics.fragments import (
    clean_up_spaces,
    cut_human_text,
    fragment_capacity,
    sample_fragments,
    sample_word_fragments,
    split_prompt,
    split_word_prompt,
    word_capacity,
    words_for_tokens,
)
from mixce.gpt2.metrics.mauve_score import mauve_from_features
from mixce.gpt2.metrics.scoring import build_featurizer, featurize
from mixce.gpt2.tokenizer import load_tokenizer
from mixce.io import job_logging, path_list, read_texts, write_json, write_npz


@dataclass
class Draw:
    """One set of fragments: MAUVE features on demand, coherence prompts and continuations."""

    features: Callable[[], np.ndarray]
    prompts: list[str]
    rests: list[str]


def fragment_records(fragments, prompt_tokens):
    return [
        dict(zip(("prompt_ids", "cont_ids"), split_prompt(f, prompt_tokens), strict=True))
        for f in fragments
    ]


def token_draw(token_lists, length, n, seed, prompt_tokens, mauve_f, tokenizer):
    """clean: L-token fragments (mixce.gpt2.metrics.fragments.sample_fragments), or None."""
    fragments = sample_fragments(token_lists, length, n, seed)
    if fragments is None:
        return None
    records = fragment_records(fragments, prompt_tokens)
    return Draw(
        features=lambda: featurize(mauve_f, records, tokenizer, length),
        prompts=tokenizer.batch_decode([r["prompt_ids"] for r in records]),
        rests=tokenizer.batch_decode([r["cont_ids"] for r in records]),
    )


def word_draw(word_lists, length, n, seed, prompt_tokens, mauve_f):
    """official: int(L / 1.35)-word fragments (sample_word_fragments), or None."""
    fragments = sample_word_fragments(word_lists, words_for_tokens(length), n, seed)
    if fragments is None:
        return None
    pairs = [split_word_prompt(f, words_for_tokens(prompt_tokens)) for f in fragments]
    texts = [" ".join(f) for f in fragments]
    return Draw(
        features=lambda: mauve_f.featurize(texts),
        prompts=[prompt for prompt, _ in pairs],
        rests=[rest for _, rest in pairs],
    )


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        device = str(job_device(smk, "gpt2.metrics.device"))  # fails here if CUDA is unusable
        ctl = p.controlled
        official = p.protocol["controlled_fragments"] == "official"
        truncate_at_l = p.protocol["coherence_split"] == "official"
        torch.set_num_threads(max(1, smk.threads))
        tokenizer = load_tokenizer(smk.input.tokenizer)
        local = {role: getattr(smk.input, role, None) for role in ("mauve", "coherence")}
        mauve_f, coh_f = (
            build_featurizer(
                p.featurizers[role], local[role], p.batch_size, device, smk.input.tokenizer
            )
            for role in ("mauve", "coherence")
        )
        is_human = not hasattr(smk.input, "human")
        n = ctl["n_fragments"]

        def to_units(token_lists):
            """Fragment units of the texts: words (official) or GPT-2 tokens (clean)."""
            if not official:
                return token_lists
            decoded = tokenizer.batch_decode(
                token_lists, skip_special_tokens=True, clean_up_tokenization_spaces=False
            )
            return [clean_up_spaces(text).split() for text in decoded]

        def draw(units, length, draw_seed):
            if official:
                return word_draw(units, length, n, draw_seed, ctl["prompt_tokens"], mauve_f)
            return token_draw(units, length, n, draw_seed, ctl["prompt_tokens"], mauve_f, tokenizer)

        def score(units, seed, reference):
            """{L: scores} of one set of texts, and the features of its draws; the human
            set (reference None) is compared with a second draw of itself."""
            logging.info(
                "controlled_fragments %s: %d texts, %d fragments per L, seed %d",
                p.protocol["controlled_fragments"],
                len(units),
                n,
                seed,
            )
            results, arrays = {}, {}
            for length in ctl["lengths"]:
                if official:
                    n_words = words_for_tokens(length)
                    capacity = word_capacity(units, n_words)
                    unit = f"{n_words} words (L = {length} tokens)"
                else:
                    capacity = fragment_capacity(units, length)
                    unit = f"{length} tokens"
                fragments = draw(units, length, seed)
                if fragments is None or (reference is not None and f"len{length}" not in reference):
                    why = f"skipped: {capacity} fragment positions of {unit}, need {n}"
                    if fragments is not None:
                        why = "skipped: the human fragments of this length ran out"
                    results[str(length)] = {"status": why, "capacity": capacity}
                    logging.warning("L=%d %s", length, why)
                    continue
                feats = fragments.features()
                if reference is None:
                    arrays[f"len{length}"] = feats
                    human_feats = draw(units, length, seed + 1).features()
                else:
                    human_feats = reference[f"len{length}"]
                c_mauve = mauve_from_features(human_feats, feats, seed=p.mauve_seed)["mauve"]
                # coherence_split official: the released c-coh_L truncates SimCSE's input at L
                with max_len_set_to(coh_f, length if truncate_at_l else None):
                    c_coh = float(
                        np.mean(
                            coherence(
                                coh_f.featurize(fragments.prompts),
                                coh_f.featurize(fragments.rests),
                            )
                        )
                    )
                results[str(length)] = {
                    "status": "ok",
                    "capacity": capacity,
                    "n_fragments": n,
                    "c_mauve": float(c_mauve),
                    "c_coherence": c_coh if math.isfinite(c_coh) else None,
                }
                if official:
                    results[str(length)]["n_words"] = n_words
                logging.info("L=%d: %s", length, results[str(length)])
            return results, arrays

        if is_human:
            texts = read_texts(smk.input.texts)
            token_lists = tokenizer(texts, add_special_tokens=False)["input_ids"]
            if official:
                token_lists = [cut_human_text(ids, p.max_length) for ids in token_lists]
            results, arrays = score(to_units(token_lists), ctl["seed"], None)
            write_npz(smk.output.features, arrays)
            write_json(smk.output.scores, {"lengths": results})
            return
        with np.load(smk.input.human) as npz:
            reference = {key: npz[key] for key in npz.files}
        files = zip(path_list(smk.input.samples), path_list(smk.output.scores), strict=True)
        for samples_path, scores_path in files:
            with open(samples_path, encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            token_lists = [r["prompt_ids"] + r["token_ids"] for r in rows]
            seed = ctl["seed"] + 1000 + int(rows[0]["seed"]) if rows else ctl["seed"]
            results, _ = score(to_units(token_lists), seed, reference)
            write_json(scores_path, {"lengths": results})


main(snakemake)  # noqa: F821
