"""Rule fetch_model: a hub model saved under resources/ (safetensors) for offline nodes."""

import logging

from mixce.io import job_logging
from mixce.models import count_parameters, hub_model, save_model


def main(smk) -> None:
    with job_logging(smk.log[0]):
        model = hub_model(smk.params.name)
        logging.info("%s: %d parameters", smk.params.name, count_parameters(model))
        save_model(model, smk.output[0])


main(snakemake)  # noqa: F821
