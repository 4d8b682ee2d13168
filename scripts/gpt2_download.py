"""Rule gpt2_download: fetch one hub / url dataset into resources/<dataset>/.

params: ``spec`` (the dataset spec dict, config key gpt2.datasets.<dataset>).
output: ``manifest`` (``resources/<dataset>/manifest.json``; the downloaded files go in its
directory and the manifest is written last). log: one file.
"""

from pathlib import Path

from mixce.data.sources import MANIFEST, fetch
from mixce.io import job_logging


def main(smk) -> None:
    with job_logging(smk.log[0]):
        manifest = Path(smk.output.manifest)
        if manifest.name != MANIFEST:
            raise ValueError(f"output manifest must be named {MANIFEST}, got {manifest}")
        fetch(dict(smk.params.spec), manifest.parent)


main(snakemake)  # noqa: F821
