"""Rule objectives_report: every objective at its dev-selected setting (CSV + LaTeX table)
and MAUVE against diversity for every objective and setting (figure)."""

import logging

import pandas as pd

from mixce.gpt2.comparison import objectives_table, quality_diversity_figure
from mixce.io import job_logging, write_table


def main(smk) -> None:
    with job_logging(smk.log[0]):
        names = ("samples", "human", "perplexity", "settings")
        samples, human, ppl, settings = (pd.read_csv(smk.input[name]) for name in names)
        grid = (smk.params.datasets, smk.params.models, smk.params.objectives)
        df, tex = objectives_table(samples, human, ppl, settings, *grid)
        write_table(df, tex, str(smk.output.objectives_csv).removesuffix(".csv"))
        logging.info("objectives table: %d rows\n%s", len(df), df.to_string())
        stem = str(smk.output.pdf).removesuffix(".pdf")
        frame = quality_diversity_figure(samples, human, settings, *grid, stem)
        logging.info("quality-diversity figure: %d points", len(frame))


main(snakemake)  # noqa: F821
