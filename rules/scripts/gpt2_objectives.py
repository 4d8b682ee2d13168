"""Rule objectives_report: every objective at its dev-selected setting (CSV + LaTeX table)
and MAUVE against diversity for every objective and setting (figure)."""

import logging

import pandas as pd

from mixce.gpt2.comparison import objectives_table, quality_diversity_figure
from mixce.io import job_logging, write_table


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        samples = pd.read_csv(smk.input.samples)
        human = pd.read_csv(smk.input.human)
        ppl = pd.read_csv(smk.input.perplexity)
        settings = pd.read_csv(smk.input.settings)
        df, tex = objectives_table(
            samples, human, ppl, settings, p.datasets, p.models, p.objectives
        )
        write_table(df, tex, str(smk.output.objectives_csv).removesuffix(".csv"))
        logging.info("objectives table: %d rows\n%s", len(df), df.to_string())
        frame = quality_diversity_figure(
            samples,
            human,
            settings,
            p.datasets,
            p.models,
            p.objectives,
            str(smk.output.pdf).removesuffix(".pdf"),
        )
        logging.info("quality-diversity figure: %d points", len(frame))


main(snakemake)  # noqa: F821
