"""Rule synthetic_summary: every trained Q -> runs.csv, selected.csv (best eta), eta_curve.csv."""

import logging

from mixce.io import job_logging, read_json, write_csv
from mixce.synthetic.pipeline import runs_table
from mixce.synthetic.select import eta_curve, select_best_eta


def main(smk) -> None:
    with job_logging(smk.log[0]):
        runs = runs_table(r for path in smk.input.runs for r in read_json(path))
        logging.info("%d runs from %d training jobs", len(runs), len(smk.input.runs))
        write_csv(smk.output.runs, runs)
        write_csv(smk.output.selected, select_best_eta(runs))
        write_csv(smk.output.eta_curve, eta_curve(runs))


main(snakemake)  # noqa: F821
