"""Rule figure4: dev MAUVE against eta for each generation-length cut (paper Figure 4)."""

import logging

import pandas as pd

from mixce.gpt2.figures import figure4
from mixce.io import job_logging


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p, stem = smk.params, str(smk.output.pdf).removesuffix(".pdf")
        points = figure4(pd.read_csv(smk.input.samples), p.lengths, p.datasets, p.models, stem)
        logging.info("plotted:\n%s", points.to_string())


main(snakemake)  # noqa: F821
