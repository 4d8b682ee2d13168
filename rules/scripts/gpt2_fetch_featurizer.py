"""Rule fetch_featurizer: a hub featurizer (e.g. gpt2-large, SimCSE) saved for offline nodes."""

import logging
import shutil
import tempfile
from pathlib import Path

from mixce.io import job_logging


def main(smk) -> None:
    from transformers import AutoModel, AutoTokenizer

    with job_logging(smk.log[0]):
        name = smk.params.spec["name"]
        out = Path(smk.output[0])
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            AutoModel.from_pretrained(name).save_pretrained(tmp, safe_serialization=True)
            AutoTokenizer.from_pretrained(name).save_pretrained(tmp)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logging.info("saved %s to %s", name, out)


main(snakemake)  # noqa: F821
