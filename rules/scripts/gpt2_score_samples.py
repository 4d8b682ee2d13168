"""Rule score_samples: MAUVE (against the split's human features, per length cut), coherence,
diversity and length of the sample files of every seed of one (model, split, decoding), with
the featurizers and the human features loaded once: one score file per seed. The protocol
points diversity, text_length, length_cuts, newlines and coherence_split choose what is
scored (docs/PROTOCOL.md)."""

import logging

import numpy as np

from mixce.gpt2.metrics import scoring
from mixce.io import job_logging, path_list, read_texts, seed_of_path, write_json


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        tokenizer, mauve_f, coh_f = scoring.rule_setup(smk)
        logging.info("protocol %s", p.protocol)
        official_split = p.protocol["coherence_split"] == "official"
        human_texts = read_texts(smk.input.texts) if official_split else None
        with np.load(smk.input.human) as human_npz:
            human = {length: human_npz[f"len{length}"] for length in p.lengths}
        files = zip(path_list(smk.input.samples), path_list(smk.output.scores), strict=True)
        for samples_path, scores_path in files:
            seed = seed_of_path(samples_path)
            records = scoring.sample_records(samples_path)
            if human_texts is not None:
                # the released coherence split compares each sample with its human text
                scoring.attach_human_ids(records, human_texts, tokenizer, p.max_length - 1)
            scores, features = scoring.rule_scores(p, records, tokenizer, mauve_f, coh_f)
            scores.update(scoring.mauve_scores(human, features, p.mauve_seed))
            scores["mauve"] = scores[f"mauve_len{max(p.lengths)}"]
            logging.info("seed %d: scores %s", seed, scores)
            write_json(scores_path, scores)


main(snakemake)  # noqa: F821
