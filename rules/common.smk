# Shared helpers of the rules: output paths, config look-ups, input functions.
import os
from pathlib import Path

from mixce.config import selected_inits
from mixce.rerun import CodeIndex
from mixce.gpt2 import protocol as _protocol
from mixce.gpt2.plan import (
    BASE,
    finetune_job,
    finetune_jobs,
    parse_variant,
    sample_groups,
    sample_jobs,
    scratch_models,
    variant_name,
)
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


def protocol(*names):
    """Settings of the named protocol points (docs/PROTOCOL.md), for a rule's params:
    switching one point reruns the rules that read it and nothing else."""
    return _protocol.points(config, *names)


def sample_protocol():
    """Protocol points of the sample jobs. Newlines only where generation_length is official
    (the released length rule counts the human texts' tokens as its loader saw them)."""
    points = protocol("generation_length", "precision")
    if points["generation_length"] == "official":
        points.update(protocol("newlines"))
    return points


# What reruns a job after a code change is its `code` param, the content fingerprint of what
# its script runs (mixce.rerun: the script and the definitions it reaches in src/mixce,
# found statically from its imports, inside functions too; comments, docstrings and
# formatting left out). Snakemake's params trigger compares it with the one recorded at
# the last run, so an edit reruns exactly the rules whose code it changes, and a comment,
# a docstring, a reformat or a `git pull` that only touches files reruns nothing. The
# source files are not inputs (their mtime would rerun everything that imports them), and
# the profiles leave out the `code` trigger (script mtime): scripts are fingerprinted too.
_CODE_INDEX = CodeIndex(Path(workflow.basedir, "src"))
_CODE_SCRIPTS = {}  # a rule's code param -> (its rule's script, the script's label)
_CODE = {}  # a rule's code param -> the fingerprint


def code(*modules):
    """The `code` param of each scripted rule, {file: digest} of the code it runs,
    derived from the rule's own script (no list to keep up to date)."""
    if modules:
        raise WorkflowError(
            f"code({', '.join(map(repr, modules))}): code() takes no module list any more; "
            "put `code=code(),` under the rule's params (the modules come from its "
            "script's imports, mixce.rerun)"
        )

    def fingerprint(wildcards):
        return _rule_code(fingerprint)

    fingerprint.mixce_code = True
    return fingerprint


def _rule_code(param):
    """The fingerprint of the rule whose code param is `param`, computed once per rule. The
    first call checks that every rule with a script has such a param."""
    if not _CODE_SCRIPTS:
        missing = []
        base = Path(workflow.basedir).resolve()
        for each in workflow.rules:
            if each.script is None:
                continue
            params = [p for p in each.params if getattr(p, "mixce_code", False)]
            if not params:
                missing.append(each.name)
                continue
            script = (Path(each.snakefile).parent / each.script).resolve()
            _CODE_SCRIPTS[params[0]] = script, os.path.relpath(script, base)
        if missing:
            raise WorkflowError(
                f"rule(s) {', '.join(missing)}: no `code=code(),` under params, so an edit "
                "of the code they run would rerun nothing (rules/common.smk, code)"
            )
    if param not in _CODE:
        _CODE[param] = _CODE_INDEX.fingerprint(*_CODE_SCRIPTS[param])
    return _CODE[param]


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


TABLE_FORMATS = {"csv": "CSV", "tex": "LaTeX", "html": "HTML (view)"}


def table_files(table):
    """A paper table's files: its data (csv), LaTeX (tex) and a page the report shows (html)."""
    return {ext: results("tables", f"{table}.{ext}") for ext in TABLE_FORMATS}


def table_outputs(table, category, label=None):
    """Named outputs ``<table>_<ext>`` of a table's files, each in the HTML report with the
    table's caption (report/<table>.rst). The report sorts labels as text: "Table  2" (two
    spaces, shown as one) sorts before "Table 10"."""
    if label is None:
        label = f"Table {table.removeprefix('table'):>2}"
    return {
        f"{table}_{ext}": report(
            path,
            caption=f"report/{table}.rst",
            category=category,
            subcategory="Tables",
            labels={"table": label, "format": TABLE_FORMATS[ext]},
        )
        for ext, path in table_files(table).items()
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
    return synthetic_outputs() + gpt2_outputs()


# --------------------------------------------------------------------------- gpt2

GPT2 = config["gpt2"]
GPT2_ENABLED = GPT2.get("enabled", True)
GPT2_DATASETS = list(GPT2["use_datasets"])
GPT2_MODELS = list(GPT2["use_models"])
PRETRAIN_DATASETS = list(GPT2["pretrain"]["datasets"])


def dataset_spec(dataset):
    """Config entry gpt2.datasets.<dataset> as a plain dict."""
    return dict(GPT2["datasets"][dataset])


def model_spec(model):
    """Config entry gpt2.models.<model> as a plain dict."""
    return dict(GPT2["models"][model])


def manifest_path(dataset):
    """What the download of a hub / url dataset leaves in resources/ (shared by runs)."""
    return str(Path("resources", "datasets", dataset, "manifest.json"))


def split_path(dataset, split):
    return results("data", dataset, f"{split}.jsonl")


def dataset_download(wildcards):
    """The download manifest of a dataset, if its source is downloaded (hub / url)."""
    if dataset_spec(wildcards.dataset)["source"] in ("hub", "url"):
        return [manifest_path(wildcards.dataset)]
    return []


def local_dataset_file(wildcards):
    """A local dataset's file, as an input (an edited file reruns the preparation)."""
    spec = dataset_spec(wildcards.dataset)
    return [spec["path"]] if spec["source"] == "local" else []


def prepared_datasets():
    """Every dataset this run prepares: finetuning datasets, then pretraining ones."""
    names = list(GPT2_DATASETS)
    if scratch_models(GPT2):
        names += [d for d in PRETRAIN_DATASETS if d not in names]
    return names


TOKENIZER_DIR = results("models", "tokenizer")


def hub_model_dir(model):
    return str(Path("resources", "models", model))


def pretrained_dir(model):
    return results("models", "pretrain", model, "model")


def base_model_dir(model):
    """The model finetuning starts from: hub download, local directory or pretrained scratch."""
    spec = model_spec(model)
    if spec["source"] == "hub":
        return hub_model_dir(model)
    if spec["source"] == "local":
        return spec["path"]
    return pretrained_dir(model)


def finetune_dir(dataset, model, variant):
    return results("finetune", dataset, model, variant)


def model_dir(dataset, model, variant):
    """Model directory of a variant: the base model, or a finetuned one."""
    if variant == BASE:
        return base_model_dir(model)
    return str(Path(finetune_dir(dataset, model, variant), "model"))


def sample_path(job, ext="jsonl"):
    return results("samples", f"{job.path}.{ext}")


SAMPLE_SEEDS = [int(s) for s in GPT2["sampling"]["seeds"]]
# The wildcards of a sample job (rules/cluster.smk, seed_files: with or without {seed}).
SAMPLE_DIR = ("{dataset}", "{model}", "{variant}", "{split}", "{decoding}")


# The finetuning plan, built once (input functions and params look jobs up in it).
FINETUNE_PLAN = (
    {(j.dataset, j.model, j.variant): j for j in finetune_jobs(GPT2)}
    if GPT2_ENABLED
    else {}
)


def planned_finetune(wildcards):
    """The planned finetuning job of the wildcards (mixce.gpt2.plan.FinetuneJob)."""
    key = (wildcards.dataset, wildcards.model, wildcards.variant)
    if key not in FINETUNE_PLAN:
        return finetune_job(GPT2, *key)  # raises a KeyError naming the job
    return FINETUNE_PLAN[key]


def reference_model(wildcards):
    """The frozen model a finetuning job trains through (LFD's degenerative model), if any."""
    job = planned_finetune(wildcards)
    if job.reference is None:
        return []
    return model_dir(job.dataset, job.model, job.reference)


def finetune_settings(wildcards):
    """TrainSettings fields of one finetuning job (mixce.gpt2.train.TrainSettings)."""
    job = planned_finetune(wildcards)
    ft = GPT2["finetune"]
    return {
        "objective": job.objective,
        "hyper": dict(job.hyper),
        "lr": ft["lr"],
        "weight_decay": ft["weight_decay"],
        "warmup_steps": ft["warmup_steps"],
        "grad_clip": ft["grad_clip"],
        "epochs": ft["epochs"],
        "max_steps": None,
        "batch_size": ft["batch_size"],
        "micro_batch_size": model_spec(wildcards.model)["micro_batch_size"],
        "max_length": ft["max_length"],
        "seed": ft["seed"],
        "eval_every": ft["eval_every"],
        "dev_batch_size": ft["dev_batch_size"],
    }


def pretrain_settings(wildcards):
    """TrainSettings fields of the MLE pretraining of a scratch model."""
    pt = GPT2["pretrain"]
    return {
        "objective": "mle",
        "hyper": {},
        "lr": pt["lr"],
        "weight_decay": pt["weight_decay"],
        "warmup_steps": pt["warmup_steps"],
        "grad_clip": pt["grad_clip"],
        "epochs": pt["epochs"],
        "max_steps": pt["max_steps"],
        "batch_size": pt["batch_size"],
        "micro_batch_size": model_spec(wildcards.model)["micro_batch_size"],
        "max_length": pt["max_length"],
        "seed": pt["seed"],
        "eval_every": 0,
        "dev_batch_size": GPT2["finetune"]["dev_batch_size"],
    }


def gpt2_outputs():
    """Final outputs of the GPT-2 branch (so far: every finetuned model and sample file)."""
    if not GPT2_ENABLED:
        return []
    finetuned = [
        str(Path(finetune_dir(j.dataset, j.model, j.variant), "summary.json"))
        for j in finetune_jobs(GPT2)
    ]
    samples = [sample_path(job) for job in sample_jobs(GPT2)]
    reports = [results("data", d, "report.json") for d in prepared_datasets()]
    return reports + finetuned + samples + gpt2_report_outputs()


def dataset_train_sizes(dataset):
    """Train sizes a dataset must offer: the main size, and Table 5's where it applies
    (none for a dataset used only for pretraining: all its train texts are used)."""
    if dataset not in GPT2_DATASETS:
        return []
    sizes = [GPT2["finetune"]["train_size"]]
    if GPT2["train_sizes"]["models"]:
        sizes += GPT2["train_sizes"]["sizes"]
    return sorted(set(sizes))


# --------------------------------------------------------------------------- gpt2 metrics

METRICS = GPT2["metrics"]
MAUVE_LENGTHS = sorted(int(n) for n in METRICS["mauve"]["lengths"])
FEATURIZERS = {
    "mauve": METRICS["mauve"]["featurizer"],
    "coherence": METRICS["coherence"]["featurizer"],
}


def featurizer_dir(role):
    return str(Path("resources", "featurizers", role))


def featurizer_inputs(wildcards=None):
    """Model directories of the featurizers: the local copy of a hub model, or the base model
    of a gpt2.models entry (``model``, e.g. the demo's GPT-2 pretrained in the DAG); none
    for the offline sentence model."""
    inputs = {}
    for role, spec in FEATURIZERS.items():
        if spec.get("model"):
            inputs[role] = base_model_dir(spec["model"])
        elif spec["kind"] in ("gpt2", "simcse"):
            inputs[role] = featurizer_dir(role)
    return inputs


def scored_sample_jobs():
    """Sample files that are scored: every finetuned model's unbiased and top-p files."""
    return [
        j for j in sample_jobs(GPT2) if j.variant != BASE and j.decoding != "greedy"
    ]


def score_path(job):
    return results("metrics", "samples", f"{job.path}.json")


def score_lengths(wildcards):
    """Generation-length cuts scored for a file: all of them for unbiased dev files (Figure 4),
    else only the largest (the main MAUVE)."""
    if wildcards.decoding == "unbiased" and wildcards.split == "dev":
        return MAUVE_LENGTHS
    return MAUVE_LENGTHS[-1:]


def human_features(wildcards):
    return results("metrics", "human", wildcards.dataset, f"{wildcards.split}.npz")


def metrics_tables():
    return {
        name: results("metrics", f"{name}.csv")
        for name in ("samples", "human", "perplexity")
    }


SELECTION = {
    "eta": results("selection", "eta.csv"),
    "top_p": results("selection", "top_p.csv"),
    "settings": results("selection", "settings.csv"),
}


def selected_variants(wildcards=None):
    """(dataset, model, variant) of Table 2's models: MLE and the MixCE eta that dev MAUVE
    selected (read from the select_models checkpoint's output)."""
    import pandas as pd

    table = pd.read_csv(checkpoints.select_models.get().output.eta)
    n_main = GPT2["finetune"]["train_size"]
    runs = []
    for row in table.itertuples():
        runs.append((row.dataset, row.model, f"mle_n{n_main}"))
        runs.append((row.dataset, row.model, variant_name("mixce", n_main, row.eta)))
    return runs


def controlled_path(dataset, model, variant, seed):
    return results("metrics", "controlled", dataset, model, variant, f"seed{seed}.json")


def controlled_inputs(wildcards):
    runs = [
        controlled_path(d, m, v, s)
        for d, m, v in selected_variants()
        for s in SAMPLE_SEEDS
    ]
    human = [results("metrics", "controlled", d, "human.json") for d in GPT2_DATASETS]
    return runs + human


def figure_files(stem):
    return [results("figures", f"{stem}.{ext}") for ext in ("pdf", "png")]


GPT2_TABLES = ("table2", "table3", "table5", "table8", "table9", "table10", "table12")


def gpt2_report_outputs():
    if not GPT2_ENABLED:
        return []
    tables = [path for table in GPT2_TABLES for path in table_files(table).values()]
    figures = figure_files("figure2") + figure_files("figure4")
    figures += list(table_files("objectives").values()) + figure_files(
        "quality_diversity"
    )
    kit = [results("human_eval", "pairs.csv"), results("human_eval", "key.csv")]
    if GPT2["human_eval"]["judgments"]:
        kit += list(table_files("table4").values())
    return tables + figures + kit


# --------------------------------------------------------------------------- files the config names


def missing_config_files():
    """Files and directories the config names as inputs of this run that are not there, as
    "config key = path" lines. Checked at start-up: Snakemake takes an existing output as it is
    when its rule's input is gone (a moved text file would leave the old results in place
    and print 'Nothing to be done')."""
    wanted = []  # (config key, path, directory?)
    if SYNTHETIC_ENABLED and any(init_spec(i)["kind"] == "real_text" for i in INITS):
        source = SYN["real_text"].get("source", "embedded")
        if source != "embedded":
            wanted.append(("synthetic.real_text.source", source, False))
    if GPT2_ENABLED:
        for dataset in prepared_datasets():
            spec = dataset_spec(dataset)
            if spec["source"] == "local":
                wanted.append((f"gpt2.datasets.{dataset}.path", spec["path"], False))
        for model in GPT2_MODELS:
            spec = model_spec(model)
            if spec["source"] == "local":
                wanted.append((f"gpt2.models.{model}.path", spec["path"], True))
        if GPT2["human_eval"]["judgments"]:
            wanted.append(
                ("gpt2.human_eval.judgments", GPT2["human_eval"]["judgments"], False)
            )
    return [
        f"config key {key} = {path!r}: no such {'directory' if is_dir else 'file'}"
        f" ({Path(path).absolute()})"
        for key, path, is_dir in wanted
        if not (Path(path).is_dir() if is_dir else Path(path).is_file())
    ]


if missing_config_files():
    raise WorkflowError(
        "input files named in the config are missing (moved or deleted?):\n"
        + "\n".join(missing_config_files())
    )
