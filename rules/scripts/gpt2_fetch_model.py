"""Rule fetch_model: a hub model at a recorded commit, saved under resources/ (safetensors)
for offline nodes (mixce.gpt2.models.fetch_hub_model). The weights are cached under
params.hf_home, not $HOME. The pin (gpt2.models.<model>.revision) and refresh_downloads are
read from the config, not params, so that adding a pin that agrees with the record reruns
nothing; ``<dir>.record.json`` beside the output keeps the commit.
"""

import logging
import os
from pathlib import Path


def main(smk) -> None:
    hf_home = Path(smk.params.hf_home).resolve()
    os.environ["HF_HOME"] = str(hf_home)  # before transformers / huggingface_hub are imported

    from mixce.gpt2.data.download import model_record_path
    from mixce.gpt2.models import fetch_hub_model
    from mixce.io import job_logging

    model = smk.wildcards.model
    spec = smk.config["gpt2"]["models"][model]
    refresh = model in (smk.config.get("refresh_downloads") or [])
    with job_logging(smk.log[0]):
        logging.info("HF_HOME=%s", hf_home)
        out = Path(smk.output[0])
        options = dict(revision=spec.get("revision"), refresh=refresh, cache_dir=hf_home / "hub")
        manifest = fetch_hub_model(smk.params.name, out, model_record_path(out), **options)
        logging.info("%(name)s: %(parameters)d parameters, commit %(commit)s", manifest)


main(snakemake)  # noqa: F821
