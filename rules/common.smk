# Shared helpers of the rules: output paths, config look-ups, input functions.
import os
from pathlib import Path

from mixce.config import selected_inits
from mixce.synthetic.pipeline import eta_str, objective_etas, train_settings

RUN = config["run"]
SYN = config["synthetic"]
SYNTHETIC_ENABLED = SYN.get("enabled", True)
INITS = selected_inits(config)
OBJECTIVES = list(SYN["objectives"])
VOCAB_SIZES = [int(v) for v in SYN["vocab_sizes"]]
SEEDS = [int(s) for s in SYN["seeds"]]


def results(*parts):
    """Path under results/<run>/."""
    return str(Path("results", RUN, *map(str, parts)))


def code(*modules):
    """Source files of src/mixce modules ("synthetic/train" -> src/mixce/synthetic/train.py),
    relative to the working directory: declared as inputs, an edited module reruns the rule.
    """
    src = Path(workflow.basedir, "src", "mixce")
    return [os.path.relpath(src / f"{module}.py") for module in modules]


# --------------------------------------------------------------------------- synthetic


def init_spec(init):
    """Config entry synthetic.inits.<init> as a plain dict."""
    return dict(SYN["inits"][init])


def target_path(init, vocab, seed, ext="npz"):
    return results("synthetic", "target", init, f"V{vocab}", f"seed{seed}.{ext}")


def data_path(init, vocab, seed, ext="npz"):
    return results("synthetic", "data", init, f"V{vocab}", f"seed{seed}.{ext}")


def train_path(init, vocab, objective, eta, ext="json"):
    return results(
        "synthetic", "train", init, f"V{vocab}", objective, f"eta{eta_str(eta)}.{ext}"
    )


def real_text_settings(wildcards):
    """Where the texts of a real_text init come from (None for other kinds)."""
    if init_spec(wildcards.init)["kind"] != "real_text":
        return None
    real_text = SYN["real_text"]
    return {
        "source": real_text.get("source", "embedded"),
        "n_texts": real_text["n_texts"],
    }


def real_text_file(wildcards):
    """The text file of a real_text init as an input (none for the embedded corpora)."""
    settings = real_text_settings(wildcards)
    if settings is None or settings["source"] == "embedded":
        return []
    return [settings["source"]]


def dirichlet_alpha(wildcards):
    """Dirichlet concentration, for random inits only (None otherwise)."""
    if init_spec(wildcards.init)["kind"] != "random":
        return None
    return SYN["dirichlet_alpha"]


def train_runs():
    """(init, vocab, objective, eta) of every synthetic_train job."""
    return [
        (init, vocab, objective, eta)
        for init in INITS
        for vocab in VOCAB_SIZES
        for objective in OBJECTIVES
        for eta in objective_etas(objective, SYN["etas"])
    ]


def train_outputs():
    return [train_path(*run) for run in train_runs()]


def train_inputs(kind):
    """Per-seed target or data files of one synthetic_train job (kind: target or data)."""
    path = {"target": target_path, "data": data_path}[kind]

    def inputs(wildcards):
        return [path(wildcards.init, wildcards.vocab, seed) for seed in SEEDS]

    return inputs


def train_params(wildcards):
    """TrainConfig fields of one job (only those its objective and estimator use)."""
    return train_settings(config, wildcards.objective)


SUMMARY = {
    name: results("synthetic", "summary", f"{name}.csv")
    for name in ("runs", "selected", "eta_curve")
}
TABLES = ("table1", "table6", "table7", "table11")
FIGURE_STEM = results("figures", "synthetic_eta")


def table_files(table):
    return {
        "csv": results("tables", f"{table}.csv"),
        "tex": results("tables", f"{table}.tex"),
    }


def synthetic_outputs():
    """Final outputs of the synthetic branch."""
    if not SYNTHETIC_ENABLED:
        return []
    tables = [path for table in TABLES for path in table_files(table).values()]
    figures = [f"{FIGURE_STEM}.pdf", f"{FIGURE_STEM}.png"]
    return list(SUMMARY.values()) + tables + figures


def all_outputs():
    """The final outputs of every enabled branch (what `all` builds)."""
    return synthetic_outputs()
