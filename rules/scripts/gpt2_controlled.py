"""Rules controlled_human / controlled: controlled MAUVE and coherence (paper appendix F.4;
the algorithm and its protocol points: mixce.gpt2.metrics.controlled)."""

import json

import numpy as np

from mixce.gpt2.metrics.controlled import Controlled, sample_seed
from mixce.gpt2.metrics.scoring import rule_setup
from mixce.io import job_logging, path_list, read_texts, write_json, write_npz


def main(smk) -> None:
    with job_logging(smk.log[0]):
        tokenizer, mauve_f, coh_f = rule_setup(smk)  # checks the device before anything else
        p, ctl = smk.params, smk.params.controlled
        controlled = Controlled(
            mauve_f,
            coh_f,
            tokenizer,
            lengths=ctl["lengths"],
            n=ctl["n_fragments"],
            prompt_tokens=ctl["prompt_tokens"],
            mauve_seed=p.mauve_seed,
            official=p.protocol["controlled_fragments"] == "official",
            truncate_at_l=p.protocol["coherence_split"] == "official",
        )
        if not hasattr(smk.input, "human"):
            units = controlled.human_units(read_texts(smk.input.texts), p.max_length)
            results, arrays = controlled.score(units, ctl["seed"], None)
            write_npz(smk.output.features, arrays)
            write_json(smk.output.scores, {"lengths": results})
            return
        with np.load(smk.input.human) as npz:
            reference = {key: npz[key] for key in npz.files}
        files = zip(path_list(smk.input.samples), path_list(smk.output.scores), strict=True)
        for samples_path, scores_path in files:
            with open(samples_path, encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            units = controlled.units([r["prompt_ids"] + r["token_ids"] for r in rows])
            results, _ = controlled.score(units, sample_seed(rows, ctl["seed"]), reference)
            write_json(scores_path, {"lengths": results})


main(snakemake)  # noqa: F821
