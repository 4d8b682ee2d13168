"""Rule synthetic_figure: mean avg. js against eta (PDF + PNG) from eta_curve.csv."""

from pathlib import Path

import pandas as pd

from mixce.io import job_logging
from mixce.synthetic.figure import plot_eta_curves
from mixce.synthetic.tables import init_label


def main(smk) -> None:
    with job_logging(smk.log[0]):
        curve = pd.read_csv(smk.input.curve)
        labels = {name: init_label(name, spec) for name, spec in smk.params.specs.items()}
        stem = Path(smk.output.pdf).with_suffix("")
        plot_eta_curves(curve, stem, inits=smk.params.inits, init_labels=labels)


main(snakemake)  # noqa: F821
