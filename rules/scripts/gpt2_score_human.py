"""Rule score_human: features (every length cut) and scores of one human split, computed once
and reused by every model, eta and seed, and the human-vs-human MAUVE of two disjoint halves
(the ceiling row). The protocol points diversity, text_length, length_cuts, newlines and
coherence_split choose what is scored (docs/PROTOCOL.md)."""

import logging

import numpy as np

from mixce.gpt2.metrics import scoring
from mixce.gpt2.tokenizer import loader_texts
from mixce.io import job_logging, read_texts, write_json, write_npz


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        tokenizer, mauve_f, coh_f = scoring.rule_setup(smk)
        # protocol point newlines: the human texts as the released loader saw them
        texts = loader_texts(read_texts(smk.input.texts), p.protocol["newlines"])[: p.n_prompts]
        # whole_ids: the released code's human text, its first max_length - 1 tokens
        records = scoring.human_records(
            texts, tokenizer, p.prompt_tokens, p.max_new_tokens, whole_tokens=p.max_length - 1
        )
        logging.info("%d human texts, %d with a continuation", len(texts), len(records))
        logging.info("protocol %s", p.protocol)
        scores, features = scoring.rule_scores(p, records, tokenizer, mauve_f, coh_f)
        empty = [length for length, feats in features.items() if feats is None]
        if empty:
            raise ValueError(f"no human text left to featurize at cuts {empty}")
        write_npz(smk.output.features, {f"len{k}": np.asarray(v) for k, v in features.items()})
        # The human reference row's MAUVE, by the same code: the human set against itself.
        top = max(p.lengths)
        scores.update(scoring.mauve_scores(features, {top: features[top]}, p.mauve_seed))
        scores["mauve"] = scores[f"mauve_len{top}"]
        # The ceiling a model can reach: two disjoint halves of the human texts, one random
        # split per sampling seed (as many values as a model's MAUVE has).
        scores.update(scoring.human_ceiling(features[top], p.seeds, p.mauve_seed))
        logging.info("scores %s", scores)
        write_json(smk.output.scores, scores)


main(snakemake)  # noqa: F821
