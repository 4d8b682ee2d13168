"""Rule human_eval_pairs: blinded MLE-vs-MixCE pairs for annotators (paper appendix H), one
sheet over every dataset; the key (which side is which) is a separate file."""

import json
import logging
from pathlib import Path

import pandas as pd

from mixce.gpt2.human_eval import make_pairs
from mixce.io import job_logging, write_csv, write_json


def rows_of(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(smk) -> None:
    with job_logging(smk.log[0]):
        # results/<run>/samples/<dataset>/...
        mle, mixce = ({Path(p).parts[3]: p for p in smk.input[k]} for k in ("mle", "mixce"))
        pairs, keys, counts = [], [], {}
        for dataset in smk.params.datasets:
            a, b = rows_of(mle[dataset]), rows_of(mixce[dataset])
            if [r["index"] for r in a] != [r["index"] for r in b]:
                raise ValueError(f"{dataset}: MLE and MixCE samples are not for the same prompts")
            made = make_pairs(
                [r["continuation"] for r in a],
                [r["continuation"] for r in b],
                prompts=[r["prompt"] for r in a],
                seed=smk.params.seed,
                id_prefix=f"{dataset}-",
            )
            pairs.append(made.pairs.assign(dataset=dataset))
            keys.append(made.key.assign(dataset=dataset))
            counts[dataset] = made.dropped
            logging.info("%s: %s", dataset, made.dropped)
        write_csv(smk.output.pairs, pd.concat(pairs, ignore_index=True))
        write_csv(smk.output.key, pd.concat(keys, ignore_index=True))
        write_json(smk.output.counts, counts)


main(snakemake)  # noqa: F821
