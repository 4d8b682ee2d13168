"""Rules controlled_human / controlled: controlled MAUVE and coherence (paper appendix F.4).

n random L-token fragments are drawn from the texts (prompt + continuation for model texts,
the whole text for human ones), for each L. c-mauve_L is MAUVE between the human fragments
and the model's; c-coherence_L the cosine between a fragment's first prompt_tokens tokens and
the rest. The human reference is scored by the same code (its c-mauve compares two
independent human draws, so it is not 1, as in the paper). An L whose fragments run out is
skipped and the reason recorded.
"""

import json
import logging
import math

import numpy as np

from mixce.io import job_logging, read_texts, write_json, write_npz
from mixce.metrics.coherence import coherence
from mixce.metrics.fragments import fragment_capacity, sample_fragments, split_prompt
from mixce.metrics.mauve_score import mauve_from_features
from mixce.metrics.scoring import build_featurizer, featurize
from mixce.tokenizer import load_tokenizer


def fragment_records(fragments, prompt_tokens):
    return [
        dict(zip(("prompt_ids", "cont_ids"), split_prompt(f, prompt_tokens), strict=True))
        for f in fragments
    ]


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        ctl = p.controlled
        torch.set_num_threads(max(1, smk.threads))
        tokenizer = load_tokenizer(smk.input.tokenizer)
        local = {role: getattr(smk.input, role, None) for role in ("mauve", "coherence")}
        mauve_f = build_featurizer(p.featurizers["mauve"], local["mauve"], p.batch_size, p.device)
        coh_f = build_featurizer(
            p.featurizers["coherence"], local["coherence"], p.batch_size, p.device
        )
        is_human = not hasattr(smk.input, "human")
        if is_human:
            texts = read_texts(smk.input.texts)
            token_lists = tokenizer(texts, add_special_tokens=False)["input_ids"]
            seed = ctl["seed"]
        else:
            with open(smk.input.samples, encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            token_lists = [r["prompt_ids"] + r["token_ids"] for r in rows]
            seed = ctl["seed"] + 1000 + int(rows[0]["seed"]) if rows else ctl["seed"]
            reference = np.load(smk.input.human)
        n = ctl["n_fragments"]
        results, arrays = {}, {}
        for length in ctl["lengths"]:
            capacity = fragment_capacity(token_lists, length)
            fragments = sample_fragments(token_lists, length, n, seed)
            if fragments is None or (not is_human and f"len{length}" not in reference):
                why = f"skipped: {capacity} fragment positions of {length} tokens, need {n}"
                if fragments is not None:
                    why = "skipped: the human fragments of this length ran out"
                results[str(length)] = {"status": why, "capacity": capacity}
                logging.warning("L=%d %s", length, why)
                continue
            records = fragment_records(fragments, ctl["prompt_tokens"])
            feats = featurize(mauve_f, records, tokenizer, length)
            if is_human:
                arrays[f"len{length}"] = feats
                again = sample_fragments(token_lists, length, n, seed + 1)
                other = featurize(
                    mauve_f, fragment_records(again, ctl["prompt_tokens"]), tokenizer, length
                )
                human_feats = other
            else:
                human_feats = reference[f"len{length}"]
            c_mauve = mauve_from_features(human_feats, feats, seed=p.mauve_seed)["mauve"]
            prompts = tokenizer.batch_decode([r["prompt_ids"] for r in records])
            rests = tokenizer.batch_decode([r["cont_ids"] for r in records])
            c_coh = float(np.mean(coherence(coh_f.featurize(prompts), coh_f.featurize(rests))))
            results[str(length)] = {
                "status": "ok",
                "capacity": capacity,
                "n_fragments": n,
                "c_mauve": float(c_mauve),
                "c_coherence": c_coh if math.isfinite(c_coh) else None,
            }
            logging.info("L=%d: %s", length, results[str(length)])
        if is_human:
            write_npz(smk.output.features, arrays)
        write_json(smk.output.scores, {"lengths": results})


main(snakemake)  # noqa: F821
