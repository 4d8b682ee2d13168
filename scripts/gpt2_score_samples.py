"""Rule score_samples: MAUVE (against the split's human features, per length cut), coherence,
diversity and length of one sample file."""

import logging

import numpy as np

from mixce.io import job_logging, write_json
from mixce.metrics.scoring import (
    build_featurizer,
    featurize,
    mauve_scores,
    sample_records,
    text_scores,
)
from mixce.tokenizer import load_tokenizer


def main(smk) -> None:
    import torch

    with job_logging(smk.log[0]):
        p = smk.params
        torch.set_num_threads(max(1, smk.threads))
        tokenizer = load_tokenizer(smk.input.tokenizer)
        records = sample_records(smk.input.samples)
        local = {role: getattr(smk.input, role, None) for role in ("mauve", "coherence")}
        mauve_f = build_featurizer(p.featurizers["mauve"], local["mauve"], p.batch_size, p.device)
        coh_f = build_featurizer(
            p.featurizers["coherence"], local["coherence"], p.batch_size, p.device
        )
        scores = text_scores(
            records,
            tokenizer,
            coh_f,
            self_bleu_max_texts=p.self_bleu["max_texts"],
            self_bleu_seed=p.self_bleu["seed"],
        )
        kept = [r for r in records if r["cont_ids"]]
        with np.load(smk.input.human) as human_npz:
            human = {length: human_npz[f"len{length}"] for length in p.lengths}
        if kept:
            model = {length: featurize(mauve_f, kept, tokenizer, length) for length in p.lengths}
            scores.update(mauve_scores(human, model, p.mauve_seed))
        else:
            logging.warning("every continuation is empty: no MAUVE")
            scores.update({f"mauve_len{length}": float("nan") for length in p.lengths})
        scores["mauve"] = scores[f"mauve_len{max(p.lengths)}"]
        logging.info("scores %s", scores)
        write_json(smk.output.scores, scores)


main(snakemake)  # noqa: F821
