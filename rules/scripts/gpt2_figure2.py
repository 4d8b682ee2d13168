"""Rule figure2: NLL histograms of human text, unbiased samples and greedy outputs under the
pretrained model (paper Figure 2)."""

import logging
from pathlib import Path

import numpy as np

from mixce.gpt2.figures import figure2
from mixce.io import job_logging


def main(smk) -> None:
    with job_logging(smk.log[0]):
        nll = {}
        for path in smk.input.nll:
            dataset = Path(path).parent.name
            with np.load(path) as arrays:
                for source in ("human", "unbiased", "greedy"):
                    nll[(dataset, source)] = (arrays[f"{source}_seq"], arrays[f"{source}_tok"])
        summary = figure2(nll, smk.params.datasets, str(smk.output.pdf).removesuffix(".pdf"))
        logging.info("summary:\n%s", summary.to_string())


main(snakemake)  # noqa: F821
