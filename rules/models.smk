# GPT-2 track, models: the tokenizer, hub models fetched once (on the submitting machine),
# and the MLE pretraining of scratch models.

from mixce.gpt2.data.download import check_model_pin, model_record_path


rule tokenizer:
    output:
        directory(TOKENIZER_DIR),
    log:
        log_path("tokenizer"),
    benchmark:
        benchmark_path("tokenizer")
    conda:
        "../envs/torch.yaml"
    params:
        code=code(),
        source=GPT2["tokenizer"]["source"],
        name=GPT2["tokenizer"].get("name", "gpt2"),
    script:
        "scripts/gpt2_tokenizer.py"


# A hub model's pinned revision is a check, not a param (see rules/data.smk): one that
# disagrees with the commit recorded at the first fetch stops here, at start-up.
for _model in GPT2_MODELS:
    _spec = GPT2["models"][_model]
    if _model in config["refresh_downloads"] or _spec["source"] != "hub":
        continue
    try:
        check_model_pin(_spec, model_record_path(base_model_dir(_model)))
    except ChangedFileError as error:
        raise WorkflowError(f"gpt2.models.{_model}: {error}") from None


rule fetch_model:
    output:
        directory(resource("models", "{model}")),
    log:
        log_path("fetch_model", "{model}", root=resource),
    benchmark:
        benchmark_path("fetch_model", "{model}", root=resource)
    conda:
        "../envs/torch.yaml"
    params:
        code=code(),
        name=lambda wc: GPT2["models"][wc.model]["name"],
        hf_home=HF_HOME,
    script:
        "scripts/gpt2_fetch_model.py"


rule pretrain:
    input:
        tokenizer=TOKENIZER_DIR,
        train=[split_path(d, "train") for d in PRETRAIN_DATASETS],
        dev=[split_path(d, "dev") for d in PRETRAIN_DATASETS],
    output:
        model=directory(results("models", "pretrain", "{model}", "model")),
        log_csv=results("models", "pretrain", "{model}", "log.csv"),
        summary=results("models", "pretrain", "{model}", "summary.json"),
    log:
        log_path("pretrain", "{model}"),
    benchmark:
        benchmark_path("pretrain", "{model}")
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        **cluster_resources("pretrain"),
    params:
        code=code(),
        settings=lambda wc: model_train_settings(GPT2, wc.model),
        architecture=lambda wc: GPT2["models"][wc.model],
        work_dir=lambda wc: results("work", "pretrain", wc.model),
        checkpoint_every=GPT2["finetune"]["checkpoint_every"],
        device=GPT2["finetune"]["device"],
        n_train=None,
    script:
        "scripts/gpt2_train.py"
