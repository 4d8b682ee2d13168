"""Rule human_eval_table: filled-in judgments -> Table 4 with the bootstrap test."""

import logging

import pandas as pd

from mixce.gpt2.human_eval import judgments_table, table4
from mixce.io import job_logging, write_table


def main(smk) -> None:
    with job_logging(smk.log[0]):
        judgments = pd.read_csv(smk.input.judgments, dtype=str)
        key = pd.read_csv(smk.input.key)
        results = {}
        for dataset, part in key.groupby("dataset", sort=False):
            answers = judgments[judgments["pair_id"].isin(part["pair_id"])]
            if answers.empty:
                logging.warning("no judgments for dataset %s", dataset)
                continue
            results[dataset] = judgments_table(answers, part, seed=smk.params.seed)
        df, tex = table4(results)
        write_table(df, tex, str(smk.output.table4_csv).removesuffix(".csv"))
        logging.info("%s", df.to_string())


main(snakemake)  # noqa: F821
