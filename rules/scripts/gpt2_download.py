"""Rule download_dataset: fetch one hub / url dataset into resources/datasets/<dataset>/.

params: ``spec`` (the dataset spec without its pins, mixce.gpt2.data.sources.content_spec),
``hf_home`` (the Hugging Face home under resources/, not $HOME). The pins (``sha256``,
``size``, ``revision``) and ``refresh_downloads`` are read from the config, not params, so
that adding a pin that agrees with the record reruns nothing. output: ``manifest`` (written
last; the downloaded files and ``record.json`` go in its directory). log: one file.
"""

import logging
import os
from pathlib import Path


def main(smk) -> None:
    hf_home = Path(smk.params.hf_home).resolve()
    os.environ["HF_HOME"] = str(hf_home)  # before datasets / huggingface_hub are imported

    from mixce.gpt2.data.sources import fetch, pins_of
    from mixce.io import job_logging

    dataset = smk.wildcards.dataset
    spec = {**smk.params.spec, **pins_of(smk.config["gpt2"]["datasets"][dataset])}
    refresh = dataset in (smk.config.get("refresh_downloads") or [])
    with job_logging(smk.log[0]):
        logging.info("HF_HOME=%s", hf_home)
        dest = Path(smk.output.manifest).parent  # fetch writes its manifest.json last
        fetch(spec, dest, refresh=refresh, cache_dir=hf_home / "datasets")


main(snakemake)  # noqa: F821
