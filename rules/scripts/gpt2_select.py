"""Checkpoint select_models: by dev MAUVE, the best MixCE eta (Table 12), the best top-p
(Table 3) and the best setting of every objective (the comparison of objectives)."""

import logging

import pandas as pd

from mixce.gpt2.select import select_eta, select_settings, select_top_p
from mixce.io import job_logging, write_csv


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        samples = pd.read_csv(smk.input.samples)
        eta = select_eta(samples, p.n_train, p.datasets, p.models, p.selected_eta)
        top_p = select_top_p(samples, p.n_train)
        settings = select_settings(samples, p.n_train, p.datasets, p.models, p.objectives)
        for row in eta[eta["eta"] != eta["config_eta"]].itertuples():
            logging.warning(
                "%s / %s: dev MAUVE selects eta %.2f, the config's selected_eta (used for "
                "top-p sampling and Table 5) is %.2f",
                row.dataset,
                row.model,
                row.eta,
                row.config_eta,
            )
        write_csv(smk.output.eta, eta)
        write_csv(smk.output.top_p, top_p)
        write_csv(smk.output.settings, settings)
        logging.info(
            "selected etas:\n%s\nbest top-p:\n%s\nbest settings:\n%s", eta, top_p, settings
        )


main(snakemake)  # noqa: F821
