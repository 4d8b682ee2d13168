"""Rule collect_controlled: controlled metrics of the selected models and the human rows."""

import json
import logging
import math
from pathlib import Path

import pandas as pd

from mixce.gpt2.metrics.scoring import variant_columns
from mixce.io import job_logging, write_csv

COLUMNS = "dataset model variant objective eta seed length".split()
COLUMNS += "c_mauve c_coherence n_fragments status".split()


def main(smk) -> None:
    with job_logging(smk.log[0]):
        rows = []
        for path in map(Path, smk.input.scores):
            if path.name == "human.json":
                dataset = path.parent.name
                who = {"model": "human", "variant": "human", "objective": "human"}
                who |= {"eta": math.nan, "seed": math.nan}
            else:
                dataset, model, variant = path.parts[-4:-1]
                who = {"model": model, "variant": variant, **variant_columns(variant)}
                who |= {"seed": int(path.stem.removeprefix("seed"))}
            for length, result in json.loads(path.read_text())["lengths"].items():
                scores = {key: result.get(key, math.nan) for key in ("c_mauve", "c_coherence")}
                rows.append(
                    {"dataset": dataset, **who, "length": int(length), **scores}
                    | {"n_fragments": result.get("n_fragments", 0), "status": result["status"]}
                )
        write_csv(smk.output[0], pd.DataFrame(rows, columns=COLUMNS))
        logging.info("%d rows", len(rows))


main(snakemake)  # noqa: F821
