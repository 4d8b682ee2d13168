"""Rule score_samples: MAUVE (against the split's human features, per length cut), coherence,
diversity and length of one sample file. The protocol points diversity, text_length,
length_cuts, newlines and coherence_split choose what is scored (docs/PROTOCOL.md)."""

import logging

import numpy as np

from mixce.device import job_device
from mixce.io import job_logging, read_texts, write_json
from mixce.metrics.scoring import (
    attach_human_ids,
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
        device = str(job_device(smk, "gpt2.metrics.device"))  # fails here if CUDA is unusable
        points = p.protocol
        torch.set_num_threads(max(1, smk.threads))
        tokenizer = load_tokenizer(smk.input.tokenizer)
        records = sample_records(smk.input.samples)
        logging.info("protocol %s", points)
        if points["coherence_split"] == "official":
            # the released coherence split compares each sample with its human text
            attach_human_ids(records, read_texts(smk.input.texts), tokenizer, p.max_length - 1)
        local = {role: getattr(smk.input, role, None) for role in ("mauve", "coherence")}
        mauve_f = build_featurizer(p.featurizers["mauve"], local["mauve"], p.batch_size, device)
        coh_f = build_featurizer(
            p.featurizers["coherence"], local["coherence"], p.batch_size, device
        )
        scores = text_scores(
            records,
            tokenizer,
            coh_f,
            self_bleu_max_texts=p.self_bleu["max_texts"],
            self_bleu_seed=p.self_bleu["seed"],
            diversity=points["diversity"],
            text_length=points["text_length"],
            newlines=points["newlines"],
            coherence_split=points["coherence_split"],
        )
        with np.load(smk.input.human) as human_npz:
            human = {length: human_npz[f"len{length}"] for length in p.lengths}
        model = {
            length: featurize(
                mauve_f,
                records,
                tokenizer,
                length,
                length_cuts=points["length_cuts"],
                newlines=points["newlines"],
            )
            for length in p.lengths
        }
        for length, feats in model.items():
            if feats is None:
                logging.warning("no text to featurize at cut %d: no MAUVE", length)
                scores[f"mauve_len{length}"] = float("nan")
            else:
                scores.update(mauve_scores(human, {length: feats}, p.mauve_seed))
        scores["mauve"] = scores[f"mauve_len{max(p.lengths)}"]
        logging.info("scores %s", scores)
        write_json(smk.output.scores, scores)


main(snakemake)  # noqa: F821
