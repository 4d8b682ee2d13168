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
        human = []
        for path in smk.input.human:
            scores = json.loads(Path(path).read_text())
            human.append({"dataset": Path(path).parent.name, "split": Path(path).stem, **scores})
        ppl = []
        for path in smk.input.perplexity:
            p = Path(path)
            variant = p.stem
            ppl.append(
                {
                    "dataset": p.parent.parent.name,
                    "model": p.parent.name,
                    "variant": variant,
                    **variant_columns(variant),
                    **json.loads(p.read_text()),
                }
            )
        write_csv(smk.output.samples, samples)
        write_csv(smk.output.human, pd.DataFrame(human))
        write_csv(smk.output.perplexity, pd.DataFrame(ppl))
        logging.info(
            "%d sample files, %d human splits, %d models", len(samples), len(human), len(ppl)
        )


main(snakemake)  # noqa: F821
