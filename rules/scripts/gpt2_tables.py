"""Rule gpt2_tables: the paper's GPT-2 Tables 2, 3, 5, 8, 9, 10 and 12 (CSV + LaTeX)."""

import logging

import pandas as pd

from mixce.gpt2.tables import (
    table2,
    table3,
    table5,
    table8,
    table9,
    table10,
    table12,
)
from mixce.io import job_logging, write_table


def main(smk) -> None:
    with job_logging(smk.log[0]):
        p = smk.params
        samples = pd.read_csv(smk.input.samples)
        human = pd.read_csv(smk.input.human)
        ppl = pd.read_csv(smk.input.perplexity)
        selection = pd.read_csv(smk.input.eta)
        top_p = pd.read_csv(smk.input.top_p)
        controlled = pd.read_csv(smk.input.controlled)
        common = {"datasets": p.datasets}
        main_n = p.main_n_train
        models = {"models": p.models}
        tables = {
            "table2": table2(
                samples, human, ppl, selection, **common, **models, main_n_train=main_n
            ),
            "table3": table3(samples, human, top_p, **common, **models, main_n_train=main_n),
            "table5": table5(
                samples, human, ppl, selection, **common, main_n_train=main_n, model=p.models[0]
            ),
            "table8": table8(controlled, selection, **common, **models, main_n_train=main_n),
            "table9": table9(controlled, selection, **common, **models, main_n_train=main_n),
            "table10": table10(samples, human, selection, **common, **models, main_n_train=main_n),
            "table12": table12(selection, **common, **models),
        }
        for name, (df, tex) in tables.items():
            write_table(df, tex, str(smk.output[f"{name}_csv"]).removesuffix(".csv"))
            logging.info("%s: %d rows", name, len(df))


main(snakemake)  # noqa: F821
