"""Rule collect_metrics: every per-file score into tidy CSVs (samples, human, perplexity)."""

import json
import logging
from pathlib import Path

import pandas as pd

from mixce.gpt2.metrics.scoring import sample_rows, variant_columns
from mixce.io import job_logging, write_csv


def main(smk) -> None:
    with job_logging(smk.log[0]):
        samples = pd.DataFrame(sample_rows(list(smk.input.samples), smk.params.lengths))
        human = [
            {"dataset": path.parent.name, "split": path.stem, **json.loads(path.read_text())}
            for path in map(Path, smk.input.human)
        ]
        ppl = [
            {"dataset": path.parent.parent.name, "model": path.parent.name, "variant": path.stem}
            | variant_columns(path.stem)
            | json.loads(path.read_text())
            for path in map(Path, smk.input.perplexity)
        ]
        write_csv(smk.output.samples, samples)
        write_csv(smk.output.human, pd.DataFrame(human))
        write_csv(smk.output.perplexity, pd.DataFrame(ppl))
        logging.info(
            "%d sample files, %d human splits, %d models", len(samples), len(human), len(ppl)
        )


main(snakemake)  # noqa: F821
