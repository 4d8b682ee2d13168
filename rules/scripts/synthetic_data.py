"""Rule synthetic_data: train and dev sequences sampled from one target P."""

import logging

import numpy as np

from mixce.io import job_logging, write_json, write_npz
from mixce.synthetic.data import sequences_arrays
from mixce.synthetic.pipeline import make_data


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        with np.load(smk.input.target) as target:
            chain = target["chain"]
        train, dev, summary = make_data(chain, p.n_train, p.n_dev, p.max_length, p.seed)
        logging.info("sampled %s", summary)
        arrays = {**sequences_arrays(train, "train"), **sequences_arrays(dev, "dev")}
        write_npz(smk.output.npz, arrays)
        write_json(smk.output.summary, summary)


main(snakemake)  # noqa: F821
