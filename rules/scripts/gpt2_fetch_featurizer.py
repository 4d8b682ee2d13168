"""Rule fetch_featurizer: a hub featurizer (e.g. gpt2-large, SimCSE) saved for offline nodes."""

import logging
from pathlib import Path

from mixce.gpt2.models import save_dir
from mixce.io import job_logging


def main(smk) -> None:
    from transformers import AutoModel, AutoTokenizer

    with job_logging(smk.log[0]):
        name = smk.params.spec["name"]

        def write(tmp: Path) -> None:
            AutoModel.from_pretrained(name).save_pretrained(tmp, safe_serialization=True)
            AutoTokenizer.from_pretrained(name).save_pretrained(tmp)

        save_dir(smk.output[0], write)
        logging.info("saved %s to %s", name, smk.output[0])


main(snakemake)  # noqa: F821
