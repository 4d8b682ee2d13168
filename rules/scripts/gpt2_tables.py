"""Rule gpt2_tables: the paper's GPT-2 Tables 2, 3, 5, 8, 9, 10 and 12 (CSV + LaTeX)."""

import logging

import pandas as pd

from mixce.gpt2.tables import table2, table3, table5, table8, table9, table10, table12
from mixce.io import job_logging, write_table


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        names = ("samples", "human", "perplexity", "eta", "top_p", "controlled")
        samples, human, ppl, selection, top_p, controlled = (
            pd.read_csv(smk.input[name]) for name in names
        )
        common = {"datasets": p.datasets, "main_n_train": p.main_n_train}
        models = {**common, "models": p.models}
        tables = {
            "table2": table2(samples, human, ppl, selection, **models),
            "table3": table3(samples, human, top_p, **models),
            "table5": table5(samples, human, ppl, selection, **common, model=p.models[0]),
            "table8": table8(controlled, selection, **models),
            "table9": table9(controlled, selection, **models),
            "table10": table10(samples, human, selection, **models),
            "table12": table12(selection, datasets=p.datasets, models=p.models),
        }
        for name, (df, tex) in tables.items():
            write_table(df, tex, str(smk.output[f"{name}_csv"]).removesuffix(".csv"))
            logging.info("%s: %d rows", name, len(df))


main(snakemake)  # noqa: F821
