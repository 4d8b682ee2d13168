# Shared helpers of the rules: path templates, config look-ups, input functions.
import os
from functools import cache, partial
from pathlib import Path

from mixce.config import selected_inits
from mixce.rerun import CodeIndex
from mixce.gpt2 import protocol as _protocol
from mixce.gpt2.plan import (
    BASE,
    finetune_job,
    finetune_jobs,
    model_train_settings,
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
SEEDS = [int(s) for s in SYN["seeds"]]


# Downloads run on the submitting machine (they need the internet).
localrules:
    download_dataset,
    tokenizer,
    fetch_model,
    fetch_featurizer,


def results(*parts):
    return str(Path("results", RUN, *map(str, parts)))


# resources/: downloads shared by runs
def resource(*parts):
    return str(Path("resources", *map(str, parts)))


# Path templates: a stage's files are <root>/<stage>/<wildcards>..., the log and benchmark of
# a job of a rule <root>/logs/<rule>/<wildcards>.log and <root>/benchmarks/<rule>/<...>.tsv
# (root: results/<run>, or resources/ for downloads); <wildcards> is one of these.
SYN_SEED = "{init}/V{vocab}/seed{seed}"
SYN_RUN = "{init}/V{vocab}/{objective}/eta{eta}"
VARIANT = "{dataset}/{model}/{variant}"
SAMPLE = "{dataset}/{model}/{variant}/{split}/{decoding}"  # a sample job (see seed_stem)


def log_path(rule, stem=None, root=results):
    return root("logs", rule, f"{stem or rule}.log")


def benchmark_path(rule, stem=None, root=results):
    return root("benchmarks", rule, f"{stem or rule}.tsv")


# protocol(*names): the settings of the named protocol points (docs/PROTOCOL.md), for a
# rule's params: switching one point reruns the rules that read it and nothing else.
protocol = partial(_protocol.points, config)


def sample_protocol():
    """Protocol points of the sample jobs. Newlines only where generation_length is official
    (the released length rule counts the human texts' tokens as its loader saw them)."""
    points = protocol("generation_length", "precision")
    if points["generation_length"] == "official":
        points.update(protocol("newlines"))
    return points


# A job reruns after a code change through its `code` param (params trigger): the fingerprint
# (mixce.rerun) of its script and the src/mixce definitions its imports reach, less comments,
# docstrings and formatting. Source files are not inputs (their mtime would rerun all that
# imports them) and the profiles leave out the `code` trigger (script mtime).
_CODE_INDEX = CodeIndex(Path(workflow.basedir, "src"))


def code(*modules):
    """The `code` param of each scripted rule: {file: digest} of the code its script runs."""
    if modules:
        raise WorkflowError(
            f"code({', '.join(map(repr, modules))}): code() takes no module list any more; "
            "put `code=code(),` under the rule's params (the modules come from its "
            "script's imports, mixce.rerun)"
        )

    def fingerprint(wildcards):
        return _fingerprint(fingerprint)

    fingerprint.mixce_code = True
    return fingerprint


@cache
def _code_scripts():
    """{code param: (script, label)} of the scripted rules, each of which must have one."""
    scripts, missing = {}, []
    base = Path(workflow.basedir).resolve()
    for each in (r for r in workflow.rules if r.script is not None):
        params = [p for p in each.params if getattr(p, "mixce_code", False)]
        script = (Path(each.snakefile).parent / each.script).resolve()
        if params:
            scripts[params[0]] = script, os.path.relpath(script, base)
        else:
            missing.append(each.name)
    if missing:
        raise WorkflowError(
            f"rule(s) {', '.join(missing)}: no `code=code(),` under params, so an edit "
            "of the code they run would rerun nothing (rules/common.smk, code)"
        )
    return scripts


@cache
def _fingerprint(param):
    return _CODE_INDEX.fingerprint(*_code_scripts()[param])


# --------------------------------------------------------------------------- report outputs

TABLE_FORMATS = {"csv": "CSV", "tex": "LaTeX", "html": "HTML (view)"}
SYN_CATEGORY = "1. Synthetic track (section 4.1)"
GPT2_CATEGORY = "2. GPT-2 track (section 4.2)"
EXTRA_CATEGORY = "3. Beyond the paper"


def table_files(table):
    """A table's files: its data (csv), LaTeX (tex) and a page the report shows (html)."""
    return {ext: results("tables", f"{table}.{ext}") for ext in TABLE_FORMATS}


def table_outputs(tables, category, label=None):
    """Named outputs ``<table>_<ext>`` of the tables' files, each in the HTML report with its
    table's caption (report/<table>.rst). The report sorts labels as text: "Table  2" (two
    spaces, shown as one) sorts before "Table 10"."""
    return {
        f"{table}_{ext}": report(
            path,
            caption=f"report/{table}.rst",
            category=category,
            subcategory="Tables",
            labels={
                "table": label or f"Table {table.removeprefix('table'):>2}",
                "format": TABLE_FORMATS[ext],
            },
        )
        for table in tables
        for ext, path in table_files(table).items()
    }


def figure_files(stem):
    return [results("figures", f"{stem}.{ext}") for ext in ("pdf", "png")]


def figure_outputs(stem, category, label):
    """Outputs pdf and png of a figure, in the HTML report with its caption report/<stem>.rst."""
    return {
        ext: report(
            path,
            caption=f"report/{stem}.rst",
            category=category,
            subcategory="Figures",
            labels={"figure": label, "format": kind},
        )
        for ext, kind, path in zip(("pdf", "png"), ("Print (PDF)", "PNG"), figure_files(stem))
    }


# --------------------------------------------------------------------------- synthetic


ZEROING = protocol("synthetic_zeroing")["synthetic_zeroing"]


def random_init(wildcards):
    return SYN["inits"][wildcards.init]["kind"] == "random"


def real_text_settings(wildcards):
    """Where the texts of a real_text init come from (None for other kinds)."""
    if SYN["inits"][wildcards.init]["kind"] != "real_text":
        return None
    real_text = SYN["real_text"]
    return {"source": real_text.get("source", "embedded"), "n_texts": real_text["n_texts"]}


def real_text_file(wildcards):
    """The text file of a real_text init as an input (none for the embedded corpora)."""
    settings = real_text_settings(wildcards)
    return [settings["source"]] if settings and settings["source"] != "embedded" else []


def synthetic_seeds(stage):
    """The per-seed files of a stage (target or data) one synthetic_train job reads."""
    return expand(results("synthetic", stage, f"{SYN_SEED}.npz"), seed=SEEDS, allow_missing=True)


SUMMARY = {
    name: results("synthetic", "summary", f"{name}.csv")
    for name in ("runs", "selected", "eta_curve")
}
TABLES = ("table1", "table6", "table7", "table11")


def synthetic_outputs():
    if not SYNTHETIC_ENABLED:
        return []
    tables = [path for table in TABLES for path in table_files(table).values()]
    return list(SUMMARY.values()) + tables + figure_files("synthetic_eta")


# --------------------------------------------------------------------------- gpt2

GPT2 = config["gpt2"]
GPT2_ENABLED = GPT2.get("enabled", True)
GPT2_DATASETS = list(GPT2["use_datasets"])
GPT2_MODELS = list(GPT2["use_models"])
PRETRAIN_DATASETS = list(GPT2["pretrain"]["datasets"])
TOKENIZER_DIR = results("models", "tokenizer")
SAMPLE_SEEDS = [int(s) for s in GPT2["sampling"]["seeds"]]
N_MAIN = GPT2["finetune"]["train_size"]  # the main finetuning train size
# The prompts (the first tokens of a split's texts) and the generation length, as params.
PROMPTS = {k: GPT2["sampling"][k] for k in ("prompt_tokens", "max_new_tokens", "n_prompts")}


def manifest_path(dataset):
    """What the download of a hub / url dataset leaves in resources/ (shared by runs)."""
    return resource("datasets", dataset, "manifest.json")


def split_path(dataset, split):
    return results("data", dataset, f"{split}.jsonl")


def prepared_datasets():
    """Every dataset this run prepares: finetuning datasets, then pretraining ones."""
    names = list(GPT2_DATASETS)
    if scratch_models(GPT2):
        names += [d for d in PRETRAIN_DATASETS if d not in names]
    return names


def dataset_train_sizes(dataset):
    """Train sizes a dataset must offer: the main size, and Table 5's where it applies
    (none for a dataset used only for pretraining: all its train texts are used)."""
    if dataset not in GPT2_DATASETS:
        return []
    table5 = GPT2["train_sizes"]["sizes"] if GPT2["train_sizes"]["models"] else []
    return sorted({N_MAIN, *table5})


def base_model_dir(model):
    """The model finetuning starts from: hub download, local directory or pretrained scratch."""
    spec = GPT2["models"][model]
    if spec["source"] == "hub":
        return resource("models", model)
    if spec["source"] == "local":
        return spec["path"]
    return results("models", "pretrain", model, "model")


def model_dir(dataset, model, variant):
    if variant == BASE:
        return base_model_dir(model)
    return results("finetune", dataset, model, variant, "model")


# The finetuning plan, built once (input functions and params look jobs up in it).
FINETUNE_PLAN = (
    {(j.dataset, j.model, j.variant): j for j in finetune_jobs(GPT2)} if GPT2_ENABLED else {}
)


def planned_finetune(wildcards):
    key = (wildcards.dataset, wildcards.model, wildcards.variant)
    # finetune_job raises a KeyError naming a job that is not planned
    return FINETUNE_PLAN[key] if key in FINETUNE_PLAN else finetune_job(GPT2, *key)


def reference_model(wildcards):
    """The frozen model a finetuning job trains through (LFD's degenerative model), if any."""
    job = planned_finetune(wildcards)
    return [] if job.reference is None else model_dir(job.dataset, job.model, job.reference)


def gpt2_outputs():
    """Final outputs of the GPT-2 branch: data reports, finetuned models, samples, report."""
    if not GPT2_ENABLED:
        return []
    reports = [results("data", d, "report.json") for d in prepared_datasets()]
    finetuned = [results("finetune", *key, "summary.json") for key in FINETUNE_PLAN]
    samples = [results("samples", f"{job.path}.jsonl") for job in sample_jobs(GPT2)]
    tables = [path for table in GPT2_TABLES for path in table_files(table).values()]
    figures = figure_files("figure2") + figure_files("figure4")
    figures += [*table_files("objectives").values(), *figure_files("quality_diversity")]
    kit = [results("human_eval", "pairs.csv"), results("human_eval", "key.csv")]
    if GPT2["human_eval"]["judgments"]:
        kit += list(table_files("table4").values())
    return reports + finetuned + samples + tables + figures + kit


# --------------------------------------------------------------------------- gpt2 metrics

METRICS = GPT2["metrics"]
MAUVE_LENGTHS = sorted(int(n) for n in METRICS["mauve"]["lengths"])
FEATURIZERS = {role: METRICS[role]["featurizer"] for role in ("mauve", "coherence")}
METRICS_TABLES = {
    name: results("metrics", f"{name}.csv") for name in ("samples", "human", "perplexity")
}
SELECTION = {name: results("selection", f"{name}.csv") for name in ("eta", "top_p", "settings")}
GPT2_TABLES = ("table2", "table3", "table5", "table8", "table9", "table10", "table12")


def featurizer_inputs(wildcards=None):
    """Featurizer model directories: a hub model's local copy, or a gpt2.models entry's base
    model (``model``: e.g. the demo's GPT-2 pretrained in the DAG); none for the offline one."""
    inputs = {}
    for role, spec in FEATURIZERS.items():
        if spec.get("model"):
            inputs[role] = base_model_dir(spec["model"])
        elif spec["kind"] in ("gpt2", "simcse"):
            inputs[role] = resource("featurizers", role)
    return inputs


def test_samples(runs):
    """The first sampling seed's unbiased test samples of (dataset, model, variant) runs."""
    name = f"seed{SAMPLE_SEEDS[0]}.jsonl"
    return [results("samples", *run, "test", "unbiased", name) for run in runs]


def selected_variants(wildcards=None):
    """(dataset, model, variant) of Table 2's models: MLE and the MixCE eta that dev MAUVE
    selected (read from the select_models checkpoint's output)."""
    import pandas as pd

    table = pd.read_csv(checkpoints.select_models.get().output.eta)
    return [
        (row.dataset, row.model, variant)
        for row in table.itertuples()
        for variant in (f"mle_n{N_MAIN}", variant_name("mixce", N_MAIN, row.eta))
    ]


def controlled_inputs(wildcards):
    runs = [
        results("metrics", "controlled", *run, f"seed{seed}.json")
        for run in selected_variants()
        for seed in SAMPLE_SEEDS
    ]
    return runs + [results("metrics", "controlled", d, "human.json") for d in GPT2_DATASETS]


# --------------------------------------------------------------------------- files the config names


def missing_config_files():
    """Files and directories the config names as inputs of this run that are not there, as
    "config key = path" lines. Checked at start-up: Snakemake takes an existing output as it is
    when its rule's input is gone (a moved text file would leave the old results in place
    and print 'Nothing to be done')."""
    wanted = []  # (config key, path, directory?)
    if SYNTHETIC_ENABLED and any(SYN["inits"][i]["kind"] == "real_text" for i in INITS):
        source = SYN["real_text"].get("source", "embedded")
        if source != "embedded":
            wanted.append(("synthetic.real_text.source", source, False))
    if GPT2_ENABLED:
        for kind, names in (("datasets", prepared_datasets()), ("models", GPT2_MODELS)):
            for name in names:
                if GPT2[kind][name]["source"] == "local":
                    path = GPT2[kind][name]["path"]
                    wanted.append((f"gpt2.{kind}.{name}.path", path, kind == "models"))
        if GPT2["human_eval"]["judgments"]:
            wanted.append(("gpt2.human_eval.judgments", GPT2["human_eval"]["judgments"], False))
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
