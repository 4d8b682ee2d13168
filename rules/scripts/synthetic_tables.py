"""Rule synthetic_tables: Tables 1, 6, 7 and 11 (CSV + LaTeX) from selected.csv."""

import pandas as pd

from mixce.io import job_logging, write_table
from mixce.synthetic.tables import init_label, table_best_eta, table_ci, table_main


def main(smk) -> None:
    with job_logging(smk.log[0]):
        selected = pd.read_csv(smk.input.selected)
        tables, t7 = smk.params.tables, smk.params.tables["table7"]
        labels = {name: init_label(name, spec) for name, spec in smk.params.specs.items()}
        built = {
            "table1": table_main(selected, tables["table1"], labels),
            "table6": table_main(
                selected, tables["table6"], labels, label="tab:synthetic-more-inits"
            ),
            "table7": table_ci(selected, t7["init"], t7["vocab_size"], t7["objectives"], labels),
            "table11": table_best_eta(selected, tables["table11"], labels),
        }
        for name, (df, tex) in built.items():
            write_table(df, tex, str(smk.output[f"{name}_csv"]).removesuffix(".csv"))


main(snakemake)  # noqa: F821
